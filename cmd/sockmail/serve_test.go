package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

func TestServeStartsAndShutsDown(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SOCKMAIL_DATA": dir, "SOCKMAIL_LISTEN": "127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR": "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr serveBuffer
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, []string{"serve"}, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	}()

	re := regexp.MustCompile(`running at (http://\S+)`)
	var url string
	testenv.WaitUntil(t, "the URL printed", func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Errorf("healthz %d %q", resp.StatusCode, b)
	}
	if !strings.Contains(stdout.String(), "capture SMTP server at 127.0.0.1:") {
		t.Errorf("capture address not printed: %s", stdout.String())
	}
	for _, f := range []string{"sockmail.db", "secret.key", "capture-cert.pem", "capture-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data file: %v", err)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(testenv.StallLimit):
		t.Fatal("no shutdown")
	}
	if !strings.Contains(stderr.String(), "sockmail stopped") {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	var stdout, stderr serveBuffer
	code := dispatch(context.Background(), []string{"serve", "-listen", "nope"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stderr.String(), "listen address") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestUserAdd(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SOCKMAIL_DATA": dir, "SOCKMAIL_PASSWORD": "a-long-enough-password"}
	getenv := func(k string) string { return env[k] }
	var stdout, stderr serveBuffer
	if code := dispatch(context.Background(), []string{"user", "add", "-email", "admin@example.test"}, strings.NewReader(""), &stdout, &stderr, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "admin@example.test added") {
		t.Errorf("stdout %q", stdout.String())
	}
	// Again: exists.
	if code := dispatch(context.Background(), []string{"user", "add", "-email", "admin@example.test"}, strings.NewReader(""), &stdout, &stderr, getenv); code != 1 {
		t.Errorf("duplicate: exit %d", code)
	}
	// From a prompt (not a terminal here), with a mismatch.
	delete(env, "SOCKMAIL_PASSWORD")
	stderr.b.Reset()
	if code := dispatch(context.Background(), []string{"user", "add", "-email", "b@example.test"}, strings.NewReader("one-password-x\nanother-one-y\n"), &stdout, &stderr, getenv); code != 1 || !strings.Contains(stderr.String(), "differ") {
		t.Errorf("mismatch: exit %d %q", code, stderr.String())
	}
	if code := dispatch(context.Background(), []string{"user", "add", "-email", "b@example.test"}, strings.NewReader("same-password-z\nsame-password-z\n"), &stdout, &stderr, getenv); code != 0 {
		t.Errorf("prompt: exit %d %q", code, stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "same-password-z") {
		t.Error("password echoed")
	}
	if code := dispatch(context.Background(), []string{"user"}, strings.NewReader(""), &stdout, &stderr, getenv); code != 2 {
		t.Errorf("usage: exit %d", code)
	}
}

// serveBuffer collects output written from several goroutines.
type serveBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *serveBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *serveBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
