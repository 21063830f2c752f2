package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 30 * time.Second, Max: time.Hour}
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, 30 * time.Second},
		{1, 0.999999, 15*time.Second + 15*time.Microsecond},
		{2, 0, time.Minute},
		{3, 0.5, 90 * time.Second}, // 2 min, a quarter off
		{7, 0, 32 * time.Minute},
		{8, 0, time.Hour}, // 64 min capped
		{50, 0, time.Hour},
		{1000, 0.5, 45 * time.Minute},
		{0, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := b.Delay(tt.n, tt.r); got != tt.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}

// refusedErr returns the real error of a send to a closed port: a
// temporary network failure.
func refusedErr(t *testing.T) error {
	t.Helper()
	_, err := smtp.SendMail(context.Background(), smtp.Config{Addr: testenv.ClosedPort(t)}, smtp.Envelope{From: "a@example.org", To: []string{"b@example.org"}},
		strings.NewReader("Subject: x\r\n\r\nx\r\n"), smtp.SendOptions{})
	var se *smtp.Error
	if !errors.As(err, &se) || !se.Temporary() {
		t.Fatalf("send to a closed port: %v, want a temporary smtp.Error", err)
	}
	return err
}

func TestDecide(t *testing.T) {
	now := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	w, err := New(Deps{Store: fakeStore{}, Profiles: noProfiles, Backoff: Backoff{Base: 30 * time.Second, Max: time.Hour},
		MaxAge: 72 * time.Hour, Rand: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	queued := now.Add(-time.Hour)
	item := func(attempts int, expires time.Time) store.OutboxItem {
		return store.OutboxItem{ID: 1, Attempts: attempts, QueuedAt: queued, ExpiresAt: expires, MessageID: "m@x"}
	}
	ok := &smtp.Result{Recipients: []smtp.RecipientResult{{Address: "a@x", Accepted: true, Code: 250}}}
	partial := &smtp.Result{Recipients: []smtp.RecipientResult{{Address: "a@x", Accepted: true, Code: 250}, {Address: "b@x", Code: 550, Message: "no such user"}}}
	tests := []struct {
		name    string
		it      store.OutboxItem
		res     *smtp.Result
		err     error
		aborted bool
		status  store.OutboxStatus
		next    time.Time
		lastErr string
	}{
		{"sent", item(1, time.Time{}), ok, nil, false, store.OutboxSent, time.Time{}, ""},
		{"partly refused is sent", item(1, time.Time{}), partial, nil, false, store.OutboxSent, time.Time{}, "b@x: 550 no such user"},
		{"451 first attempt", item(1, time.Time{}), nil, &smtp.Error{Code: 451, Message: "later"}, false, store.OutboxQueued, now.Add(30 * time.Second), "451"},
		{"451 third attempt", item(3, time.Time{}), nil, &smtp.Error{Code: 451}, false, store.OutboxQueued, now.Add(2 * time.Minute), "451"},
		{"421 many attempts: capped", item(20, time.Time{}), nil, &smtp.Error{Code: 421}, false, store.OutboxQueued, now.Add(time.Hour), "421"},
		{"connection refused", item(1, time.Time{}), nil, refusedErr(t), false, store.OutboxQueued, now.Add(30 * time.Second), "connection"},
		{"last retry at the expiry", item(2, now.Add(10*time.Second)), nil, &smtp.Error{Code: 451}, false, store.OutboxQueued, now.Add(10 * time.Second), "451"},
		{"expired: explicit", item(2, now), nil, &smtp.Error{Code: 451}, false, store.OutboxFailed, time.Time{}, "gave up after 2 attempts"},
		{"expired: max age", store.OutboxItem{Attempts: 9, QueuedAt: now.Add(-72 * time.Hour)}, nil, &smtp.Error{Code: 452}, false, store.OutboxFailed, time.Time{}, "gave up after 9 attempts"},
		{"550", item(1, time.Time{}), nil, &smtp.Error{Code: 550, Message: "no"}, false, store.OutboxFailed, time.Time{}, "550"},
		{"554 after data", item(1, time.Time{}), nil, &smtp.Error{Phase: smtp.PhaseBody, Code: 554}, false, store.OutboxFailed, time.Time{}, "554"},
		{"outcome unknown", item(1, time.Time{}), nil, &smtp.Error{Phase: smtp.PhaseBody, OutcomeUnknown: true, Err: io.EOF}, false, store.OutboxUnknown, time.Time{}, "outcome unknown"},
		{"unknown even when aborted", item(1, time.Time{}), nil, &smtp.Error{Phase: smtp.PhaseBody, OutcomeUnknown: true, Err: context.Canceled}, true, store.OutboxUnknown, time.Time{}, "outcome unknown"},
		{"aborted before the end", item(1, time.Time{}), nil, &smtp.Error{Phase: smtp.PhaseRcpt, Err: context.Canceled}, true, store.OutboxQueued, now, "interrupted"},
		{"local refusal", item(1, time.Time{}), nil, &smtp.Error{Phase: smtp.PhaseMail, Message: "address contains a forbidden character"}, false, store.OutboxFailed, time.Time{}, "forbidden"},
		{"bad stored message", item(1, time.Time{}), nil, permanent{errors.New("message: raw: NUL")}, false, store.OutboxFailed, time.Time{}, "NUL"},
		{"profile deleted", item(1, time.Time{}), nil, fmt.Errorf("outbox: server profile 3: %w", store.ErrNotFound), false, store.OutboxFailed, time.Time{}, "profile 3"},
		{"profile unusable now", item(1, time.Time{}), nil, delivery.ErrCaptureOff, false, store.OutboxQueued, now.Add(30 * time.Second), "capture"},
	}
	for _, tt := range tests {
		o := w.decide(tt.it, tt.res, tt.err, tt.aborted, now)
		if o.status != tt.status || !o.next.Equal(tt.next) || !strings.Contains(o.lastErr, tt.lastErr) || (tt.lastErr == "" && o.lastErr != "") {
			t.Errorf("%s: got %s next %v err %q; want %s next %v err containing %q", tt.name, o.status, o.next, o.lastErr, tt.status, tt.next, tt.lastErr)
		}
	}
}

// fakeStore satisfies Store for tests that never touch it.
type fakeStore struct{ Store }

func noProfiles(context.Context, int64) (smtp.Config, error) { return smtp.Config{}, nil }

// harness is a worker over a real SQLite store with a scripted sender.
type harness struct {
	s    *store.Store
	form int64
	mu   sync.Mutex
	sent map[string]int // Message-ID -> deliveries
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &store.Form{Name: "Test", Recipients: []string{"owner@example.org"}, FromAddr: "forms@example.org", Enabled: true}
	if err := s.SaveForm(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return &harness{s: s, form: f.ID, sent: map[string]int{}}
}

// enqueue stores n submissions and returns their items.
func (h *harness) enqueue(t *testing.T, n int, tag string) []*store.OutboxItem {
	t.Helper()
	var out []*store.OutboxItem
	for i := range n {
		id := fmt.Sprintf("%s-%d@example.org", tag, i)
		msg := fmt.Sprintf("From: forms@example.org\r\nTo: owner@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s>\r\n\r\nbody\r\n", tag, i, id)
		sub := &store.Submission{FormID: h.form}
		item := &store.OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: []byte(msg)}
		if err := h.s.EnqueueSubmission(context.Background(), sub, item); err != nil {
			t.Fatal(err)
		}
		out = append(out, item)
	}
	return out
}

// deliver is a SendFunc that records the Message-ID as delivered.
func (h *harness) deliver(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
	var b strings.Builder
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, err
	}
	_, rest, _ := strings.Cut(b.String(), "Message-ID: <")
	id, _, _ := strings.Cut(rest, ">")
	h.mu.Lock()
	h.sent[id]++
	h.mu.Unlock()
	cfg.Transcript.Info(smtp.PhaseBody, "fake delivery of %s", id)
	return &smtp.Result{Recipients: []smtp.RecipientResult{{Address: env.To[0], Accepted: true, Code: 250}},
		Final: &smtp.Reply{Code: 250, Lines: []string{"2.0.0 Ok: queued as FAKE"}}, QueueID: "FAKE"}, nil
}

// waitCounts polls until the outbox counts satisfy ok. It fails only when
// no item has reached an end state (sent, failed, unknown) for
// testenv.StallLimit: a slow machine delivers slowly, but it delivers.
func waitCounts(t testing.TB, s *store.Store, ok func(map[store.OutboxStatus]int) bool) map[store.OutboxStatus]int {
	t.Helper()
	var c map[store.OutboxStatus]int
	var err error
	stalled := true
	defer func() {
		if stalled {
			t.Logf("last outbox counts: %v (%v)", c, err)
		}
	}()
	testenv.WaitFor(t, "outbox items to reach their end state", func() (int, bool) {
		c, err = s.OutboxCounts(context.Background())
		ended := c[store.OutboxSent] + c[store.OutboxFailed] + c[store.OutboxUnknown]
		return ended, err == nil && ok(c)
	})
	stalled = false
	return c
}

// run starts w and returns a function stopping it. Stopping fails the
// test if Run has not returned a stall limit after its grace period.
func run(t testing.TB, w *Worker) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(w.d.ShutdownGrace + testenv.StallLimit):
			t.Fatal("Run did not stop")
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return stop
}

// claimCounter is a Store that counts the worker's looks at the queue:
// ClaimDue calls, failed ones included, counted when they return.
type claimCounter struct {
	Store
	n atomic.Int64
}

func (c *claimCounter) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error) {
	items, err := c.Store.ClaimDue(ctx, owner, now, lease, limit)
	c.n.Add(1)
	return items, err
}

// waitPolls waits until the worker has looked at the queue k more times:
// what "several polls later" means, whatever the machine's speed.
func (c *claimCounter) waitPolls(t testing.TB, k int64) {
	t.Helper()
	target := c.n.Load() + k
	testenv.WaitFor(t, fmt.Sprintf("%d more polls", k), func() (int64, bool) {
		n := c.n.Load()
		return n, n >= target
	})
}

// fakeClock is a worker's clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestWorkerRetriesThenDelivers(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 5, "retry")
	var calls atomic.Int32
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		// Each message: 451 twice, then accepted.
		if calls.Add(1) <= 10 {
			cfg.Transcript.Info(smtp.PhaseRcpt, "fake 451")
			return &smtp.Result{}, &smtp.Error{Phase: smtp.PhaseRcpt, Code: 451, EnhancedCode: "4.3.0", Message: "4.3.0 try later"}
		}
		return h.deliver(ctx, cfg, env, msg, opts)
	}
	w, err := New(Deps{Store: h.s, Send: send, Profiles: noProfiles, Owner: "w1", PollInterval: 10 * time.Millisecond,
		Backoff: Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 5 })
	ctx := context.Background()
	for _, it := range items {
		got, _ := h.s.OutboxItem(ctx, it.ID)
		sub, _ := h.s.Submission(ctx, *it.SubmissionID)
		if got.Attempts < 2 || got.LastSendID == nil || sub.Status != store.SubmissionSent || got.LastError != "" {
			t.Errorf("item %d: %+v, submission %q", it.ID, got, sub.Status)
		}
		if n := h.sent[it.MessageID]; n != 1 {
			t.Errorf("%s delivered %d times", it.MessageID, n)
		}
		// The history: one send per attempt, chained by ParentID back to
		// the first, which alone keeps the message.
		snd, err := h.s.Send(ctx, *got.LastSendID)
		if err != nil {
			t.Fatal(err)
		}
		if snd.Status != smtp.StatusSent || snd.QueueID != "FAKE" || snd.Source != "contact" || *snd.FormID != h.form {
			t.Errorf("last send: %+v", snd)
		}
		chain := 1
		for snd.ParentID != nil {
			if snd.Message != nil || !snd.MessageTruncated {
				t.Errorf("send %d: a retry keeps a copy of the message", snd.ID)
			}
			if snd, err = h.s.Send(ctx, *snd.ParentID); err != nil {
				t.Fatal(err)
			}
			chain++
			if snd.Status != smtp.StatusTempFail || !strings.Contains(snd.Error, "451") {
				t.Errorf("earlier send %d: status %q error %q", snd.ID, snd.Status, snd.Error)
			}
		}
		if chain != got.Attempts || string(snd.Message) != string(it.Message) {
			t.Errorf("item %d: %d sends in the chain for %d attempts; first keeps %d bytes", it.ID, chain, got.Attempts, len(snd.Message))
		}
	}
	if n := calls.Load(); n != 15 {
		t.Errorf("%d sends, want 15 (5 messages × 2 temporary failures + 5 deliveries)", n)
	}
}

func TestWorkerPermanentAndUnknown(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 2, "perm")
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		var b strings.Builder
		msg.WriteTo(&b)
		if strings.Contains(b.String(), "perm 0") {
			return &smtp.Result{}, &smtp.Error{Phase: smtp.PhaseRcpt, Code: 550, Message: "5.1.1 no such user"}
		}
		return &smtp.Result{}, &smtp.Error{Phase: smtp.PhaseBody, Message: "connection lost", Err: io.EOF, OutcomeUnknown: true}
	}
	polls := &claimCounter{Store: h.s}
	w, _ := New(Deps{Store: polls, Send: send, Profiles: noProfiles, PollInterval: 10 * time.Millisecond, Backoff: Backoff{Base: time.Millisecond}})
	run(t, w)
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool {
		return c[store.OutboxFailed] == 1 && c[store.OutboxUnknown] == 1
	})
	polls.waitPolls(t, 5) // several polls: neither is tried again
	for i, want := range []store.OutboxStatus{store.OutboxFailed, store.OutboxUnknown} {
		it, _ := h.s.OutboxItem(context.Background(), items[i].ID)
		if it.Status != want || it.Attempts != 1 {
			t.Errorf("item %d: %s after %d attempts, want %s after 1", i, it.Status, it.Attempts, want)
		}
		snd, _ := h.s.Send(context.Background(), *it.LastSendID)
		if want == store.OutboxUnknown && (snd.Status != smtp.StatusUnknown || !strings.Contains(eventsText(snd.Events), "not retried automatically")) {
			t.Errorf("unknown item's send: %q %v", snd.Status, snd.Events)
		}
	}
}

func eventsText(evs []smtp.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Line + "\n")
	}
	return b.String()
}

func TestWorkerKick(t *testing.T) {
	h := newHarness(t)
	polls := &claimCounter{Store: h.s}
	w, _ := New(Deps{Store: polls, Send: h.deliver, Profiles: noProfiles, PollInterval: time.Hour})
	run(t, w)
	// The first claim, at start, finds nothing. Counted from zero: it may
	// have come before this line runs.
	testenv.WaitUntil(t, "the first claim", func() bool { return polls.n.Load() >= 1 })
	h.enqueue(t, 3, "kick")
	w.Kick()
	// The next poll is an hour away: only the kick can deliver them.
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 3 })
	if n := polls.n.Load(); n < 2 {
		t.Errorf("delivered after %d claims", n)
	}
}

func TestWorkerProfileErrors(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 2, "prof")
	var calls atomic.Int32
	profiles := func(ctx context.Context, id int64) (smtp.Config, error) {
		if calls.Add(1) == 1 {
			return smtp.Config{}, fmt.Errorf("outbox: server profile 9: %w", store.ErrNotFound)
		}
		return smtp.Config{}, delivery.ErrCaptureOff
	}
	w, _ := New(Deps{Store: h.s, Send: h.deliver, Profiles: profiles, Concurrency: 1, PollInterval: time.Hour, Backoff: Backoff{Base: time.Hour}})
	run(t, w)
	// Both items claimed first: a count read before the second claim
	// would find it queued, not yet tried.
	testenv.WaitUntil(t, "both items' profiles resolved", func() bool { return calls.Load() == 2 })
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool {
		return c[store.OutboxFailed] == 1 && c[store.OutboxQueued] == 1
	})
	for _, it := range items {
		got, _ := h.s.OutboxItem(context.Background(), it.ID)
		snd, err := h.s.Send(context.Background(), *got.LastSendID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(eventsText(snd.Events), "cannot use the server profile") {
			t.Errorf("send of item %d has no explanation: %v", it.ID, snd.Events)
		}
	}
	if len(h.sent) != 0 {
		t.Errorf("sent %v without a server", h.sent)
	}
}

// TestWorkerShutdown: an attempt still running after the grace period
// is aborted and its item queued again at once; Run returns.
func TestWorkerShutdown(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 1, "shut")
	started := make(chan struct{})
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		close(started)
		<-ctx.Done() // a server that never answers RCPT
		return &smtp.Result{}, &smtp.Error{Phase: smtp.PhaseRcpt, Message: "aborted", Err: ctx.Err()}
	}
	w, _ := New(Deps{Store: h.s, Send: send, Profiles: noProfiles, ShutdownGrace: 100 * time.Millisecond})
	stop := run(t, w)
	<-started
	// The send returns only when aborted: stop returning at all shows
	// the abort after the grace period.
	stop()
	it, _ := h.s.OutboxItem(context.Background(), items[0].ID)
	if it.Status != store.OutboxQueued || it.LeaseOwner != "" || it.NextAttemptAt.After(time.Now()) || !strings.Contains(it.LastError, "interrupted") {
		t.Errorf("after an aborted attempt: %+v", it)
	}
	snd, _ := h.s.Send(context.Background(), *it.LastSendID)
	if snd.Status != smtp.StatusAborted {
		t.Errorf("aborted attempt's send status %q", snd.Status)
	}
}

// TestWorkerTakesOver: an item claimed by a worker that died is taken
// over when the lease expires, with a note in the transcript.
func TestWorkerTakesOver(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 1, "take")
	ctx := context.Background()
	lease := 2 * time.Second
	clock := &fakeClock{now: time.Now()}
	got, err := h.s.ClaimDue(ctx, "dead", clock.Now(), lease, 1)
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	polls := &claimCounter{Store: h.s}
	w, _ := New(Deps{Store: polls, Send: h.deliver, Profiles: noProfiles, Owner: "alive", Lease: lease,
		PollInterval: 10 * time.Millisecond, Now: clock.Now})
	run(t, w)
	// A millisecond before the lease ends, several polls leave it alone.
	clock.Advance(lease - time.Millisecond)
	polls.waitPolls(t, 5)
	if it, _ := h.s.OutboxItem(ctx, items[0].ID); it.LeaseOwner != "dead" || it.Attempts != 1 {
		t.Fatalf("taken over before the lease expired: %+v", it)
	}
	clock.Advance(time.Millisecond)
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	it, _ := h.s.OutboxItem(ctx, items[0].ID)
	snd, _ := h.s.Send(ctx, *it.LastSendID)
	if it.Attempts != 2 || !strings.Contains(eventsText(snd.Events), "taken over from dead") || string(snd.Message) != string(items[0].Message) {
		t.Errorf("taking-over attempt: item %+v, send events %v", it, snd.Events)
	}
}

// TestWorkerDoesNotTakeOverFromItself: an attempt that outlives its lease
// (a starved process, a send slower than the lease) is not joined by a
// second attempt of the same worker on the same item. Both would pass the
// lease checks, which compare the owner, and the message would go twice.
func TestWorkerDoesNotTakeOverFromItself(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 1, "self")
	lease := 2 * time.Second
	clock := &fakeClock{now: time.Now()}
	polls := &claimCounter{Store: h.s}
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	var calls atomic.Int32
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		calls.Add(1)
		started <- struct{}{}
		<-release
		if err := cfg.BeforeEnd(ctx); err != nil { // the end of the message, as the client does
			return nil, err
		}
		return h.deliver(ctx, cfg, env, msg, opts)
	}
	w, err := New(Deps{Store: polls, Send: send, Profiles: noProfiles, Owner: "me", Lease: lease, Concurrency: 3,
		PollInterval: 10 * time.Millisecond, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	select {
	case <-started:
	case <-time.After(testenv.StallLimit):
		t.Fatal("the first attempt did not start")
	}
	clock.Advance(lease + time.Second) // the lease runs out while the attempt still runs
	polls.waitPolls(t, 5)              // and the worker looks at the queue again
	releaseAll()
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	h.mu.Lock()
	defer h.mu.Unlock()
	id := strings.TrimSuffix(strings.TrimPrefix(string(items[0].MessageID), "<"), ">")
	if n := calls.Load(); n != 1 || h.sent[id] != 1 {
		t.Errorf("%d attempts ran, the message was delivered %d times (%v); want one of each", n, h.sent[id], h.sent)
	}
}
