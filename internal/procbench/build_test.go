package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBuildLikeMakefile: procbench builds bin/sockmail and
// bin/sockmail-server with the commands "make build" runs (environment,
// tags, package), and "make run" builds the full build the same way, so
// that the benchmark measures the programs users get; "make run" says
// what it is doing before the slow first build.
func TestBuildLikeMakefile(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^SOCKMAIL_ENV\s*:?=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile has no SOCKMAIL_ENV line")
	}
	if got := strings.TrimSpace(string(m[1])); got != sockmailEnv {
		t.Errorf("Makefile SOCKMAIL_ENV = %q, procbench builds with %q", got, sockmailEnv)
	}
	ship := shipped("bin")
	tests := []struct {
		target string
		builds []goBuild
		says   string // what it prints before the first, slow build (issue 13 item 6)
	}{
		{"build", ship, ""},
		{"run", ship[1:], "the first build compiles every dependency, about 30 s"}, // the full build, which serves
	}
	for _, tt := range tests {
		out, err := exec.Command("make", "-n", "-C", filepath.Join("..", ".."), tt.target).Output()
		if err != nil {
			t.Fatalf("make -n %s: %v", tt.target, err)
		}
		if !strings.Contains(string(out), tt.says) {
			t.Errorf("make -n %s does not say %q:\n%s", tt.target, tt.says, out)
		}
		for _, b := range tt.builds {
			if !strings.Contains(string(out), b.command()+"\n") {
				t.Errorf("make -n %s does not run %q:\n%s", tt.target, b.command(), out)
			}
		}
	}
}

// TestLinking: a program built by "go build" with cgo off is static; the
// same with cgo on and net linked is dynamic (where a C compiler exists).
func TestLinking(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		env  string
		want string
	}{
		{"CGO_ENABLED=0", "static"},
		{"CGO_ENABLED=1", "dynamic"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.env, "=", "-"))
			cmd := exec.Command("go", "build", "-o", out, "./netsmtpclient")
			cmd.Env = append(os.Environ(), tt.env)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			got, err := linking(out)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("linking = %q, want %q", got, tt.want)
			}
		})
	}
	if got, err := linking(filepath.Join("..", "..", "go.mod")); err != nil || got != "unknown" {
		t.Errorf("linking(go.mod) = %q, %v; want unknown", got, err)
	}
}
