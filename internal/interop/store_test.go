package interop

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMaildirFind: a message is found by token and recipient marker, in
// new/ or cur/, once even after it moves; files older than Since are not.
func TestMaildirFind(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(sub, name, content string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, sub, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	write("new", "1", "X-Sink-Rcpt-To: <a@x>\r\nSubject: tok-1\r\n", now)
	write("cur", "2", "X-Sink-Rcpt-To: <b@x>\r\nSubject: tok-1\r\n", now)
	write("new", "3", "X-Sink-Rcpt-To: <a@x>\r\nSubject: tok-2\r\n", now)
	write("new", "old", "X-Sink-Rcpt-To: <a@x>\r\nSubject: tok-1 old\r\n", now.Add(-time.Hour))
	write("tmp", "4", "X-Sink-Rcpt-To: <a@x>\r\nSubject: tok-1 unfinished\r\n", now)
	m := &Maildir{Dir: dir, Marker: SinkMarker, Since: now.Add(-time.Minute)}

	find := func(rcpt, token string) []string {
		t.Helper()
		found, err := m.Find(context.Background(), rcpt, token)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range found {
			out = append(out, string(f))
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		rcpt, token string
		want        int
	}{
		{"a@x", "tok-1", 1},
		{"b@x", "tok-1", 1},
		{"c@x", "tok-1", 0},
		{"a@x", "tok-2", 1},
		{"a@x", "tok-3", 0},
	}
	for _, tt := range tests {
		if got := find(tt.rcpt, tt.token); len(got) != tt.want {
			t.Errorf("Find(%s, %s) = %q, want %d", tt.rcpt, tt.token, got, tt.want)
		}
	}
	// Delivered later, and moved from new/ to cur/: found once.
	write("new", "5", "X-Sink-Rcpt-To: <a@x>\r\nSubject: tok-5\r\n", now)
	if got := find("a@x", "tok-5"); len(got) != 1 {
		t.Fatalf("after delivery: %q", got)
	}
	if err := os.Rename(filepath.Join(dir, "new", "5"), filepath.Join(dir, "cur", "5")); err != nil {
		t.Fatal(err)
	}
	if got := find("a@x", "tok-5"); len(got) != 1 {
		t.Fatalf("after the move to cur/: %q", got)
	}
}

// TestPostfixMarker: Postfix's Delivered-To names the recipient on a line
// of its own; an address that merely ends the same way does not match.
func TestPostfixMarker(t *testing.T) {
	stored := "Return-Path: <s@x>\nX-Original-To: ab@x\nDelivered-To: ab@x\nReceived: by localhost\n"
	if !strings.Contains(stored, PostfixMarker("ab@x")) {
		t.Error("ab@x not found")
	}
	if strings.Contains(stored, PostfixMarker("b@x")) {
		t.Error("b@x found in a message for ab@x")
	}
}
