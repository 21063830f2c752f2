package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBuildEnvLikeMakefile: procbench builds sockmail with the
// environment the Makefile's SOCKMAIL_ENV gives "make build", so that the
// benchmark measures the binary users get.
func TestBuildEnvLikeMakefile(t *testing.T) {
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
	for _, target := range []string{"build", "run"} {
		out, err := exec.Command("make", "-n", "-C", filepath.Join("..", ".."), target).Output()
		if err != nil {
			t.Fatalf("make -n %s: %v", target, err)
		}
		if !strings.Contains(string(out), sockmailEnv+" go ") {
			t.Errorf("make -n %s does not build sockmail with %s:\n%s", target, sockmailEnv, out)
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
