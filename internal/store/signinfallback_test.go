package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// TestSignInFallback: on a full disk, attempts are throttled in memory
// (the limits hold, returning and clearing work) and the log says so;
// once the disk has room they go to the database again, the memory's
// attempts still counting.
func TestSignInFallback(t *testing.T) {
	disk := testenv.NewSmallDisk(t, 4<<20)
	s, err := Open(context.Background(), filepath.Join(disk.Dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs bytes.Buffer
	f := NewSignInFallback(s, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	t0 := time.Now()
	since := t0.Add(-time.Hour)
	limits := []Limit{{Key: "signin:account:a", Max: 3}, {Key: "signin:address:1", Max: 10}}
	take := func(i int) *Limit {
		over, err := f.TakeAttempt(ctx, limits, t0.Add(time.Duration(i)*time.Second), since)
		if err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		return over
	}
	// One attempt in the database before the disk fills.
	if take(0) != nil {
		t.Fatal("first attempt refused")
	}
	disk.Fill(t)
	steps := []struct {
		name     string
		do       func() *Limit
		wantOver bool
	}{
		{"second (memory)", func() *Limit { return take(1) }, false},
		{"third (memory)", func() *Limit { return take(2) }, false},
		{"fourth: database 1 + memory 2 reach the limit", func() *Limit { return take(3) }, true},
		{"after returning one", func() *Limit {
			if err := f.ReturnAttempt(ctx, "signin:account:a", t0.Add(2*time.Second)); err != nil {
				t.Fatal(err)
			}
			return take(4)
		}, false},
		{"full again", func() *Limit { return take(5) }, true},
		{"after clearing", func() *Limit {
			if err := f.ClearAttempts(ctx, "signin:account:a"); err != nil {
				t.Fatal(err)
			}
			// Whether or not the full disk took the DELETE, two fit.
			if take(6) != nil {
				t.Errorf("first after clearing: refused")
			}
			return take(7)
		}, false},
	}
	for _, st := range steps {
		if over := st.do(); (over != nil) != st.wantOver {
			t.Errorf("%s: over %v, want over %v", st.name, over, st.wantOver)
		}
	}
	if !strings.Contains(logs.String(), "counting attempts in memory") {
		t.Errorf("the log does not say throttling went to memory:\n%s", logs.String())
	}

	disk.Free(t)
	// Memory still holds 2 (6 and 7): at most one more fits in the
	// database.
	take(8)
	if over := take(9); over == nil || *over != limits[0] {
		t.Errorf("after recovery: over %v, want %v: the memory's attempts must still count", over, limits[0])
	}
	if err := f.ClearAttempts(ctx, "signin:account:a"); err != nil {
		t.Fatal(err)
	}
	if take(10) != nil {
		t.Errorf("after recovery and clearing: refused")
	}
	if n, _ := s.CountAttempts(ctx, "signin:account:a", since); n != 1 {
		t.Errorf("database holds %d attempts after recovery, want 1", n)
	}
	if !strings.Contains(logs.String(), "takes writes again") {
		t.Errorf("the log does not say throttling is back in the database:\n%s", logs.String())
	}
}

// TestSignInFallbackSessions: on a full disk a new session is kept in
// memory and a database session can still be ended (revoked in memory);
// the memory session expires, is ended at sign-out and with the user's
// sessions, and the log says why.
func TestSignInFallbackSessions(t *testing.T) {
	disk := testenv.NewSmallDisk(t, 4<<20)
	s, err := Open(context.Background(), filepath.Join(disk.Dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs bytes.Buffer
	f := NewSignInFallback(s, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	u, err := f.CreateUser(ctx, "admin@example.test", "hash")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.CreateSession(ctx, "in-db", u.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	disk.Fill(t)
	if err := s.CreateSession(ctx, "refused", u.ID, now.Add(time.Hour)); err == nil {
		t.Fatal("the full disk took a session: the test cannot show the fallback")
	}
	for _, id := range []string{"mem-1", "mem-2", "mem-3"} {
		if err := f.CreateSession(ctx, id, u.ID, now.Add(time.Hour)); err != nil {
			t.Fatalf("session %s on a full disk: %v", id, err)
		}
	}
	if err := f.DeleteSession(ctx, "in-db"); err != nil {
		t.Fatalf("ending a database session on a full disk: %v", err)
	}
	if err := f.DeleteSession(ctx, "mem-2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		at   time.Time
		want bool
	}{
		{"mem-1", now, true},
		{"mem-1", now.Add(2 * time.Hour), false}, // expired
		{"mem-2", now, false},                    // signed out
		{"in-db", now, false},                    // revoked in memory
		{"never", now, false},
	}
	for _, tt := range tests {
		got, err := f.SessionUser(ctx, tt.id, tt.at)
		switch {
		case tt.want && (err != nil || got.ID != u.ID):
			t.Errorf("SessionUser(%s): %v, %v; want the admin", tt.id, got, err)
		case !tt.want && !errors.Is(err, ErrNotFound):
			t.Errorf("SessionUser(%s): %v, %v; want ErrNotFound", tt.id, got, err)
		}
	}
	if err := f.CreateSession(ctx, "mem-4", u.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_ = f.DeleteUserSessions(ctx, u.ID) // the database may refuse; memory is cleared
	if _, err := f.SessionUser(ctx, "mem-4", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("a memory session after DeleteUserSessions: %v", err)
	}
	for _, want := range []string{"kept in this process's memory", "revoked in this process's memory"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	disk.Free(t)
	if _, err := f.SessionUser(ctx, "in-db", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("the revoked database session after space came back: %v", err)
	}
}
