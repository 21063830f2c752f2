package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// TestLoadTestAgainstServe runs the load test small (50 submissions, 8
// at once) against a real "sockmail serve" process (built from
// cmd/sockmail, SQLite) whose forms deliver to the real test Postfix, and
// checks its report: every post answered, every message counted once in
// Postfix's Maildir. A form whose per-address limit refuses most posts
// shows that the tool reports failures and exits 1.
//
// For a measurement (the README's numbers) SOCKMAIL_LOADTEST_N and _C
// scale the first case ("open") up, SOCKMAIL_LOADTEST_RATE gives its
// form a per-address and a per-form limit of that many posts an hour
// (none by default), and SOCKMAIL_LOADTEST_BACKEND=postgres runs the
// instance on a fresh PostgreSQL database instead of SQLite.
// SOCKMAIL_LOADTEST_SMTP_SOURCE=1 first sends as many messages with
// smtp-source (4 sessions, 1,000 bytes) and logs the ratio of the
// instance's delivery rate to smtp-source's; SOCKMAIL_LOADTEST_OWN_CPUS=1
// gives Postfix a CPU of its own and the instance, the load test and
// smtp-source the other (testenv.SplitCPUs).
func TestLoadTestAgainstServe(t *testing.T) {
	pf := testenv.Postfix(t)
	if pf == nil {
		return
	}
	if os.Getenv("SOCKMAIL_LOADTEST_OWN_CPUS") == "1" {
		testenv.SplitCPUs(t, pf) // before the instance starts: it inherits its CPUs
	}
	dir := t.TempDir()
	dsn := filepath.Join(dir, "sockmail.db")
	if os.Getenv("SOCKMAIL_LOADTEST_BACKEND") == store.BackendPostgres {
		dsn = testenv.Postgres(t)
	}
	rate := 0
	if v := os.Getenv("SOCKMAIL_LOADTEST_RATE"); v != "" {
		var err error
		if rate, err = strconv.Atoi(v); err != nil || rate < 0 {
			t.Fatalf("SOCKMAIL_LOADTEST_RATE=%q: want a number of posts an hour", v)
		}
	}
	forms := map[string]*store.Form{}
	func() {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		prof := &store.Profile{Name: "test postfix", Host: "127.0.0.1", TLSMode: "none", HeloName: "sockmail.test"}
		_, port, _ := strings.Cut(pf.SMTPAddr, ":")
		if prof.Port, err = strconv.Atoi(port); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveProfile(ctx, prof); err != nil {
			t.Fatal(err)
		}
		for name, lim := range map[string][2]int{"open": {rate, rate}, "limited": {10, 0}} {
			f := &store.Form{Name: name, Recipients: []string{testenv.UniqueAddress()}, ProfileID: prof.ID,
				FromAddr: "forms@example.test", AllowedOrigins: []string{"https://site.example"},
				SubjectTemplate: "Contact from {{name}}", Fields: []string{"name", "email", "message"},
				MaxFieldBytes: 4 << 10, RatePerAddr: lim[0], RatePerForm: lim[1], Enabled: true}
			if err := st.SaveForm(ctx, f); err != nil {
				t.Fatal(err)
			}
			forms[name] = f
		}
	}()
	base := startServe(t, dir, dsn)

	n, c := "50", "8"
	if v := os.Getenv("SOCKMAIL_LOADTEST_N"); v != "" {
		n = v
	}
	if v := os.Getenv("SOCKMAIL_LOADTEST_C"); v != "" {
		c = v
	}
	tests := []struct {
		form     string
		n, c     string
		wantCode int
		want     []string
	}{
		// First: its per-address count is the address's for every form
		// (with SOCKMAIL_LOADTEST_RATE, "open"'s too).
		{"limited", "50", "8", 1, []string{"posted 50: 10 answered success, 40 failed map[429:40]", "delivered 10 of 10", "had arrived by then, the rest at ", "0 lost, 0 duplicated"}},
		{"open", n, c, 0, []string{"posted " + n + ": " + n + " answered success, 0 failed", "delivered " + n + " of " + n, "0 lost, 0 duplicated"}},
	}
	for _, tt := range tests {
		t.Run(tt.form, func(t *testing.T) {
			var source float64
			if tt.form == "open" && os.Getenv("SOCKMAIL_LOADTEST_SMTP_SOURCE") == "1" {
				m, err := strconv.Atoi(tt.n)
				if err != nil {
					t.Fatalf("SOCKMAIL_LOADTEST_N=%q: %v", tt.n, err)
				}
				source = testenv.SMTPSource(t, pf, m, 4, 1000)
			}
			// The load test's messages delivered from now on (the cases
			// run one after the other), whatever their run's token.
			loadTestMessages := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(`Load test lt[0-9a-f]+-\d+`))
			serveCPU, pgCPU := testenv.TakeCPU(t, "sockmail"), testenv.TakeCPU(t, testenv.PostgresProcess)
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"-url", base, "-form", forms[tt.form].Slug, "-origin", "https://site.example",
				"-n", tt.n, "-c", tt.c, "-maildir", pf.Maildir, "-settle", "1s", "-stall", testenv.StallLimit.String()}, &out, &errb)
			t.Logf("loadtest output:\n%s%s", out.String(), errb.String())
			// Its messages go when the test passes: a Maildir that grows
			// run after run makes every later scan of it slower.
			if err := loadTestMessages.Scan(); err != nil {
				t.Fatal(err)
			}
			loadTestMessages.RemoveWhenPassed(t)
			if m, err := strconv.Atoi(tt.n); err == nil {
				serveCPU, pgCPU = testenv.TakeCPU(t, "sockmail").Since(serveCPU), testenv.TakeCPU(t, testenv.PostgresProcess).Since(pgCPU)
				t.Logf("CPU a submission (its post and its delivery): sockmail serve's %v, PostgreSQL's %v, the load test's %v",
					serveCPU.Server/time.Duration(m), pgCPU.Server/time.Duration(m), serveCPU.Self/time.Duration(m))
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if source > 0 {
				m := regexp.MustCompile(`from the first post \(([0-9.]+) messages/s\).* the rest at ([0-9.]+) messages/s`).FindStringSubmatch(out.String())
				if m == nil {
					t.Fatalf("no delivery rates in the output")
				}
				whole, _ := strconv.ParseFloat(m[1], 64)
				rest, _ := strconv.ParseFloat(m[2], 64)
				t.Logf("delivered %.0f messages/s from the first post (%.2f× smtp-source's %.0f), %.0f after the last (%.2f×)",
					whole, whole/source, source, rest, rest/source)
			}
		})
	}
}

// TestLoadTestFlags: bad flags are refused with status 2 and say why.
func TestLoadTestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "-form is required"},
		{[]string{"-form", "x", "-n", "0"}, "-n must be"},
		{[]string{"-form", "x", "-c", "0"}, "-c must be"},
		{[]string{"-form", "x", "-url", "ftp://h"}, "-url must be"},
		{[]string{"-form", "x", "-stall", "0s"}, "-stall and -timeout"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tt.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%q: status %d, stderr %q; want 2 and %q", tt.args, code, errb.String(), tt.want)
		}
	}
}

// startServe builds sockmail and runs "sockmail serve" on dir and the
// database dsn (a SQLite file or a PostgreSQL URL) until the test ends;
// it returns its URL.
func startServe(t *testing.T, dir, dsn string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sockmail")
	if out, err := exec.Command("go", "build", "-o", bin, "sockmail/cmd/sockmail").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(cmd.Environ(), "SOCKMAIL_DATA="+dir, "SOCKMAIL_LISTEN=127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR=off",
		"SOCKMAIL_LOG_LEVEL=warn", "SOCKMAIL_OUTBOX_POLL=100ms", "SOCKMAIL_DATABASE="+dsn)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`running at (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-urls:
		return strings.TrimSuffix(u, "/")
	case err := <-done:
		t.Fatalf("sockmail serve exited: %v\n%s", err, stderr.String())
	case <-time.After(testenv.StallLimit):
		t.Fatalf("sockmail serve printed no URL\n%s", stderr.String())
	}
	return ""
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
