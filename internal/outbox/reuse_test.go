package outbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// transcriptOf returns the transcript of item's last attempt.
func transcriptOf(t *testing.T, s *store.Store, itemID int64) []smtp.Event {
	t.Helper()
	it, err := s.OutboxItem(context.Background(), itemID)
	if err != nil || it.LastSendID == nil {
		t.Fatalf("item %d: %v (last send %v)", itemID, err, it)
	}
	snd, err := s.Send(context.Background(), *it.LastSendID)
	if err != nil {
		t.Fatal(err)
	}
	return snd.Events
}

func hasLine(evs []smtp.Event, dir smtp.Direction, prefix string) bool {
	for _, ev := range evs {
		if ev.Dir == dir && strings.HasPrefix(ev.Line, prefix) {
			return true
		}
	}
	return false
}

// TestWorkerKeepsConnections: thirty messages to the test Postfix's
// submission port (STARTTLS and AUTH) go over a few connections, each
// arrives once, and every attempt has its own transcript: the first on a
// connection with the greeting, TLS and AUTH, the others with a note
// naming the attempt that opened it.
func TestWorkerKeepsConnections(t *testing.T) {
	pf := testenv.Postfix(t)
	h := newHarness(t)
	tok := testenv.UniqueToken()
	counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
	counter.RemoveWhenPassed(t)
	const n = 30
	var ids []int64
	for i := range n {
		msg := fmt.Sprintf("From: forms@example.org\r\nTo: owner@%s\r\nSubject: kept %s-%d\r\nMessage-ID: <%s-%d@example.org>\r\n\r\n%s-%d\r\n",
			pf.Domain, tok, i, tok, i, tok, i)
		item := &store.OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@" + pf.Domain}, Message: []byte(msg)}
		if err := h.s.EnqueueSubmission(context.Background(), &store.Submission{FormID: h.form}, item); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, item.ID)
	}
	profiles := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: pf.SubmissionAddr, TLS: smtp.TLSStartTLS, TLSConfig: pf.TLSConfig(), LocalName: "sockmail.test",
			Auth: &smtp.Auth{Username: pf.User, Password: pf.Password}}, nil
	}
	w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 2, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w)
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
	stop()

	opened, reused := 0, 0
	for _, id := range ids {
		evs := transcriptOf(t, h.s, id)
		switch {
		case hasLine(evs, smtp.DirInfo, "reusing the connection to "+pf.SubmissionAddr+" opened by the attempt of outbox item "):
			reused++
			if hasLine(evs, smtp.DirClient, "EHLO") || hasLine(evs, smtp.DirClient, "AUTH") || !hasLine(evs, smtp.DirClient, "MAIL FROM:") ||
				!hasLine(evs, smtp.DirInfo, "TLS handshake done") || !hasLine(evs, smtp.DirInfo, "certificate verified for localhost (when the connection was opened)") {
				t.Errorf("item %d: a reused connection's transcript should hold its own transaction only:\n%v", id, evs)
			}
		case hasLine(evs, smtp.DirInfo, "connected to "):
			opened++
			if !hasLine(evs, smtp.DirClient, "STARTTLS") || !hasLine(evs, smtp.DirClient, "AUTH ") {
				t.Errorf("item %d: a new connection's transcript lacks STARTTLS or AUTH:\n%v", id, evs)
			}
		default:
			t.Errorf("item %d: transcript neither opens nor reuses a connection:\n%v", id, evs)
		}
	}
	if opened > 4 || opened+reused != n {
		t.Errorf("%d connections opened and %d reused for %d messages; want at most 4 opened", opened, reused, n)
	}
	counter.WaitDistinct(t, n, time.Second)
	if tokens, total := counter.Counts(); len(tokens) != n || total != n {
		t.Errorf("Maildir: %d distinct messages in %d files, want %d each once", len(tokens), total, n)
	}
	t.Logf("%d messages over %d connections", n, opened)
}

// scriptedServer accepts connections one after another and runs each
// through its script; it records every client line.
type scriptedServer struct {
	mu    sync.Mutex
	lines []string
	addr  string
}

func (s *scriptedServer) note(line string) {
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.mu.Unlock()
}

func (s *scriptedServer) saw(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// serveScripts starts a server whose k-th connection runs scripts[k]:
// the greeting and EHLO, then transactions until the script says stop.
func serveScripts(t *testing.T, scripts ...func(c *scriptConn) error) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedServer{addr: ln.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, script := range scripts {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c := &scriptConn{Conn: conn, br: bufio.NewReader(conn), srv: s}
			if err := c.hello(); err == nil {
				if err := script(c); err != nil {
					t.Errorf("server: %v", err)
				}
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

type scriptConn struct {
	net.Conn
	br  *bufio.Reader
	srv *scriptedServer
}

func (c *scriptConn) line() (string, error) {
	l, err := c.br.ReadString('\n')
	l = strings.TrimRight(l, "\r\n")
	if err == nil {
		c.srv.note(l)
	}
	return l, err
}

func (c *scriptConn) send(s string) error {
	_, err := c.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	return err
}

func (c *scriptConn) hello() error {
	if err := c.send("220 mx.test ESMTP\n"); err != nil {
		return err
	}
	if _, err := c.line(); err != nil {
		return err
	}
	return c.send("250-mx.test\n250 PIPELINING\n")
}

// transaction takes one message: MAIL, RCPT, DATA (pipelined), the body.
func (c *scriptConn) transaction() error {
	for range 3 {
		if _, err := c.line(); err != nil {
			return err
		}
	}
	if err := c.send("250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n"); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if l == "." {
			return c.send("250 2.0.0 Ok: queued as Q\n")
		}
	}
}

// TestKeptConnectionGoneStale: when the server drops a kept connection
// as the next message starts (before any of it was accepted), silently or
// with a 421, the attempt goes on over a new connection at once and
// succeeds.
func TestKeptConnectionGoneStale(t *testing.T) {
	for _, tt := range []struct{ name, bye string }{
		{"silently", ""},
		{"with 421", "421 4.7.0 mx.test Error: too many messages in this session\n"},
	} {
		t.Run(tt.name, func(t *testing.T) { keptConnectionGoneStale(t, tt.bye) })
	}
}

func keptConnectionGoneStale(t *testing.T, bye string) {
	srv := serveScripts(t,
		func(c *scriptConn) error {
			if err := c.transaction(); err != nil {
				return err
			}
			if _, err := c.line(); err != nil { // the next MAIL FROM
				return err
			}
			if bye != "" {
				return c.send(bye)
			}
			return nil
		},
		func(c *scriptConn) error {
			if err := c.transaction(); err != nil {
				return err
			}
			_, _ = c.line() // QUIT at shutdown
			return c.send("221 Bye\n")
		},
	)
	h := newHarness(t)
	profiles := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: srv.addr, LocalName: "sockmail.test"}, nil
	}
	w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 1, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w)
	first := h.enqueue(t, 1, "first")[0]
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	second := h.enqueue(t, 1, "second")[0]
	w.Kick()
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 2 })
	stop()

	evs := transcriptOf(t, h.s, second.ID)
	for _, want := range []string{
		fmt.Sprintf("reusing the connection to %s opened by the attempt of outbox item %d", srv.addr, first.ID),
		"the kept connection failed before the message was sent",
		"connected to " + srv.addr,
	} {
		if !hasLine(evs, smtp.DirInfo, want) {
			t.Errorf("second attempt's transcript lacks %q:\n%v", want, evs)
		}
	}
	if got := srv.saw("MAIL FROM:"); got != 3 {
		t.Errorf("server saw %d MAIL FROM, want 3 (first, the stale try, second)", got)
	}
	if got := srv.saw("QUIT"); got != 1 {
		t.Errorf("server saw %d QUIT, want 1 (the kept connection at shutdown)", got)
	}
}

// TestKeptConnectionExpires: an idle kept connection is ended with QUIT
// after ReuseIdle; with ReuseIdle negative every attempt has its own.
func TestKeptConnectionExpires(t *testing.T) {
	oneMessage := func(c *scriptConn) error {
		if err := c.transaction(); err != nil {
			return err
		}
		l, err := c.line()
		if err == nil && l == "QUIT" {
			err = c.send("221 Bye\n")
		}
		return err
	}
	srv := serveScripts(t, oneMessage, oneMessage)
	h := newHarness(t)
	profiles := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: srv.addr, LocalName: "sockmail.test"}, nil
	}
	w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 1, PollInterval: 20 * time.Millisecond, ReuseIdle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w)
	h.enqueue(t, 1, "idle")
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	testenv.WaitUntil(t, "the idle connection to end with QUIT", func() bool { return srv.saw("QUIT") > 0 })
	stop()

	// Reuse off: the worker closes its connection after each message.
	w2, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 1, PollInterval: 20 * time.Millisecond, ReuseIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	stop = run(t, w2)
	h.enqueue(t, 1, "no-reuse")
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 2 })
	testenv.WaitUntil(t, "the connection without reuse to end with the message", func() bool { return srv.saw("QUIT") >= 2 })
	stop()
}

func TestStaleConnection(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&smtp.Error{Phase: smtp.PhaseMail, Message: "server closed the connection"}, true},
		{&smtp.Error{Phase: smtp.PhaseReset, Message: "server closed the connection"}, true},
		{&smtp.Error{Phase: smtp.PhaseMail, Code: 421, EnhancedCode: "4.4.2"}, true},
		{&smtp.Error{Phase: smtp.PhaseMail, Code: 451}, false},
		{&smtp.Error{Phase: smtp.PhaseMail, Code: 550}, false},
		{&smtp.Error{Phase: smtp.PhaseRcpt, Message: "server closed the connection"}, false},
		{&smtp.Error{Phase: smtp.PhaseBody, Message: "server closed the connection", OutcomeUnknown: true}, false},
		{fmt.Errorf("not an SMTP error"), false},
	}
	for _, tt := range tests {
		if got := staleConnection(tt.err); got != tt.want {
			t.Errorf("staleConnection(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
