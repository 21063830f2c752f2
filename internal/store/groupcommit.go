package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Group commit for EnqueueSubmission on SQLite.
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
// fsync, each in its own savepoint so that one failing insert (a form
// deleted meanwhile) does not fail the others. Under no load a batch is a
// single call and nothing waits; under load the batch grows with the
// load.
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
	pending []*enqReq
	leading bool
}

// enqReq is one EnqueueSubmission waiting to be committed.
type enqReq struct {
	ctx       context.Context
	sub       *Submission
	subStatus SubmissionStatus
	item      OutboxItem

	res  enqueued
	err  error
	done chan struct{} // closed once res and err are set
	lead chan struct{} // closed to make this request's caller the leader
}

// groupEnqueue stores one submission and item through a group commit.
func (s *Store) groupEnqueue(ctx context.Context, sub *Submission, subStatus SubmissionStatus, it OutboxItem) (enqueued, error) {
	if err := ctx.Err(); err != nil {
		return enqueued{}, err
	}
	r := &enqReq{ctx: ctx, sub: sub, subStatus: subStatus, item: it, done: make(chan struct{}), lead: make(chan struct{})}
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
					return enqueued{}, ctx.Err()
				}
			}
			// Taken into a running batch: its outcome decides.
			g.mu.Unlock()
		}
	}
	<-r.done
	return r.res, r.err
}

// leadGroup commits the pending requests (the leader's own first among
// them) in one transaction, then passes the lead on.
func (s *Store) leadGroup() {
	g := &s.enq
	g.mu.Lock()
	n := min(len(g.pending), maxGroup)
	batch := append([]*enqReq(nil), g.pending[:n]...)
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
func (s *Store) commitGroup(batch []*enqReq) {
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
	err := s.durableTx(ctx, func(tx *sql.Tx) error {
		if len(live) == 1 {
			r := live[0]
			r.res, r.err = s.insertEnqueue(ctx, tx, r.sub, r.subStatus, r.item)
			return r.err
		}
		for _, r := range live {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT enqueue`); err != nil {
				return err
			}
			r.res, r.err = s.insertEnqueue(ctx, tx, r.sub, r.subStatus, r.item)
			if r.err != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO enqueue`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE enqueue`); err != nil {
				return err
			}
		}
		return nil
	})
	s.health.note(err)
	for _, r := range live {
		if err != nil && r.err == nil {
			r.err = err
		}
		if r.err != nil {
			r.res = enqueued{}
		}
		close(r.done)
	}
}

// durableTx runs fn in a write transaction on the SQLite writer that
// commits with synchronous=FULL, then puts the connection back to the
// store's usual NORMAL.
func (s *Store) durableTx(ctx context.Context, fn func(*sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	defer func() {
		// If this fails the connection stays FULL: slower, never less safe.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
	}()
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
