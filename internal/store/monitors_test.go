package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMonitors stores monitors, rejects bad settings, claims due ones
// under a lease (a second owner gets none), finishes runs (state since
// moves only on a change, next run after the interval), lists runs and
// deletes a monitor with its runs, on both backends.
func TestMonitors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		bad := []struct {
			name string
			m    Monitor
		}{
			{"no name", Monitor{Kind: MonitorCheck, Target: "a.test", Interval: 5}},
			{"kind", Monitor{Name: "x", Kind: "ping", Target: "a.test", Interval: 5}},
			{"interval 0", Monitor{Name: "x", Kind: MonitorCheck, Target: "a.test"}},
			{"interval too long", Monitor{Name: "x", Kind: MonitorCheck, Target: "a.test", Interval: MaxMonitorInterval + 1}},
			{"no target", Monitor{Name: "x", Kind: MonitorQuitAfter, Rcpt: "a@b.test", Interval: 5}},
			{"no rcpt", Monitor{Name: "x", Kind: MonitorSend, Interval: 5}},
			{"slow", Monitor{Name: "x", Kind: MonitorCheck, Target: "a.test", Interval: 5, SlowMS: -1}},
			{"cert days", Monitor{Name: "x", Kind: MonitorCheck, Target: "a.test", Interval: 5, CertDays: 400}},
		}
		for _, tt := range bad {
			if err := s.CreateMonitor(ctx, &tt.m); !errors.Is(err, ErrInvalidMonitor) {
				t.Errorf("%s: %v, want ErrInvalidMonitor", tt.name, err)
			}
		}
		a := &Monitor{Name: "postfix", Kind: MonitorQuitAfter, Target: "127.0.0.1", Rcpt: "a@example.test", Options: MonitorOptions{Port: 2525}, Interval: 5, Enabled: true, SlowMS: 500, Created: t0}
		b := &Monitor{Name: "later", Kind: MonitorCheck, Target: "b.test", Interval: 10, Enabled: true, Created: t0, NextRun: t0.Add(time.Hour)}
		off := &Monitor{Name: "off", Kind: MonitorCheck, Target: "c.test", Interval: 10, Created: t0}
		for _, m := range []*Monitor{a, b, off} {
			if err := s.CreateMonitor(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateMonitor(ctx, &Monitor{Name: "postfix", Kind: MonitorCheck, Target: "d.test", Interval: 5}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate name: %v, want ErrExists", err)
		}
		got, err := s.Monitor(ctx, a.ID)
		if err != nil || got.State != MonitorUnknown || got.Options.Port != 2525 || !got.NextRun.Equal(t0) || got.Name != "postfix" || !got.Enabled {
			t.Fatalf("monitor %+v, %v", got, err)
		}
		claimed, err := s.ClaimDueMonitors(ctx, "one", t0, time.Minute, 10)
		if err != nil || len(claimed) != 1 || claimed[0].ID != a.ID {
			t.Fatalf("claim at t0: %+v, %v; want only %d", claimed, err, a.ID)
		}
		if again, err := s.ClaimDueMonitors(ctx, "two", t0.Add(30*time.Second), time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("claim under lease: %+v, %v; want none", again, err)
		}
		if _, err := s.ClaimMonitor(ctx, a.ID, "two", t0.Add(30*time.Second), time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("run now under another's lease: %v, want ErrLeaseLost", err)
		}
		run := &MonitorRun{MonitorID: a.ID, Started: t0, Finished: t0.Add(time.Second), State: MonitorUp, Latency: 120 * time.Millisecond}
		if err := s.FinishMonitorRun(ctx, "two", run); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("finish by a non-owner: %v, want ErrLeaseLost", err)
		}
		if err := s.FinishMonitorRun(ctx, "one", run); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Monitor(ctx, a.ID)
		if got.State != MonitorUp || !got.StateSince.Equal(t0.Add(time.Second)) || !got.NextRun.Equal(t0.Add(5*time.Minute)) || !got.LastRun.Equal(t0) {
			t.Fatalf("after an up run: %+v", got)
		}
		// The same state again keeps since; a change moves it.
		sendID := int64(42)
		steps := []struct {
			at     time.Time
			state  MonitorState
			reason string
			since  time.Time
		}{
			{t0.Add(5 * time.Minute), MonitorUp, "", t0.Add(time.Second)},
			{t0.Add(10 * time.Minute), MonitorDown, "connection refused", t0.Add(10*time.Minute + time.Second)},
			{t0.Add(15 * time.Minute), MonitorDown, "connection refused", t0.Add(10*time.Minute + time.Second)},
		}
		for _, st := range steps {
			if c, err := s.ClaimDueMonitors(ctx, "one", st.at, time.Minute, 10); err != nil || len(c) != 1 {
				t.Fatalf("claim at %v: %+v, %v", st.at, c, err)
			}
			r := &MonitorRun{MonitorID: a.ID, Started: st.at, Finished: st.at.Add(time.Second), State: st.state, Reason: st.reason, SendID: &sendID}
			if err := s.FinishMonitorRun(ctx, "one", r); err != nil {
				t.Fatal(err)
			}
			got, _ = s.Monitor(ctx, a.ID)
			if got.State != st.state || got.Reason != st.reason || !got.StateSince.Equal(st.since) {
				t.Errorf("at %v: state %s %q since %v, want %s %q since %v", st.at, got.State, got.Reason, got.StateSince, st.state, st.reason, st.since)
			}
		}
		// A changed interval counts from the last run.
		got.Interval = 60
		if err := s.UpdateMonitor(ctx, got, t0.Add(16*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Monitor(ctx, a.ID)
		if !got.NextRun.Equal(t0.Add(15*time.Minute + time.Hour)) {
			t.Errorf("next run after interval change %v, want %v", got.NextRun, t0.Add(75*time.Minute))
		}
		runs, err := s.MonitorRuns(ctx, a.ID, 2, 0)
		if err != nil || len(runs) != 2 || runs[0].Reason != "connection refused" || runs[0].SendID == nil || *runs[0].SendID != 42 || runs[0].CheckID != nil {
			t.Fatalf("runs %+v, %v", runs, err)
		}
		older, err := s.MonitorRuns(ctx, a.ID, 10, runs[1].ID)
		if err != nil || len(older) != 2 || older[1].Latency != 120*time.Millisecond {
			t.Fatalf("older runs %+v, %v", older, err)
		}
		list, err := s.ListMonitors(ctx)
		if err != nil || len(list) != 3 || list[0].Name != "later" || list[2].Name != "postfix" {
			t.Fatalf("list %+v, %v", list, err)
		}
		if err := s.DeleteMonitor(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMonitor(ctx, a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if runs, _ := s.MonitorRuns(ctx, a.ID, 0, 0); len(runs) != 0 {
			t.Errorf("runs of a deleted monitor: %d", len(runs))
		}
	})
}

// TestMonitorClaimsAcrossInstances: two instances (two Stores on one
// database) claim due monitors at once, several times each; every
// monitor is claimed by exactly one of them.
func TestMonitorClaimsAcrossInstances(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var stores [2]*Store
		for i := range stores {
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			stores[i] = s
		}
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		const n = 30
		for i := range n {
			m := &Monitor{Name: fmt.Sprint("m", i), Kind: MonitorCheck, Target: "a.test", Interval: 5, Enabled: true, Created: t0}
			if err := stores[0].CreateMonitor(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		claims := map[int64]int{}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				s := stores[i%2]
				for range 5 {
					ms, err := s.ClaimDueMonitors(ctx, fmt.Sprint("owner", i), t0, time.Minute, 3)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, m := range ms {
						claims[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for id, c := range claims {
			if c != 1 {
				t.Errorf("monitor %d claimed %d times", id, c)
			}
		}
		if len(claims) != n {
			t.Errorf("%d monitors claimed, want all %d (4 owners × 5 claims × 3 ≥ %d)", len(claims), n, n)
		}
	})
}

// TestMonitorArrivalAndIMAP keeps a run's arrival time (nil when the run
// did not look), stores a monitor's IMAP mailbox with its sealed password
// and arrival threshold, and refuses bad IMAP settings, on both backends.
func TestMonitorArrivalAndIMAP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
		im := &MonitorIMAP{Host: "127.0.0.1", Port: 2143, User: "monitor@example.test", PasswordEnc: []byte{1, 2, 3, 0, 255}}
		m := &Monitor{Name: "imap", Kind: MonitorSend, Rcpt: "monitor@example.test", Interval: 5, Enabled: true, Created: t0,
			Options: MonitorOptions{IMAP: im, ArrivalLateMS: 30000}}
		if err := s.CreateMonitor(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := s.Monitor(ctx, m.ID)
		if err != nil || got.Options.IMAP == nil || got.Options.IMAP.User != im.User || got.Options.IMAP.Port != 2143 ||
			string(got.Options.IMAP.PasswordEnc) != string(im.PasswordEnc) || got.Options.ArrivalLateMS != 30000 {
			t.Fatalf("monitor with IMAP %+v (imap %+v), %v", got, got.Options.IMAP, err)
		}
		bad := []struct {
			name string
			o    MonitorOptions
			kind MonitorKind
		}{
			{"imap on quit-after", MonitorOptions{IMAP: &MonitorIMAP{Host: "h", User: "u"}}, MonitorQuitAfter},
			{"imap no host", MonitorOptions{IMAP: &MonitorIMAP{User: "u"}}, MonitorSend},
			{"imap no user", MonitorOptions{IMAP: &MonitorIMAP{Host: "h"}}, MonitorSend},
			{"imap port", MonitorOptions{IMAP: &MonitorIMAP{Host: "h", User: "u", Port: 70000}}, MonitorSend},
			{"arrival late", MonitorOptions{ArrivalLateMS: -1}, MonitorSend},
		}
		for _, tt := range bad {
			b := &Monitor{Name: "bad", Kind: tt.kind, Target: "h.test", Rcpt: "a@b.test", Interval: 5, Options: tt.o}
			if err := s.CreateMonitor(ctx, b); !errors.Is(err, ErrInvalidMonitor) {
				t.Errorf("%s: %v, want ErrInvalidMonitor", tt.name, err)
			}
		}
		arrival := 1234567 * time.Microsecond
		for i, a := range []*time.Duration{&arrival, nil} {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			if c, err := s.ClaimDueMonitors(ctx, "one", at, time.Minute, 10); err != nil || len(c) != 1 {
				t.Fatalf("claim %d: %+v, %v", i, c, err)
			}
			r := &MonitorRun{MonitorID: m.ID, Started: at, Finished: at.Add(2 * time.Second), State: MonitorUp, Arrival: a}
			if err := s.FinishMonitorRun(ctx, "one", r); err != nil {
				t.Fatal(err)
			}
		}
		runs, err := s.MonitorRuns(ctx, m.ID, 10, 0)
		if err != nil || len(runs) != 2 {
			t.Fatalf("runs %+v, %v", runs, err)
		}
		if runs[0].Arrival != nil {
			t.Errorf("run without arrival: %v, want nil", *runs[0].Arrival)
		}
		if runs[1].Arrival == nil || *runs[1].Arrival != 1234*time.Millisecond {
			t.Errorf("run arrival %v, want 1.234s", runs[1].Arrival)
		}
	})
}
