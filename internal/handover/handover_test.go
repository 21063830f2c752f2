package handover

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLocate: where the full build is looked for, in which order, and
// what is refused with which error.
func TestLocate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the layout below uses unix file modes and names")
	}
	dir := t.TempDir()
	file := func(rel string, mode os.FileMode) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// bin: a client with the full build beside it.
	client := file("bin/sockmail", 0o755)
	server := file("bin/"+ServerName, 0o755)
	// alone: a client without one.
	alone := file("alone/sockmail", 0o755)
	// other: a full build elsewhere, named by the environment.
	other := file("other/full", 0o755)
	noExec := file("other/not-executable", 0o644)
	// link: a symbolic link to the client in bin, in a directory of its own.
	link := filepath.Join(dir, "links", "sockmail")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(client, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		self     string
		env      map[string]string
		want     string
		notFound bool   // the error matches ErrNotFound
		errHas   string // the error says this
	}{
		{name: "beside", self: client, want: server},
		{name: "beside the target of a link", self: link, want: server},
		{name: "the environment wins", self: client, env: map[string]string{BinaryEnv: other}, want: other},
		{name: "the environment for a client alone", self: alone, env: map[string]string{BinaryEnv: other}, want: other},
		{name: "none beside", self: alone, notFound: true, errHas: filepath.Join(dir, "alone", ServerName) + ": no such file"},
		{name: "environment names nothing", self: client, env: map[string]string{BinaryEnv: filepath.Join(dir, "nothing")},
			notFound: true, errHas: BinaryEnv + " names " + filepath.Join(dir, "nothing") + ": no such file"},
		{name: "environment names a directory", self: client, env: map[string]string{BinaryEnv: dir}, errHas: "a directory, not a program"},
		{name: "environment names a file without x", self: client, env: map[string]string{BinaryEnv: noExec}, errHas: "may not be executed (mode -rw-r--r--)"},
		{name: "handed over already", self: client, env: map[string]string{ByEnv: alone, BinaryEnv: other},
			errHas: alone + " handed this command to " + client + ", which is the command-line client too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Locate(tt.self, func(k string) string { return tt.env[k] })
			if tt.errHas == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Locate = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Locate = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q, want %q in it", err, tt.errHas)
			}
			if errors.Is(err, ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(%q, ErrNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
		})
	}
}

// TestEnv: the environment given to the full build says who handed over,
// once, whatever it said before.
func TestEnv(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, []string{ByEnv + "=/bin/sockmail"}},
		{[]string{"A=1", "B=2"}, []string{"A=1", "B=2", ByEnv + "=/bin/sockmail"}},
		{[]string{ByEnv + "=/old", "A=1", ByEnv + "X=kept"}, []string{"A=1", ByEnv + "X=kept", ByEnv + "=/bin/sockmail"}},
	}
	for _, tt := range tests {
		if got := Env(tt.in, "/bin/sockmail"); !slices.Equal(got, tt.want) {
			t.Errorf("Env(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// execChildEnv makes the test binary run TestExecChild.
const execChildEnv = "HANDOVER_TEST_EXEC_CHILD"

// TestExecChild is not a test: run by TestExec as a child process, it
// calls Exec to become a shell that prints its pid and environment.
func TestExecChild(t *testing.T) {
	if os.Getenv(execChildEnv) != "1" {
		return
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Exec(sh, []string{"sh", "-c", `echo "pid=$$ by=$` + ByEnv + ` arg=$0"`, "the-argument"}, os.Environ(), "/the/client")
	t.Fatalf("Exec returned: %v", err)
}

// TestExec: the process that calls Exec becomes the program (same pid on
// unix), with the arguments given and the environment plus ByEnv; a
// program that cannot be run is an error that names it.
func TestExec(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a shell script as the program")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExecChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), execChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// The same pid: the child test binary became the shell.
	want := "pid=" + strconv.Itoa(cmd.Process.Pid) + " by=/the/client arg=the-argument"
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, want) {
		t.Errorf("the program printed %q, want %q", got, want)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := Exec(missing, []string{missing}, nil, "/the/client"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Exec of a missing program: %v, want an error naming it", err)
	}
}
