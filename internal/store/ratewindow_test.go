package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestTakeRate: a key counts up to Max posts in a window that begins at
// its first counted post; the next is refused with the time left, counts
// nothing, and is taken once the window is over; several limits are
// counted all or none. On both backends.
func TestTakeRate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		addr := Limit{Key: "contact:addr:203.0.113.9", Max: 2, Window: time.Hour}
		form := Limit{Key: "contact:form:1", Max: 3, Window: time.Hour}
		steps := []struct {
			name   string
			at     time.Duration // after t0
			limits []Limit
			over   string        // key of the refusing limit, or ""
			retry  time.Duration // its RetryAfter
			counts map[string]int
		}{
			{"first post starts both windows", 0, []Limit{addr, form}, "", 0, map[string]int{addr.Key: 1, form.Key: 1}},
			{"second", 10 * time.Minute, []Limit{addr, form}, "", 0, map[string]int{addr.Key: 2, form.Key: 2}},
			{"third: the address is full, nothing counted", 20 * time.Minute, []Limit{addr, form}, addr.Key, 40 * time.Minute,
				map[string]int{addr.Key: 2, form.Key: 2}},
			{"another address: the form counts its third", 30 * time.Minute, []Limit{{Key: "contact:addr:x", Max: 2, Window: time.Hour}, form}, "", 0,
				map[string]int{form.Key: 3, "contact:addr:x": 1}},
			{"the form is full: the other key is not counted", 40 * time.Minute, []Limit{{Key: "contact:addr:y", Max: 2, Window: time.Hour}, form}, form.Key, 20 * time.Minute,
				map[string]int{form.Key: 3, "contact:addr:y": 0}},
			{"limits without a Max are left out", 41 * time.Minute, []Limit{{Key: "free", Window: time.Hour}}, "", 0, map[string]int{"free": 0}},
			{"an hour after the first post a new window begins", time.Hour + time.Second, []Limit{addr, form}, "", 0,
				map[string]int{addr.Key: 1, form.Key: 1}},
		}
		for _, st := range steps {
			at := t0.Add(st.at)
			over, err := s.TakeRate(ctx, st.limits, at)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			switch {
			case st.over == "" && over != nil:
				t.Errorf("%s: refused by %q", st.name, over.Key)
			case st.over != "" && over == nil:
				t.Errorf("%s: taken, want refused by %q", st.name, st.over)
			case st.over != "" && (over.Key != st.over || over.RetryAfter != st.retry):
				t.Errorf("%s: refused by %q, retry after %v; want %q, %v", st.name, over.Key, over.RetryAfter, st.over, st.retry)
			}
			var keys []string
			for key, want := range st.counts {
				if n, err := s.RateCount(ctx, key, at, time.Hour); err != nil || n != want {
					t.Errorf("%s: RateCount(%q) = %d, %v; want %d", st.name, key, n, err, want)
				}
				keys = append(keys, key)
			}
			keys = append(keys, "contact:addr:never")
			ns, err := s.RateCounts(ctx, keys, at, time.Hour)
			if err != nil || len(ns) != len(keys) {
				t.Fatalf("%s: RateCounts: %v, %v", st.name, ns, err)
			}
			for i, key := range keys {
				if want := st.counts[key]; ns[i] != want {
					t.Errorf("%s: RateCounts gives %q %d, want %d", st.name, key, ns[i], want)
				}
			}
		}
		if n, _ := s.RateCount(ctx, addr.Key, t0.Add(3*time.Hour), time.Hour); n != 0 {
			t.Errorf("RateCount after the window: %d, want 0", n)
		}
		if _, err := s.TakeRate(ctx, []Limit{{Key: "k", Max: 1}}, t0); err == nil {
			t.Error("a limit without a window was taken")
		}
		// The purge drops windows begun before its time, and only those.
		if err := s.PurgeAttempts(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]int{"contact:addr:x": 0, addr.Key: 1} {
			if n, _ := s.RateCount(ctx, key, t0.Add(time.Hour+2*time.Second), 24*time.Hour); n != want {
				t.Errorf("after the purge RateCount(%q) = %d, want %d", key, n, want)
			}
		}
	})
}

// TestEnqueueLimitedUnderBurst: 60 concurrent posts against a per-form
// limit of 7 (and a per-address one of 100): exactly 7 are stored and
// counted, the others refused with nothing stored; on SQLite they share
// group commits, on PostgreSQL no lock is held between statements.
func TestEnqueueLimitedUnderBurst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		formLimit := Limit{Key: fmt.Sprint("contact:form:", form), Max: 7, Window: time.Hour}
		const n = 60
		var wg sync.WaitGroup
		var mu sync.Mutex
		stored, refused := 0, 0
		for i := range n {
			wg.Go(func() {
				sub := &Submission{FormID: form, ClientAddr: "203.0.113.9"}
				item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint("burst", i))}
				limits := []Limit{{Key: "contact:addr:203.0.113.9", Max: 100, Window: time.Hour}, formLimit}
				over, err := s.EnqueueLimited(ctx, sub, item, limits, t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("post %d: %v", i, err)
				case over != nil:
					if over.Key != formLimit.Key || sub.ID != 0 || item.ID != 0 {
						t.Errorf("post %d refused by %q with ids %d, %d", i, over.Key, sub.ID, item.ID)
					}
					refused++
				default:
					if sub.ID == 0 || item.ID == 0 {
						t.Errorf("post %d stored without ids", i)
					}
					stored++
				}
			})
		}
		wg.Wait()
		if stored != 7 || refused != n-7 {
			t.Errorf("%d stored, %d refused; want 7 and %d", stored, refused, n-7)
		}
		subs, _ := s.ListSubmissions(ctx, SubmissionFilter{FormID: form, Limit: MaxListLimit})
		counts, _ := s.OutboxCounts(ctx)
		if len(subs) != 7 || counts[OutboxQueued] != 7 {
			t.Errorf("%d submissions and %d items stored, want 7", len(subs), counts[OutboxQueued])
		}
		for key, want := range map[string]int{formLimit.Key: 7, "contact:addr:203.0.113.9": 7} {
			if c, err := s.RateCount(ctx, key, t0, time.Hour); err != nil || c != want {
				t.Errorf("RateCount(%q) = %d, %v; want %d", key, c, err, want)
			}
		}
		// A post refused for another reason (a missing form) is not
		// counted: on SQLite the count and the record are one
		// transaction; on PostgreSQL the count, committed first, is
		// handed to the next post (rateAhead.giveBack).
		gone := []Limit{{Key: "contact:addr:gone", Max: 5, Window: time.Hour}}
		_, err := s.EnqueueLimited(ctx, &Submission{FormID: 999999}, &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage("gone")},
			gone, t0)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("enqueue to a missing form: %v, want ErrNotFound", err)
		}
		if c, _ := s.RateCount(ctx, "contact:addr:gone", t0, time.Hour); c != 0 {
			t.Errorf("a post to a missing form counted %d times, want 0", c)
		}
		for i := range 5 {
			if over, err := s.EnqueueLimited(ctx, &Submission{FormID: form}, &OutboxItem{Rcpts: []string{"a@example.org"},
				Message: testMessage(fmt.Sprint("after-gone", i))}, gone, t0); over != nil || err != nil {
				t.Errorf("post %d of 5 after the missing form's: over %v, err %v", i+1, over, err)
			}
		}
		if over, err := s.TakeRate(ctx, gone, t0); over == nil || err != nil {
			t.Errorf("a sixth post: over %v, err %v; want refused", over, err)
		}
	})
}
