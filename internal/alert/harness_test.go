package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/crypt"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// testBox returns a box under a fixed test key: every box it returns
// opens what any other sealed.
func testBox(t *testing.T) *crypt.Box {
	t.Helper()
	b, err := crypt.New(bytes.Repeat([]byte{'k'}, crypt.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seal returns a webhook secret sealed as the handlers store it.
func seal(t *testing.T, secret string) []byte {
	t.Helper()
	b, err := testBox(t).Seal([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachBackend runs fn with a fresh SQLite store and a fresh
// PostgreSQL store, as parallel subtests.
func forEachBackend(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	open := func(t *testing.T, dsn string) *store.Store {
		st, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run(store.BackendSQLite, func(t *testing.T) {
		t.Parallel()
		fn(t, open(t, filepath.Join(t.TempDir(), "a.db")))
	})
	t.Run(store.BackendPostgres, func(t *testing.T) {
		t.Parallel()
		fn(t, open(t, testenv.Postgres(t)))
	})
}

// newMonitor stores a quit-after monitor (never run by these tests'
// schedulers) and returns it.
func newMonitor(t *testing.T, st *store.Store, name string) *store.Monitor {
	t.Helper()
	m := &store.Monitor{Name: name, Kind: store.MonitorQuitAfter, Target: "127.0.0.1", Rcpt: "a@example.test", Interval: 5, Created: t0}
	if err := st.CreateMonitor(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// setState stores a run of m in state at time at, as a scheduler would.
func setState(t *testing.T, st *store.Store, m *store.Monitor, state store.MonitorState, reason string, at time.Time) *store.MonitorRun {
	t.Helper()
	ctx := context.Background()
	if _, err := st.ClaimMonitor(ctx, m.ID, "test", at, time.Minute); err != nil {
		t.Fatal(err)
	}
	run := &store.MonitorRun{MonitorID: m.ID, Started: at, Finished: at.Add(time.Second), State: state, Reason: reason, Latency: time.Second}
	if err := st.FinishMonitorRun(ctx, "test", run); err != nil {
		t.Fatal(err)
	}
	return run
}

// received is one webhook request a receiver accepted as signed.
type received struct {
	payload Payload
	event   string
}

// receiver is an httptest server verifying webhook signatures (against
// the fake clock) and answering with the statuses it is given in turn
// (200 once they are used up).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	clock  *clock

	mu       sync.Mutex
	statuses []int
	got      []received
	requests int
	badSig   int
}

func newReceiver(t *testing.T, secret string, c *clock, statuses ...int) *receiver {
	r := &receiver{t: t, secret: secret, clock: c, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := Verify(r.secret, req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), body, r.clock.Now(), 0); err != nil {
		r.badSig++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if len(r.statuses) > 0 {
		code := r.statuses[0]
		r.statuses = r.statuses[1:]
		if code/100 != 2 {
			http.Error(w, "receiver is failing on purpose", code)
			return
		}
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("webhook body is not a payload: %v: %s", err, body)
	}
	r.got = append(r.got, received{payload: p, event: req.Header.Get(HeaderEvent)})
	w.WriteHeader(http.StatusNoContent)
}

// events returns the events received so far (signed ones, answered 2xx).
func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, g := range r.got {
		out = append(out, g.payload.Event)
	}
	return out
}

func (r *receiver) counts() (requests, badSig int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.badSig
}

// newWorker makes a Worker on st with the fake clock, no retry jitter.
func newWorker(t *testing.T, st *store.Store, c *clock, kicks *atomic.Int32) *Worker {
	t.Helper()
	w, err := New(Deps{Store: st, Opener: testBox(t), BaseURL: "https://sockmail.example", Owner: "test-worker", Now: c.Now, Rand: func() float64 { return 0 },
		KickOutbox: func() {
			if kicks != nil {
				kicks.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// alertsOf returns a monitor's alerts oldest first.
func alertsOf(t *testing.T, st *store.Store, id int64) []store.MonitorAlert {
	t.Helper()
	list, err := st.MonitorAlerts(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}
