package outbox

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/journal"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// Fault tests of storage (issue 12): the database stops taking writes at
// the moment a delivered message's outcome is stored, and takes them
// again later. Every message must arrive exactly once (counted at the
// Postfix Maildir by its token), no item may end unknown, and every
// attempt's transcript must reach the history.

// Three times, 40 messages are queued and the database breaks right
// after the first of them is delivered.
const (
	storageFaultCycles   = 3
	storageFaultPerCycle = 40
	storageFaultMessages = storageFaultCycles * storageFaultPerCycle
)

// storageFault is a database that can be made to refuse writes and take
// them again.
type storageFault struct {
	s      *store.Store
	break_ func(testing.TB)
	heal   func(testing.TB)
	// journalDir is where the worker's journal goes (the data folder).
	journalDir string
}

// outcomeStore counts the outcomes the worker stores and fails to store,
// its lease renewals and the items it claims.
type outcomeStore struct {
	Store
	stored, refused, renewed, claimed atomic.Int64
	// paused makes ClaimDue claim nothing, while a test queues a batch.
	paused atomic.Bool
	// refusedItems holds the items whose outcome was refused at least
	// once.
	refusedItems sync.Map
}

func (o *outcomeStore) FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error {
	err := o.Store.FinishAttemptSend(ctx, id, owner, status, next, lastErr, snd)
	if err != nil {
		o.refused.Add(1)
		o.refusedItems.Store(id, true)
	} else {
		o.stored.Add(1)
	}
	return err
}

func (o *outcomeStore) RenewLease(ctx context.Context, id int64, owner string, until time.Time) error {
	err := o.Store.RenewLease(ctx, id, owner, until)
	if err == nil {
		o.renewed.Add(1)
	}
	return err
}

func (o *outcomeStore) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error) {
	if o.paused.Load() {
		return nil, nil
	}
	items, err := o.Store.ClaimDue(ctx, owner, now, lease, limit)
	o.claimed.Add(int64(len(items)))
	return items, err
}

// runStorageFault delivers storageFaultMessages through the test Postfix
// in storageFaultCycles rounds; in each, the database breaks right after
// the first message the server accepts and heals once the outcomes then
// held have been refused a few times.
func runStorageFault(t *testing.T, p *testenv.PostfixServer, f storageFault) {
	ctx := context.Background()
	s := f.s
	fr := newFaultRun(t, p)
	form := newFaultForm(t, s, fr.to)

	var healthNow atomic.Int64
	healthNow.Store(time.Now().UnixNano())
	s.SetWriteHealthClock(func() time.Time { return time.Unix(0, healthNow.Load()) }, 10*time.Second)

	j, err := journal.Open(filepath.Join(f.journalDir, "outbox.journal"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()

	var armed atomic.Bool
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		res, err := smtp.SendMail(ctx, cfg, env, msg, opts)
		if err == nil && armed.CompareAndSwap(true, false) {
			f.break_(t) // the outcome of this message meets a broken database
		}
		return res, err
	}
	var addr atomic.Pointer[string]
	addr.Store(&p.SMTPAddr)
	oc := &outcomeStore{Store: s}
	// The lease outlasts any broken spell however slow the machine: a
	// renewal refused by the broken database must not let the lease run
	// out here (what happens then is TestFaultSIGKILL's and
	// TestWorkerHoldsOutcomeRenewsLease's business); with 3 s it did
	// beside other load, and the items were taken over after healing.
	w, err := New(Deps{Store: oc, Send: send, Profiles: fixedProfile(&addr), Owner: "storage-test", Concurrency: 4,
		PollInterval: 20 * time.Millisecond, Lease: 10 * time.Minute, Journal: j,
		StoreRetry: Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, w)()

	for cycle := range storageFaultCycles {
		// The batch is queued whole (nothing claimed meanwhile), then
		// delivered; the first delivery breaks the database.
		oc.paused.Store(true)
		fr.enqueueRange(t, s, form, cycle*storageFaultPerCycle, (cycle+1)*storageFaultPerCycle, func() {})
		armed.Store(true)
		oc.paused.Store(false)
		w.Kick()
		// Broken: outcomes are refused and held.
		mark := oc.refused.Load()
		testenv.WaitFor(t, "outcomes refused by the broken database", func() (int64, bool) {
			n := oc.refused.Load()
			return n, !armed.Load() && n >= mark+8
		})
		herr := s.WriteHealth(ctx)
		if !errors.Is(herr, store.ErrStorage) {
			t.Errorf("cycle %d: WriteHealth while writes fail: %v, want a storage error", cycle, herr)
		}
		n := w.pending.Load()
		if n == 0 {
			t.Errorf("cycle %d: no outcome held while the database refused writes", cycle)
		}
		// More refusals later; nothing claimed meanwhile.
		claimed, mark := oc.claimed.Load(), oc.refused.Load()
		testenv.WaitFor(t, "more refused tries", func() (int64, bool) {
			n := oc.refused.Load()
			return n, n >= mark+8
		})
		if c := oc.claimed.Load(); c != claimed {
			t.Errorf("cycle %d: %d items claimed while outcomes were held, want none", cycle, c-claimed)
		}
		t.Logf("cycle %d: while broken: %v; %d outcomes held", cycle, herr, n)
		f.heal(t)
		waitCounts(t, s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == (cycle+1)*storageFaultPerCycle })
	}
	waitCounts(t, s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == storageFaultMessages })
	fr.verify(t, storageFaultMessages, true)
	healthNow.Add(int64(11 * time.Second))
	if err := s.WriteHealth(ctx); err != nil {
		t.Errorf("WriteHealth after recovery: %v", err)
	}

	// Every attempt is in the history; the held ones say they were
	// stored late, and why.
	items, err := s.ListOutbox(ctx, store.OutboxFilter{FormID: form, Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	attempts, late := 0, 0
	for _, it := range items {
		attempts += it.Attempts
		if it.Status != store.OutboxSent || it.LastSendID == nil {
			t.Errorf("item %d: %s, send %v", it.ID, it.Status, it.LastSendID)
			continue
		}
		snd, err := s.Send(ctx, *it.LastSendID)
		if err != nil {
			t.Fatal(err)
		}
		if text := eventsText(snd.Events); strings.Contains(text, "could not be stored at the time") {
			late++
			if !strings.Contains(text, "the server accepted the message (250") || !strings.HasPrefix(it.LastError, "stored late: ") {
				t.Errorf("item %d stored late: last error %q, transcript:\n%s", it.ID, it.LastError, text)
			}
		}
	}
	page, err := s.ListSends(ctx, store.SendFilter{Source: "contact", Limit: store.MaxSendLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Sends) != attempts || attempts != storageFaultMessages {
		t.Errorf("%d attempts on the items, %d in the history; want %d each", attempts, len(page.Sends), storageFaultMessages)
	}
	held := 0
	oc.refusedItems.Range(func(any, any) bool { held++; return true })
	// An outcome whose COMMIT the cut connection interrupted after it
	// took effect is found stored, without a late note (PostgreSQL).
	if late == 0 || late > held {
		t.Errorf("%d outcomes stored late, %d held", late, held)
	}
	if found := j.Found(); len(found) != 0 {
		t.Errorf("journal still holds %d outcomes", len(found))
	}
	t.Logf("%d messages each delivered once; %d outcomes stored late after %d refusals; %d lease renewals", storageFaultMessages, late, oc.refused.Load(), oc.renewed.Load())
}

// TestFaultDiskFullSQLite: the data folder is a small tmpfs; right after
// the first delivery it is filled up, so the outcomes cannot be stored;
// then space comes back.
func TestFaultDiskFullSQLite(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	disk := testenv.NewSmallDisk(t, 8<<20)
	s, err := store.Open(context.Background(), filepath.Join(disk.Dir, "sockmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// disk.Fill truncates the write-ahead log first: with small writes
	// (an outbox item's message in a table of its own, migration 0023)
	// a cycle's outcomes fitted into a restarted log's room, and the
	// fault did not hold (2 runs in 30 under load).
	runStorageFault(t, p, storageFault{s: s, journalDir: disk.Dir, break_: disk.Fill, heal: disk.Free})
}

// TestFaultReadOnlyPostgres: right after the first delivery the database
// becomes read-only (default_transaction_read_only) and every connection
// is cut, as a failover to a standby does; later it is writable again
// (and the connections are cut again).
func TestFaultReadOnlyPostgres(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	dsn := testenv.Postgres(t)
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sw := testenv.NewPostgresSwitch(t, dsn)
	runStorageFault(t, p, storageFault{s: s, journalDir: t.TempDir(),
		break_: func(t testing.TB) { sw.SetReadOnly(t, true) },
		heal:   func(t testing.TB) { sw.SetReadOnly(t, false) }})
}
