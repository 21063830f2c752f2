//go:build !sendonly

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sockmail/internal/benchsink"
)

// TestSendOnlyLinksNoWebApp: the sendonly build (-tags sendonly) of
// sockmail, the CLI client alone, links none of the web app, database or
// template packages, whose initialisation a full binary runs at every
// start (issue 10 item 4: start-up of a send).
func TestSendOnlyLinksNoWebApp(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "sendonly", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "sockmail/smtp\n") {
		t.Fatalf("go list gave %d packages, without sockmail/smtp: %q", len(deps), out)
	}
	banned := []string{
		"sockmail/handlers", "sockmail/views", "sockmail/internal/store", "sockmail/internal/config",
		"sockmail/internal/outbox", "sockmail/internal/delivery", "github.com/a-h/templ",
		"github.com/labstack/echo", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/gorilla/sessions",
		"github.com/PuerkitoBio/goquery",
	}
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("the sendonly build links %s", d)
			}
		}
	}
}

// TestSendOnlyBuild builds the sendonly binary and runs it: it sends to a
// go-smtp sink, and refuses serve, user and --store with a message that
// says why and exit status 2.
func TestSendOnlyBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sockmail-sendonly")
	if out, err := exec.Command("go", "build", "-tags", "sendonly", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags sendonly: %v\n%s", err, out)
	}
	sink := benchsink.GoSMTP(t)
	send := []string{"send", "--server", sink, "--from", "a@example.org", "--to", "b@example.org"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a line the output must have
		stderr string
	}{
		{"send", append(send, "--quiet"), exitOK, "message 1/1: sent", ""},
		{"send --count", append(send, "--quiet", "--count", "3"), exitOK, "message 3/3: sent", ""},
		{"send --store", append(send, "--store"), exitUsage, "", "--store and --database are not in this build"},
		{"serve", []string{"serve"}, exitUsage, "", `"serve" is not in this build`},
		{"user", []string{"user", "add"}, exitUsage, "", `"user" is not in this build`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q, want %q in it", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tt.stderr)
			}
		})
	}
}
