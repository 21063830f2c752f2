//go:build !sendonly

package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// countingRetainer counts the times the policy is applied.
type countingRetainer struct {
	n   atomic.Int32
	err error
}

func (r *countingRetainer) ApplyRetention(context.Context) (int, error) {
	r.n.Add(1)
	return 0, r.err
}

// TestRunRetention runs the loop in a synctest bubble: its ticker runs on
// the bubble's clock, so hours pass at once and the counts are exact.
func TestRunRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs serveBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		r := &countingRetainer{err: errors.New("store: retention: disk on fire")}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); runRetention(ctx, r, log, time.Hour) }()
		synctest.Wait()
		if n := r.n.Load(); n != 1 {
			t.Errorf("applied %d times at start, want once", n)
		}
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if n := r.n.Load(); n != 3 {
			t.Errorf("applied %d times after two hours, want 3", n)
		}
		cancel()
		<-done // the bubble reports a deadlock if it never stops
		time.Sleep(3 * time.Hour)
		if r.n.Load() != 3 {
			t.Error("applied after stopping")
		}
		if !strings.Contains(logs.String(), "disk on fire") {
			t.Errorf("error not logged: %s", logs.String())
		}
	})
}

// TestServeAppliesRetentionAtStart starts serve on a database holding old
// and surplus sends: the policy is applied before the first hour is up.
func TestServeAppliesRetentionAtStart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i, age := range []time.Duration{400 * 24 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour, time.Minute} {
		if err := st.CreateSend(ctx, &store.Send{Source: "cli", Subject: string(rune('a' + i)), CreatedAt: time.Now().Add(-age), Status: "sent"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	env := map[string]string{"SOCKMAIL_DATA": dir, "SOCKMAIL_LISTEN": "127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR": "off",
		"SOCKMAIL_RETENTION_DAYS": "30", "SOCKMAIL_RETENTION_MAX": "3"}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stdout, stderr serveBuffer
	done := make(chan int, 1)
	go func() {
		done <- dispatch(sctx, []string{"serve"}, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	}()
	re := regexp.MustCompile(`retention applied" sends=(\d+)`)
	var m []string
	testenv.WaitUntil(t, "retention at start", func() bool {
		m = re.FindStringSubmatch(stderr.String())
		return m != nil
	})
	if m != nil && m[1] != "2" {
		t.Errorf("deleted %s sends at start, want 2 (one too old, one beyond 3)", m[1])
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	st, err = store.Open(ctx, filepath.Join(dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.ListSends(ctx, store.SendFilter{})
	if err != nil || p.Total != 3 {
		t.Fatalf("%d sends left, %v; want 3", p.Total, err)
	}
	for _, s := range p.Sends {
		if s.Subject == "a" || s.Subject == "b" {
			t.Errorf("send %q kept", s.Subject)
		}
	}
}
