//go:build !sendonly

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"sockmail/internal/config"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// runServeFor starts "sockmail serve" with env and returns its URL, its
// outputs and a stop function that waits for it to end.
func runServeFor(t *testing.T, env map[string]string) (string, *serveBuffer, *serveBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &serveBuffer{}, &serveBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, []string{"serve"}, strings.NewReader(""), stdout, stderr, func(k string) string { return env[k] })
	}()
	re := regexp.MustCompile(`running at (http://\S+)`)
	var base string
	testenv.WaitUntil(t, "the URL printed", func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		return base != ""
	})
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testenv.StallLimit):
			t.Fatal("no shutdown")
		}
	}
	return base, stdout, stderr, stop
}

// TestServePrintsSetupCode: on a fresh install serve prints the setup
// code on stdout and in the log; a newcomer signs up with it (the
// README's "make run" path); a foreign Host is refused by the real
// server; after the first account no code is printed.
func TestServePrintsSetupCode(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SOCKMAIL_DATA": dir, "SOCKMAIL_LISTEN": "127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR": "off", "SOCKMAIL_OUTBOX_CONCURRENCY": "0"}
	base, stdout, stderr, stop := runServeFor(t, env)
	codeRE := regexp.MustCompile(`setup code ([A-Z2-9]{4}(?:-[A-Z2-9]{4}){4})`)
	var code string
	testenv.WaitUntil(t, "the setup code printed and logged", func() bool {
		if m := codeRE.FindStringSubmatch(stdout.String()); m != nil {
			code = m[1]
		}
		return code != "" && strings.Contains(stderr.String(), "setup_code="+code)
	})

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := get("/signup", "rebound.example:"+mustPort(t, base)); st != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host on the real server: %d, want 421", st)
	}
	st, page := get("/signup", "")
	tok := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if st != http.StatusOK || tok == nil {
		t.Fatalf("GET /signup: %d", st)
	}
	form := url.Values{"_csrf": {tok[1]}, "email": {"admin@example.test"}, "password": {"a-long-enough-password"},
		"confirm": {"a-long-enough-password"}, "setup_code": {code}}
	req, _ := http.NewRequest(http.MethodPost, base+"/signup", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/compose" {
		t.Fatalf("sign-up with the printed code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	stop()

	// serve decides about the code before it prints "running at", which
	// runServeFor waits for: stopping at once still shows the decision.
	_, stdout, stderr, stop = runServeFor(t, env)
	stop()
	if strings.Contains(stdout.String()+stderr.String(), "setup code") || strings.Contains(stderr.String(), "setup_code") {
		t.Errorf("a setup code printed with an account in place:\n%s\n%s", stdout.String(), stderr.String())
	}
}

func mustPort(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// TestServePurgesAttemptsAndSessions: the hourly purge drops attempts
// older than a day and expired sessions, and keeps the recent ones.
func TestServePurgesAttemptsAndSessions(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"SOCKMAIL_DATA": dir, "SOCKMAIL_LISTEN": "127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR": "off", "SOCKMAIL_OUTBOX_CONCURRENCY": "0"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := newServer(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.discard()
	now := time.Now()
	for key, at := range map[string]time.Time{"old": now.Add(-25 * time.Hour), "recent": now.Add(-time.Hour)} {
		if _, err := s.st.TakeAttempt(ctx, []store.Limit{{Key: key, Max: 10}}, at, at); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.st.CreateUser(ctx, "admin@example.test", "hash")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.CreateSession(ctx, "expired", u.ID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.st.CreateSession(ctx, "live", u.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.purgeAuth(ctx)
	for key, want := range map[string]int{"old": 0, "recent": 1} {
		if n, err := s.st.CountAttempts(ctx, key, now.Add(-48*time.Hour)); err != nil || n != want {
			t.Errorf("attempts under %q after the purge: %d, want %d (%v)", key, n, want, err)
		}
	}
	// The expired session is gone even when asked about at an earlier time.
	if _, err := s.st.SessionUser(ctx, "expired", now.Add(-time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session after the purge: %v", err)
	}
	if _, err := s.st.SessionUser(ctx, "live", now); err != nil {
		t.Errorf("live session after the purge: %v", err)
	}
}
