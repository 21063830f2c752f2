package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Throttling. Each attempt (a sign-in, a contact form post) is a row
// under a key such as "signin:account:x", "signin:address:1.2.3.4" or
// "contact:form:3", recorded by TakeAttempt only while under its limit in
// a sliding window. Rows live in the database so that every instance
// behind a load balancer sees the same counts.

// CountAttempts returns how many attempts were recorded under key at or
// after since.
func (s *Store) CountAttempts(ctx context.Context, key string, since time.Time) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM attempts WHERE key = ? AND attempted_at >= ?`), encText(key), micros(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count attempts: %w", err)
	}
	return n, nil
}

// ClearAttempts forgets every attempt under key (after a successful login).
func (s *Store) ClearAttempts(ctx context.Context, key string) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM attempts WHERE key = ?`), encText(key)); err != nil {
		return fmt.Errorf("store: clear attempts: %w", err)
	}
	return nil
}

// PurgeAttempts deletes every attempt, under any key, recorded before
// before. Run it periodically with the longest window in use.
func (s *Store) PurgeAttempts(ctx context.Context, before time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM attempts WHERE attempted_at < ?`), micros(before)); err != nil {
		return fmt.Errorf("store: purge attempts: %w", err)
	}
	return nil
}

// Limit bounds the attempts under Key: at most Max in a window, or with
// growing delays between them, or both.
type Limit struct {
	Key string
	// Max is the most attempts in the window; 0 sets no such bound.
	Max int
	// Window, when set, is this limit's window: attempts at or after
	// at-Window count. Otherwise the since of the call is used.
	Window time.Duration
	// Delay, when set, makes delays grow: once Free attempts are in the
	// window, the next one is admitted only Delay after the newest, and
	// each further one waits twice as long as the one before, at most
	// MaxDelay (when set).
	Free            int
	Delay, MaxDelay time.Duration
	// RetryAfter is set on the limit TakeAttempt returns: how long, from
	// the attempt's time, until this limit would admit one.
	RetryAfter time.Duration
}

// active reports whether the limit bounds anything.
func (l Limit) active() bool { return l.Max > 0 || l.Delay > 0 }

// wait returns how long after the newest of n attempts in the window the
// next one has to wait under the limit's growing delays (0: none).
func (l Limit) wait(n int) time.Duration {
	if l.Delay <= 0 || n < l.Free {
		return 0
	}
	d := l.Delay
	for i := l.Free; i < n; i++ {
		d *= 2
		if (l.MaxDelay > 0 && d >= l.MaxDelay) || d > 1<<50 {
			break
		}
	}
	if l.MaxDelay > 0 && d > l.MaxDelay {
		d = l.MaxDelay
	}
	return d
}

// TakeAttempt records one attempt at at under every limit's key, all or
// none, unless a limit refuses it: a key that already holds Max attempts
// in its window, or whose newest attempt is more recent than its growing
// delay allows. Then it records nothing and returns that limit, its
// RetryAfter set. Limits with neither Max nor Delay are left out. The
// count and the record are one transaction, serialised per key for every
// process sharing the database (SQLite's write lock; PostgreSQL advisory
// locks), so a burst of concurrent callers cannot pass a limit.
func (s *Store) TakeAttempt(ctx context.Context, limits []Limit, at, since time.Time) (*Limit, error) {
	var active []Limit
	for _, l := range limits {
		if l.active() {
			active = append(active, l)
		}
	}
	if len(active) == 0 {
		return nil, nil
	}
	// Lock in one order, so that two callers cannot wait on each other.
	keys := make([]string, 0, len(active))
	for _, l := range active {
		keys = append(keys, l.Key)
	}
	slices.Sort(keys)
	var over *Limit
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		over = nil
		if s.backend == BackendPostgres {
			for _, k := range slices.Compact(keys) {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "attempts:"+encText(k)); err != nil {
					return err
				}
			}
		}
		for i, l := range active {
			from := since
			if l.Window > 0 {
				from = at.Add(-l.Window)
			}
			var n int
			var oldest, newest int64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(MIN(attempted_at), 0), COALESCE(MAX(attempted_at), 0)
				FROM attempts WHERE key = ? AND attempted_at >= ?`), encText(l.Key), micros(from)).Scan(&n, &oldest, &newest); err != nil {
				return err
			}
			if l.Max > 0 && n >= l.Max {
				over = &active[i]
				over.RetryAfter = max(fromMicros(oldest).Sub(from), time.Second)
				return nil
			}
			if d := l.wait(n); d > 0 && at.Before(fromMicros(newest).Add(d)) {
				over = &active[i]
				over.RetryAfter = max(fromMicros(newest).Add(d).Sub(at), time.Second)
				return nil
			}
		}
		for _, l := range active {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (key, attempted_at) VALUES (?, ?)`), encText(l.Key), micros(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: take attempt: %w", err)
	}
	return over, nil
}

// ReturnAttempt deletes one attempt recorded under key at at: the slot
// TakeAttempt took for something that turned out not to count (a
// sign-in that succeeded).
func (s *Store) ReturnAttempt(ctx context.Context, key string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`DELETE FROM attempts WHERE id = (SELECT id FROM attempts
		WHERE key = ? AND attempted_at = ? ORDER BY id DESC LIMIT 1)`), encText(key), micros(at))
	if err != nil {
		return fmt.Errorf("store: return attempt: %w", err)
	}
	return nil
}
