package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sockmail/internal/store"
)

// Store is the part of *store.Store a Scheduler uses.
type Store interface {
	ClaimDueMonitors(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Monitor, error)
	ClaimMonitor(ctx context.Context, id int64, owner string, now time.Time, lease time.Duration) (*store.Monitor, error)
	FinishMonitorRun(ctx context.Context, owner string, run *store.MonitorRun) error
}

// ProbeFunc runs a monitor's test once and reports what it saw.
type ProbeFunc func(ctx context.Context, m store.Monitor) Result

// Defaults of Deps.
const (
	DefaultLease       = 10 * time.Minute
	DefaultConcurrency = 4
	DefaultPoll        = 15 * time.Second
	MaxConcurrency     = 64
)

// storeTimeout bounds the write of a run's outcome.
const storeTimeout = 30 * time.Second

// ErrBusy is returned by RunNow when the monitor is already running
// (here or on another instance).
var ErrBusy = errors.New("monitor: already running")

// Deps is what a Scheduler needs.
type Deps struct {
	Store Store
	Probe ProbeFunc
	// Owner names this instance in leases (for example outbox.DefaultOwner()).
	Owner string
	// Lease is how long a claimed monitor stays this instance's; it
	// must be longer than a run can take (DefaultLease if 0).
	Lease time.Duration
	// Concurrency bounds the runs at once (DefaultConcurrency if 0, at
	// most MaxConcurrency).
	Concurrency int
	// Poll is how often due monitors are looked for (DefaultPoll if 0);
	// unused when Ticks is set.
	Poll time.Duration
	// Ticks, if set, replaces the poll ticker: each value received makes
	// the scheduler look for due monitors (tests drive it with a fake
	// clock).
	Ticks <-chan time.Time
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// Logger logs claims that fail and runs that cannot be stored;
	// slog.Default() if nil.
	Logger *slog.Logger
	// Claimed, if set, is called after each look for due monitors with
	// how many were started (tests wait on it instead of sleeping).
	Claimed func(started int)
	// Finished, if set, is called when a run started by Run has ended
	// and freed its slot (tests wait on it).
	Finished func(monitorID int64)
	// AfterRun, if set, is called once a run is stored, when the state
	// changed or the monitor is still down (a repeat may be due), with
	// the monitor as claimed (its state before the run): alerts hang
	// here (alert.Worker.AfterRun). It runs before Finished.
	AfterRun func(ctx context.Context, m store.Monitor, run *store.MonitorRun)
}

// Scheduler runs due monitors. Create it with New.
type Scheduler struct {
	d Deps
	// mu guards running: the monitors with a run in this process. A run
	// that outlives its lease lets the store hand the monitor out again;
	// this keeps a second run of it from starting here.
	mu      sync.Mutex
	running map[int64]bool
}

// New checks d and returns a Scheduler.
func New(d Deps) (*Scheduler, error) {
	switch {
	case d.Store == nil || d.Probe == nil:
		return nil, errors.New("monitor: a scheduler needs a store and a probe")
	case d.Owner == "":
		return nil, errors.New("monitor: a scheduler needs an owner name")
	case d.Lease < 0 || d.Poll < 0 || d.Concurrency < 0 || d.Concurrency > MaxConcurrency:
		return nil, fmt.Errorf("monitor: lease %v, poll %v or concurrency %d out of range (concurrency at most %d)", d.Lease, d.Poll, d.Concurrency, MaxConcurrency)
	}
	if d.Lease == 0 {
		d.Lease = DefaultLease
	}
	if d.Concurrency == 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.Poll == 0 {
		d.Poll = DefaultPoll
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Scheduler{d: d, running: map[int64]bool{}}, nil
}

// Run looks for due monitors at each poll and runs them, at most
// Concurrency at once, until ctx ends; then it waits for the runs in
// flight (their probes see ctx end and stop), stores nothing for runs
// cut short (their leases expire and the monitors are due again) and
// returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	ticks := s.d.Ticks
	if ticks == nil {
		t := time.NewTicker(s.d.Poll)
		defer t.Stop()
		ticks = t.C
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.d.Concurrency)
	look := func() {
		free := s.d.Concurrency - len(slots)
		started := 0
		if free > 0 {
			ms, err := s.d.Store.ClaimDueMonitors(ctx, s.d.Owner, s.d.Now(), s.d.Lease, free)
			if err != nil && ctx.Err() == nil {
				s.d.Logger.Error("monitor claim", "err", err)
			}
			for _, m := range ms {
				if !s.start(m.ID) {
					s.d.Logger.Warn("monitor: a run outlived its lease and still runs here; leaving the monitor to it", "monitor", m.ID)
					continue
				}
				slots <- struct{}{}
				started++
				wg.Go(func() {
					defer func() {
						s.done(m.ID)
						<-slots
						if s.d.Finished != nil {
							s.d.Finished(m.ID)
						}
					}()
					if _, _, err := s.runClaimed(ctx, m); err != nil && ctx.Err() == nil {
						s.d.Logger.Error("monitor run", "monitor", m.ID, "err", err)
					}
				})
			}
		}
		if s.d.Claimed != nil {
			s.d.Claimed(started)
		}
	}
	look()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			look()
		}
	}
}

func (s *Scheduler) start(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[id] {
		return false
	}
	s.running[id] = true
	return true
}

func (s *Scheduler) done(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

// RunNow runs one monitor at once, due or not, and returns the stored
// run and its state. ErrBusy when it is running already; store.ErrNotFound
// when it does not exist.
func (s *Scheduler) RunNow(ctx context.Context, id int64) (*store.MonitorRun, State, error) {
	if !s.start(id) {
		return nil, State{}, fmt.Errorf("monitor %d: %w", id, ErrBusy)
	}
	defer s.done(id)
	m, err := s.d.Store.ClaimMonitor(ctx, id, s.d.Owner, s.d.Now(), s.d.Lease)
	if errors.Is(err, store.ErrLeaseLost) {
		return nil, State{}, fmt.Errorf("monitor %d: %w", id, ErrBusy)
	}
	if err != nil {
		return nil, State{}, fmt.Errorf("monitor: run %d now: %w", id, err)
	}
	return s.runClaimed(ctx, *m)
}

// runClaimed probes a monitor this scheduler holds the lease of, judges
// the result and stores the run.
func (s *Scheduler) runClaimed(ctx context.Context, m store.Monitor) (*store.MonitorRun, State, error) {
	res := s.d.Probe(ctx, m)
	if ctx.Err() != nil {
		return nil, State{}, fmt.Errorf("monitor %d: run cut short: %w", m.ID, ctx.Err())
	}
	st := Evaluate(ThresholdsOf(m), res)
	run := &store.MonitorRun{MonitorID: m.ID, Started: res.Started, Finished: res.Finished, State: st.State, Reason: st.Reason,
		Latency: res.Latency(), SendID: res.SendID, CheckID: res.CheckID, Arrival: res.Arrival}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := s.d.Store.FinishMonitorRun(sctx, s.d.Owner, run); err != nil {
		return nil, State{}, fmt.Errorf("monitor %d: store run: %w", m.ID, err)
	}
	if s.d.AfterRun != nil && (m.State != run.State || run.State == store.MonitorDown) {
		s.d.AfterRun(sctx, m, run)
	}
	return run, st, nil
}
