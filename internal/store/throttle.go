package store

import (
	"context"
	"fmt"
	"time"
)

// Throttling. Each attempt (a failed login, a contact form post) is a row
// under a key such as "login:user:x", "login:ip:1.2.3.4" or
// "contact:form:3"; callers count the rows in a sliding window. Rows live
// in the database so that every instance behind a load balancer sees the
// same counts.

// RecordAttempt records one attempt under key at the given time.
func (s *Store) RecordAttempt(ctx context.Context, key string, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q(`INSERT INTO attempts (key, attempted_at) VALUES (?, ?)`), encText(key), micros(at)); err != nil {
		return fmt.Errorf("store: record attempt: %w", err)
	}
	return nil
}

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
