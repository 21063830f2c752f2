package store

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"sockmail/internal/testenv"
)

// TestRateAheadMemory: what a Store does with the counts granted ahead,
// without a database: a post uses a held count of its window and limit
// only; a new window or a changed limit drops the old ones; a refused
// post gives back what it took; a key asks for twice as many when its
// last grant was used within aheadBusy, one again otherwise.
func TestRateAheadMemory(t *testing.T) {
	l := Limit{Key: "contact:form:1", Max: 1000, Window: time.Hour}
	start := micros(t0)
	tests := []struct {
		name string
		run  func(r *rateAhead) (needed int, left int, want int)
		// needed is how many limits the last take left to the database;
		// left and want are what the key holds after the run.
		needed, left, want int
	}{
		{"nothing held: the database counts", func(r *rateAhead) (int, int, int) {
			tk := takeNow(r, []Limit{l}, t0)
			return len(tk.need), 0, int(tk.wants[0])
		}, 1, 0, 1},
		{"a grant of 4 leaves 3 for the next posts", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			n := 0
			for range 3 {
				n += len(takeNow(r, []Limit{l}, t0.Add(time.Minute)).need)
			}
			e := r.keys[l.Key]
			return n + len(takeNow(r, []Limit{l}, t0.Add(time.Minute)).need), e.left, e.want
		}, 1, 0, 1},
		{"the window is over: the held counts are not used", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			return len(takeNow(r, []Limit{l}, t0.Add(time.Hour+time.Microsecond)).need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 1, 3, 1},
		{"the last moment of the window still counts into it", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			return len(takeNow(r, []Limit{l}, t0.Add(time.Hour)).need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 0, 2, 1},
		{"another Max on the key does not use them: its request gives them back", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			tk := takeNow(r, []Limit{{Key: l.Key, Max: 999, Window: time.Hour}}, t0)
			if len(tk.released) != 1 || tk.released[0].n != 3 || tk.released[0].start != start {
				return -1, 0, 0
			}
			return len(tk.need), r.keys[l.Key].left, int(tk.wants[0])
		}, 1, 0, 1},
		{"its request failed: they come back", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			other := []Limit{{Key: l.Key, Max: 999, Window: time.Hour}}
			tk := takeNow(r, other, t0)
			r.giveBack(other, tk)
			return len(tk.need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 1, 3, 1},
		{"it committed: they are gone, the key serves the other Max", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			other := []Limit{{Key: l.Key, Max: 999, Window: time.Hour}}
			tk := takeNow(r, other, t0)
			r.granted(&tk, []int32{1}, []int64{start}, []int32{2}, t0)
			tk.counted([]int64{start})
			r.giveBack(other, tk) // its post was not stored
			e := r.keys[l.Key]
			return len(tk.need), e.left, e.max
		}, 1, 1, 999},
		{"a new window's grant drops the old counts", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			later := t0.Add(2 * time.Hour)
			r.granted(&aheadTake{need: []Limit{l}}, []int32{2}, []int64{micros(later)}, []int32{2}, later)
			return 0, r.keys[l.Key].left, r.keys[l.Key].want
		}, 0, 1, 1},
		{"an older window's late grant is ignored", func(r *rateAhead) (int, int, int) {
			later := t0.Add(2 * time.Hour)
			r.granted(&aheadTake{need: []Limit{l}}, []int32{2}, []int64{micros(later)}, []int32{2}, later)
			r.granted(&aheadTake{need: []Limit{l}}, []int32{8}, []int64{start}, []int32{8}, t0)
			return 0, r.keys[l.Key].left, r.keys[l.Key].want
		}, 0, 1, 1},
		{"a refused post gives back what it took", func(r *rateAhead) (int, int, int) {
			other := Limit{Key: "contact:addr:x", Max: 5, Window: time.Hour}
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{start}, []int32{4}, t0)
			tk := takeNow(r, []Limit{other, l}, t0)
			r.giveBack([]Limit{other, l}, tk)
			return len(tk.need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 1, 3, 1},
		{"a post counted by the database and not stored hands its count on", func(r *rateAhead) (int, int, int) {
			tk := takeNow(r, []Limit{l}, t0)
			r.granted(&tk, []int32{1}, []int64{start}, []int32{1}, t0)
			tk.counted([]int64{start})
			r.giveBack([]Limit{l}, tk)
			return len(tk.need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 1, 1, 1},
		{"used up within aheadBusy: twice as many next", func(r *rateAhead) (int, int, int) {
			for i, g := range []int32{1, 2, 4, 8, 16, 32, 64, 64} {
				at := t0.Add(time.Duration(i) * time.Millisecond)
				r.granted(&aheadTake{need: []Limit{l}}, []int32{g}, []int64{start}, []int32{int32(i)}, at)
				r.keys[l.Key].left = 0
			}
			return 0, 0, r.keys[l.Key].want
		}, 0, 0, aheadMaxWant},
		{"while one post asks for more, the others wait for its grant", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{1}, []int64{start}, []int32{1}, t0)
			r.granted(&aheadTake{need: []Limit{l}}, []int32{1}, []int64{start}, []int32{2}, t0) // want 2
			first := takeNow(r, []Limit{l}, t0)
			if _, wait := r.take([]Limit{l}, t0); first.wants[0] != 2 || wait == nil {
				return -1, 0, 0
			}
			r.giveBack([]Limit{l}, first) // it failed: the next asks again
			again, wait := r.take([]Limit{l}, t0)
			if wait != nil || again.wants[0] != 2 {
				return -2, 0, 0
			}
			_, wait = r.take([]Limit{l}, t0)
			r.granted(&again, []int32{2}, []int64{start}, []int32{4}, t0)
			select {
			case <-wait:
			default:
				return -3, 0, 0 // not woken
			}
			return len(takeNow(r, []Limit{l}, t0).need), r.keys[l.Key].left, r.keys[l.Key].want
		}, 0, 0, 4},
		{"a quiet key asks for one again", func(r *rateAhead) (int, int, int) {
			r.granted(&aheadTake{need: []Limit{l}}, []int32{1}, []int64{start}, []int32{1}, t0)
			r.granted(&aheadTake{need: []Limit{l}}, []int32{1}, []int64{start}, []int32{2}, t0.Add(time.Millisecond))
			r.granted(&aheadTake{need: []Limit{l}}, []int32{2}, []int64{start}, []int32{4}, t0.Add(aheadBusy+time.Millisecond))
			return 0, r.keys[l.Key].left, r.keys[l.Key].want
		}, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rateAhead
			needed, left, want := tt.run(&r)
			if needed != tt.needed || left != tt.left || want != tt.want {
				t.Errorf("needed %d, left %d, want %d; want %d, %d, %d", needed, left, want, tt.needed, tt.left, tt.want)
			}
		})
	}
}

// TestRateAheadSettle: a post that failed gives its counts back only
// when it cannot have been stored; after a lost connection or a
// terminated session they stay counted; either way the posts waiting for
// its request are woken.
func TestRateAheadSettle(t *testing.T) {
	l := Limit{Key: "contact:form:1", Max: 1000, Window: time.Hour}
	tests := []struct {
		name     string
		sent     bool
		err      error
		wantLeft int
	}{
		{"not sent", false, io.ErrUnexpectedEOF, 3},
		{"refused by the server", true, &pgconn.PgError{Severity: "ERROR", Code: "23505"}, 3},
		{"session terminated", true, &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, 2},
		{"connection lost", true, io.ErrUnexpectedEOF, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rateAhead
			r.granted(&aheadTake{need: []Limit{l}}, []int32{4}, []int64{micros(t0)}, []int32{4}, t0)
			r.keys[l.Key].want = 2
			other := Limit{Key: "contact:addr:x", Max: 1000, Window: time.Hour}
			r.granted(&aheadTake{need: []Limit{other}}, []int32{1}, []int64{micros(t0)}, []int32{1}, t0)
			r.keys[other.Key].want = 2
			tk := takeNow(&r, []Limit{l, other}, t0) // l from memory, other asked for
			_, wait := r.take([]Limit{other}, t0)
			r.settle([]Limit{l, other}, tk, tt.sent, fmt.Errorf("enqueue: %w", tt.err))
			if got := r.keys[l.Key].left; got != tt.wantLeft {
				t.Errorf("left %d, want %d", got, tt.wantLeft)
			}
			select {
			case <-wait:
			default:
				t.Error("the post waiting for the request was not woken")
			}
		})
	}
}

// takeNow is r.take for a post that finds no request on its way (an
// empty aheadTake with want -1 when it would wait).
func takeNow(r *rateAhead, active []Limit, at time.Time) aheadTake {
	t, wait := r.take(active, at)
	if wait != nil {
		return aheadTake{need: active, wants: []int32{-1}}
	}
	return t
}

// TestRateAheadOneMoveForMany: on PostgreSQL, 300 posts of one address
// to one form in a row move the two counter rows a few times each, not
// 300: the last grant is aheadMaxWant posts; the counts read back are the
// posts, not what was counted ahead.
func TestRateAheadOneMoveForMany(t *testing.T) {
	pair := openPostgresStores(t, 2)
	s, other := pair[0], pair[1]
	ctx := ctxT(t)
	form := newForm(t, s)
	limits := []Limit{{Key: "contact:addr:192.0.2.7", Max: 100000, Window: time.Hour},
		{Key: fmt.Sprint("contact:form:", form), Max: 100000, Window: time.Hour}}
	const posts = 300
	for i := range posts {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		sub := &Submission{FormID: form, TokenHash: fmt.Sprint("ahead-", i)}
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("ahead", i))}
		if over, err := s.EnqueueLimited(ctx, sub, item, limits, at); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	at := t0.Add(posts * time.Millisecond)
	for _, l := range limits {
		var n, granted int
		if err := s.w.QueryRowContext(ctx, `SELECT n, granted FROM rate_windows WHERE key = $1`, l.Key).Scan(&n, &granted); err != nil {
			t.Fatal(err)
		}
		if granted != aheadMaxWant || n < posts || n >= posts+aheadMaxWant {
			t.Errorf("%s: counted %d, last grant %d; want %d to %d, the last grant %d", l.Key, n, granted, posts, posts+aheadMaxWant-1, aheadMaxWant)
		}
		c, err := s.RateCount(ctx, l.Key, at, time.Hour)
		if err != nil || c != posts {
			t.Errorf("%s: RateCount = %d, %v; want %d", l.Key, c, err, posts)
		}
	}
	// With a key it holds nothing of, RateCounts reads the database and
	// leaves out what this Store holds unused.
	cs, err := s.RateCounts(ctx, []string{limits[0].Key, "contact:addr:never", limits[1].Key}, at, time.Hour)
	if err != nil || len(cs) != 3 || cs[0] != posts || cs[1] != 0 || cs[2] != posts {
		t.Errorf("RateCounts = %v, %v; want [%d 0 %d]", cs, err, posts, posts)
	}
	// Read back by another Store (another instance): the counts taken
	// ahead are counted there.
	if c, err := other.RateCount(ctx, limits[1].Key, at, time.Hour); err != nil || c < posts || c >= posts+aheadMaxWant {
		t.Errorf("another instance's RateCount = %d, %v; want %d to %d", c, err, posts, posts+aheadMaxWant-1)
	}
}

// TestRateAheadExact: on PostgreSQL, posts race to a form limited to 500
// an hour until each poster is refused. From one Store exactly 500 are
// stored (none refused early). With two Stores sharing the database (two
// instances), one posts 100 in a burst and stops, then the other posts
// until refused: at most 500 are stored, and the posts stored and the
// counts the first still holds unused make exactly 500 (what the second
// was refused early, at most what the first took ahead).
func TestRateAheadExact(t *testing.T) {
	const max = 500
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprint(instances, " instances"), func(t *testing.T) {
			stores := openPostgresStores(t, instances)
			first := stores[0]
			ctx := ctxT(t)
			form := newForm(t, first)
			limit := Limit{Key: fmt.Sprint("contact:form:", form), Max: max, Window: time.Hour}
			var mu sync.Mutex
			stored, next := 0, 0
			// burst posts from 8 posters to s until posts are stored or
			// one is refused.
			burst := func(s *Store, posts int) {
				var wg sync.WaitGroup
				for p := range 8 {
					wg.Go(func() {
						for i := 0; ; i++ {
							mu.Lock()
							if stored >= posts {
								mu.Unlock()
								return
							}
							next++
							id := next
							mu.Unlock()
							sub := &Submission{FormID: form, TokenHash: fmt.Sprint("exact-", id)}
							item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("exact", id))}
							// Each poster's clock moves: grants grow as on
							// a busy form.
							over, err := s.EnqueueLimited(ctx, sub, item, []Limit{limit}, t0.Add(time.Duration(i)*time.Millisecond))
							if err != nil {
								t.Errorf("poster %d post %d: %v", p, i, err)
								return
							}
							if over != nil {
								return
							}
							mu.Lock()
							stored++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
			}
			if instances == 2 {
				burst(stores[1], 100)
			}
			burst(first, max+1)
			var n int
			var start int64
			if err := first.w.QueryRowContext(ctx, `SELECT n, window_start FROM rate_windows WHERE key = $1`, limit.Key).Scan(&n, &start); err != nil {
				t.Fatal(err)
			}
			held := 0
			for _, s := range stores {
				held += s.ahead.held(limit.Key, start)
			}
			var inDB int
			if err := first.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM submissions WHERE form_id = $1`, form).Scan(&inDB); err != nil {
				t.Fatal(err)
			}
			if n != max || inDB != stored || stored+held != max || (instances == 1 && stored != max) {
				t.Errorf("%d stored (%d in the database), %d held unused, counted %d; want %d stored and held, %d counted",
					stored, inDB, held, n, max, max)
			}
			t.Logf("%d stored, %d held unused", stored, held)
		})
	}
}

// TestRateAheadTwoLimitsOneKey: on PostgreSQL one key under two limits
// (an address's per-address limit of one form, 100,000 an hour, and of
// another, 25): after 20 posts under the first, counted ahead (32
// counted), the second admits exactly 5 more posts, its check made
// against the posts counted (the first's unused counts given back in the
// same transaction), then the first goes on counting exactly.
func TestRateAheadTwoLimitsOneKey(t *testing.T) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	wide := Limit{Key: "contact:addr:198.51.100.4", Max: 100000, Window: time.Hour}
	narrow := Limit{Key: wide.Key, Max: 25, Window: time.Hour}
	take := func(l Limit, posts int, from time.Duration) (admitted int) {
		t.Helper()
		for i := range posts {
			over, err := s.TakeRate(ctx, []Limit{l}, t0.Add(from+time.Duration(i)*time.Millisecond))
			if err != nil {
				t.Fatalf("post %d under %d: %v", i, l.Max, err)
			}
			if over == nil {
				admitted++
			}
		}
		return admitted
	}
	count := func(want int) {
		t.Helper()
		if c, err := s.RateCount(ctx, wide.Key, t0.Add(time.Second), time.Hour); err != nil || c != want {
			t.Errorf("RateCount = %d, %v; want %d", c, err, want)
		}
	}
	if n := take(wide, 20, 0); n != 20 {
		t.Fatalf("%d of 20 admitted under 100,000", n)
	}
	count(20)
	if n := take(narrow, 10, 100*time.Millisecond); n != 5 {
		t.Errorf("%d of 10 admitted under 25 after 20 posts, want 5", n)
	}
	count(25)
	if n := take(wide, 5, 200*time.Millisecond); n != 5 {
		t.Errorf("%d of 5 admitted under 100,000 after 25 posts", n)
	}
	count(30)
}

// TestRateAheadIdleGivenBack: on PostgreSQL the counts of a key no post
// used since the last round of giveBackIdle are given back at the next
// (rateAhead.idle, giveBackHeld): a key used since keeps them; after a
// round without posts the counter row holds the posts only, and the next
// post is counted from there.
func TestRateAheadIdleGivenBack(t *testing.T) {
	stores := openPostgresStores(t, 1)
	s := stores[0]
	s.stopAheadLoop() // the rounds are this test's
	s.stopAheadLoop = nil
	ctx := ctxT(t)
	limit := Limit{Key: "contact:form:idle", Max: 100000, Window: time.Hour}
	raw := func() int {
		t.Helper()
		var n int
		if err := s.w.QueryRowContext(ctx, `SELECT n FROM rate_windows WHERE key = $1`, limit.Key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 100 {
		if over, err := s.TakeRate(ctx, []Limit{limit}, t0.Add(time.Duration(i)*time.Millisecond)); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	if held := s.ahead.idle(); len(held) != 0 {
		t.Errorf("a key used since the last round gave back %+v", held)
	}
	held := s.ahead.idle()
	if len(held) != 1 || held[0].n != 28 {
		t.Fatalf("a round without posts took %+v, want the 28 unused counts", held)
	}
	if err := s.giveBackHeld(ctx, held); err != nil {
		t.Fatal(err)
	}
	if n := raw(); n != 100 {
		t.Errorf("counted %d after giving back, want 100", n)
	}
	if over, err := s.TakeRate(ctx, []Limit{limit}, t0.Add(2*time.Second)); over != nil || err != nil {
		t.Fatalf("next post: over %v, err %v", over, err)
	}
	if c, err := s.RateCount(ctx, limit.Key, t0.Add(2*time.Second), time.Hour); err != nil || c != 101 {
		t.Errorf("RateCount = %d, %v; want 101", c, err)
	}
}

// TestRateAheadGivenBackOnClose: on PostgreSQL a Store that closes gives
// back the counts it took ahead and did not use: after 100 posts counted
// ahead in grants of 1, 1, 2, 4, ... 64 (128 counted), the counter row holds
// 100 once it is closed, as another instance reads it; a window begun
// again since is left alone.
func TestRateAheadGivenBackOnClose(t *testing.T) {
	stores := openPostgresStores(t, 2)
	for _, s := range stores {
		s.stopAheadLoop() // nothing given back but by Close here
		s.stopAheadLoop = nil
	}
	ctx := ctxT(t)
	form := newForm(t, stores[0])
	limit := Limit{Key: fmt.Sprint("contact:form:", form), Max: 100000, Window: time.Hour}
	raw := func() int {
		t.Helper()
		var n int
		if err := stores[1].w.QueryRowContext(ctx, `SELECT n FROM rate_windows WHERE key = $1`, limit.Key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 100 {
		if over, err := stores[0].TakeRate(ctx, []Limit{limit}, t0.Add(time.Duration(i)*time.Millisecond)); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	if n := raw(); n != 128 {
		t.Fatalf("counted %d before the close, want 128 (grants 1, 1, 2, 4, ... 64)", n)
	}
	if err := stores[0].Close(); err != nil {
		t.Fatal(err)
	}
	if n := raw(); n != 100 {
		t.Errorf("counted %d after the close, want 100", n)
	}

	// The window began again (another instance, an hour later) while
	// counts of the old one were held: the new window's count stays.
	late := t0.Add(2 * time.Hour)
	for i := range 10 {
		if over, err := stores[1].TakeRate(ctx, []Limit{limit}, t0.Add(time.Duration(i)*time.Millisecond)); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	held := stores[1].ahead.held(limit.Key, micros(t0))
	if _, err := stores[1].w.ExecContext(ctx, `UPDATE rate_windows SET window_start = $2, n = 1 WHERE key = $1`, limit.Key, micros(late)); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].giveBackAhead(ctx); err != nil {
		t.Fatal(err)
	}
	if n := raw(); held == 0 || n != 1 {
		t.Errorf("the new window counts %d after giving back %d of the old one, want 1", n, held)
	}
}

// openPostgresStores opens n Stores on one fresh PostgreSQL database, as
// n instances sharing it would.
func openPostgresStores(t *testing.T, n int) []*Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	out := make([]*Store, n)
	for i := range out {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("Open postgres: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}
