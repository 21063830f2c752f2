package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"sockmail/smtp"
)

// ChartPhase names one latency series of a chart.
type ChartPhase string

// Chart phases: the stretches of smtp.Timings a chart draws, the whole
// time, and the end-to-end arrival of a monitor that confirms it.
const (
	PhaseConnect    ChartPhase = "connect"
	PhaseTLS        ChartPhase = "tls"
	PhaseAuth       ChartPhase = "auth"
	PhaseFinalReply ChartPhase = "final_reply"
	// PhaseTotal is a monitor run's time (monitor_runs.latency_ms) or a
	// send's total time.
	PhaseTotal ChartPhase = "total"
	// PhaseArrival is a monitor run's end-to-end delivery time
	// (monitor_runs.arrival_ms, when the database has that column).
	PhaseArrival ChartPhase = "arrival"
)

// ChartPhases lists the phases in the order charts draw them.
func ChartPhases() []ChartPhase {
	return []ChartPhase{PhaseConnect, PhaseTLS, PhaseAuth, PhaseFinalReply, PhaseTotal, PhaseArrival}
}

// Chart limits: a chart has 1 to MaxChartBuckets buckets of at least
// MinChartBucket.
const (
	MaxChartBuckets = 500
	MinChartBucket  = time.Minute
)

// ChartRange is the time a chart covers: Buckets buckets of Bucket each,
// starting at From.
type ChartRange struct {
	From    time.Time
	Bucket  time.Duration
	Buckets int
}

// To is the end of the range (exclusive).
func (r ChartRange) To() time.Time { return r.From.Add(time.Duration(r.Buckets) * r.Bucket) }

func (r ChartRange) validate() error {
	if r.Buckets < 1 || r.Buckets > MaxChartBuckets || r.Bucket < MinChartBucket || r.From.IsZero() {
		return fmt.Errorf("chart range of %d buckets of %s from %v: want 1 to %d buckets of at least %s",
			r.Buckets, r.Bucket, r.From, MaxChartBuckets, MinChartBucket)
	}
	return nil
}

// Percentiles are nearest-rank percentiles of the values in one bucket:
// the smallest value with at least p% of the values at or below it.
type Percentiles struct {
	N             int
	P50, P90, P99 time.Duration
}

// ChartBucket is one stretch of a chart: how many runs (or sends) ended
// in each state, and the percentiles of each phase that had values.
type ChartBucket struct {
	Start              time.Time
	Up, Degraded, Down int
	Phases             map[ChartPhase]Percentiles
}

// Chart is a chart's data: one ChartBucket per bucket of its range, in
// time order, empty buckets included.
type Chart struct {
	Range   ChartRange
	Buckets []ChartBucket
	// Phases are the phases that have a value in some bucket, in
	// ChartPhases order.
	Phases []ChartPhase
}

// ErrInvalidChart is wrapped when a chart's range is out of bounds.
var ErrInvalidChart = errors.New("store: invalid chart range")

// timingExpr is the SQL expression of a send's timing field (µs) from
// its timings JSON, NULL for a send without timings (metrics).
func (s *Store) timingExpr(field string) string {
	if s.backend == BackendPostgres {
		return `CASE WHEN s.timings = '' THEN NULL ELSE (s.timings::jsonb ->> '` + field + `')::bigint END`
	}
	return `CASE WHEN s.timings = '' THEN NULL ELSE json_extract(s.timings, '$.` + field + `') END`
}

// phaseField is a chart phase drawn from a send's timings and its field
// in the stored JSON (storedTimings).
type phaseField struct {
	phase ChartPhase
	field string
}

// sendPhaseFields lists the phases drawn from a send's timings.
func sendPhaseFields() []phaseField {
	return []phaseField{{PhaseConnect, "connect"}, {PhaseTLS, "tls"}, {PhaseAuth, "auth"}, {PhaseFinalReply, "final_reply"}}
}

// MonitorChart aggregates a monitor's runs started in r: per bucket, the
// runs in each state and the percentiles of the phases of their sends
// (connect, TLS, AUTH, final reply), of the run's time and of the
// end-to-end arrival of runs that confirmed it. A phase that took no
// time (no TLS, no AUTH) is left out of its percentiles. One indexed
// scan of the runs in the range (migration 0018) with their sends'
// timings; the ranking is done here, as sorting in SQL window functions
// took seconds for a month of a monitor run every minute
// (BenchmarkCharts).
func (s *Store) MonitorChart(ctx context.Context, monitorID int64, r ChartRange) (*Chart, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: %w: %w", monitorID, ErrInvalidChart, err)
	}
	from, to := micros(r.From), micros(r.To())
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT r.started_at, r.state, r.latency_ms, r.arrival_ms, COALESCE(s.timings, '')
		FROM monitor_runs r LEFT JOIN sends s ON s.id = r.send_id
		WHERE r.monitor_id = ? AND r.started_at >= ? AND r.started_at < ?`), monitorID, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: %w", monitorID, err)
	}
	defer rows.Close()
	acc := newChartAcc(r)
	for rows.Next() {
		var at, latencyMS int64
		var arrivalMS *int64
		var state, timings string
		if err := rows.Scan(&at, &state, &latencyMS, &arrivalMS, &timings); err != nil {
			return nil, fmt.Errorf("store: chart of monitor %d: %w", monitorID, err)
		}
		b := acc.bucket(at)
		if b < 0 {
			continue
		}
		acc.state(b, MonitorState(state))
		if err := acc.timings(b, timings, false); err != nil {
			return nil, fmt.Errorf("store: chart of monitor %d: %w", monitorID, err)
		}
		acc.add(b, PhaseTotal, time.Duration(latencyMS)*time.Millisecond)
		if arrivalMS != nil {
			acc.add(b, PhaseArrival, time.Duration(*arrivalMS)*time.Millisecond)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: %w", monitorID, err)
	}
	return acc.chart(), nil
}

// ServerChart aggregates the finished sends to server (host:port, as the
// history shows it) created in r, as MonitorChart does a monitor's runs:
// a send that was sent (or stopped early as asked) counts as up, partly
// sent as degraded, any other outcome as down; the phases are the send's
// connect, TLS, AUTH, final reply and total time. One indexed scan
// (migration 0018: sends by server and time).
func (s *Store) ServerChart(ctx context.Context, server string, r ChartRange) (*Chart, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("store: chart of server %q: %w: %w", server, ErrInvalidChart, err)
	}
	from, to := micros(r.From), micros(r.To())
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT created_at, status, timings FROM sends
		WHERE server = ? AND created_at >= ? AND created_at < ? AND status <> ?`),
		encText(server), from, to, string(StatusRunning))
	if err != nil {
		return nil, fmt.Errorf("store: chart of server %q: %w", server, err)
	}
	defer rows.Close()
	acc := newChartAcc(r)
	for rows.Next() {
		var at int64
		var status, timings string
		if err := rows.Scan(&at, &status, &timings); err != nil {
			return nil, fmt.Errorf("store: chart of server %q: %w", server, err)
		}
		b := acc.bucket(at)
		if b < 0 {
			continue
		}
		acc.state(b, SendState(smtp.Status(decText(status))))
		if err := acc.timings(b, timings, true); err != nil {
			return nil, fmt.Errorf("store: chart of server %q: %w", server, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: chart of server %q: %w", server, err)
	}
	return acc.chart(), nil
}

// chartAcc collects a chart's values bucket by bucket, then ranks them.
type chartAcc struct {
	ch       *Chart
	fromUS   int64
	bucketUS int64
	vals     []map[ChartPhase][]time.Duration
}

func newChartAcc(r ChartRange) *chartAcc {
	return &chartAcc{ch: newChart(r), fromUS: micros(r.From), bucketUS: r.Bucket.Microseconds(),
		vals: make([]map[ChartPhase][]time.Duration, r.Buckets)}
}

// bucket is the index of the bucket holding the time atUS, -1 outside.
func (a *chartAcc) bucket(atUS int64) int {
	if atUS < a.fromUS {
		return -1
	}
	b := (atUS - a.fromUS) / a.bucketUS
	if b >= int64(len(a.vals)) {
		return -1
	}
	return int(b)
}

// state counts one run (or send) in its state.
func (a *chartAcc) state(b int, st MonitorState) {
	bk := &a.ch.Buckets[b]
	switch st {
	case MonitorUp:
		bk.Up++
	case MonitorDegraded:
		bk.Degraded++
	case MonitorDown:
		bk.Down++
	}
}

// add records a phase's value; a value that is not positive (the phase
// did not happen) is left out.
func (a *chartAcc) add(b int, p ChartPhase, d time.Duration) {
	if d <= 0 {
		return
	}
	if a.vals[b] == nil {
		a.vals[b] = map[ChartPhase][]time.Duration{}
	}
	a.vals[b][p] = append(a.vals[b][p], d)
}

// timings adds the phases of a send's stored timings ("" for none), and
// its total when withTotal.
func (a *chartAcc) timings(b int, stored string, withTotal bool) error {
	t, err := decTimings(stored)
	if err != nil || t == nil {
		return err
	}
	a.add(b, PhaseConnect, t.Connect)
	a.add(b, PhaseTLS, t.TLS)
	a.add(b, PhaseAuth, t.Auth)
	a.add(b, PhaseFinalReply, t.FinalReply)
	if withTotal {
		a.add(b, PhaseTotal, t.Total)
	}
	return nil
}

// chart ranks the values: per bucket and phase the nearest-rank p50, p90
// and p99 (the value at rank ceil(p*n/100)).
func (a *chartAcc) chart() *Chart {
	seen := map[ChartPhase]bool{}
	for b, m := range a.vals {
		for p, v := range m {
			slices.Sort(v)
			n := len(v)
			rank := func(pc int) time.Duration { return v[(pc*n+99)/100-1] }
			a.ch.Buckets[b].Phases[p] = Percentiles{N: n, P50: rank(50), P90: rank(90), P99: rank(99)}
			seen[p] = true
		}
	}
	for _, p := range ChartPhases() {
		if seen[p] {
			a.ch.Phases = append(a.ch.Phases, p)
		}
	}
	return a.ch
}

// SendState is the chart state of a send's outcome: sent and stopped
// early (as asked) are up, partly sent is degraded, the rest is down.
func SendState(st smtp.Status) MonitorState {
	switch st {
	case smtp.StatusSent, smtp.StatusStopped:
		return MonitorUp
	case smtp.StatusPartial:
		return MonitorDegraded
	}
	return MonitorDown
}

func newChart(r ChartRange) *Chart {
	ch := &Chart{Range: r, Buckets: make([]ChartBucket, r.Buckets)}
	for i := range ch.Buckets {
		ch.Buckets[i] = ChartBucket{Start: r.From.Add(time.Duration(i) * r.Bucket), Phases: map[ChartPhase]Percentiles{}}
	}
	return ch
}

// ChartServer is a server the history has sends to, with how many.
type ChartServer struct {
	Server string
	Sends  int
	Last   time.Time
}

// MaxChartServers caps ChartServers.
const MaxChartServers = 200

// ChartServers lists the servers of the sends created since since, the
// busiest first (at most MaxChartServers).
func (s *Store) ChartServers(ctx context.Context, since time.Time) ([]ChartServer, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT server, COUNT(*), MAX(created_at) FROM sends
		WHERE created_at >= ? AND server <> '' GROUP BY server ORDER BY 2 DESC, 1 LIMIT ?`), micros(since), MaxChartServers)
	if err != nil {
		return nil, fmt.Errorf("store: chart servers: %w", err)
	}
	defer rows.Close()
	var out []ChartServer
	for rows.Next() {
		var c ChartServer
		var last int64
		if err := rows.Scan(&c.Server, &c.Sends, &last); err != nil {
			return nil, fmt.Errorf("store: chart servers: %w", err)
		}
		c.Server, c.Last = decText(c.Server), fromMicros(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: chart servers: %w", err)
	}
	return out, nil
}
