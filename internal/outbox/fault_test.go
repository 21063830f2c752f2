package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // a second connection that holds SQLite's write lock

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// Fault tests against the loopback Postfix: every message carries a
// token "<run>-NNNN" and goes to a fresh address at example.test; the
// Maildir is read back to count deliveries per token and per Message-ID.

const faultMessages = 1000

// faultRun is one fault test's messages.
type faultRun struct {
	id      string // the run's token prefix
	to      string
	counter *testenv.MaildirCounter
	msgIDs  map[string]string // token -> Message-ID
	mu      sync.Mutex
}

func newFaultRun(t *testing.T, p *testenv.PostfixServer) *faultRun {
	r := &faultRun{id: strings.TrimPrefix(testenv.UniqueToken(), "tok-"), to: testenv.UniqueAddress(), msgIDs: map[string]string{}}
	r.counter = testenv.NewMaildirCounter(p.Maildir, regexp.MustCompile(regexp.QuoteMeta(r.id)+`-\d{4}`))
	r.counter.RemoveWhenPassed(t)
	return r
}

func (r *faultRun) token(i int) string { return fmt.Sprintf("%s-%04d", r.id, i) }

// compose builds message i as the web side does: composed once, its
// Message-ID fixed, stored whole.
func (r *faultRun) compose(t testing.TB, form int64, profile int64, i int) (*store.Submission, *store.OutboxItem) {
	tok := r.token(i)
	m := &message.Message{
		From:    &mail.Address{Name: "Contact form", Address: "forms@example.test"},
		To:      []*mail.Address{{Address: r.to}},
		ReplyTo: []*mail.Address{{Name: "Visitor", Address: "visitor@example.net"}},
		Subject: "Contact " + tok,
		Text:    "Name: Visitor\nMessage: fault test message " + tok + "\n",
		Headers: []message.Field{{Name: "X-Sockmail-Form", Value: "fault"}},
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.msgIDs[tok] = m.MessageID
	r.mu.Unlock()
	sub := &store.Submission{FormID: form, ClientAddr: "203.0.113.7", Origin: "https://site.example.test",
		Fields: []store.FieldValue{{Name: "name", Value: "Visitor"}, {Name: "message", Value: "fault test message " + tok}}}
	item := &store.OutboxItem{ProfileID: profile, MailFrom: m.EnvelopeFrom(), Rcpts: m.Recipients(), MessageID: m.MessageID, Message: buf.Bytes()}
	return sub, item
}

// enqueueAll stores n messages with 16 concurrent callers, as a busy
// endpoint would, and returns how long it took. Every call must succeed.
func (r *faultRun) enqueueAll(t *testing.T, s *store.Store, form, profile int64, n int, after func()) time.Duration {
	t.Helper()
	start := time.Now()
	var next atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				sub, item := r.compose(t, form, profile, i)
				if err := s.EnqueueSubmission(context.Background(), sub, item); err != nil {
					t.Errorf("submission %d not accepted: %v", i, err)
					return
				}
				if after != nil {
					after()
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// verify waits for all n messages in the Maildir and checks, by token
// and by Message-ID, that each arrived exactly once when exact, at least
// once otherwise. It returns the number of duplicate deliveries.
func (r *faultRun) verify(t *testing.T, n int, exact bool) int {
	t.Helper()
	wait := r.counter.WaitDistinct(t, n, 1500*time.Millisecond)
	tokens, total := r.counter.Counts()
	ids := r.counter.MessageIDs()
	dups := 0
	var dupTokens []string
	for i := range n {
		tok := r.token(i)
		switch c := tokens[tok]; {
		case c == 0:
			t.Errorf("message %s lost", tok)
		case c > 1:
			dups += c - 1
			dupTokens = append(dupTokens, fmt.Sprintf("%s×%d", tok, c))
		}
		if id := r.msgIDs[tok]; ids[id] != tokens[tok] {
			t.Errorf("message %s: %d files, but %d carry its Message-ID <%s>", tok, tokens[tok], ids[id], id)
		}
	}
	if len(tokens) != n || len(ids) != n {
		t.Errorf("%d distinct tokens and %d distinct Message-IDs in the Maildir, want %d", len(tokens), len(ids), n)
	}
	sort.Strings(dupTokens)
	if exact && dups > 0 {
		t.Errorf("%d duplicate deliveries: %v", dups, dupTokens)
	}
	t.Logf("Maildir: %d files, %d distinct tokens, %d distinct Message-IDs, %d duplicates %v; all distinct after %v",
		total, len(tokens), len(ids), dups, dupTokens, wait.Round(time.Millisecond))
	return dups
}

// countingSend wraps smtp.SendMail, counting outcomes.
type countingSend struct {
	ok, temp, other atomic.Int64
}

func (c *countingSend) send(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
	res, err := smtp.SendMail(ctx, cfg, env, msg, opts)
	var se *smtp.Error
	switch {
	case err == nil:
		c.ok.Add(1)
	case errors.As(err, &se) && se.Temporary():
		c.temp.Add(1)
	default:
		c.other.Add(1)
	}
	return res, err
}

// fixedProfile resolves every profile to the address *addr holds.
func fixedProfile(addr *atomic.Pointer[string]) ProfileFunc {
	return func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: *addr.Load(), TLS: smtp.TLSNone, LocalName: "sockmail.test",
			Timeouts: smtp.Timeouts{Connect: 5 * time.Second}}, nil
	}
}

func newFaultForm(t *testing.T, s *store.Store, to string) int64 {
	f := &store.Form{Name: "Fault " + t.Name(), Recipients: []string{to}, FromAddr: "forms@example.test", Enabled: true}
	if err := s.SaveForm(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return f.ID
}

// TestFaultSMTPDown: with the SMTP server down, 1,000 submissions are all
// accepted, every attempt fails temporarily and is retried; once the
// server is back, all 1,000 arrive, each exactly once.
func TestFaultSMTPDown(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	t.Parallel()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fr := newFaultRun(t, p)
	form := newFaultForm(t, s, fr.to)

	down := testenv.ClosedPort(t)
	var addr atomic.Pointer[string]
	addr.Store(&down)
	var cs countingSend
	w, err := New(Deps{Store: s, Send: cs.send, Profiles: fixedProfile(&addr), Owner: "down-test", Concurrency: 8,
		PollInterval: 50 * time.Millisecond, Backoff: Backoff{Base: 50 * time.Millisecond, Max: 400 * time.Millisecond}, Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w)
	defer stop()

	took := fr.enqueueAll(t, s, form, 0, faultMessages, w.Kick)
	t.Logf("server down: %d submissions accepted in %v (%.0f/s)", faultMessages, took.Round(time.Millisecond), faultMessages/took.Seconds())
	// Let every item fail at least once: fails only if the failed
	// attempts stop coming.
	testenv.WaitFor(t, "failed attempts while the server is down", func() (int64, bool) {
		n := cs.temp.Load()
		return n, n >= faultMessages
	})
	c, _ := s.OutboxCounts(context.Background())
	if c[store.OutboxQueued]+c[store.OutboxSending] != faultMessages || cs.ok.Load() != 0 || cs.other.Load() != 0 {
		t.Fatalf("while down: counts %v, %d delivered, %d other failures", c, cs.ok.Load(), cs.other.Load())
	}
	failedWhileDown := cs.temp.Load()

	up := time.Now()
	addr.Store(&p.SMTPAddr)
	waitCounts(t, s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == faultMessages })
	drained := time.Since(up)
	fr.verify(t, faultMessages, true)

	// Every attempt is in the history.
	var attempts int
	for before := int64(0); ; {
		page, err := s.ListOutbox(context.Background(), store.OutboxFilter{Limit: store.MaxListLimit, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			attempts += it.Attempts
		}
		if len(page) < store.MaxListLimit {
			break
		}
		before = page[len(page)-1].ID
	}
	// Count the history page by page: a page's Total is capped.
	var history int64
	for before := int64(0); ; {
		page, err := s.ListSends(context.Background(), store.SendFilter{Source: "contact", Limit: store.MaxSendLimit, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		history += int64(len(page.Sends))
		if page.NextBefore == 0 {
			break
		}
		before = page.NextBefore
	}
	total := cs.ok.Load() + cs.temp.Load() + cs.other.Load()
	if int64(attempts) != total || history != total || cs.ok.Load() != faultMessages {
		t.Errorf("%d attempts counted on items, %d sends in the history, %d SMTP sends (%d delivered)", attempts, history, total, cs.ok.Load())
	}
	t.Logf("%d temporary failures while down (%d by the time it came back); after it came back all %d sent in %v; %d attempts in all, each in the history",
		cs.temp.Load(), failedWhileDown, faultMessages, drained.Round(time.Millisecond), total)
}

// outcomeCounter is a Store that counts the outcomes a worker records.
type outcomeCounter struct {
	Store
	sent, other atomic.Int64
}

func (c *outcomeCounter) FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error {
	err := c.Store.FinishAttemptSend(ctx, id, owner, status, next, lastErr, snd)
	if err == nil && status == store.OutboxSent {
		c.sent.Add(1)
	} else {
		c.other.Add(1)
	}
	return err
}

// TestFaultTwoInstancesPostgres: two workers with their own database
// pools and their own kept SMTP connections, as two instances would be,
// share one PostgreSQL outbox; 1,000 messages arrive with no duplicate
// and no loss.
func TestFaultTwoInstancesPostgres(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	stores := twoInstances(t)
	t.Parallel()
	fr := newFaultRun(t, p)
	form := newFaultForm(t, stores[0], fr.to)
	var addr atomic.Pointer[string]
	addr.Store(&p.SMTPAddr)
	var counted [2]*outcomeCounter
	var workers [2]*Worker
	for i := range workers {
		counted[i] = &outcomeCounter{Store: stores[i]}
		w, err := New(Deps{Store: counted[i], Profiles: fixedProfile(&addr), Owner: fmt.Sprint("instance-", i),
			Concurrency: 4, PollInterval: 100 * time.Millisecond, Backoff: Backoff{Base: 100 * time.Millisecond, Max: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = w
		defer run(t, w)()
	}
	start := time.Now()
	// The submissions arrive through both instances, as behind a load
	// balancer.
	var k atomic.Int32
	kick := func() { workers[k.Add(1)%2].Kick() }
	half := faultMessages / 2
	var wg sync.WaitGroup
	wg.Go(func() { fr.enqueueRange(t, stores[0], form, 0, half, kick) })
	wg.Go(func() { fr.enqueueRange(t, stores[1], form, half, faultMessages, kick) })
	wg.Wait()
	waitCounts(t, stores[0], func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == faultMessages })
	took := time.Since(start)
	fr.verify(t, faultMessages, true)
	a, b := counted[0].sent.Load(), counted[1].sent.Load()
	if a+b != faultMessages || a == 0 || b == 0 {
		t.Errorf("instance 0 delivered %d, instance 1 %d: want %d in all, shared", a, b, faultMessages)
	}
	if f := counted[0].other.Load() + counted[1].other.Load(); f != 0 {
		t.Errorf("%d attempts not sent", f)
	}
	t.Logf("two instances delivered %d + %d = %d messages in %v", a, b, a+b, took.Round(time.Millisecond))
}

// enqueueRange stores messages from..to-1 one by one.
func (r *faultRun) enqueueRange(t *testing.T, s *store.Store, form int64, from, to int, after func()) {
	for i := from; i < to; i++ {
		sub, item := r.compose(t, form, 0, i)
		if err := s.EnqueueSubmission(context.Background(), sub, item); err != nil {
			t.Errorf("submission %d not accepted: %v", i, err)
			return
		}
		after()
	}
}

// proxy forwards TCP connections to a backend until stopped; it can be
// started again on the same address: a database server going away and
// coming back.
type proxy struct {
	addr, backend string
	mu            sync.Mutex
	ln            net.Listener
	conns         map[net.Conn]bool
}

func newProxy(t *testing.T, backend string) *proxy {
	p := &proxy{addr: "127.0.0.1:0", backend: backend, conns: map[net.Conn]bool{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = true, true
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close(); c.Close() }()
			go func() { io.Copy(c, b); b.Close(); c.Close() }()
		}
	}()
}

// stop closes the listener and cuts every connection.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// TestFaultDatabaseUnavailable: when the database cannot be reached,
// EnqueueSubmission returns an error (the web side answers 503) and
// stores nothing; the worker keeps running and delivers once the
// database is back.
func TestFaultDatabaseUnavailable(t *testing.T) {
	t.Run("sqlite closed", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "sockmail.db"))
		if err != nil {
			t.Fatal(err)
		}
		form := newFaultForm(t, s, "x@example.test")
		s.Close()
		sub, item := (&faultRun{id: "closed", to: "x@example.test", msgIDs: map[string]string{}}).compose(t, form, 0, 0)
		if err := s.EnqueueSubmission(context.Background(), sub, item); err == nil || sub.ID != 0 || item.ID != 0 {
			t.Errorf("EnqueueSubmission on a closed database: err %v, ids %d %d", err, sub.ID, item.ID)
		}
	})

	t.Run("sqlite locked", func(t *testing.T) {
		// Another process holds the write lock longer than the busy
		// timeout (10 s): the submission is refused, not faked.
		t.Parallel()
		path := filepath.Join(t.TempDir(), "sockmail.db")
		s, err := store.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		form := newFaultForm(t, s, "x@example.test")
		other, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		conn, err := other.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		r := &faultRun{id: "locked", to: "x@example.test", msgIDs: map[string]string{}}
		sub, item := r.compose(t, form, 0, 0)
		start := time.Now()
		err = s.EnqueueSubmission(context.Background(), sub, item)
		if err == nil || sub.ID != 0 || item.ID != 0 {
			t.Fatalf("EnqueueSubmission while locked: err %v, ids %d %d", err, sub.ID, item.ID)
		}
		t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.OutboxCounts(context.Background()); len(c) != 0 {
			t.Errorf("a refused submission was stored: %v", c)
		}
		sub, item = r.compose(t, form, 0, 1)
		if err := s.EnqueueSubmission(context.Background(), sub, item); err != nil {
			t.Errorf("after the lock was released: %v", err)
		}
	})

	t.Run("postgres down and back", func(t *testing.T) {
		pf := testenv.Postfix(t)
		if pf == nil {
			return
		}
		dsn := testenv.Postgres(t)
		t.Parallel()
		host := dsnHost(t, dsn)
		px := newProxy(t, host)
		s, err := store.Open(context.Background(), strings.Replace(dsn, host, px.addr, 1))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fr := newFaultRun(t, pf)
		form := newFaultForm(t, s, fr.to)
		const n = 20
		fr.enqueueRange(t, s, form, 0, n, func() {})

		px.stop()
		// Submissions are refused, quickly, and not stored.
		for i := n; i < n+3; i++ {
			sub, item := fr.compose(t, form, 0, i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			start := time.Now()
			err := s.EnqueueSubmission(ctx, sub, item)
			cancel()
			if err == nil || sub.ID != 0 {
				t.Fatalf("EnqueueSubmission with the database down: err %v, id %d", err, sub.ID)
			}
			if i == n {
				t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
		}
		// The worker runs against the dead database without harm...
		var addr atomic.Pointer[string]
		addr.Store(&pf.SMTPAddr)
		var cs countingSend
		polls := &claimCounter{Store: s}
		w, err := New(Deps{Store: polls, Send: cs.send, Profiles: fixedProfile(&addr), PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer run(t, w)()
		polls.waitPolls(t, 5) // five looks at the dead database
		if cs.ok.Load()+cs.temp.Load()+cs.other.Load() != 0 {
			t.Errorf("the worker sent while the database was down")
		}
		// ...and delivers once it is back.
		px.start(t)
		waitCounts(t, s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
		fr.verify(t, n, true)
		if c, _ := s.OutboxCounts(context.Background()); c[store.OutboxSent] != n || len(c) != 1 {
			t.Errorf("counts %v: the refused submissions must not be there", c)
		}
	})
}

// dsnHost returns the host:port of a postgres:// DSN.
func dsnHost(t *testing.T, dsn string) string {
	_, rest, ok := strings.Cut(dsn, "@")
	if !ok {
		t.Fatalf("DSN %q has no host part", dsn)
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// twoInstances opens one fresh PostgreSQL database twice, as two sockmail
// instances would.
func twoInstances(t *testing.T) [2]*store.Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	var stores [2]*store.Store
	for i := range stores {
		s, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores
}
