package interop

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

// TestRESTFind: the Mailpit and Inbucket readers find a message by token
// and recipient through the same requests the real servers answer, fetch
// each source once, and report a server error with the URL.
func TestRESTFind(t *testing.T) {
	raw := map[string]string{"m1": "Subject: tok-1\r\n\r\nfor a\r\n", "m2": "Subject: tok-1\r\n\r\nfor b\r\n", "m3": "Subject: tok-2\r\n\r\n"}
	fetched := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/search", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("query"); q != `"tok-1"` {
			t.Errorf("mailpit query %q", q)
		}
		io.WriteString(w, `{"messages":[{"ID":"m1","To":[{"Address":"A@x"}]},{"ID":"m2","To":[],"Bcc":[{"Address":"b@x"}]},{"ID":"m3","Cc":[{"Address":"a@x"}]}]}`)
	})
	mux.HandleFunc("GET /api/v1/message/{id}/raw", func(w http.ResponseWriter, r *http.Request) {
		fetched["mailpit/"+r.PathValue("id")]++
		io.WriteString(w, raw[r.PathValue("id")])
	})
	mux.HandleFunc("GET /api/v1/mailbox/{box}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("box") {
		case "a":
			io.WriteString(w, `[{"id":"m1"},{"id":"m3"}]`)
		case "broken":
			http.Error(w, "storage failure", http.StatusInternalServerError)
		default:
			io.WriteString(w, `[]`)
		}
	})
	mux.HandleFunc("GET /api/v1/mailbox/{box}/{id}/source", func(w http.ResponseWriter, r *http.Request) {
		fetched["inbucket/"+r.PathValue("id")]++
		io.WriteString(w, raw[r.PathValue("id")])
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	stores := map[string]Store{"mailpit": &Mailpit{API: srv.URL, Client: srv.Client()}, "inbucket": &Inbucket{API: srv.URL, Client: srv.Client()}}
	tests := []struct {
		store, rcpt, token string
		want               []string
	}{
		{"mailpit", "a@x", "tok-1", []string{raw["m1"]}}, // To, any case; m3 has another token
		{"mailpit", "b@x", "tok-1", []string{raw["m2"]}}, // Bcc: envelope only
		{"mailpit", "c@x", "tok-1", nil},
		{"inbucket", "A@x", "tok-1", []string{raw["m1"]}}, // mailbox "a"
		{"inbucket", "c@x", "tok-1", nil},
	}
	for i := range 2 { // twice: the second round is served from the cache
		for _, tt := range tests {
			found, err := stores[tt.store].Find(ctx, tt.rcpt, tt.token)
			if err != nil {
				t.Fatalf("%s Find(%s, %s): %v", tt.store, tt.rcpt, tt.token, err)
			}
			var got []string
			for _, f := range found {
				got = append(got, string(f))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("round %d: %s Find(%s, %s) = %q, want %q", i+1, tt.store, tt.rcpt, tt.token, got, tt.want)
			}
		}
	}
	for k, n := range fetched {
		if n != 1 {
			t.Errorf("%s fetched %d times, want once", k, n)
		}
	}
	if _, err := stores["inbucket"].Find(ctx, "broken@x", "tok-1"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("Find on a failing mailbox: %v, want the 500 reported", err)
	}
	if _, err := stores["inbucket"].Find(ctx, "no-at-sign", "tok-1"); err == nil {
		t.Error("Find with an address without @: no error")
	}
}
