package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Counting ahead (PostgreSQL, migration 0024). A rate-limit key's counter
// row is locked by every post it counts, and on PostgreSQL moving it is a
// transaction of its own on the server. A busy key is instead counted
// ahead: sockmail_take_rate_ahead counts several posts at once and this
// Store hands the counts it did not use yet to its next posts of that key
// in the same window, in memory. The limit stays exact: a key never
// counts more than its Max posts in a window, since every post is
// counted in the database before it is stored. A count taken ahead and
// not used stays counted: with one instance nothing is refused early (a
// post finds the ones it left in memory first); another instance may be
// refused early by at most what this one holds, and each grant is at
// most a sixteenth of what was left in the window, so near the limit
// every post is counted alone. A Store that closes gives back what it
// holds (Store.giveBackAhead), so that a stopped or restarted instance
// leaves the others nothing refused early, and so does a key no post
// used for a while (idle, Store.giveBackIdle). One key may be posted to under
// several limits (an address's count is one for every form, each form
// with its own per-address Max): counts are held for one limit at a time,
// and a post under another gives them back in its own transaction before
// its check (aheadTake.released), so that it is checked against the
// posts counted.

// aheadMaxWant is the most posts of a key counted at once.
const aheadMaxWant = 64

// aheadBusy is how soon after its grant a key's counts must be used up
// for the next grant to be larger (twice, up to aheadMaxWant); a key used
// less often asks for one post at a time again.
const aheadBusy = time.Second

// aheadKey is what a Store holds of one key's counts taken ahead.
type aheadKey struct {
	max    int
	window time.Duration
	// start is the database's window start (microseconds) the counts
	// belong to; n the database's count after the last grant.
	start int64
	n     int
	// left is how many counted posts of that window no post has used yet.
	left int
	// want is how many posts the next grant asks for; grantedAt the time
	// (the callers' at) of the last grant. Concurrent posts' times come in
	// any order: one before grantedAt is a busy key's too.
	want      int
	grantedAt time.Time
	// asking is open while a post's request for more than itself is on
	// its way (closed when it is answered): the key's other posts wait
	// for it and take from its grant rather than ask too, so that an
	// instance holds at most one grant's counts unused.
	asking chan struct{}
	// used is set when a post takes one of the counts or a grant adds
	// some; idle clears it.
	used bool
}

// usable tells whether a post of limit l at at may use e's counts: the
// same limit, and the window the database would count at at into.
func (e *aheadKey) usable(l Limit, at time.Time) bool {
	return e.max == l.Max && e.window == l.Window && micros(at)-e.start <= l.Window.Microseconds()
}

// rateAhead is a Store's counts taken ahead, by key.
type rateAhead struct {
	mu   sync.Mutex
	keys map[string]*aheadKey
}

// aheadTake is what take left for the database to count: need (the
// limits of active no count held in memory covered, in active's order)
// with the counts each asks for, and the window starts of the counts
// taken from memory (by active's index; 0 where none was), for giveBack.
type aheadTake struct {
	need   []Limit
	needAt []int // need[j] is active[needAt[j]]
	wants  []int32
	// asked[j] is the asking need[j]'s request opened on its key, or
	// nil.
	asked []chan struct{}
	taken []int64
	// released are counts of another limit on a key of need (a form's
	// per-address limit beside another form's, on the same address)
	// that this request gives back to the database in its own
	// transaction, so that its limit is checked against the posts
	// counted, not against the counts held unused; committed is set when
	// that transaction committed.
	released  []heldCounts
	committed bool
}

// counted notes that the database counted need's posts in the windows
// that start at starts, so that giveBack returns them too.
func (t *aheadTake) counted(starts []int64) {
	t.committed = true
	for j, i := range t.needAt {
		if j < len(starts) {
			t.taken[i] = starts[j]
		}
	}
}

// take uses, for each limit of active, a count held in memory for it
// when there is one, and returns the others. When another post's request
// for more than itself is on its way for one of them, take takes nothing
// and returns a channel closed when it is answered: the caller waits and
// takes again.
func (r *rateAhead) take(active []Limit, at time.Time) (aheadTake, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range active {
		if e := r.keys[l.Key]; e != nil && e.asking != nil && (e.left == 0 || !e.usable(l, at)) {
			return aheadTake{}, e.asking
		}
	}
	t := aheadTake{taken: make([]int64, len(active))}
	for i, l := range active {
		e := r.keys[l.Key]
		if e != nil && e.left > 0 && e.usable(l, at) {
			e.left--
			e.used = true
			t.taken[i] = e.start
			continue
		}
		sameLimit := e != nil && e.max == l.Max && e.window == l.Window
		if e != nil && !sameLimit && e.left > 0 && micros(at)-e.start <= e.window.Microseconds() {
			t.released = append(t.released, e.takeOut(l.Key))
		}
		want, asked := 1, chan struct{}(nil)
		if sameLimit && e.want > 1 {
			asked = make(chan struct{})
			want, e.asking = e.want, asked
		}
		t.need, t.needAt = append(t.need, l), append(t.needAt, i)
		t.wants, t.asked = append(t.wants, int32(want)), append(t.asked, asked)
	}
	return t, nil
}

// takeWait is take, waiting while another post's request it needs is on
// its way; it fails only when ctx ends.
func (r *rateAhead) takeWait(ctx context.Context, active []Limit, at time.Time) (aheadTake, error) {
	for {
		t, wait := r.take(active, at)
		if wait == nil {
			return t, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return aheadTake{}, ctx.Err()
		}
	}
}

// giveBack returns the counts of a post refused or certainly not stored
// (those take used from memory, and the database's when counted noted
// them): each goes back to its key, for the next post, unless a grant of
// a newer window replaced it. For a post whose outcome is not known, see
// abandon.
func (r *rateAhead) giveBack(active []Limit, t aheadTake) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered(&t)
	for i, l := range active {
		if e := r.keys[l.Key]; t.taken[i] != 0 && e != nil && e.start == t.taken[i] {
			e.left++
		}
	}
	if t.committed {
		return
	}
	// The request's transaction did not commit: the released counts are
	// still counted in the database; they come back to their limit
	// unless the key serves another since (then they stay counted).
	for _, h := range t.released {
		if e := r.keys[h.key]; e != nil && e.start == h.start && e.max == h.max && e.window == h.window {
			e.left += h.n
		}
	}
}

// settle gives back what a post that failed with err took (giveBack),
// when nothing of it can have been stored: its statements were not sent
// (sent is false), or the server refused them (an ERROR ends the
// statement and its transaction). After a lost connection, or a FATAL
// one (a session terminated: the claim of TestFaultReadOnlyPostgres
// committed all the same), nothing is given back (abandon): the post may
// be stored.
func (r *rateAhead) settle(active []Limit, t aheadTake, sent bool, err error) {
	var pe *pgconn.PgError
	if !sent || errors.As(err, &pe) && pe.Severity == "ERROR" {
		r.giveBack(active, t)
		return
	}
	r.abandon(t)
}

// abandon is giveBack for a post whose outcome is not known (the
// connection was lost once its statements were sent): what it took stays
// counted, whatever the database did, and the released counts stay
// given back or counted; only the posts that wait for its request are
// woken.
func (r *rateAhead) abandon(t aheadTake) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered(&t)
}

// answered ends the asking of the keys t's request opened it on, waking
// the posts that wait for it; r.mu is held.
func (r *rateAhead) answered(t *aheadTake) {
	for j, asked := range t.asked {
		if asked == nil {
			continue
		}
		close(asked)
		if e := r.keys[t.need[j].Key]; e != nil && e.asking == asked {
			e.asking = nil
		}
		t.asked[j] = nil
	}
}

// granted keeps what the database counted for the limits of t.need at
// at: granted[i] posts for need[i] (one of them the post at hand), in the
// window that starts at starts[i], whose count is now counts[i].
func (r *rateAhead) granted(t *aheadTake, granted []int32, starts []int64, counts []int32, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered(t)
	if r.keys == nil {
		r.keys = make(map[string]*aheadKey)
	}
	if len(r.keys) > aheadMaxKeys {
		r.forget(at)
	}
	for i, l := range t.need {
		if i >= len(granted) || i >= len(starts) || i >= len(counts) {
			return
		}
		e := r.keys[l.Key]
		if e == nil {
			e = &aheadKey{want: 1}
			r.keys[l.Key] = e
		}
		if starts[i] < e.start {
			continue // a grant of an older window answered after a newer one
		}
		if (e.max != l.Max || e.window != l.Window) && e.left > 0 && e.start == starts[i] {
			// The key holds another limit's counts again (granted after
			// this request released them): it keeps them; this request
			// asked for its own post only.
			continue
		}
		switch {
		case e.grantedAt.IsZero() || at.Sub(e.grantedAt) >= aheadBusy:
			e.want = 1
		default:
			e.want = min(2*e.want, aheadMaxWant)
		}
		if e.start != starts[i] || e.max != l.Max || e.window != l.Window {
			e.left = 0 // a new window, or a changed limit: the old counts are gone
		}
		e.max, e.window, e.start, e.n, e.grantedAt = l.Max, l.Window, starts[i], int(counts[i]), at
		e.left += int(granted[i]) - 1
		e.used = true
	}
}

// aheadMaxKeys is how many keys a Store remembers before it forgets
// those that hold nothing (forget): the keys of addresses come and go.
const aheadMaxKeys = 10000

// forget drops the keys that hold no count for a window open at at and
// have no request on its way; r.mu is held.
func (r *rateAhead) forget(at time.Time) {
	for k, e := range r.keys {
		if e.asking == nil && (e.left == 0 || micros(at)-e.start > e.window.Microseconds()) {
			delete(r.keys, k)
		}
	}
}

// heldCounts is what release takes out of one key.
type heldCounts struct {
	key   string
	start int64
	n     int
	// max and window are the limit the counts were taken under.
	max    int
	window time.Duration
}

// release takes every count r holds unused out of it, for giving back to
// the database (Store.giveBackAhead).
func (r *rateAhead) release() []heldCounts {
	return r.takeOutWhere(func(*aheadKey) bool { return true })
}

// takeOutWhere takes out of r the counts of every key that holds some
// and for which which returns true (called for every key).
func (r *rateAhead) takeOutWhere(which func(e *aheadKey) bool) []heldCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []heldCounts
	for k, e := range r.keys {
		if which(e) && e.left > 0 {
			out = append(out, e.takeOut(k))
		}
	}
	return out
}

// takeOut returns e's unused counts (of key) and leaves it none.
func (e *aheadKey) takeOut(key string) heldCounts {
	h := heldCounts{key: key, start: e.start, n: e.left, max: e.max, window: e.window}
	e.left = 0
	return h
}

// idle takes out of r the counts of the keys no post used since the last
// call (and no request is on its way for), for giving back to the
// database: a key that stopped being busy leaves other instances nothing
// refused early (Store.giveBackIdle calls it every aheadIdleEvery).
func (r *rateAhead) idle() []heldCounts {
	return r.takeOutWhere(func(e *aheadKey) bool {
		idle := !e.used && e.asking == nil
		e.used = false
		return idle
	})
}

// held returns how many counts of key's window that starts at start this
// Store holds unused.
func (r *rateAhead) held(key string, start int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.keys[key]; e != nil && e.start == start {
		return e.left
	}
	return 0
}

// counts returns, when every key of keys has counts held in memory for a
// window of that length open at at, each key's count as this Store last
// learnt it less what it holds unused; ok is false otherwise.
func (r *rateAhead) counts(keys []string, at time.Time, window time.Duration) (out []int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out = make([]int, len(keys))
	for i, k := range keys {
		e := r.keys[k]
		if e == nil || e.left == 0 || e.window != window || micros(at)-e.start > window.Microseconds() {
			return nil, false
		}
		out[i] = e.n - e.left
	}
	return out, true
}
