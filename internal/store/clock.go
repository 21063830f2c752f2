package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Now returns the database's time: PostgreSQL's clock_timestamp(), the
// clock every instance sharing the database can agree on. SQLite lives in
// this process, so its time is the local clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	if s.backend != BackendPostgres {
		return time.Now(), nil
	}
	var us int64
	if err := s.r.QueryRowContext(ctx, `SELECT (extract(epoch from clock_timestamp()) * 1000000)::bigint`).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("store: database time: %w", err)
	}
	return time.UnixMicro(us), nil
}

// SharedClock is a local clock kept in step with the database's, for
// what instances sharing a database must time alike: outbox leases,
// rate-limit windows, time-trap tokens, session expiry. Its time is the
// local clock plus the offset measured at the last Sync, so it costs no
// query to read.
type SharedClock struct {
	base   func() time.Time
	offset atomic.Int64 // nanoseconds
}

// NewSharedClock returns a clock over base (time.Now if nil), in step
// with nothing until Sync.
func NewSharedClock(base func() time.Time) *SharedClock {
	if base == nil {
		base = time.Now
	}
	return &SharedClock{base: base}
}

// Now returns the local time corrected by the measured offset.
func (c *SharedClock) Now() time.Time {
	return c.base().Add(time.Duration(c.offset.Load()))
}

// Sync measures the offset of the database's clock from the local one
// (taking the query's midpoint) and returns it.
func (c *SharedClock) Sync(ctx context.Context, s *Store) (time.Duration, error) {
	before := c.base()
	db, err := s.Now(ctx)
	if err != nil {
		return 0, err
	}
	after := c.base()
	offset := db.Sub(before.Add(after.Sub(before) / 2))
	c.offset.Store(int64(offset))
	return offset, nil
}
