package outbox

import (
	"context"
	"fmt"
	"io"
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

// backendHarness is a harness on each backend: SQLite in a file and the
// test PostgreSQL.
func backendHarnesses(t *testing.T) map[string]func(t *testing.T) *harness {
	return map[string]func(t *testing.T) *harness{
		"sqlite": func(t *testing.T) *harness { return newHarness(t) },
		"postgres": func(t *testing.T) *harness {
			dsn := testenv.Postgres(t)
			s, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			f := &store.Form{Name: "Test", Recipients: []string{"owner@example.org"}, FromAddr: "forms@example.org", Enabled: true}
			if err := s.SaveForm(context.Background(), f); err != nil {
				t.Fatal(err)
			}
			return &harness{s: s, form: f.ID, sent: map[string]int{}}
		},
	}
}

// enqueueTo stores n submissions to rcpt, each carrying tok-i in its
// subject, Message-ID and body, and returns their item ids.
func enqueueTo(t *testing.T, h *harness, n int, tok, rcpt string) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		msg := fmt.Sprintf("From: forms@example.org\r\nTo: %s\r\nSubject: parallel %s-%d\r\nMessage-ID: <%s-%d@example.org>\r\n\r\n%s-%d\r\n",
			rcpt, tok, i, tok, i, tok, i)
		item := &store.OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{rcpt}, Message: []byte(msg)}
		if err := h.s.EnqueueSubmission(context.Background(), &store.Submission{FormID: h.form}, item); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, item.ID)
	}
	return ids
}

// countingProxy forwards connections to a server and counts how many
// are open at once. With gate > 1 it forwards nothing from the server
// (no greeting) until gate connections have come, so that a test of
// parallel connections does not depend on timing: a worker that opens
// only one connection makes no progress and fails the test.
type countingProxy struct {
	ln     net.Listener
	target string
	gate   int

	mu       sync.Mutex
	open     int
	max      int
	total    int
	opened   chan struct{} // closed when gate connections came
	isOpened bool
}

func newCountingProxy(t *testing.T, target string, gate int) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target, gate: gate, opened: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	return p
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) stats() (maxOpen, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max, p.total
}

func (p *countingProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	p.mu.Lock()
	p.open++
	p.total++
	p.max = max(p.max, p.open)
	if p.total >= p.gate && !p.isOpened {
		p.isOpened = true
		close(p.opened)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); s.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() {
		<-p.opened
		_, _ = io.Copy(c, s)
		c.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// TestParallelPostfix delivers 60 queued messages to the test Postfix
// through a counting proxy, on both backends: with 4 connections per
// server the worker uses more than one at once (the proxy holds the
// greeting until a second connection comes) and never more than 4; with
// 1 it never has two open. Every message arrives exactly once (Maildir
// counter), went in a pipelined batch, and every attempt's transcript
// holds its own message and no other's.
func TestParallelPostfix(t *testing.T) {
	pf := testenv.Postfix(t)
	for name, mk := range backendHarnesses(t) {
		for _, tc := range []struct {
			conns, gate int
		}{
			{conns: 4, gate: 2},
			{conns: 1, gate: 1},
		} {
			t.Run(fmt.Sprintf("%s/%d connections", name, tc.conns), func(t *testing.T) {
				h := mk(t)
				px := newCountingProxy(t, pf.SMTPAddr, tc.gate)
				tok := testenv.UniqueToken()
				counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
				counter.RemoveWhenPassed(t)
				const n = 60
				ids := enqueueTo(t, h, n, tok, "owner@"+pf.Domain)
				profiles := func(context.Context, int64) (smtp.Config, error) {
					return smtp.Config{Addr: px.addr(), LocalName: "sockmail.test"}, nil
				}
				w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 4, Connections: tc.conns, PollInterval: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				stop := run(t, w)
				c := waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
				stop()
				if c[store.OutboxSent] != n {
					t.Fatalf("outbox counts %v, want %d sent", c, n)
				}
				maxOpen, total := px.stats()
				switch {
				case tc.conns > 1 && maxOpen < 2:
					t.Errorf("at most %d connection(s) open at once, want more than one", maxOpen)
				case maxOpen > tc.conns:
					t.Errorf("%d connections open at once, want at most %d", maxOpen, tc.conns)
				}
				batched := 0
				for i, id := range ids {
					evs := transcriptOf(t, h.s, id)
					all := eventText(evs)
					if !strings.Contains(all, fmt.Sprintf("Message-ID: <%s-%d@example.org>", tok, i)) {
						t.Errorf("item %d: its transcript lacks its own message:\n%s", id, all)
					}
					if strings.Count(all, "Message-ID: <"+tok) != 1 {
						t.Errorf("item %d: its transcript holds another message too:\n%s", id, all)
					}
					if strings.Contains(all, "of a pipelined batch of") {
						batched++
					}
				}
				if batched == 0 {
					t.Errorf("no message went in a pipelined batch")
				}
				counter.WaitDistinct(t, n, time.Second)
				if tokens, files := counter.Counts(); len(tokens) != n || files != n {
					t.Errorf("Maildir: %d distinct messages in %d files, want %d each once", len(tokens), files, n)
				}
				t.Logf("%d messages, %d in batches, over %d connections (%d at once at most)", n, batched, total, maxOpen)
			})
		}
	}
}

// eventText joins the lines of a transcript.
func eventText(evs []smtp.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %s %s\n", ev.Dir, ev.Phase, ev.Line)
	}
	return b.String()
}

// haraka returns the address and Maildir of the test Haraka, which
// refuses commands pipelined after the end of data; it fails the test
// under CI when Haraka is not there, and skips it otherwise.
func haraka(t *testing.T) (addr, maildir string) {
	t.Helper()
	env, err := testenv.ReadEnv()
	var vals []string
	if err == nil {
		vals, err = env.Require("HARAKA_HOST", "HARAKA_PORT", "HARAKA_MAILDIR")
	}
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("Haraka test server unavailable: %v (%s)", err, testenv.StartHint)
		}
		t.Skipf("Haraka test server unavailable: %v (%s)", err, testenv.StartHint)
	}
	return net.JoinHostPort(vals[0], vals[1]), vals[2]
}

// TestParallelHarakaFallback delivers 30 queued messages to the test
// Haraka, which answers 503 to commands written in the same flight as
// the end of a message, on both backends: every message arrives exactly
// once and is recorded sent; the refusal is in a transcript; the worker
// remembers the server, so later connections to it write nothing after
// the end of a message and are refused no more.
func TestParallelHarakaFallback(t *testing.T) {
	addr, maildir := haraka(t)
	for name, mk := range backendHarnesses(t) {
		t.Run(name, func(t *testing.T) {
			h := mk(t)
			tok := testenv.UniqueToken()
			counter := testenv.NewMaildirCounter(maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
			counter.RemoveWhenPassed(t)
			const n = 30
			ids := enqueueTo(t, h, n, tok, "owner@"+testenv.Domain)
			profiles := func(context.Context, int64) (smtp.Config, error) {
				return smtp.Config{Addr: addr, LocalName: "sockmail.test"}, nil
			}
			w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 2, Connections: 2, PollInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, w)
			c := waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
			stop()
			if c[store.OutboxSent] != n {
				t.Fatalf("outbox counts %v, want %d sent", c, n)
			}
			refused, avoided := 0, 0
			for _, id := range ids {
				all := eventText(transcriptOf(t, h.s, id))
				if strings.Contains(all, "pipelined after end of DATA") {
					refused++
				}
				if strings.Contains(all, "refused commands pipelined after the end of a message before") {
					avoided++
				}
			}
			if refused == 0 {
				t.Errorf("no transcript shows Haraka's 503 to commands pipelined after the end of data")
			}
			if !w.pool.refusesPipeAfterEnd(keyOf(0, smtp.Config{Addr: addr})) {
				t.Errorf("the worker did not remember that the server refuses commands after the end of data")
			}
			counter.WaitDistinct(t, n, time.Second)
			if tokens, files := counter.Counts(); len(tokens) != n || files != n {
				t.Errorf("Haraka's Maildir: %d distinct messages in %d files, want %d each once", len(tokens), files, n)
			}
			t.Logf("%d transcripts with the 503, %d on connections opened knowing it", refused, avoided)
		})
	}
}
