package store

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"sockmail/smtp"
)

// chartRun is one run (and its send) of the chart tests.
type chartRun struct {
	at      time.Duration // after the range's start
	state   MonitorState
	connect time.Duration
	tls     time.Duration
	latency time.Duration
}

// nearestRank is the nearest-rank percentile p of vals, computed here the
// plain way to check the database's ranking.
func nearestRank(vals []time.Duration, p int) time.Duration {
	s := slices.Clone(vals)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100
	return s[k-1]
}

// TestMonitorAndServerCharts stores runs of a monitor with their sends
// at fixed times (the clock is the test's: every time is given), and
// checks both charts bucket by bucket: state counts, nearest-rank
// p50/p90/p99 of each phase computed independently, phases without time
// (no TLS) left out, runs outside the range, of another monitor, to
// another server or still running left out, empty buckets present; and
// that a bad range is refused. On both backends.
func TestMonitorAndServerCharts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		r := ChartRange{From: t0, Bucket: time.Hour, Buckets: 3}
		const server = "mx.example.test:2525"
		mon := &Monitor{Name: "chart", Kind: MonitorQuitAfter, Target: "mx.example.test", Rcpt: "a@example.test", Interval: 5, Enabled: true, Created: t0.Add(-time.Hour)}
		other := &Monitor{Name: "other", Kind: MonitorQuitAfter, Target: "mx.example.test", Rcpt: "a@example.test", Interval: 5, Enabled: true, Created: t0.Add(-time.Hour)}
		for _, m := range []*Monitor{mon, other} {
			if err := s.CreateMonitor(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		ms := time.Millisecond
		// Bucket 0: ten runs in shuffled order; bucket 1: none; bucket 2:
		// one. Two more fall just outside the range.
		runs := []chartRun{
			{7 * time.Minute, MonitorUp, 7 * ms, 0, 700 * ms},
			{1 * time.Minute, MonitorUp, 3 * ms, 0, 100 * ms},
			{2 * time.Minute, MonitorDown, 10 * ms, 0, 1000 * ms},
			{3 * time.Minute, MonitorUp, 1 * ms, 0, 300 * ms},
			{4 * time.Minute, MonitorDegraded, 9 * ms, 0, 900 * ms},
			{5 * time.Minute, MonitorUp, 2 * ms, 0, 200 * ms},
			{6 * time.Minute, MonitorUp, 5 * ms, 0, 500 * ms},
			{8 * time.Minute, MonitorUp, 4 * ms, 0, 400 * ms},
			{9 * time.Minute, MonitorUp, 8 * ms, 0, 800 * ms},
			{59*time.Minute + 59*time.Second, MonitorUp, 6 * ms, 0, 600 * ms},
			{2*time.Hour + 30*time.Minute, MonitorDown, 11 * ms, 4 * ms, 1100 * ms},
			{-time.Microsecond, MonitorDown, 99 * ms, 0, 9900 * ms},
			{3 * time.Hour, MonitorDown, 99 * ms, 0, 9900 * ms},
		}
		status := map[MonitorState]smtp.Status{MonitorUp: smtp.StatusSent, MonitorDegraded: smtp.StatusPartial, MonitorDown: smtp.StatusPermFail}
		store := func(m *Monitor, srv string, c chartRun) {
			t.Helper()
			at := t0.Add(c.at)
			fin := at.Add(c.latency)
			snd := &Send{CreatedAt: at, FinishedAt: &fin, Source: "monitor", Server: srv, TLSMode: "none", MailFrom: "m@example.test",
				Rcpts: []string{"a@example.test"}, Status: status[c.state],
				Timings: &smtp.Timings{Connect: c.connect, TLS: c.tls, Total: c.latency}}
			if err := s.CreateSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ClaimMonitor(ctx, m.ID, "test", at, time.Minute); err != nil {
				t.Fatal(err)
			}
			run := &MonitorRun{MonitorID: m.ID, Started: at, Finished: fin, State: c.state, Latency: c.latency, SendID: &snd.ID}
			if c.state == MonitorUp { // arrived, after half the run
				a := c.latency / 2
				run.Arrival = &a
			}
			if err := s.FinishMonitorRun(ctx, "test", run); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range runs {
			store(mon, server, c)
		}
		// Another monitor, to another server, in the range: in neither chart.
		store(other, "other.example.test:25", chartRun{30 * time.Minute, MonitorDown, 500 * ms, 0, 5000 * ms})
		// A send to the server still running: no state, no phase.
		if err := s.CreateSend(ctx, &Send{CreatedAt: t0.Add(10 * time.Minute), Source: "web", Server: server, Rcpts: []string{"a@example.test"}}); err != nil {
			t.Fatal(err)
		}

		// What the charts must hold, computed from runs.
		type want struct {
			up, degraded, down int
			phases             map[ChartPhase]Percentiles
		}
		wants := make([]want, r.Buckets)
		vals := make([]map[ChartPhase][]time.Duration, r.Buckets)
		arrivals := make([][]time.Duration, r.Buckets) // the monitor's chart only
		for _, c := range runs {
			if c.at < 0 || c.at >= 3*time.Hour {
				continue
			}
			b := int(c.at / time.Hour)
			switch c.state {
			case MonitorUp:
				wants[b].up++
			case MonitorDegraded:
				wants[b].degraded++
			case MonitorDown:
				wants[b].down++
			}
			if vals[b] == nil {
				vals[b] = map[ChartPhase][]time.Duration{}
			}
			vals[b][PhaseConnect] = append(vals[b][PhaseConnect], c.connect)
			vals[b][PhaseTotal] = append(vals[b][PhaseTotal], c.latency)
			if c.tls > 0 {
				vals[b][PhaseTLS] = append(vals[b][PhaseTLS], c.tls)
			}
			if c.state == MonitorUp {
				arrivals[b] = append(arrivals[b], c.latency/2)
			}
		}
		for b := range wants {
			wants[b].phases = map[ChartPhase]Percentiles{}
			for p, v := range vals[b] {
				wants[b].phases[p] = Percentiles{N: len(v), P50: nearestRank(v, 50), P90: nearestRank(v, 90), P99: nearestRank(v, 99)}
			}
		}
		// The hand-checked numbers of bucket 0, so that a wrong helper
		// cannot hide a wrong query.
		if got := wants[0].phases[PhaseConnect]; got != (Percentiles{N: 10, P50: 5 * ms, P90: 9 * ms, P99: 10 * ms}) {
			t.Fatalf("test's own expectation %+v", got)
		}

		check := func(name string, ch *Chart, err error, arrival bool) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(ch.Buckets) != r.Buckets {
				t.Fatalf("%s: %d buckets, want %d", name, len(ch.Buckets), r.Buckets)
			}
			wantPhases := []ChartPhase{PhaseConnect, PhaseTLS, PhaseTotal}
			if arrival {
				wantPhases = append(wantPhases, PhaseArrival)
			}
			if !reflect.DeepEqual(ch.Phases, wantPhases) {
				t.Errorf("%s: phases %v, want %v", name, ch.Phases, wantPhases)
			}
			for b, bk := range ch.Buckets {
				w := wants[b]
				if !bk.Start.Equal(t0.Add(time.Duration(b) * time.Hour)) {
					t.Errorf("%s: bucket %d starts %v", name, b, bk.Start)
				}
				if bk.Up != w.up || bk.Degraded != w.degraded || bk.Down != w.down {
					t.Errorf("%s: bucket %d: %d up, %d degraded, %d down; want %d, %d, %d", name, b, bk.Up, bk.Degraded, bk.Down, w.up, w.degraded, w.down)
				}
				wp := maps.Clone(w.phases)
				if v := arrivals[b]; arrival && len(v) > 0 {
					wp[PhaseArrival] = Percentiles{N: len(v), P50: nearestRank(v, 50), P90: nearestRank(v, 90), P99: nearestRank(v, 99)}
				}
				if !reflect.DeepEqual(bk.Phases, wp) {
					t.Errorf("%s: bucket %d phases\n got %+v\nwant %+v", name, b, bk.Phases, wp)
				}
			}
		}
		ch, err := s.MonitorChart(ctx, mon.ID, r)
		check("monitor", ch, err, true)
		ch, err = s.ServerChart(ctx, server, r)
		check("server", ch, err, false)

		servers, err := s.ChartServers(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 2 || servers[0].Server != server || servers[0].Sends != 13 || servers[1].Server != "other.example.test:25" {
			t.Errorf("servers since t0: %+v", servers)
		}

		for _, bad := range []ChartRange{{From: t0, Bucket: time.Second, Buckets: 3}, {From: t0, Bucket: time.Hour}, {Bucket: time.Hour, Buckets: 3}, {From: t0, Bucket: time.Hour, Buckets: MaxChartBuckets + 1}} {
			if _, err := s.MonitorChart(ctx, mon.ID, bad); !errors.Is(err, ErrInvalidChart) {
				t.Errorf("range %+v: %v, want ErrInvalidChart", bad, err)
			}
		}
	})
}
