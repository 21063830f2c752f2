//go:build !sendonly

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// storedSend opens the database and reads send id.
func storedSend(t *testing.T, dsn string, id int64) *store.Send {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Send(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendStore(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "data", "sockmail.db")
			if backend == store.BackendPostgres {
				dsn = testenv.Postgres(t)
			}
			srv := startScript(t, nil)
			code, stdout, stderr := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org",
				"--subject", "Grüße vom CLI", "--body", "stored body line", "--auth-user", "u1", "--auth-password", "s3cret-pw",
				"--allow-insecure-auth", "--store", "--database", dsn)
			if code != exitOK || !strings.Contains(stderr, "stored as send #1") {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			s := storedSend(t, dsn, 1)
			t.Run("record", func(t *testing.T) { checkStoredRecord(t, s, srv.addr()) })
			t.Run("message as received", func(t *testing.T) { checkStoredMessage(t, s, srv.received()) })
			t.Run("phase timings", func(t *testing.T) { checkStoredTimings(t, s) })
			t.Run("no password", func(t *testing.T) { checkNoPassword(t, s, "u1", "s3cret-pw") })
		})
	}
}

// checkStoredRecord checks the fields of the stored send of TestSendStore.
func checkStoredRecord(t *testing.T, s *store.Send, server string) {
	got := []any{s.Source, s.Status, s.QueueID, s.Server, s.TLSMode, s.MailFrom, s.Rcpts, s.Subject, s.FinishedAt != nil, s.DurationMS > 0, s.ClientAddr != ""}
	want := []any{"cli", smtp.StatusSent, "ABC123", server, "none", "a@example.org", []string{"b@example.org"}, "Grüße vom CLI", true, true, true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	if len(s.Recipients) != 1 || !s.Recipients[0].Accepted || s.Recipients[0].Code != 250 {
		t.Errorf("recipients %+v", s.Recipients)
	}
}

// checkStoredMessage checks that the stored source is what the server
// received.
func checkStoredMessage(t *testing.T, s *store.Send, received []string) {
	if !strings.Contains(string(s.Message), "stored body line") || !strings.Contains(s.Headers, "Subject: ") || s.MessageTruncated {
		t.Errorf("message %q headers %q", s.Message, s.Headers)
	}
	got := strings.Join(received, "\n")
	for _, line := range strings.Split(strings.TrimRight(string(s.Message), "\r\n"), "\r\n") {
		if !strings.Contains(got, line) {
			t.Errorf("stored line %q not received by the server", line)
			return
		}
	}
}

// checkStoredTimings checks that the stored events time every phase of
// an authenticated send.
func checkStoredTimings(t *testing.T, s *store.Send) {
	timings := smtp.PhaseTimings(s.Events)
	phases := map[smtp.Phase]bool{}
	for _, pt := range timings {
		phases[pt.Phase] = true
	}
	for _, p := range []smtp.Phase{smtp.PhaseConnect, smtp.PhaseGreeting, smtp.PhaseEHLO, smtp.PhaseAuth, smtp.PhaseMail, smtp.PhaseBody, smtp.PhaseQuit} {
		if !phases[p] {
			t.Errorf("no %s timing in %v", p, timings)
		}
	}
}

// checkNoPassword checks that the password is nowhere in the stored
// send, neither as it is nor in an AUTH PLAIN payload.
func checkNoPassword(t *testing.T, s *store.Send, user, password string) {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	all := string(s.Message) + s.Headers
	for _, ev := range s.Events {
		all += ev.Line + "\n"
	}
	if strings.Contains(all, password) || strings.Contains(all, plain) {
		t.Error("the password was stored")
	}
}

func TestSendStoreOutcomes(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "sockmail.db")
	refusing := startScript(t, map[string]string{"RCPT": "550 5.1.1 <b@example.org>: User unknown"})
	code, _, stderr := run(t, "--server", refusing.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--store", "--database", dsn)
	if code != exitRcpt || !strings.Contains(stderr, "stored as send #1") {
		t.Fatalf("refused: exit %d %s", code, stderr)
	}
	s := storedSend(t, dsn, 1)
	if s.Status != smtp.StatusPermFail || !strings.Contains(s.Error, "550") || len(s.Recipients) != 1 || s.Recipients[0].Accepted {
		t.Errorf("refused stored as %s %q %+v", s.Status, s.Error, s.Recipients)
	}
	if len(s.Message) == 0 {
		t.Error("message not kept for a send refused before DATA")
	}
	ok := startScript(t, nil)
	code, _, stderr = run(t, "--server", ok.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--quit-after", "rcpt", "--store", "--database", dsn)
	if code != exitOK || !strings.Contains(stderr, "stored as send #2") {
		t.Fatalf("quit-after: exit %d %s", code, stderr)
	}
	if s := storedSend(t, dsn, 2); s.Status != smtp.StatusStopped || len(s.Message) == 0 {
		t.Errorf("stopped early stored as %s with %d message bytes", s.Status, len(s.Message))
	}
	// A database that cannot be opened fails before anything is sent.
	blocker := filepath.Join(t.TempDir(), "file")
	if code, _, _ := run(t, "--server", ok.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org"); code != exitOK {
		t.Fatal("plain send failed")
	}
	n := ok.connections()
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "--server", ok.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--store", "--database", filepath.Join(blocker, "x.db"))
	if code != exitInternal || !strings.Contains(stderr, "--store") || ok.connections() != n {
		t.Errorf("unopenable database: exit %d, %d connections, %s", code, ok.connections()-n, stderr)
	}
}

func TestSendStoreFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--database", "x.db"},
		{"--store", "--count", "2", "--server", "127.0.0.1:25"},
	} {
		base := []string{"--from", "a@example.org", "--to", "b@example.org"}
		if _, err := parseSend(append(base, args...), noEnv); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"", nil, filepath.Join("data", "sockmail.db")},
		{"", map[string]string{"SOCKMAIL_DATA": "/srv/sm"}, "/srv/sm/sockmail.db"},
		{"", map[string]string{"SOCKMAIL_DATABASE_URL": "postgres://db/x", "SOCKMAIL_DATA": "/srv/sm"}, "postgres://db/x"},
		{"", map[string]string{"SOCKMAIL_DATABASE": "/a.db", "SOCKMAIL_DATABASE_URL": "postgres://db/x"}, "/a.db"},
		{"/b.db", map[string]string{"SOCKMAIL_DATABASE": "/a.db"}, "/b.db"},
	}
	for _, tt := range tests {
		if got := storeDatabase(tt.flag, env(tt.env)); got != tt.want {
			t.Errorf("storeDatabase(%q, %v) = %q, want %q", tt.flag, tt.env, got, tt.want)
		}
	}
	p, err := parseSend([]string{"--from", "a@example.org", "--to", "b@example.org", "--store"}, env(map[string]string{"SOCKMAIL_DATABASE": "/c.db"}))
	if err != nil || p.storeDSN != "/c.db" {
		t.Errorf("--store from the environment: %v %v", p, err)
	}
}

// TestTeeKeepsOneCopy: a message written once per recipient domain is
// kept once, from its first complete write.
func TestTeeKeepsOneCopy(t *testing.T) {
	raw, err := message.RawBytes("a@example.org", []string{"b@example.net", "c@example.org"}, []byte("Subject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &sendRecorder{sent: cappedBuffer{limit: 1 << 20}}
	tee := r.tee(raw)
	var failing failAfter
	failing.n = 5
	if _, err := tee.WriteTo(&failing); err == nil {
		t.Fatal("the failing write did not fail")
	}
	for range 2 {
		if _, err := tee.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.sent.buf.String(); got != "Subject: x\r\n\r\nbody\r\n" {
		t.Errorf("kept %q, want the message once", got)
	}
}

// failAfter fails once n bytes were written.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("connection lost")
	}
	f.n -= len(p)
	return len(p), nil
}
