package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/journal"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// timerClock is a fake clock whose After channels fire when Advance
// passes them.
type timerClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	made   int // After calls so far
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newTimerClock() *timerClock { return &timerClock{now: time.Now()} }

func (c *timerClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *timerClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	c.made++
	return ch
}

// Advance moves the clock by d and fires the timers now due.
func (c *timerClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// waiting returns how many After calls were made.
func (c *timerClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made
}

// refusingStore refuses to store outcomes while refuse is set, as a full
// disk does, and counts what it refused and the lease renewals.
type refusingStore struct {
	Store
	refuse           atomic.Bool
	refused, renewed atomic.Int64
}

func (r *refusingStore) FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error {
	if r.refuse.Load() {
		r.refused.Add(1)
		return &store.StorageError{Reason: "disk full", Err: errors.New("database or disk is full (13)")}
	}
	return r.Store.FinishAttemptSend(ctx, id, owner, status, next, lastErr, snd)
}

func (r *refusingStore) CreateSend(ctx context.Context, snd *store.Send) error {
	if r.refuse.Load() {
		return &store.StorageError{Reason: "disk full", Err: errors.New("database or disk is full (13)")}
	}
	return r.Store.CreateSend(ctx, snd)
}

func (r *refusingStore) RenewLease(ctx context.Context, id int64, owner string, until time.Time) error {
	err := r.Store.RenewLease(ctx, id, owner, until)
	if err == nil {
		r.renewed.Add(1)
	}
	return err
}

// TestWorkerHoldsOutcomeRenewsLease: a delivered message whose outcome
// the database refuses for five leases' time is neither taken over by
// another worker (the holder renews its lease) nor sent again; once the
// database takes writes, the outcome is stored, late, with a note.
func TestWorkerHoldsOutcomeRenewsLease(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 1, "held")
	clock := newTimerClock()
	lease := time.Minute
	rs := &refusingStore{Store: h.s}
	rs.refuse.Store(true)
	a, err := New(Deps{Store: rs, Send: h.deliver, Profiles: noProfiles, Owner: "holder", Lease: lease,
		PollInterval: 10 * time.Millisecond, Now: clock.Now, After: clock.After,
		StoreRetry: Backoff{Base: time.Second, Max: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, a)()
	testenv.WaitUntil(t, "the outcome to be refused", func() bool { return rs.refused.Load() > 0 || clock.waiting() > 0 })

	other := &claimCounter{Store: h.s}
	b, err := New(Deps{Store: other, Send: h.deliver, Profiles: noProfiles, Owner: "other", Lease: lease,
		PollInterval: 10 * time.Millisecond, Now: clock.Now, After: clock.After})
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, b)()

	for range 10 { // five leases
		made := clock.waiting()
		clock.Advance(lease / 2)
		testenv.WaitUntil(t, "the holder to try again", func() bool { return clock.waiting() > made })
		other.waitPolls(t, 2)
	}
	it, err := h.s.OutboxItem(context.Background(), items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Status != store.OutboxSending || it.LeaseOwner != "holder" || it.Attempts != 1 {
		t.Fatalf("while the outcome is held: %s, owner %q, %d attempts", it.Status, it.LeaseOwner, it.Attempts)
	}
	if rs.renewed.Load() < 5 {
		t.Errorf("lease renewed %d times over five leases", rs.renewed.Load())
	}

	rs.refuse.Store(false)
	clock.Advance(lease / 2)
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	it, _ = h.s.OutboxItem(context.Background(), items[0].ID)
	if n := h.sent[it.MessageID]; n != 1 || it.Attempts != 1 {
		t.Errorf("sent %d times in %d attempts, want once in one", n, it.Attempts)
	}
	snd, err := h.s.Send(context.Background(), *it.LastSendID)
	if err != nil {
		t.Fatal(err)
	}
	text := eventsText(snd.Events)
	for _, want := range []string{"fake delivery", "the server accepted the message (250 2.0.0 Ok: queued as FAKE) but the outcome could not be stored at the time", "disk full"} {
		if !strings.Contains(text, want) {
			t.Errorf("transcript lacks %q:\n%s", want, text)
		}
	}
	if !strings.HasPrefix(it.LastError, "stored late: the server accepted the message (250") {
		t.Errorf("last error %q", it.LastError)
	}
}

// TestWorkerJournalReplay: a worker stopped while it holds an outcome
// leaves it in the journal; the next process stores it before claiming,
// even where its lease had expired and a claim had meanwhile guessed the
// item unknown from the end-of-message mark. The message is not sent
// again and the item ends sent.
func TestWorkerJournalReplay(t *testing.T) {
	tests := []struct {
		name    string
		settled bool // a claim settles the item unknown before the replay
	}{
		{"lease still held", false},
		{"settled unknown meanwhile", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			items := h.enqueue(t, 1, "journal")
			path := filepath.Join(t.TempDir(), "outbox.journal")
			j, err := journal.Open(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			lease := time.Minute
			rs := &refusingStore{Store: h.s}
			rs.refuse.Store(true)
			a, err := New(Deps{Store: rs, Send: h.deliver, Profiles: noProfiles, Owner: "first", Lease: lease,
				PollInterval: 10 * time.Millisecond, Journal: j, ShutdownGrace: 10 * time.Millisecond,
				StoreRetry: Backoff{Base: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, a)
			testenv.WaitUntil(t, "the outcome to be journaled", func() bool { return j.Len() == 1 })
			stop()
			j.Close()
			if tt.settled {
				// The fake send does not mark the end of the message;
				// the real one does just before it.
				if err := h.s.MarkDataSent(context.Background(), items[0].ID, "first", time.Now()); err != nil {
					t.Fatal(err)
				}
				if _, err := h.s.ClaimDue(context.Background(), "claimer", time.Now().Add(2*lease), lease, 10); err != nil {
					t.Fatal(err)
				}
				if it, _ := h.s.OutboxItem(context.Background(), items[0].ID); it.Status != store.OutboxUnknown {
					t.Fatalf("after the claim: %s, want unknown", it.Status)
				}
			}

			j2, err := journal.Open(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer j2.Close()
			b, err := New(Deps{Store: h.s, Send: h.deliver, Profiles: noProfiles, Owner: "second", Lease: lease,
				PollInterval: 10 * time.Millisecond, Journal: j2, StoreRetry: Backoff{Base: time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			defer run(t, b)()
			waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
			it, _ := h.s.OutboxItem(context.Background(), items[0].ID)
			if n := h.sent[it.MessageID]; n != 1 || it.Attempts != 1 {
				t.Errorf("sent %d times in %d attempts, want once in one", n, it.Attempts)
			}
			if sub, _ := h.s.Submission(context.Background(), *it.SubmissionID); sub.Status != store.SubmissionSent {
				t.Errorf("submission %s, want sent", sub.Status)
			}
			testenv.WaitUntil(t, "the journal to be emptied", func() bool { return j2.Len() == 0 })
		})
	}
}

// lostCommitStore stores the first outcome but answers as if the
// connection broke during COMMIT.
type lostCommitStore struct {
	Store
	lost atomic.Bool
}

func (l *lostCommitStore) FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error {
	err := l.Store.FinishAttemptSend(ctx, id, owner, status, next, lastErr, snd)
	if err == nil && l.lost.CompareAndSwap(false, true) {
		return fmt.Errorf("store: finish attempt on outbox item %d: %w", id, io.ErrUnexpectedEOF)
	}
	return err
}

// TestWorkerCommitAnswerLost: the outcome's commit went through but its
// answer was lost; the worker's retry finds the outcome stored and keeps
// no second history record of the attempt.
func TestWorkerCommitAnswerLost(t *testing.T) {
	h := newHarness(t)
	items := h.enqueue(t, 1, "lostcommit")
	ls := &lostCommitStore{Store: h.s}
	w, err := New(Deps{Store: ls, Send: h.deliver, Profiles: noProfiles, PollInterval: 10 * time.Millisecond,
		StoreRetry: Backoff{Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, w)()
	waitCounts(t, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == 1 })
	testenv.WaitUntil(t, "the held outcome to be settled", func() bool { return ls.lost.Load() && w.pending.Load() == 0 })
	page, err := h.s.ListSends(context.Background(), store.SendFilter{Source: "contact"})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := h.s.OutboxItem(context.Background(), items[0].ID)
	if len(page.Sends) != 1 || it.LastError != "" || h.sent[it.MessageID] != 1 {
		t.Errorf("%d history records (want 1), last error %q, sent %d times", len(page.Sends), it.LastError, h.sent[it.MessageID])
	}
}
