package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// ThrottleFallback is the store with its throttle (TakeAttempt,
// ReturnAttempt, ClearAttempts) kept working while the database refuses
// writes (StorageFailure): attempts are then counted in memory, on top of
// those the database still reads back, and the log says so once when it
// starts and once when the database takes them again. Sign-ins stay
// throttled, and are not refused because a throttle row cannot be
// written. Memory counts are this process's only and are forgotten at
// restart; they keep counting for their window after the database
// recovers.
type ThrottleFallback struct {
	*Store
	log *slog.Logger

	mu       sync.Mutex
	mem      map[string][]time.Time // attempts counted in memory, by key
	degraded bool
}

// maxMemoryKeys bounds the keys ThrottleFallback keeps in memory; past it
// the keys with no attempt in the current window are dropped, then, if
// still too many, the attempt is not remembered (the database's count
// still applies).
const maxMemoryKeys = 10000

// NewThrottleFallback wraps s.
func NewThrottleFallback(s *Store, log *slog.Logger) *ThrottleFallback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ThrottleFallback{Store: s, log: log, mem: map[string][]time.Time{}}
}

// memCount returns the attempts in memory under key at or after since,
// dropping older ones. Call with mu held.
func (f *ThrottleFallback) memCount(key string, since time.Time) int {
	ts := f.mem[key]
	kept := ts[:0]
	for _, t := range ts {
		if !t.Before(since) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(f.mem, key)
		return 0
	}
	f.mem[key] = kept
	return len(kept)
}

// setDegraded logs the changes between the database and memory.
func (f *ThrottleFallback) setDegraded(on bool, err error) {
	if on == f.degraded {
		return
	}
	f.degraded = on
	if on {
		f.log.Warn("throttling: the database refuses writes; counting attempts in memory until it takes them again", "err", err)
	} else {
		f.log.Info("throttling: the database takes writes again; attempts are counted there")
	}
}

// TakeAttempt is Store.TakeAttempt, falling back to memory when the
// database refuses the write; attempts counted in memory count against
// the limits too.
func (f *ThrottleFallback) TakeAttempt(ctx context.Context, limits []Limit, at, since time.Time) (*Limit, error) {
	// The database takes what memory leaves of each limit.
	left := make([]Limit, len(limits))
	f.mu.Lock()
	for i, l := range limits {
		left[i] = l
		if l.Max > 0 {
			if left[i].Max -= f.memCount(l.Key, since); left[i].Max <= 0 {
				f.mu.Unlock()
				return &limits[i], nil
			}
		}
	}
	f.mu.Unlock()
	over, err := f.Store.TakeAttempt(ctx, left, at, since)
	if _, storage := StorageFailure(err); !storage {
		if err == nil {
			f.mu.Lock()
			f.setDegraded(false, nil)
			f.mu.Unlock()
		}
		if over != nil {
			for i := range limits {
				if limits[i].Key == over.Key {
					return &limits[i], err // the limit as the caller set it
				}
			}
		}
		return over, err
	}
	// Count what the database still reads back plus memory.
	var db []int
	for _, l := range limits {
		n := 0
		if l.Max > 0 {
			n, _ = f.CountAttempts(ctx, l.Key, since)
		}
		db = append(db, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setDegraded(true, err)
	for i, l := range limits {
		if l.Max > 0 && db[i]+f.memCount(l.Key, since) >= l.Max {
			return &limits[i], nil
		}
	}
	if len(f.mem) >= maxMemoryKeys {
		for k := range f.mem {
			f.memCount(k, since)
		}
	}
	for _, l := range limits {
		if l.Max > 0 && (len(f.mem) < maxMemoryKeys || f.mem[l.Key] != nil) {
			f.mem[l.Key] = append(f.mem[l.Key], at)
		}
	}
	return nil, nil
}

// ReturnAttempt is Store.ReturnAttempt; an attempt counted in memory is
// returned there.
func (f *ThrottleFallback) ReturnAttempt(ctx context.Context, key string, at time.Time) error {
	f.mu.Lock()
	ts := f.mem[key]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			f.mem[key] = append(ts[:i:i], ts[i+1:]...)
			f.mu.Unlock()
			return nil
		}
	}
	f.mu.Unlock()
	err := f.Store.ReturnAttempt(ctx, key, at)
	if _, storage := StorageFailure(err); storage {
		return nil // the slot stays taken until its window ends: stricter, never looser
	}
	return err
}

// ClearAttempts is Store.ClearAttempts, clearing memory too; when the
// database refuses, the database's attempts under key stay (they expire
// with their window).
func (f *ThrottleFallback) ClearAttempts(ctx context.Context, key string) error {
	f.mu.Lock()
	delete(f.mem, key)
	f.mu.Unlock()
	err := f.Store.ClearAttempts(ctx, key)
	if _, storage := StorageFailure(err); storage {
		return nil
	}
	return err
}
