package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// SignInFallback is the store with sign-in kept working while the
// database refuses writes (StorageFailure), as long as it can still be
// read (a full disk, a read-only PostgreSQL):
//
//   - the throttle (TakeAttempt, ReturnAttempt, ClearAttempts) counts
//     attempts in memory, on top of those the database still reads back,
//     and the log says so once when it starts and once when the database
//     takes them again. Sign-ins stay throttled, and are not refused
//     because a throttle row cannot be written. Memory counts are this
//     process's only and are forgotten at restart; they keep counting for
//     their window after the database recovers.
//   - a session the database cannot record (CreateSession) is kept in
//     memory until it expires, is signed out, or the process stops; it is
//     this instance's only (another instance behind the same load
//     balancer asks the admin to sign in again). A session the database
//     cannot delete (sign-out, or the old session at a new sign-in) is
//     remembered as revoked in memory until it expires.
type SignInFallback struct {
	*Store
	log *slog.Logger

	mu       sync.Mutex
	mem      map[string][]time.Time   // attempts counted in memory, by key
	sessions map[string]memorySession // sessions kept in memory, by sessionKey
	revoked  map[string]time.Time     // sessions revoked in memory only, by sessionKey, until their expiry bound
	degraded bool
}

// memorySession is a session the database could not record.
type memorySession struct {
	userID  int64
	expires time.Time
}

// maxMemorySessions bounds the sessions (and revocations) SignInFallback
// keeps in memory; past it, expired ones are dropped, then a new one is
// refused with the database's error.
const maxMemorySessions = 1000

// maxMemoryKeys bounds the keys SignInFallback keeps in memory; past it
// the keys with no attempt in the current window are dropped, then, if
// still too many, the attempt is not remembered (the database's count
// still applies).
const maxMemoryKeys = 10000

// NewSignInFallback wraps s.
func NewSignInFallback(s *Store, log *slog.Logger) *SignInFallback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SignInFallback{Store: s, log: log, mem: map[string][]time.Time{},
		sessions: map[string]memorySession{}, revoked: map[string]time.Time{}}
}

// memCount returns the attempts in memory under key at or after since,
// dropping older ones. Call with mu held.
func (f *SignInFallback) memCount(key string, since time.Time) int {
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
func (f *SignInFallback) setDegraded(on bool, err error) {
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
func (f *SignInFallback) TakeAttempt(ctx context.Context, limits []Limit, at, since time.Time) (*Limit, error) {
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
func (f *SignInFallback) ReturnAttempt(ctx context.Context, key string, at time.Time) error {
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
func (f *SignInFallback) ClearAttempts(ctx context.Context, key string) error {
	f.mu.Lock()
	delete(f.mem, key)
	f.mu.Unlock()
	err := f.Store.ClearAttempts(ctx, key)
	if _, storage := StorageFailure(err); storage {
		return nil
	}
	return err
}

// CreateSession is Store.CreateSession; when the database refuses the
// write, the session is kept in memory (see SignInFallback).
func (f *SignInFallback) CreateSession(ctx context.Context, id string, userID int64, expires time.Time) error {
	err := f.Store.CreateSession(ctx, id, userID, expires)
	if _, storage := StorageFailure(err); !storage {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropExpiredSessions(time.Now())
	if len(f.sessions) >= maxMemorySessions {
		return err
	}
	f.sessions[sessionKey(id)] = memorySession{userID: userID, expires: expires}
	f.log.Warn("sessions: the database refuses writes; this sign-in's session is kept in this process's memory until it ends", "user_id", userID, "err", err)
	return nil
}

// SessionUser is Store.SessionUser, knowing the sessions kept or revoked
// in memory.
func (f *SignInFallback) SessionUser(ctx context.Context, id string, now time.Time) (*User, error) {
	key := sessionKey(id)
	f.mu.Lock()
	ms, inMemory := f.sessions[key]
	_, revoked := f.revoked[key]
	f.mu.Unlock()
	switch {
	case revoked:
		return nil, fmt.Errorf("store: session user: revoked while the database refused writes: %w", ErrNotFound)
	case !inMemory:
		return f.Store.SessionUser(ctx, id, now)
	case !ms.expires.After(now):
		f.mu.Lock()
		delete(f.sessions, key)
		f.mu.Unlock()
		return nil, fmt.Errorf("store: session user: expired: %w", ErrNotFound)
	}
	return f.UserByID(ctx, ms.userID)
}

// DeleteSession is Store.DeleteSession for a session in memory or in the
// database; when the database refuses to delete one, it is revoked in
// memory until its expiry bound (the longest a session lives from now).
func (f *SignInFallback) DeleteSession(ctx context.Context, id string) error {
	key := sessionKey(id)
	f.mu.Lock()
	_, inMemory := f.sessions[key]
	delete(f.sessions, key)
	f.mu.Unlock()
	if inMemory {
		return nil
	}
	err := f.Store.DeleteSession(ctx, id)
	if _, storage := StorageFailure(err); !storage {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropExpiredSessions(time.Now())
	if len(f.revoked) >= maxMemorySessions {
		return err
	}
	f.revoked[key] = time.Now().Add(maxSessionLifetime)
	f.log.Warn("sessions: the database refuses writes; a signed-out session is revoked in this process's memory", "err", err)
	return nil
}

// DeleteUserSessions is Store.DeleteUserSessions, ending the user's
// sessions kept in memory too.
func (f *SignInFallback) DeleteUserSessions(ctx context.Context, userID int64) error {
	f.mu.Lock()
	for k, ms := range f.sessions {
		if ms.userID == userID {
			delete(f.sessions, k)
		}
	}
	f.mu.Unlock()
	return f.Store.DeleteUserSessions(ctx, userID)
}

// maxSessionLifetime bounds how long a revocation kept in memory must
// last: no session outlives it.
const maxSessionLifetime = 31 * 24 * time.Hour

// dropExpiredSessions forgets expired memory sessions and revocations.
// Call with mu held.
func (f *SignInFallback) dropExpiredSessions(now time.Time) {
	for k, ms := range f.sessions {
		if !ms.expires.After(now) {
			delete(f.sessions, k)
		}
	}
	for k, until := range f.revoked {
		if !until.After(now) {
			delete(f.revoked, k)
		}
	}
}
