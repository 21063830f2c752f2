package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"time"
)

// Group commit of SQLite's writes that must not queue one by one.
//
// A submission must be on disk before the visitor is told it was
// received, so its transaction commits with synchronous=FULL: SQLite then
// fsyncs the write-ahead log at the commit (with the store's usual
// synchronous=NORMAL a commit survives a crash of sockmail but not of the
// machine). An fsync costs about half a millisecond on the test machines
// and SQLite has one writer, so one fsync per submission would cap the
// rate near the disk's fsync rate and make every other write queue behind
// it. Instead the calls that arrive while a commit is running wait for
// it, and the next one commits all of them in one transaction with one
// fsync, each in its own savepoint so that one failing write (a form
// deleted meanwhile, a lease lost) does not fail the others. Under no
// load a batch is a single call and nothing waits; under load the batch
// grows with the load.
//
// Contact-form rate limits are counted in the same savepoint as the
// submission (EnqueueLimited), so they cost no write of their own.
//
// The outbox worker's status updates (ClaimDue, MarkDataSent,
// FinishAttempt, FinishAttemptSend; not RenewLease) join the same batches
// (writeTx): as transactions of their own on the one writer connection
// they took turns with the submissions' batches, each paying its own
// BEGIN, COMMIT and write-ahead log frames (issue 16). A batch with a
// submission in it commits with FULL, the worker's writes riding along;
// a batch of the worker's writes alone commits with NORMAL, as their own
// transactions did: the crash rules of the outbox are about a crash of
// sockmail, which NORMAL survives, and an fsync per batch of marks would
// make every message wait for the disk (draining 5,000 messages: 238/s
// with FULL). A caller learns its own outcome only once the batch has
// committed, which is what those rules need (MarkDataSent is stored
// before the end of the message goes out). A mark that waits in a batch
// longer than its attempt has left fails with the attempt's deadline; the
// client then sends nothing more on that connection (smtp: an end
// reported not sent is never sent), so the message goes again without a
// duplicate.
//
// There is no background goroutine: the first caller that finds no commit
// running leads one batch (its own request is first in it), then hands
// the lead to the oldest waiting request.

const (
	// maxGroup bounds one batch.
	maxGroup = 128
	// groupTimeout bounds the transaction of a batch. It does not follow
	// any caller's context: a request taken into a batch is committed or
	// failed with the batch, and its caller learns which.
	groupTimeout = 30 * time.Second
)

// groupCommit is the state shared by the callers; its zero value is ready.
type groupCommit struct {
	mu      sync.Mutex
	pending []*groupReq
	leading bool
}

// groupReq is one write waiting to be committed.
type groupReq struct {
	ctx context.Context
	// op does the request's writes in the batch's transaction, with the
	// batch's context. Its error undoes its own writes only.
	op func(ctx context.Context, tx *sql.Tx) error
	// kind: a groupSmall write changes a fixed-size column of an
	// existing row (writeSmallTx), and a batch of only such writes that
	// commits does not tell WriteHealth the database takes writes again;
	// a batch with a groupDurable write commits with synchronous=FULL.
	kind groupKind

	err  error
	done chan struct{} // closed once err is set
	lead chan struct{} // closed to make this request's caller the leader
}

// writeTx runs fn in a write transaction: on SQLite inside the next
// group commit (shared with the writes that arrive meanwhile; fn's error
// undoes fn's writes alone; synchronous=NORMAL unless the batch holds a
// submission), on PostgreSQL as a transaction of its own on Store.async,
// whose sessions commit with synchronous_commit off. fn may run with a
// context other than ctx (the batch's), and must set its results only
// through what it closes over, which the caller reads only when writeTx
// returns nil.
//
// synchronous_commit off: the commit returns before the write-ahead log
// reaches the disk (the database server writes it within a fraction of a
// second), so a mark or an outcome does not wait for a disk flush (2–3
// ms on the test machine, once per message). That is what SQLite's
// synchronous=NORMAL gives the same writes: they survive a crash of
// sockmail, and other sessions see them at once, but a crash of the
// database server or the machine may lose the last of them (the outbox's
// crash rules are about sockmail's crashes; a submission, which a visitor
// was told is received, commits synchronously on both backends). A
// session setting rather than SET LOCAL in each transaction saves a
// round trip a write.
func (s *Store) writeTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.backend == BackendSQLite {
		return s.groupWrite(ctx, fn, groupPlain)
	}
	err := runTxOn(ctx, s.async, func(tx *sql.Tx) error { return fn(ctx, tx) })
	s.health.note(err)
	return err
}

// writeSmallTx is writeTx for a write that only changes a fixed-size
// column of an existing row (an end-of-message mark): its storage failure
// is remembered for WriteHealth, its success does not clear an earlier
// one (writeHealth.noteFailure).
func (s *Store) writeSmallTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.backend == BackendSQLite {
		return s.groupWrite(ctx, fn, groupSmall)
	}
	err := runTxOn(ctx, s.async, func(tx *sql.Tx) error { return fn(ctx, tx) })
	s.health.noteFailure(err)
	return err
}

// groupKind says what a group commit request needs of its batch.
type groupKind int

const (
	// groupPlain: committed like a transaction of its own
	// (synchronous=NORMAL: survives a crash of sockmail).
	groupPlain groupKind = iota
	// groupSmall: groupPlain, and a success proves little to WriteHealth
	// (writeSmallTx).
	groupSmall
	// groupDurable: the batch commits with synchronous=FULL (a
	// submission: it survives a power cut once its caller is told).
	groupDurable
)

// groupWrite runs op in a group commit and returns its outcome: op's
// error, or the batch's when op succeeded and the commit failed.
func (s *Store) groupWrite(ctx context.Context, op func(context.Context, *sql.Tx) error, kind groupKind) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &groupReq{ctx: ctx, op: op, kind: kind, done: make(chan struct{}), lead: make(chan struct{})}
	g := &s.enq
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if !g.leading {
		g.leading = true
		close(r.lead)
	}
	g.mu.Unlock()

	select {
	case <-r.lead:
		s.leadGroup()
	case <-r.done:
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-r.lead:
			// Made leader just now: lead (the batch skips this request).
			g.mu.Unlock()
			s.leadGroup()
		default:
			for i, p := range g.pending {
				if p == r {
					// Not taken yet: nothing of it will be stored.
					g.pending = append(g.pending[:i:i], g.pending[i+1:]...)
					g.mu.Unlock()
					return ctx.Err()
				}
			}
			// Taken into a running batch: its outcome decides.
			g.mu.Unlock()
		}
	}
	<-r.done
	return r.err
}

// leadGroup commits the pending requests (the leader's own first among
// them) in one transaction, then passes the lead on.
func (s *Store) leadGroup() {
	g := &s.enq
	g.mu.Lock()
	n := min(len(g.pending), maxGroup)
	batch := append([]*groupReq(nil), g.pending[:n]...)
	g.pending = append(g.pending[:0:0], g.pending[n:]...)
	g.mu.Unlock()

	s.commitGroup(batch)

	g.mu.Lock()
	if len(g.pending) > 0 {
		close(g.pending[0].lead)
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}

// commitGroup runs one batch and sets every request's outcome.
func (s *Store) commitGroup(batch []*groupReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	full := slices.ContainsFunc(live, func(r *groupReq) bool { return r.kind == groupDurable })
	err := s.groupTx(ctx, full, func(tx *sql.Tx) error {
		if len(live) == 1 {
			r := live[0]
			r.err = r.op(ctx, tx)
			return r.err
		}
		for _, r := range live {
			if _, err := s.txExec(ctx, tx, `SAVEPOINT grouped`); err != nil {
				return err
			}
			r.err = r.op(ctx, tx)
			if _, ok := StorageFailure(r.err); ok {
				// SQLite may have rolled the whole transaction back
				// (SQLITE_FULL, SQLITE_IOERR): the batch fails with
				// this cause, so that each caller can tell a storage
				// failure (the worker keeps its outcome) from a refusal.
				return r.err
			}
			if r.err != nil {
				if _, err := s.txExec(ctx, tx, `ROLLBACK TO grouped`); err != nil {
					return err
				}
			}
			if _, err := s.txExec(ctx, tx, `RELEASE grouped`); err != nil {
				return err
			}
		}
		return nil
	})
	if !slices.ContainsFunc(live, func(r *groupReq) bool { return r.kind != groupSmall }) {
		s.health.noteFailure(err) // marks only: their success proves little
	} else {
		s.health.note(err)
	}
	for _, r := range live {
		if err != nil {
			// Nothing of the batch was stored, whatever a request's own
			// write did before the batch failed.
			if _, ok := StorageFailure(r.err); !ok && !errors.Is(r.err, errOverLimit) {
				r.err = err
			}
		}
		close(r.done)
	}
}

// groupTx runs fn in a write transaction on the SQLite writer that
// commits with synchronous=FULL when full (then puts the connection back
// to the store's usual NORMAL), or NORMAL.
func (s *Store) groupTx(ctx context.Context, full bool, fn func(*sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if full {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return err
		}
		defer func() {
			// If this fails the connection stays FULL: slower, never less safe.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
