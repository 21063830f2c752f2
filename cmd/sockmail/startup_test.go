package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxInitBytes is what one of our packages may allocate when the program
// starts: a few small values, no compiled regexps, maps or tables.
const maxInitBytes = 1024

// TestOwnPackageInitsAreLight: sockmail's own packages do no real work
// when the program starts (issue 10 item 4: every start of the binary,
// "sockmail send" included, runs the initialisation of every package
// linked). It runs this test binary, which links the packages of
// bin/sockmail (and test helpers), with GODEBUG=inittrace=1 and checks
// what the initialisation of each sockmail package that bin/sockmail links
// (go list -deps) allocated: bytes, not time, so the machine's load does
// not matter.
func TestOwnPackageInitsAreLight(t *testing.T) {
	list, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	linked := map[string]bool{}
	for _, p := range strings.Fields(string(list)) {
		linked[p] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", os.Args[0], err, out)
	}
	// init sockmail/handlers @4.1 ms, 0.010 ms clock, 144 bytes, 4 allocs
	line := regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes, (\d+) allocs$`)
	seen := 0
	for _, m := range line.FindAllStringSubmatch(string(out), -1) {
		pkg := m[1]
		if !linked[pkg] || pkg != "sockmail" && !strings.HasPrefix(pkg, "sockmail/") {
			continue
		}
		seen++
		if n, _ := strconv.Atoi(m[2]); n > maxInitBytes {
			t.Errorf("package %s allocates %d bytes (%s allocs) when the program starts, more than %d: make it lazy (sync.OnceValue, or build it at first use)", pkg, n, m[3], maxInitBytes)
		}
	}
	if seen == 0 {
		t.Fatalf("no init line of a sockmail package in the trace:\n%s", out)
	}
}
