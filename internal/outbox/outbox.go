// Package outbox delivers the durable outbox of contact-form messages
// (internal/store): a Worker claims due items with a lease, sends each
// with the SMTP client (RFC 5321) through the form's server profile,
// records every attempt with its transcript in the send history, and
// retries temporary failures with exponential backoff and jitter.
//
// # Delivery policy
//
//   - 2xx after the message: sent. When some recipients were refused and
//     others accepted, the item is sent too (retrying would duplicate the
//     message for the accepted ones); the refusals are its LastError.
//   - 4xx, and network failures before the end of the message (connection
//     refused or lost, timeouts; smtp.Error.Temporary): queued again after
//     min(Max, Base·2^(n−1)) for the n-th attempt, of which a random part
//     up to half is taken off (jitter, so that instances and items retried
//     together spread out). Defaults: Base 30 s, Max 1 h. Retries go on
//     until the item's expiry: its ExpiresAt when set, else QueuedAt +
//     MaxAge (default 3 days); a last attempt is made at the expiry, and a
//     temporary failure then is final: failed.
//   - 5xx, and anything else that will fail the same way again (a message
//     the client refuses, a deleted server profile): failed.
//   - Outcome unknown (smtp.Error.OutcomeUnknown: the connection was lost
//     or timed out after the final "." and before the server's reply):
//     unknown, and never retried automatically, since the server may have
//     accepted the message. An admin decides (RetryOutbox). The message
//     keeps the Message-ID fixed when it was built at submission time, so
//     a copy delivered twice after a retry is recognisable as the same
//     message, by a person or by the recipient's mail software.
//
// # Crashes, several instances, no duplicates
//
// An item is claimed with a lease (Lease, default 5 minutes); each
// attempt is bounded by AttemptTimeout, shorter than the lease. The
// outcome of an attempt and its history record (envelope, status,
// transcript) are written in one transaction, so the outbox and the
// history agree. If the process dies during an attempt (SIGKILL, power
// loss), the item stays "sending" until its lease expires. What happens
// then depends on a durable mark: just before the end of the message (the
// final "." or BDAT LAST) goes on the wire, the worker records it
// (store.MarkDataSent, data_sent_at) through smtp.Config.BeforeEnd, which
// the client calls once everything but the end is on the wire: the end
// (a few bytes) goes out only after the mark's commit. When the lease
// expires:
//
//   - without the mark, the server never received the end of the message
//     and discarded what it had: any worker takes the item over and sends
//     it again (its transcript notes the take-over);
//   - with the mark, the server has probably accepted the message: the
//     item is not sent again but becomes unknown (store.ClaimDue, with
//     store.DataSentLostError), for an admin to check and, if the message
//     did not arrive, retry (same Message-ID).
//
// So a crash causes no duplicate. The remaining windows: a process that
// dies between the mark's commit and the bytes leaving (microseconds)
// leaves an unknown item whose message never arrived (the window is a
// commit's return and one small write); a mark that cannot
// be written (the database is unreachable; logged) does not hold the send
// back, so a crash just then, before the outcome reaches the database or
// the journal (below), means a resend; the mark, like an outcome,
// survives a crash of sockmail but not a power cut (SQLite's
// synchronous=NORMAL) nor a crash of the database server (PostgreSQL's
// synchronous_commit off for the worker's writes). A mark that finds the
// lease gone (another worker took the item over) aborts the attempt
// before the end of the message is sent. The interrupted attempt itself leaves no history record. Nothing
// is lost silently: a submission is committed before the visitor is
// answered, and an item leaves the queue only with a recorded outcome.
//
// With several instances on one PostgreSQL database, ClaimDue's FOR UPDATE
// SKIP LOCKED gives each item to one worker at a time; while every
// process lives, no item is sent twice.
//
// # Connections
//
// Without Deps.Send the worker speaks SMTP itself and keeps a connection
// that ended an attempt in good order for the next attempt to the same
// server (Deps.ReuseIdle, default 5 s; at most Deps.ReuseMessages
// messages each): a burst of queued messages goes over a few connections
// instead of one each. Every attempt keeps its own lease, mark, outcome
// and transcript; see reuse.go.
//
// # Shutdown
//
// When Run's context ends it stops claiming and lets the attempts in
// flight finish for up to ShutdownGrace; then it aborts them. An aborted
// attempt that had not finished sending the message goes back to the
// queue at once (it cannot have been delivered); one aborted after the
// final "." is recorded as unknown like any other lost outcome.
//
// # When the database refuses writes
//
// A known outcome is never dropped nor re-derived from the lease: an
// attempt whose outcome the database refuses (a full disk, a read-only
// or unreachable database) keeps it in memory and in the journal
// (Deps.Journal), renews the item's lease and stores the outcome with
// backoff until the database takes it; no item is claimed meanwhile. A
// worker stopped with outcomes not stored leaves them in the journal,
// and the next Run stores them before it claims anything. Unknown is
// left for a process that really died. See late.go.
package outbox

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// Defaults of Deps.
const (
	DefaultLease         = 5 * time.Minute
	DefaultPollInterval  = 5 * time.Second
	DefaultConcurrency   = 4
	DefaultMaxAge        = store.DefaultOutboxMaxAge
	DefaultBackoffBase   = 30 * time.Second
	DefaultBackoffMax    = time.Hour
	DefaultShutdownGrace = 10 * time.Second
	DefaultStoredMessage = 10 << 20 // bytes of the message kept with the first attempt's send
	storeTimeout         = 30 * time.Second
	minAttemptMargin     = time.Second
	takenOverNotePrefix  = "taken over"
)

// Store is the persistence the worker uses. *store.Store is one.
type Store interface {
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxItem, error)
	MarkDataSent(ctx context.Context, id int64, owner string, at time.Time) error
	FinishAttemptSend(ctx context.Context, id int64, owner string, status store.OutboxStatus, next time.Time, lastErr string, snd *store.Send) error
	CreateSend(ctx context.Context, snd *store.Send) error
	RenewLease(ctx context.Context, id int64, owner string, until time.Time) error
	OutboxItem(ctx context.Context, id int64) (*store.OutboxItem, error)
	Send(ctx context.Context, id int64) (*store.Send, error)
}

// SendFunc runs one SMTP send; smtp.SendMail is the real one.
type SendFunc func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error)

// ProfileFunc returns how to reach the server of a profile (0: the
// built-in capture server), with its password decrypted. An error
// wrapping store.ErrNotFound fails the item for good; any other error is
// temporary (the admin may fix the profile or the key meanwhile).
type ProfileFunc func(ctx context.Context, profileID int64) (smtp.Config, error)

// Backoff is the retry schedule of temporary failures.
type Backoff struct {
	// Base is the delay after the first attempt; Max caps the delay.
	Base, Max time.Duration
}

// Delay returns the delay after the n-th attempt (n >= 1): min(Max,
// Base·2^(n−1)) with a part of up to half taken off, chosen by r in [0, 1).
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d - time.Duration(float64(d/2)*r)
}

// Deps configures a Worker. Zero fields take the defaults.
type Deps struct {
	Store Store
	// Send runs a send. If nil, the worker speaks SMTP itself and keeps
	// connections between attempts to the same server (see reuse.go).
	Send SendFunc
	// ReuseIdle is how long a connection is kept for the next message
	// (DefaultReuseIdle); negative opens a connection per attempt.
	// ReuseMessages is how many messages a connection carries at most
	// (DefaultReuseMessages).
	ReuseIdle     time.Duration
	ReuseMessages int
	// Connections is how many connections to one server the worker
	// keeps open at most (DefaultConnections); 1 for a server that
	// limits connections per client. Only with kept connections.
	Connections int
	// ServerConnections, if set, returns the limit of a server profile's
	// own (store.Profile.MaxConnections), 0 for Connections; an error
	// takes Connections too.
	ServerConnections func(ctx context.Context, profileID int64) (int, error)
	// Pipeline is how many messages to one server go over a connection
	// in one pipelined batch (DefaultPipeline): the next message's
	// envelope goes in the same write as the end of the message before
	// it (RFC 2920), each message keeping its own lease, end-of-message
	// mark, outcome and transcript (parallel.go). 1 sends one message per
	// attempt. Only with kept connections.
	Pipeline int
	// Intake, if set, returns a count that grows with every submission
	// this process stores (store.Store.IntakeCount). When it has grown
	// since the worker's previous claim (visitors are posting), the
	// worker runs no more than one lane: delivery, which nobody waits
	// for, then leaves the CPUs and the database to the posts, which
	// visitors wait for (see intakeFirst).
	Intake func() uint64
	// Storing, if set with Intake, returns how many submissions this
	// process is storing at this moment (store.Store.IntakeStoring).
	// While it is above zero and the Intake count grows, visitors are
	// waiting for answers: the worker then starts at most one message
	// every IntakeYield (intakeFirst), however often it is kicked.
	Storing func() int
	// Profiles resolves server profiles; required.
	Profiles ProfileFunc
	// Owner names this worker in leases; unique per process. DefaultOwner
	// if empty.
	Owner string
	// Lease is how long a claim lasts (DefaultLease). A crashed worker's
	// items are taken over once it expires.
	Lease time.Duration
	// AttemptTimeout bounds one attempt; Lease·4/5 if 0, and never more
	// than Lease minus a second, so that an attempt ends before its lease.
	AttemptTimeout time.Duration
	// PollInterval is how often the queue is looked at without a Kick
	// (DefaultPollInterval).
	PollInterval time.Duration
	// Concurrency is how many attempts (connections in use) run at once
	// (DefaultConcurrency); with Pipeline, each carries up to Pipeline
	// messages.
	Concurrency int
	// MaxAge is how long after being queued an item without its own
	// ExpiresAt is retried (DefaultMaxAge).
	MaxAge time.Duration
	// Backoff is the retry schedule (DefaultBackoffBase, DefaultBackoffMax).
	Backoff Backoff
	// ShutdownGrace is how long Run lets attempts in flight finish after
	// its context ends (DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// MaxStoredMessage bounds the copy of the message kept with the first
	// attempt's history record (DefaultStoredMessage); later attempts keep
	// only the header and point to the previous attempt (ParentID).
	MaxStoredMessage int
	Logger           *slog.Logger
	// Journal, if set, keeps outcomes the database refuses across a
	// crash (late.go); a file in the data folder (internal/journal).
	Journal Journal
	// StoreRetry is the schedule of retries storing an outcome the
	// database refused (DefaultStoreRetryBase, DefaultStoreRetryMax).
	StoreRetry Backoff
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// After waits like time.After (its default); tests inject a clock.
	After func(time.Duration) <-chan time.Time
	// Rand returns a number in [0, 1) for the jitter; math/rand/v2 if nil.
	Rand func() float64
}

// Worker delivers the outbox. Run it once per process; Kick it after a
// submission.
type Worker struct {
	d    Deps
	kick chan struct{}
	pool *connPool // nil: every attempt runs d.Send
	// pending counts outcomes waiting to be stored (late.go); no item is
	// claimed while there are any.
	pending atomic.Int64
}

// DefaultOwner returns "host:pid:random", unique per process.
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "sockmail"
	}
	var b [4]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// New checks d, fills its defaults and returns a Worker.
func New(d Deps) (*Worker, error) {
	if d.Store == nil || d.Profiles == nil {
		return nil, errors.New("outbox: a store and a profile resolver are required")
	}
	var pool *connPool
	if d.Send == nil && d.ReuseIdle >= 0 {
		if d.ReuseIdle == 0 {
			d.ReuseIdle = DefaultReuseIdle
		}
		if d.ReuseMessages <= 0 {
			d.ReuseMessages = DefaultReuseMessages
		}
		pool = newConnPool(d.ReuseIdle, d.ReuseMessages)
		if d.Connections <= 0 {
			d.Connections = DefaultConnections
		}
		if d.Pipeline <= 0 {
			d.Pipeline = DefaultPipeline
		}
	} else {
		d.Pipeline = 1
	}
	if d.Send == nil {
		d.Send = smtp.SendMail
	}
	if d.Owner == "" {
		d.Owner = DefaultOwner()
	}
	if d.Lease <= 0 {
		d.Lease = DefaultLease
	}
	if d.Lease < 2*minAttemptMargin {
		return nil, fmt.Errorf("outbox: lease %v is too short (at least %v)", d.Lease, 2*minAttemptMargin)
	}
	if d.AttemptTimeout <= 0 {
		d.AttemptTimeout = d.Lease * 4 / 5
	}
	d.AttemptTimeout = min(d.AttemptTimeout, d.Lease-minAttemptMargin)
	if d.PollInterval <= 0 {
		d.PollInterval = DefaultPollInterval
	}
	if d.Concurrency <= 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.MaxAge <= 0 {
		d.MaxAge = DefaultMaxAge
	}
	if d.Backoff.Base <= 0 {
		d.Backoff.Base = DefaultBackoffBase
	}
	if d.Backoff.Max <= 0 {
		d.Backoff.Max = DefaultBackoffMax
	}
	d.Backoff.Max = max(d.Backoff.Max, d.Backoff.Base)
	if d.ShutdownGrace <= 0 {
		d.ShutdownGrace = DefaultShutdownGrace
	}
	if d.MaxStoredMessage <= 0 {
		d.MaxStoredMessage = DefaultStoredMessage
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.Logger = d.Logger.With("component", "outbox", "owner", d.Owner)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.After == nil {
		d.After = time.After
	}
	if d.StoreRetry.Base <= 0 {
		d.StoreRetry.Base = DefaultStoreRetryBase
	}
	if d.StoreRetry.Max <= 0 {
		d.StoreRetry.Max = DefaultStoreRetryMax
	}
	d.StoreRetry.Max = max(d.StoreRetry.Max, d.StoreRetry.Base)
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	return &Worker{d: d, kick: make(chan struct{}, 1), pool: pool}, nil
}

// Owner returns the name this worker claims items under.
func (w *Worker) Owner() string { return w.d.Owner }

// Kick makes Run look at the queue now instead of at its next poll. It
// never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers due items until ctx ends, then stops as the package
// documentation describes and returns nil. Database errors are logged and
// retried at the next poll; they do not stop it.
func (w *Worker) Run(ctx context.Context) error {
	// Attempts outlive ctx by the grace period; abort ends them.
	attemptCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	var wg sync.WaitGroup
	// Up to Concurrency lanes send at once, each a list of groups of up
	// to Pipeline items to one server (one group per connection use).
	capacity := w.d.Concurrency * w.d.Pipeline
	done := make(chan int64, capacity)
	laneDone := make(chan struct{}, w.d.Concurrency)
	lanes := 0
	// running holds the items this worker is attempting. An attempt that
	// outlives its lease (a starved process, a send slower than the
	// lease) lets ClaimDue hand the item back to this same worker; a
	// second attempt would pass every lease check, which compares the
	// owner, and send the message twice. It is left to the first one.
	running := map[int64]bool{}
	inflight := 0
	poll := time.NewTicker(w.d.PollInterval)
	defer poll.Stop()
	// yielded fires when the worker, having left the CPUs to visitors'
	// posts (intakeFirst), may claim again; nil when it is not waiting.
	var yielded <-chan time.Time
	// woken: a kick or the poll asks to look at the queue. more: the last
	// claim was full, so more items may be due; then the next claim waits
	// until half the slots are free, claiming several items per statement
	// rather than one per finished attempt.
	woken, more := true, false
	batch := max(1, capacity/2)
	intake := newIntakeFirst(w.d.Intake, w.d.Storing, w.d.Concurrency, w.d.Pipeline)
	w.d.Logger.Info("outbox worker started", "concurrency", w.d.Concurrency, "lease", w.d.Lease, "poll", w.d.PollInterval)
	if n := w.replayJournal(attemptCtx, func(f func()) { wg.Go(func() { f(); w.Kick() }) }); n > 0 {
		w.d.Logger.Warn("outbox: storing outcomes from the journal before claiming", "outcomes", n)
	}
	for {
		free := capacity - inflight
		// While an outcome waits to be stored (the database refuses
		// writes) nothing new is claimed: its outcome could not be
		// stored either.
		claim := free > 0 && lanes < w.d.Concurrency && ctx.Err() == nil && w.pending.Load() == 0 && (woken || more && (free >= batch || inflight == 0))
		allowed := w.d.Concurrency
		if claim {
			// While visitors post, one message at a time; while they
			// wait for their answers, one every IntakeYield.
			var room int
			var wait time.Duration
			allowed, room, wait = intake.slots(w.d.Now())
			if wait > 0 && yielded == nil {
				yielded = w.d.After(wait)
			}
			free = min(free, room-inflight)
			claim = lanes < allowed && free > 0
		}
		if claim {
			intake.claimed(w.d.Now())
			items, err := w.d.Store.ClaimDue(ctx, w.d.Owner, w.d.Now(), w.d.Lease, free)
			claimed := time.Now()
			if err != nil && ctx.Err() == nil {
				w.d.Logger.Error("outbox claim", "err", err)
			}
			var fresh []store.OutboxItem
			for _, it := range items {
				if running[it.ID] {
					w.d.Logger.Warn("outbox: an attempt on this item outlived its lease and still runs in this process; leaving the item to it",
						"item", it.ID, "attempt", it.Attempts)
					continue
				}
				running[it.ID] = true
				inflight++
				fresh = append(fresh, it)
			}
			// Each attempt ends by AttemptTimeout after the claim (as
			// before lanes: an attempt started as its claim returned),
			// however long it waited in its lane.
			deadline := claimed.Add(w.d.AttemptTimeout)
			for _, lane := range spread(groups(fresh, w.d.Pipeline), allowed-lanes) {
				lanes++
				wg.Go(func() {
					defer func() { laneDone <- struct{}{} }()
					for _, g := range lane {
						w.attemptGroup(attemptCtx, g, deadline)
						for _, it := range g {
							done <- it.ID
						}
					}
				})
			}
			woken, more = false, err == nil && len(items) == free
		}
		select {
		case <-ctx.Done():
			w.shutdown(&wg, abort)
			return nil
		case id := <-done:
			delete(running, id)
			inflight--
		case <-laneDone:
			lanes--
		case <-w.kick:
			woken = true
		case <-poll.C:
			woken = true
		case <-yielded:
			yielded, woken = nil, true
		}
	}
}

// IntakeYield is how long the worker waits between the messages it
// starts while visitors wait for their posts to be stored (Deps.Storing):
// about ten messages a second during a burst that keeps the machine busy.
// It is also how long the count of stored submissions must stay still
// before the worker uses every lane again.
const IntakeYield = 100 * time.Millisecond

// intakeFirst decides how much the worker may deliver at once. Quiet
// (the count from Deps.Intake has not moved for IntakeYield, as the
// worker's looks see it): every lane (Deps.Concurrency) with a full
// pipelined batch each. Submissions being stored (it moved): one message
// at a time. Visitors waiting for their answers (it moved, and posts are
// being stored at the moment of the look, Deps.Storing): one message no
// sooner than IntakeYield after the previous claim. A burst of posts
// (each also kicks the worker) so keeps delivery to one message in
// flight, over one kept connection, started about ten times a second; a
// lone post in a quiet hour narrows it for IntakeYield at most, and posts
// that come one at a time (none in flight when the worker looks) never
// make it wait. The queue is never left alone, only not drained with
// every connection at once while visitors wait for their answers.
//
// (BenchmarkContactSubmit in handlers, SQLite: posts with the worker on
// went from about 0.6 of the rate without it to about 0.75 with one lane
// of pipelined batches, and to about 0.9 with one message at a time; the
// worker's writes share SQLite's one writer with the posts, and Postfix's
// processes the same CPUs. On a later machine one message at a time
// still cost the posts a sixth to a quarter on both backends: Postfix
// alone used a fifth of a core for the ~80 messages a second delivered
// meanwhile, and a look right after a claim found the count unmoved
// since it and claimed every lane's batch. Waiting IntakeYield between
// messages while posts are in flight, and for IntakeYield of stillness
// before using every lane, brings delivery during the burst to about ten
// a second besides what was in flight when it began, and the posts'
// median ratio to 0.90-0.99.)
type intakeFirst struct {
	count   func() uint64
	storing func() int
	all     int
	// room is how many items every lane together may hold.
	room int
	// seen is the count at the last look, movedAt the time of the look
	// that first saw it; claimedAt the time of the previous claim.
	seen               uint64
	movedAt, claimedAt time.Time
}

func newIntakeFirst(count func() uint64, storing func() int, all, pipeline int) *intakeFirst {
	f := &intakeFirst{count: count, storing: storing, all: all, room: all * pipeline}
	if count != nil {
		f.seen = count()
	}
	return f
}

// slots reads the count at now and returns how many lanes may run now and
// how many items they may hold together; when none may, wait is how long
// until one may (if nothing changes meanwhile).
func (f *intakeFirst) slots(now time.Time) (lanes, items int, wait time.Duration) {
	if f.count == nil {
		return f.all, f.room, 0
	}
	// A clock set back (Deps.Now may follow the database's, resynced now
	// and then) leaves the times noted in the future: they count from
	// now then, so that a wait never lasts more than IntakeYield.
	if c := f.count(); c != f.seen || now.Before(f.movedAt) {
		f.seen, f.movedAt = c, now
	}
	if now.Sub(f.movedAt) >= IntakeYield {
		return f.all, f.room, 0
	}
	if f.storing != nil && f.storing() > 0 {
		if now.Before(f.claimedAt) {
			f.claimedAt = now
		}
		if wait := f.claimedAt.Add(IntakeYield).Sub(now); wait > 0 {
			return 0, 0, wait
		}
	}
	return 1, 1, 0
}

// claimed notes that the worker claimed at now.
func (f *intakeFirst) claimed(now time.Time) { f.claimedAt = now }

// shutdown waits for the attempts in flight, aborting them after the
// grace period.
func (w *Worker) shutdown(wg *sync.WaitGroup, abort context.CancelFunc) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	t := time.NewTimer(w.d.ShutdownGrace)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
		w.d.Logger.Warn("outbox: aborting attempts still running after the grace period", "grace", w.d.ShutdownGrace)
		abort()
		<-finished
	}
	if w.pool != nil {
		w.pool.close()
	}
	w.d.Logger.Info("outbox worker stopped")
}

// storeCtx bounds a database write that must happen even when the
// attempt was aborted.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}

// try is one attempt of an item, from its preparation to its record.
type try struct {
	it    store.OutboxItem
	log   *slog.Logger
	start time.Time
	tr    *smtp.Transcript
	cfg   smtp.Config
	snd   *store.Send
	// profErr: the profile cannot be used; sendErr is set before sending
	// when the message cannot go (ready is false then).
	profErr   error
	ready     bool
	env       smtp.Envelope
	msg       smtp.Message
	leaseLost *atomic.Bool
	res       *smtp.Result
	sendErr   error
}

// prepare readies the attempt of it: its transcript, its server, its
// history record, its message and its end-of-message mark.
func (w *Worker) prepare(ctx context.Context, it store.OutboxItem) *try {
	a := &try{it: it, log: w.d.Logger.With("item", it.ID, "attempt", it.Attempts), start: w.d.Now(), tr: smtp.NewTranscript(), leaseLost: new(atomic.Bool)}
	tr := a.tr
	if it.TakenOverFrom != "" {
		tr.Info(smtp.PhaseConnect, "%s from %s, whose lease expired during attempt %d before it marked the end of the message sent: the server should not have that attempt's message (unless the mark failed, which that process logged); this copy has the same Message-ID <%s>",
			takenOverNotePrefix, it.TakenOverFrom, it.Attempts-1, it.MessageID)
		a.log.Warn("outbox: taking over an item whose lease expired", "from", it.TakenOverFrom)
	}
	a.cfg, a.profErr = w.d.Profiles(ctx, it.ProfileID)
	a.cfg.Transcript = tr

	source := delivery.SourceContact
	if it.FormID == nil {
		source = delivery.SourceAlert // the one kind of item no form made
	}
	a.snd = delivery.NewSend(w.d.Now(), delivery.Record{
		Source: source, FormID: it.FormID, Server: a.cfg.Addr, TLS: a.cfg.TLS,
		From: it.MailFrom, To: it.Rcpts, Message: it.Message, MaxStored: int64(w.d.MaxStoredMessage),
		// The message is kept with the first attempt; a retry points to
		// the attempt before it.
		ParentID: it.LastSendID, OmitMessage: it.LastSendID != nil,
	})
	if a.profErr != nil {
		tr.Info(smtp.PhaseConnect, "cannot use the server profile %d: %v", it.ProfileID, a.profErr)
		a.sendErr = a.profErr
		return a
	}
	raw, err := message.RawBytes(it.MailFrom, it.Rcpts, it.Message)
	if err != nil {
		tr.Info(smtp.PhaseConnect, "the stored message cannot be sent: %v", err)
		a.sendErr = permanent{err}
		return a
	}
	a.env = smtp.Envelope{From: raw.EnvelopeFrom(), To: it.Rcpts, SMTPUTF8: raw.NeedsSMTPUTF8(), EightBit: raw.Needs8BitMIME()}
	a.msg = raw
	a.cfg.BeforeEnd = w.markEnd(it, a.leaseLost, a.log)
	if w.d.Pipeline > 1 {
		// Pipelined batches go with DATA, not BDAT: with BDAT, the mark
		// before each end and the next envelope after it, Postfix 3.7
		// answered a batch about 3 times slower than one message at a
		// time (BenchmarkDrainParallel); with DATA they did not differ.
		a.cfg.DisableChunking = true
	}
	a.ready = true
	return a
}

// attempt makes one delivery attempt of a claimed item and records it;
// the attempt stops at deadline.
func (w *Worker) attempt(ctx context.Context, it store.OutboxItem, deadline time.Time) {
	a := w.prepare(ctx, it)
	if a.ready {
		actx, cancel := context.WithDeadline(ctx, deadline)
		a.res, a.sendErr = w.sendSafely(actx, it, a.cfg, a.env, a.msg)
		w.noteStop(ctx, actx, a)
		cancel()
	}
	w.record(ctx, a)
}

// noteStop notes in a's transcript why its send stopped early: the lease
// lost before the end of the message, or the attempt's time limit.
func (w *Worker) noteStop(ctx, actx context.Context, a *try) {
	if a.leaseLost.Load() {
		a.tr.Info(smtp.PhaseBody, "the lease on this item was lost before the end of the message: another worker has it; the end of the message was not sent")
	} else if errors.Is(a.sendErr, context.DeadlineExceeded) && actx.Err() != nil && ctx.Err() == nil {
		a.tr.Info(smtp.PhaseQuit, "the attempt took longer than the limit of %s and was stopped", w.d.AttemptTimeout)
	}
}

// record decides what a's result means for its item and stores the
// outcome with the attempt's history record.
func (w *Worker) record(ctx context.Context, a *try) {
	w.store(ctx, a, w.settle(ctx, a))
}

// settle decides what a's result means for its item (the delivery
// policy) and completes its history record.
func (w *Worker) settle(ctx context.Context, a *try) outcome {
	o := w.decide(a.it, a.res, a.sendErr, ctx.Err() != nil, w.d.Now())
	if o.note != "" {
		a.tr.Info(smtp.PhaseQuit, "%s", o.note)
	}
	delivery.Finish(a.snd, a.res, a.sendErr, a.tr, a.start, w.d.Now)
	if a.profErr != nil {
		a.snd.Status = smtp.StatusPermFail
		if o.status == store.OutboxQueued {
			a.snd.Status = smtp.StatusTempFail
		}
	}
	return o
}

// store stores a's outcome o with the attempt's history record; an
// outcome the database refuses is held until it takes it (late.go).
func (w *Worker) store(ctx context.Context, a *try, o outcome) {
	it, snd, log := a.it, a.snd, a.log
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	kept := *snd
	err := w.d.Store.FinishAttemptSend(sctx, it.ID, w.d.Owner, o.status, o.next, o.lastErr, snd)
	switch {
	case err == nil:
		w.logStored(a, o)
	case errors.Is(err, store.ErrLeaseLost):
		// Keep the transcript whatever happened to the claim.
		if cerr := w.d.Store.CreateSend(sctx, snd); cerr != nil {
			log.Error("outbox: record attempt", "err", cerr)
		}
		w.logLeaseLost(a, o)
	default:
		cancel()
		w.hold(ctx, it, o, verdict(o.status, a.res, a.sendErr), &kept, err, log)
	}
}

// logStored logs a's outcome o once stored.
func (w *Worker) logStored(a *try, o outcome) {
	a.log.Info("outbox attempt", "status", o.status, "send", a.snd.ID, "queue_id", a.snd.QueueID, "ms", a.snd.DurationMS, "err", o.lastErr)
}

// logLeaseLost logs that a's outcome o found its claim gone: only the
// history record was kept.
func (w *Worker) logLeaseLost(a *try, o outcome) {
	a.log.Warn("outbox: lease lost during the attempt; another worker has the item", "status", o.status, "send", a.snd.ID)
}

// BatchStore is a Store that also stores the outcomes of several attempts
// in one transaction; *store.Store is one. A worker whose Store is one
// stores the outcomes of a pipelined batch together (recordAll).
type BatchStore interface {
	FinishAttempts(ctx context.Context, owner string, outs []store.AttemptOutcome) error
}

// recordAll records the attempts of a pipelined batch: with a BatchStore,
// their outcomes and history records in one transaction (one commit for
// the batch instead of one a message); an attempt whose claim is gone
// keeps its history record only, as record does. If that transaction
// fails, each outcome is stored as record stores it, so that one the
// database refuses is held (late.go) and nothing is lost.
func (w *Worker) recordAll(ctx context.Context, tries []*try) {
	bs, ok := w.d.Store.(BatchStore)
	if !ok || len(tries) < 2 {
		for _, a := range tries {
			w.record(ctx, a)
		}
		return
	}
	outs := make([]store.AttemptOutcome, len(tries))
	decided := make([]outcome, len(tries))
	for i, a := range tries {
		o := w.settle(ctx, a)
		decided[i] = o
		outs[i] = store.AttemptOutcome{ItemID: a.it.ID, Status: o.status, Next: o.next, LastErr: o.lastErr, Send: a.snd}
	}
	sctx, cancel := storeCtx(ctx)
	err := bs.FinishAttempts(sctx, w.d.Owner, outs)
	cancel()
	if err != nil {
		w.d.Logger.Warn("outbox: cannot store a batch's outcomes together; storing them one by one", "attempts", len(tries), "err", err)
		for i, a := range tries { // FinishAttempts changed no Send
			w.store(ctx, a, decided[i])
		}
		return
	}
	for i, a := range tries {
		if outs[i].Err != nil {
			w.logLeaseLost(a, decided[i])
			continue
		}
		w.logStored(a, decided[i])
	}
}

// markEnd returns the smtp.Config.BeforeEnd hook of an attempt: when the
// whole message but its end (the final "." or the last BDAT) is on the
// wire, it marks the item's end of message sent (store.MarkDataSent) and
// only then lets the end go out. A crash from then on leaves the item
// unknown instead of sending it again (store.ClaimDue).
//
// When the mark fails because the lease is gone (another worker took the
// item over and is sending it), the hook fails: the client withholds the
// end and closes the connection, so the server discards this copy and
// the message is not delivered twice; leaseLost then reports true. Any
// other failure (the database is unreachable) is logged and the send
// proceeds: the message is not held back by the database, at the price
// of a resend, and so a possible duplicate, if the process also dies
// before the outcome is recorded.
func (w *Worker) markEnd(it store.OutboxItem, leaseLost *atomic.Bool, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		err := w.d.Store.MarkDataSent(ctx, it.ID, w.d.Owner, w.d.Now())
		switch {
		case err == nil:
		case errors.Is(err, store.ErrLeaseLost):
			leaseLost.Store(true)
			log.Warn("outbox: lease lost before the end of the message; not sending it", "err", err)
			return err
		default:
			log.Error("outbox: cannot mark the end of the message sent; sending it anyway (if this process dies before its outcome is recorded, the message will be sent again)", "err", err)
		}
		return nil
	}
}

// sendSafely runs the send, over a kept connection when the worker keeps
// them, turning a panic into an error so that the attempt is still
// recorded.
func (w *Worker) sendSafely(ctx context.Context, it store.OutboxItem, cfg smtp.Config, env smtp.Envelope, msg smtp.Message) (res *smtp.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("outbox: send panicked: %v", r)
		}
	}()
	if w.pool != nil && cfg.Addr != "" { // with no address, SendMail finds the MX hosts
		return w.sendKept(ctx, it.ID, it.ProfileID, cfg, env, msg)
	}
	return w.d.Send(ctx, cfg, env, msg, smtp.SendOptions{})
}

// permanent marks an error that will not go away by retrying.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// outcome is what an attempt means for its item.
type outcome struct {
	status  store.OutboxStatus
	next    time.Time
	lastErr string
	note    string // added to the transcript
}

// expiry returns when temporary failures of it stop being retried.
func (w *Worker) expiry(it store.OutboxItem) time.Time {
	if !it.ExpiresAt.IsZero() {
		return it.ExpiresAt
	}
	return it.QueuedAt.Add(w.d.MaxAge)
}

// decide applies the delivery policy (see the package documentation) to
// the result of an attempt made at now.
func (w *Worker) decide(it store.OutboxItem, res *smtp.Result, err error, aborted bool, now time.Time) outcome {
	if err == nil {
		var refused []string
		if res != nil {
			for _, r := range res.Recipients {
				if !r.Accepted {
					refused = append(refused, fmt.Sprintf("%s: %d %s", r.Address, r.Code, r.Message))
				}
			}
		}
		if len(refused) > 0 {
			return outcome{status: store.OutboxSent, lastErr: "delivered, but refused for: " + strings.Join(refused, "; ")}
		}
		return outcome{status: store.OutboxSent}
	}
	var se *smtp.Error
	isSMTP := errors.As(err, &se)
	if isSMTP && se.OutcomeUnknown {
		return outcome{status: store.OutboxUnknown, lastErr: err.Error(),
			note: "outcome unknown: not retried automatically, since the server may have accepted the message; an admin may retry it (same Message-ID <" + it.MessageID + ">)"}
	}
	if aborted && errors.Is(err, context.Canceled) {
		return outcome{status: store.OutboxQueued, next: now, lastErr: "interrupted by shutdown before the message was sent",
			note: "interrupted by shutdown before the end of the message: queued again"}
	}
	temporary := false
	var p permanent
	switch {
	case errors.As(err, &p):
	case isSMTP:
		temporary = se.Temporary()
	case errors.Is(err, store.ErrNotFound):
	default:
		temporary = true // a profile that cannot be resolved right now
	}
	if !temporary {
		return outcome{status: store.OutboxFailed, lastErr: err.Error(), note: "permanent failure: not retried"}
	}
	exp := w.expiry(it)
	if !now.Before(exp) {
		return outcome{status: store.OutboxFailed,
			lastErr: fmt.Sprintf("gave up after %d attempts since %s: %v", it.Attempts, it.QueuedAt.Format(time.RFC3339), err),
			note:    "temporary failure, but the retry period ended at " + exp.Format(time.RFC3339) + ": failed"}
	}
	next := now.Add(w.d.Backoff.Delay(it.Attempts, w.d.Rand()))
	if next.After(exp) {
		next = exp
	}
	return outcome{status: store.OutboxQueued, next: next, lastErr: err.Error(),
		note: "temporary failure: next attempt at " + next.UTC().Format(time.RFC3339)}
}
