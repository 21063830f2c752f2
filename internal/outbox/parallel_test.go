package outbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
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

// countingDialer dials the real server and counts how many of its
// connections are open at once, from the dial to the client's Close. With
// gate > 1 its connections read nothing (not even the greeting) until
// gate connections have been dialled, so that a test of parallel
// connections does not depend on timing: a worker that opens only one
// connection makes no progress and fails the test.
type countingDialer struct {
	gate int

	mu       sync.Mutex
	open     int
	max      int
	total    int
	opened   chan struct{} // closed when gate connections came
	isOpened bool
}

func newCountingDialer(gate int) *countingDialer {
	return &countingDialer{gate: gate, opened: make(chan struct{})}
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.open++
	d.total++
	d.max = max(d.max, d.open)
	if d.total >= d.gate && !d.isOpened {
		d.isOpened = true
		close(d.opened)
	}
	return &countedConn{Conn: c, d: d}, nil
}

func (d *countingDialer) stats() (maxOpen, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.max, d.total
}

// countedConn is a connection of a countingDialer.
type countedConn struct {
	net.Conn
	d      *countingDialer
	closed sync.Once
}

func (c *countedConn) Read(p []byte) (int, error) {
	select {
	case <-c.d.opened:
	default:
		// Waiting for the gate honours the read deadline, like a server
		// that does not answer.
		select {
		case <-c.d.opened:
		case <-time.After(testenv.StallLimit):
			_, total := c.d.stats()
			return 0, fmt.Errorf("counting dialer: %d connection(s) dialled, the gate waits for %d", total, c.d.gate)
		}
	}
	return c.Conn.Read(p)
}

func (c *countedConn) Close() error {
	c.closed.Do(func() {
		c.d.mu.Lock()
		c.d.open--
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}

// TestParallelPostfix delivers 60 queued messages to the test Postfix
// through a counting dialer, on both backends: with 4 connections per
// server the worker uses more than one at once (the dialer holds the
// greeting until a second connection comes) and never more than 4; with
// 1 (the server profile's own limit, over a default of 4) it never has
// two open. Every message arrives exactly once (Maildir
// counter), went in a pipelined batch, and every attempt's transcript
// holds its own message and no other's.
func TestParallelPostfix(t *testing.T) {
	pf := testenv.Postfix(t)
	for name, mk := range backendHarnesses(t) {
		for _, tc := range []struct {
			conns, gate int
			profile     bool // the limit is the server profile's own
		}{
			{conns: 4, gate: 2},
			{conns: 1, gate: 1, profile: true},
		} {
			t.Run(fmt.Sprintf("%s/%d connections", name, tc.conns), func(t *testing.T) {
				h := mk(t)
				dialer := newCountingDialer(tc.gate)
				tok := testenv.UniqueToken()
				counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
				counter.RemoveWhenPassed(t)
				const n = 60
				ids := enqueueTo(t, h, n, tok, "owner@"+pf.Domain)
				profiles := func(context.Context, int64) (smtp.Config, error) {
					return smtp.Config{Addr: pf.SMTPAddr, LocalName: "sockmail.test", Dialer: dialer}, nil
				}
				d := Deps{Store: h.s, Profiles: profiles, Concurrency: 4, Connections: tc.conns, Pipeline: 8, PollInterval: 50 * time.Millisecond}
				if tc.profile {
					d.Connections = 4
					d.ServerConnections = func(context.Context, int64) (int, error) { return tc.conns, nil }
				}
				w, err := New(d)
				if err != nil {
					t.Fatal(err)
				}
				runUntilSent(t, h, w, n)
				maxOpen, total := dialer.stats()
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
				wantEachOnce(t, counter, n)
				t.Logf("%d messages, %d in batches, over %d connections (%d at once at most)", n, batched, total, maxOpen)
			})
		}
	}
}

// runUntilSent runs w until n items of h are sent, then stops it.
func runUntilSent(t *testing.T, h *harness, w *Worker, n int) {
	t.Helper()
	stop := run(t, w)
	c := waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
	stop()
	if c[store.OutboxSent] != n {
		t.Fatalf("outbox counts %v, want %d sent", c, n)
	}
}

// wantEachOnce checks that counter's Maildir holds each of n messages
// exactly once.
func wantEachOnce(t *testing.T, counter *testenv.MaildirCounter, n int) {
	t.Helper()
	counter.WaitDistinct(t, n, time.Second)
	if tokens, files := counter.Counts(); len(tokens) != n || files != n {
		t.Errorf("Maildir: %d distinct messages in %d files, want %d each once", len(tokens), files, n)
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
			w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 2, Connections: 2, Pipeline: 8, PollInterval: 50 * time.Millisecond})
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

// batchStore is a real store that counts how outcomes are stored and
// refuses the first pipelined batch's outcomes (as a database that
// fails that transaction would).
type batchStore struct {
	*store.Store
	mu                sync.Mutex
	batches, together int // FinishAttempts calls that stored, and their outcomes
	refused, alone    int // outcomes of the refused call; FinishAttemptSend calls
}

func (b *batchStore) FinishAttempts(ctx context.Context, owner string, outs []store.AttemptOutcome) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refused == 0 {
		b.refused = len(outs)
		return errors.New("injected: the batch's transaction failed")
	}
	if err := b.Store.FinishAttempts(ctx, owner, outs); err != nil {
		return err
	}
	b.batches++
	b.together += len(outs)
	return nil
}

func (b *batchStore) FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error {
	b.mu.Lock()
	b.alone++
	b.mu.Unlock()
	return b.Store.FinishAttemptSend(ctx, id, owner, status, next, lastErr, snd)
}

// TestBatchOutcomesStoredTogether delivers 24 messages to the test
// Postfix in pipelined batches of 8 over one connection, on both
// backends: a batch's outcomes are stored in one FinishAttempts call;
// when that call fails, each of its outcomes is stored on its own, so
// none is lost: every item ends sent with its own history record, every
// message arrives once.
func TestBatchOutcomesStoredTogether(t *testing.T) {
	pf := testenv.Postfix(t)
	for name, mk := range backendHarnesses(t) {
		t.Run(name, func(t *testing.T) {
			h := mk(t)
			tok := testenv.UniqueToken()
			counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
			counter.RemoveWhenPassed(t)
			const n = 24
			ids := enqueueTo(t, h, n, tok, "owner@"+pf.Domain)
			bs := &batchStore{Store: h.s}
			profiles := func(context.Context, int64) (smtp.Config, error) {
				return smtp.Config{Addr: pf.SMTPAddr, LocalName: "sockmail.test"}, nil
			}
			w, err := New(Deps{Store: bs, Profiles: profiles, Concurrency: 1, Connections: 1, Pipeline: 8, PollInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			runUntilSent(t, h, w, n)
			bs.mu.Lock()
			batches, together, refused, alone := bs.batches, bs.together, bs.refused, bs.alone
			bs.mu.Unlock()
			if refused < 2 || batches == 0 || together < 2*batches {
				t.Errorf("outcomes stored together: %d in %d calls (first call of %d refused), want batches of several", together, batches, refused)
			}
			if together+alone != n || alone < refused {
				t.Errorf("%d outcomes stored together, %d alone (%d refused together), want %d in all, the refused ones alone", together, alone, refused, n)
			}
			sends := map[int64]bool{}
			for _, id := range ids {
				it, err := h.s.OutboxItem(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if it.Status != store.OutboxSent || it.LastSendID == nil || sends[*it.LastSendID] {
					t.Errorf("item %d: %s, last send %v (want sent, with a history record of its own)", id, it.Status, it.LastSendID)
					continue
				}
				sends[*it.LastSendID] = true
			}
			wantEachOnce(t, counter, n)
			t.Logf("%d outcomes in %d batches, %d alone (a refused batch of %d)", together, batches, alone, refused)
		})
	}
}

// TestIntakeFirst: the lanes the worker may run, as the count of stored
// submissions moves and posts are being stored when it looks.
func TestIntakeFirst(t *testing.T) {
	var n uint64
	var storing int
	f := newIntakeFirst(func() uint64 { return n }, func() int { return storing }, 4, 8)
	now := time.Now()
	ms := time.Millisecond
	steps := []struct {
		name         string
		after        time.Duration // since the previous look
		posts        uint64        // submissions stored meanwhile
		storing      int           // being stored at the look
		claim        bool          // the worker claims after the look
		lanes, items int
		wait         time.Duration
	}{
		{"quiet: every lane, full batches", 0, 0, 0, true, 4, 32, 0},
		{"posts stored, none in flight: one message", 10 * ms, 3, 0, true, 1, 1, 0},
		{"posts in flight 10 ms after the claim: wait", 10 * ms, 2, 5, false, 0, 0, 90 * ms},
		{"still in flight, 60 ms after the claim", 50 * ms, 9, 5, false, 0, 0, 40 * ms},
		{"IntakeYield after the claim: one", 40 * ms, 2, 5, true, 1, 1, 0},
		{"the count still for 50 ms: still one", 50 * ms, 0, 0, false, 1, 1, 0},
		{"right after a claim, nothing stored since: still one", 0, 0, 0, true, 1, 1, 0},
		{"the count still for IntakeYield: every lane", 50 * ms, 0, 0, true, 4, 32, 0},
		{"a lone post an hour later: one", time.Hour, 1, 1, true, 1, 1, 0},
		{"IntakeYield later: every lane", IntakeYield, 0, 0, true, 4, 32, 0},
		{"posts in flight, the clock set back an hour: wait IntakeYield at most", -time.Hour, 4, 2, false, 0, 0, IntakeYield},
		{"IntakeYield later: one", IntakeYield, 4, 2, true, 1, 1, 0},
		{"the clock set back again, still: one", -time.Hour, 0, 0, true, 1, 1, 0},
		{"IntakeYield later: every lane", IntakeYield, 0, 0, true, 4, 32, 0},
	}
	for _, s := range steps {
		now = now.Add(s.after)
		n += s.posts
		storing = s.storing
		lanes, items, wait := f.slots(now)
		if lanes != s.lanes || items != s.items || wait != s.wait {
			t.Errorf("%s: %d lanes, %d items, wait %v; want %d, %d, %v", s.name, lanes, items, wait, s.lanes, s.items, s.wait)
		}
		if s.claim {
			f.claimed(now)
		}
	}
	if lanes, items, wait := newIntakeFirst(nil, nil, 4, 8).slots(now); lanes != 4 || items != 32 || wait != 0 {
		t.Errorf("without Intake: %d lanes, %d items, wait %v; want 4, 32, 0", lanes, items, wait)
	}
}

// TestIntakeYield: while the count of stored submissions moves at every
// look and posts are being stored, the worker claims one message, then
// waits IntakeYield (by its clock) before the next, however often it
// looks; once no post is in flight it claims the next at once.
func TestIntakeYield(t *testing.T) {
	h := newHarness(t)
	h.enqueue(t, 3, "yield")
	clock := newTimerClock()
	var posts atomic.Uint64
	var storing atomic.Int64
	storing.Store(1)
	cs := &claimSizeStore{Store: h.s}
	w, err := New(Deps{Store: cs, Send: h.deliver, Profiles: noProfiles, Concurrency: 4, PollInterval: 5 * time.Millisecond,
		Now: clock.Now, After: clock.After,
		Intake: func() uint64 { return posts.Add(1) }, Storing: func() int { return int(storing.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, w)()
	sent := func(n int) {
		t.Helper()
		waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool {
			if c[store.OutboxSent] > n {
				t.Fatalf("%d sent, want %d: the worker did not wait for its clock", c[store.OutboxSent], n)
			}
			return c[store.OutboxSent] == n
		})
	}
	// The first claim, then a wait for the clock.
	sent(1)
	testenv.WaitUntil(t, "the worker to wait for its clock", func() bool { return clock.waiting() > 0 })
	// The worker keeps looking (it polls every 5 ms; each look reads the
	// count) and claims nothing until the clock moves: no second message.
	looks := posts.Load()
	testenv.WaitUntil(t, "the worker to look again", func() bool { return posts.Load() > looks+5 })
	if c, err := h.s.OutboxCounts(context.Background()); err != nil || c[store.OutboxSent] != 1 {
		t.Fatalf("before the clock moved: counts %v (%v), want 1 sent", c, err)
	}
	clock.Advance(IntakeYield)
	sent(2)
	// No post in flight: the next at once, the clock still.
	storing.Store(0)
	sent(3)
	if most := cs.most.Load(); most != 1 {
		t.Errorf("a claim took %d items while submissions came in, want one at a time", most)
	}
}

// claimSizeStore is a store that remembers the most items one ClaimDue
// returned.
type claimSizeStore struct {
	*store.Store
	most atomic.Int64
}

func (c *claimSizeStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error) {
	items, err := c.Store.ClaimDue(ctx, owner, now, lease, limit)
	for {
		m := c.most.Load()
		if int64(len(items)) <= m || c.most.CompareAndSwap(m, int64(len(items))) {
			break
		}
	}
	return items, err
}

// TestIntakeFirstOneConnection delivers 40 queued messages to the test
// Postfix while the count of stored submissions grows at every look (a
// burst of posts that does not end), on both backends: the worker, with 4
// lanes, 4 connections and batches of 8 allowed, never has more than one
// connection open nor claims more than one message at a time, and still
// delivers every message once.
func TestIntakeFirstOneConnection(t *testing.T) {
	pf := testenv.Postfix(t)
	for name, mk := range backendHarnesses(t) {
		t.Run(name, func(t *testing.T) {
			h := mk(t)
			dialer := newCountingDialer(1)
			tok := testenv.UniqueToken()
			counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
			counter.RemoveWhenPassed(t)
			const n = 40
			enqueueTo(t, h, n, tok, "owner@"+pf.Domain)
			var posts atomic.Uint64
			profiles := func(context.Context, int64) (smtp.Config, error) {
				return smtp.Config{Addr: pf.SMTPAddr, LocalName: "sockmail.test", Dialer: dialer}, nil
			}
			cs := &claimSizeStore{Store: h.s}
			w, err := New(Deps{Store: cs, Profiles: profiles, Concurrency: 4, Connections: 4, Pipeline: 8, PollInterval: 50 * time.Millisecond,
				Intake: func() uint64 { return posts.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			runUntilSent(t, h, w, n)
			if maxOpen, total := dialer.stats(); maxOpen != 1 {
				t.Errorf("%d connections open at once (%d in all) while submissions came in, want 1", maxOpen, total)
			}
			if most := cs.most.Load(); most != 1 {
				t.Errorf("a claim took %d items while submissions came in, want one at a time", most)
			}
			wantEachOnce(t, counter, n)
		})
	}
}
