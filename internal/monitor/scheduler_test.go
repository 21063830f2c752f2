package monitor

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// observed is a real store that reports each stored run.
type observed struct {
	*store.Store
	stored chan int64
}

func (o observed) FinishMonitorRun(ctx context.Context, owner string, run *store.MonitorRun) error {
	err := o.Store.FinishMonitorRun(ctx, owner, run)
	o.stored <- run.MonitorID
	return err
}

// harness runs a Scheduler on a real SQLite store with a fake clock and
// a probe the test lets finish.
type harness struct {
	t       *testing.T
	st      *store.Store
	clock   *clock
	ticks   chan time.Time
	claimed chan int
	started chan int64
	release chan struct{}
	stored  chan int64
	ended   chan int64
	sched   *Scheduler
	stop    func()

	mu       sync.Mutex
	inflight int
	maxIn    int
}

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, concurrency int) *harness {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, st: st, clock: &clock{now: t0}, ticks: make(chan time.Time), claimed: make(chan int, 100),
		started: make(chan int64, 100), release: make(chan struct{}, 100), stored: make(chan int64, 100), ended: make(chan int64, 100)}
	probe := func(ctx context.Context, m store.Monitor) Result {
		h.mu.Lock()
		h.inflight++
		h.maxIn = max(h.maxIn, h.inflight)
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.inflight--; h.mu.Unlock() }()
		start := h.clock.Now()
		h.started <- m.ID
		select {
		case <-h.release:
		case <-ctx.Done():
		}
		return Result{Started: start, Finished: start.Add(10 * time.Millisecond)}
	}
	h.sched, err = New(Deps{Store: observed{st, h.stored}, Probe: probe, Owner: "one", Lease: time.Minute, Concurrency: concurrency,
		Ticks: h.ticks, Now: h.clock.Now, Claimed: func(n int) { h.claimed <- n },
		Finished: func(id int64) { h.ended <- id }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the scheduler until the test ends or stop is called; it
// returns the number the first look started.
func (h *harness) start() int {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.sched.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	}
	h.t.Cleanup(h.stop)
	return <-h.claimed
}

// tick moves the clock to at, makes the scheduler look and returns how
// many runs it started.
func (h *harness) tick(at time.Time) int {
	h.clock.Set(at)
	h.ticks <- at
	return <-h.claimed
}

// finish lets n running probes end and waits until their runs are
// stored and their slots free; it returns the monitors stored, sorted.
func (h *harness) finish(n int) []int64 {
	var ids []int64
	for range n {
		h.release <- struct{}{}
	}
	for range n {
		ids = append(ids, <-h.stored)
		<-h.ended
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) create(m *store.Monitor) int64 {
	if m.Kind == "" {
		m.Kind, m.Target, m.Rcpt = store.MonitorQuitAfter, "127.0.0.1", "a@example.test"
	}
	if m.Created.IsZero() {
		m.Created = t0
	}
	if err := h.st.CreateMonitor(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
	return m.ID
}

// TestSchedulerDue runs due monitors only, on a fake clock: the first
// look at once, nothing before the interval has passed, a disabled
// monitor never, and a changed interval from the last run on.
func TestSchedulerDue(t *testing.T) {
	h := newHarness(t, 4)
	a := h.create(&store.Monitor{Name: "a", Interval: 5, Enabled: true})
	b := h.create(&store.Monitor{Name: "b", Interval: 5, Enabled: true, NextRun: t0.Add(time.Hour)})
	h.create(&store.Monitor{Name: "off", Interval: 1})
	if n := h.start(); n != 1 {
		t.Fatalf("first look started %d, want 1", n)
	}
	if got := h.finish(1); !slices.Equal(got, []int64{a}) {
		t.Fatalf("first runs %v, want %v", got, []int64{a})
	}
	steps := []struct {
		name  string
		at    time.Time
		setup func()
		want  []int64
	}{
		{name: "before the interval", at: t0.Add(4 * time.Minute)},
		{name: "interval passed", at: t0.Add(5 * time.Minute), want: []int64{a}},
		{name: "interval raised to 60", at: t0.Add(20 * time.Minute), setup: func() {
			m, err := h.st.Monitor(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			m.Interval = 60
			if err := h.st.UpdateMonitor(context.Background(), m, t0.Add(6*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "both due", at: t0.Add(65 * time.Minute), want: []int64{a, b}},
		{name: "none due again", at: t0.Add(66 * time.Minute)},
	}
	for _, st := range steps {
		if st.setup != nil {
			st.setup()
		}
		if n := h.tick(st.at); n != len(st.want) {
			t.Fatalf("%s: started %d, want %d", st.name, n, len(st.want))
		}
		if got := h.finish(len(st.want)); !slices.Equal(got, st.want) {
			t.Fatalf("%s: ran %v, want %v", st.name, got, st.want)
		}
	}
	runs, err := h.st.MonitorRuns(context.Background(), a, 0, 0)
	if err != nil || len(runs) != 3 || runs[0].State != store.MonitorUp || runs[0].Latency != 10*time.Millisecond {
		t.Fatalf("runs of a: %+v, %v", runs, err)
	}
}

// TestSchedulerBounds: with five monitors due and room for two, two run
// at a time, a look while both run starts nothing, each finished run
// frees one slot; a monitor that is running cannot be run again (RunNow
// says busy) nor claimed by another instance; shutting down stops the
// probes in flight and stores nothing for them.
func TestSchedulerBounds(t *testing.T) {
	h := newHarness(t, 2)
	for _, name := range []string{"m1", "m2", "m3", "m4", "m5"} {
		h.create(&store.Monitor{Name: name, Interval: 5, Enabled: true})
	}
	if n := h.start(); n != 2 {
		t.Fatalf("first look started %d, want 2", n)
	}
	running := []int64{<-h.started, <-h.started}
	if n := h.tick(t0.Add(time.Second)); n != 0 {
		t.Fatalf("look with no free slot started %d", n)
	}
	if _, _, err := h.sched.RunNow(context.Background(), running[0]); !errors.Is(err, ErrBusy) {
		t.Errorf("RunNow of a running monitor: %v, want ErrBusy", err)
	}
	other, err := h.st.ClaimDueMonitors(context.Background(), "two", t0.Add(time.Second), 10*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range other {
		if slices.Contains(running, m.ID) {
			t.Errorf("another instance claimed running monitor %d", m.ID)
		}
	}
	if len(other) != 3 {
		t.Fatalf("other instance claimed %d, want the 3 not running", len(other))
	}
	if got := h.finish(1); len(got) != 1 {
		t.Fatalf("finished %v", got)
	}
	// The other instance holds the rest: nothing is left to claim.
	if n := h.tick(t0.Add(2 * time.Second)); n != 0 {
		t.Fatalf("look started %d, want 0 (the rest leased by another instance)", n)
	}
	// Its leases expire (this instance's have not): one slot is free.
	if n := h.tick(t0.Add(30 * time.Second)); n != 1 {
		t.Fatalf("look after the leases expired started %d, want 1", n)
	}
	<-h.started
	h.stop()
	select {
	case id := <-h.stored:
		t.Errorf("run of monitor %d stored after shutdown", id)
	default:
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxIn != 2 || h.inflight != 0 {
		t.Errorf("at most %d probes at once, %d left running; want 2 and 0", h.maxIn, h.inflight)
	}
}
