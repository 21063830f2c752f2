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

// Limit bounds the attempts under Key: at most Max in a window.
type Limit struct {
	Key string
	Max int
}

// TakeAttempt records one attempt at at under every limit's key, all or
// none, unless a key already holds Max attempts at or after since: then it
// records nothing and returns that limit. Limits with Max <= 0 are left
// out. The count and the record are one transaction, serialised per key
// for every process sharing the database (SQLite's write lock; PostgreSQL
// advisory locks), so a burst of concurrent callers cannot pass a limit.
func (s *Store) TakeAttempt(ctx context.Context, limits []Limit, at, since time.Time) (*Limit, error) {
	var active []Limit
	for _, l := range limits {
		if l.Max > 0 {
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
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM attempts WHERE key = ? AND attempted_at >= ?`),
				encText(l.Key), micros(since)).Scan(&n); err != nil {
				return err
			}
			if n >= l.Max {
				over = &active[i]
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
