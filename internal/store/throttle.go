package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
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
// before, and the rate windows (TakeRate) begun before then. Run it
// periodically with the longest window in use.
func (s *Store) PurgeAttempts(ctx context.Context, before time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM attempts WHERE attempted_at < ?`), micros(before)); err != nil {
		return fmt.Errorf("store: purge attempts: %w", err)
	}
	// Rate windows that began before then are over (windows are shorter).
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM rate_windows WHERE window_start < ?`), micros(before)); err != nil {
		return fmt.Errorf("store: purge rate windows: %w", err)
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
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*), COALESCE(MIN(attempted_at), 0), COALESCE(MAX(attempted_at), 0)
				FROM attempts WHERE key = ? AND attempted_at >= ?`, encText(l.Key), micros(from)).Scan(&n, &oldest, &newest); err != nil {
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
			if _, err := s.txExec(ctx, tx, `INSERT INTO attempts (key, attempted_at) VALUES (?, ?)`, encText(l.Key), micros(at)); err != nil {
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

// Rate windows. Contact-form limits ("at most Max posts in a window")
// are one counter row per key in rate_windows: the window began with the
// first post counted in it (window_start) and n posts were counted since.
// TakeRate moves a key's row in one INSERT ... ON CONFLICT DO UPDATE ...
// RETURNING that counts the post only while n < Max (or starts a new
// window when the old one is over), so concurrent posts cannot pass a
// limit, and nothing is held between statements: no COUNT over the
// attempts of the last hour, no advisory lock for the whole transaction.
// A key that reaches Max is refused until its window, which began at its
// first counted post, is over; then the next post begins a new one.

// errOverLimit undoes a grouped enqueue refused by a rate limit.
var errOverLimit = errors.New("store: over a rate limit")

// rateLimits returns the limits TakeRate applies (Max > 0), sorted by
// key, so that concurrent callers lock rows in one order. A limit
// without a Window is an error.
func rateLimits(limits []Limit) ([]Limit, error) {
	var out []Limit
	for _, l := range limits {
		if l.Max <= 0 {
			continue
		}
		if l.Window <= 0 {
			return nil, fmt.Errorf("rate limit %q without a window", l.Key)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Limit) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// takeRate counts one post at at under every limit of active (from
// rateLimits) in tx, on SQLite (on PostgreSQL sockmail_take_rate does
// it), or returns the first limit that refuses it with its RetryAfter
// set; then tx holds counts of the limits before it, which the caller
// must undo (roll back).
func (s *Store) takeRate(ctx context.Context, tx *sql.Tx, active []Limit, at time.Time) (*Limit, error) {
	atUS := micros(at)
	for i, l := range active {
		from := micros(at.Add(-l.Window))
		var n int
		err := s.txQueryRow(ctx, tx, `INSERT INTO rate_windows (key, window_start, n) VALUES (?, ?, 1)
			ON CONFLICT (key) DO UPDATE SET
				n = CASE WHEN rate_windows.window_start < ? THEN 1 ELSE rate_windows.n + 1 END,
				window_start = CASE WHEN rate_windows.window_start < ? THEN excluded.window_start ELSE rate_windows.window_start END
			WHERE rate_windows.window_start < ? OR rate_windows.n < ?
			RETURNING n`, encText(l.Key), atUS, from, from, from, l.Max).Scan(&n)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		var start int64
		if err := s.txQueryRow(ctx, tx, `SELECT window_start FROM rate_windows WHERE key = ?`, encText(l.Key)).Scan(&start); err != nil {
			return nil, err
		}
		over := active[i]
		over.RetryAfter = max(fromMicros(start).Add(l.Window).Sub(at), time.Second)
		return &over, nil
	}
	return nil, nil
}

// TakeRate counts one post at at under every limit with a Max (each
// needs its Window; Free and Delay are not used here), all or none,
// unless a limit refuses it: its key already counted Max posts in its
// current window. Then it counts nothing and returns that limit, with
// RetryAfter set to when the window is over. Exact under concurrency on
// both backends and across instances sharing a PostgreSQL database. On
// PostgreSQL the count commits with synchronous_commit off, so that a
// busy key's row is locked for microseconds, not for a WAL flush: a
// crash of the database server may forget the last counts (never count
// one twice); and a busy key is counted ahead, many posts in one move of
// its row, the counts not used yet held by this Store for its next posts
// (rateahead.go). EnqueueLimited counts and stores in one call.
func (s *Store) TakeRate(ctx context.Context, limits []Limit, at time.Time) (*Limit, error) {
	active, err := rateLimits(limits)
	if err != nil {
		return nil, fmt.Errorf("store: take rate: %w", err)
	}
	if len(active) == 0 {
		return nil, nil
	}
	if s.backend == BackendPostgres {
		over, err := s.takeRatePostgres(ctx, active, at)
		if err != nil {
			return nil, fmt.Errorf("store: take rate: %w", err)
		}
		return over, nil
	}
	var over *Limit
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if over, err = s.takeRate(ctx, tx, active, at); err != nil {
			return err
		}
		if over != nil {
			return errOverLimit
		}
		return nil
	})
	if errors.Is(err, errOverLimit) {
		return over, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: take rate: %w", err)
	}
	return nil, nil
}

// RateCounts is RateCount for each of keys, in one query: the i-th count
// is keys[i]'s. Counts this Store took ahead and holds unused (rateAhead)
// are not posts: they are left out; when it holds some of every key for
// the window open at at, the counts are those it last learnt less those,
// without a query (another instance's latest posts may be missing: the
// early check, not the exact one).
func (s *Store) RateCounts(ctx context.Context, keys []string, at time.Time, window time.Duration) ([]int, error) {
	if len(keys) == 0 {
		return []int{}, nil
	}
	if out, ok := s.ahead.counts(keys, at, window); ok {
		return out, nil
	}
	out := make([]int, len(keys))
	index := make(map[string][]int, len(keys)) // stored key -> its places in keys
	args := make([]any, 0, len(keys)+1)
	args = append(args, micros(at.Add(-window)))
	for i, k := range keys {
		enc := encText(k)
		index[enc] = append(index[enc], i)
		args = append(args, enc)
	}
	rows, err := s.readQuery(ctx, `SELECT key, n, window_start FROM rate_windows WHERE window_start >= ? AND key IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: rate counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var n int
		var start int64
		if err := rows.Scan(&key, &n, &start); err != nil {
			return nil, fmt.Errorf("store: rate counts: %w", err)
		}
		n -= s.ahead.held(decText(key), start)
		for _, i := range index[key] {
			out[i] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rate counts: %w", err)
	}
	return out, nil
}

// RateCount returns how many posts key counted in its window at at: 0
// when its window began before at-window (it is over) or there is none.
// It is the cheap early check; TakeRate is the exact one.
func (s *Store) RateCount(ctx context.Context, key string, at time.Time, window time.Duration) (int, error) {
	n, err := s.RateCounts(ctx, []string{key}, at, window)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}
