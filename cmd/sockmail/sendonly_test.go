//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"sockmail/internal/benchsink"
	"sockmail/internal/handover"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
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

// buildClientAndServer builds the two programs "make build" builds, the
// command-line client (-tags sendonly) as sockmail and the full build as
// sockmail-server, into one directory, and returns their paths. They are
// built with the go command's default environment, not the Makefile's
// static CGO_ENABLED=0, which changes nothing handed over and would
// compile every package a second time in a fresh CI cache.
func buildClientAndServer(t *testing.T) (client, server string) {
	t.Helper()
	dir := t.TempDir()
	client, server = filepath.Join(dir, "sockmail"), filepath.Join(dir, handover.ServerName)
	for _, b := range []struct{ out, tags string }{{client, "sendonly"}, {server, ""}} {
		if out, err := exec.Command("go", "build", "-tags", b.tags, "-o", b.out, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", b.tags, err, out)
		}
	}
	return client, server
}

// copyProgram copies the program at src into a new directory of its own
// and returns the copy's path.
func copyProgram(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestCommandLineClient runs bin/sockmail, the command-line client, as
// whole processes (issue 10 item 4): it sends by itself, without the full
// build; beside the full build, or pointed at it by
// SOCKMAIL_SERVER_BINARY, it hands "user add" and "send --store" over
// (the account and the send land in the SQLite file); without it, those
// and "serve" fail with exit status 127 and a message that says what to
// build; a client named as the full build is refused, not run in a loop.
func TestCommandLineClient(t *testing.T) {
	client, server := buildClientAndServer(t)
	alone := copyProgram(t, client) // no full build beside it
	sink := benchsink.GoSMTP(t)
	send := []string{"send", "--server", sink, "--from", "a@example.org", "--to", "b@example.org"}
	data := t.TempDir()
	users, sends := filepath.Join(data, "users.db"), filepath.Join(data, "sends.db")
	tests := []struct {
		name   string
		bin    string
		args   []string
		env    map[string]string
		code   int
		stdout string // a line the output must have
		stderr string
		check  func(t *testing.T) // what the command must have done
	}{
		{name: "send alone", bin: alone, args: append(send, "--quiet"), code: exitOK, stdout: "message 1/1: sent"},
		{name: "send --count alone", bin: alone, args: append(send, "--quiet", "--count", "3"), code: exitOK, stdout: "message 3/3: sent"},
		{name: "help", bin: alone, args: []string{"help"}, code: exitOK, stdout: `hands "serve", "user", "token", "check" and "send --store" to the full build`},
		{name: "serve alone", bin: alone, args: []string{"serve"}, code: 127,
			stderr: `"serve" runs in the full build, sockmail-server: ` + filepath.Join(filepath.Dir(alone), handover.ServerName) + ": no such file.\n" + handover.Hint},
		{name: "no command alone", bin: alone, args: []string{"-listen", "127.0.0.1:0"}, code: 127, stderr: `"serve" runs in the full build`},
		{name: "user alone", bin: alone, args: []string{"user", "add", "-email", "x@example.org"}, code: 127, stderr: `"user" runs in the full build`},
		{name: "check alone", bin: alone, args: []string{"check", "example.org"}, code: 127, stderr: `"check" runs in the full build`},
		{name: "check handed over", bin: client, args: []string{"check", "--help"}, code: exitOK, stdout: "Usage: sockmail check [flags] TARGET"},
		{name: "send --store alone", bin: alone, args: append(send, "--store"), code: 127, stderr: `"send --store" runs in the full build`},
		{name: "send --database alone", bin: alone, args: append(send, "--database", sends), code: 127, stderr: `"send --store" runs in the full build`},
		{name: "the client named as the full build", bin: alone, args: []string{"user", "add"}, env: map[string]string{handover.BinaryEnv: client},
			code: 126, stderr: "handed this command to " + client + ", which is the command-line client too"},
		{name: "user add handed over", bin: client, args: []string{"user", "add", "-email", "admin@example.test", "-database", users},
			env:  map[string]string{"SOCKMAIL_PASSWORD": "a-long-enough-password", "SOCKMAIL_DATA": data},
			code: exitOK, stdout: "admin account admin@example.test added (id 1)",
			check: func(t *testing.T) {
				if _, err := openStore(t, users).UserByEmail(context.Background(), "admin@example.test"); err != nil {
					t.Errorf("the account is not in %s: %v", users, err)
				}
			}},
		{name: "user add handed over through the environment", bin: alone, args: []string{"user", "add", "-email", "other@example.test", "-database", users},
			env:  map[string]string{"SOCKMAIL_PASSWORD": "a-long-enough-password", "SOCKMAIL_DATA": data, handover.BinaryEnv: server},
			code: exitOK, stdout: "admin account other@example.test added (id 2)"},
		{name: "user add refused by the full build", bin: client, args: []string{"user", "add", "-email", "admin@example.test", "-database", users},
			env: map[string]string{"SOCKMAIL_PASSWORD": "a-long-enough-password", "SOCKMAIL_DATA": data}, code: 1, stderr: "an account for admin@example.test exists already"},
		{name: "send --store handed over", bin: client, args: append(send, "--subject", "handed over", "--store", "--database", sends), code: exitOK,
			stdout: "message 1/1: sent", stderr: "stored as send #1",
			check: func(t *testing.T) {
				s, err := openStore(t, sends).Send(context.Background(), 1)
				if err != nil || s.Source != "cli" || s.Subject != "handed over" || s.Status != smtp.StatusSent {
					t.Errorf("stored send: %+v, %v", s, err)
				}
			}},
		{name: "--database alone handed over and refused", bin: client, args: append(send, "--database", sends), code: exitUsage, stderr: "--database needs --store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.bin, tt.args...)
			cmd.Env = environ(tt.env)
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
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
	t.Run("serve handed over", func(t *testing.T) { checkServeHandedOver(t, client, server) })
}

// openStore opens the database at dsn for the rest of the test.
func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// checkServeHandedOver starts "sockmail serve" through the client: the
// full build prints the setup code, runs in the very process started (on
// Linux /proc/PID/exe is the full build) and stops cleanly on the SIGTERM
// sent to that pid.
func checkServeHandedOver(t *testing.T, client, server string) {
	cmd := exec.Command(client, "serve")
	cmd.Env = environ(map[string]string{"SOCKMAIL_DATA": t.TempDir(), "SOCKMAIL_LISTEN": "127.0.0.1:0",
		"SOCKMAIL_CAPTURE_ADDR": "off", "SOCKMAIL_OUTBOX_CONCURRENCY": "0"})
	stdout, stderr := &serveBuffer{}, &serveBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	codeRE := regexp.MustCompile(`no admin account yet: the sign-up page asks for the setup code [A-Z2-9]{4}(-[A-Z2-9]{4}){4}`)
	testenv.WaitUntil(t, "the setup code printed through the handover", func() bool {
		return codeRE.MatchString(stdout.String())
	})
	if runtime.GOOS == "linux" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if err != nil || exe != server {
			t.Errorf("process %d runs %q (%v), want the full build %s", cmd.Process.Pid, exe, err, server)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), "sockmail stopped") {
			t.Errorf("after SIGTERM: %v, want a clean stop\n%s", err, stderr.String())
		}
	case <-time.After(testenv.StallLimit):
		t.Fatalf("no stop after SIGTERM\n%s", stderr.String())
	}
}
