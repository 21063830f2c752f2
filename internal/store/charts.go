package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// its timings JSON, NULL for a send without timings.
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
// (connect, TLS, AUTH, final reply), of the run's time and, when the
// database records it, of the end-to-end arrival. A phase that took no
// time (no TLS, no AUTH) is left out of its percentiles. The database
// does the bucketing and ranking: a chart reads at most three rows per
// bucket and phase, however many runs there are.
func (s *Store) MonitorChart(ctx context.Context, monitorID int64, r ChartRange) (*Chart, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: %w: %w", monitorID, ErrInvalidChart, err)
	}
	from, to, width := micros(r.From), micros(r.To()), int64(r.Bucket/time.Microsecond)
	ch := newChart(r)
	// States.
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT (started_at - ?) / ?, state, COUNT(*) FROM monitor_runs
		WHERE monitor_id = ? AND started_at >= ? AND started_at < ? GROUP BY 1, 2`), from, width, monitorID, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: states: %w", monitorID, err)
	}
	if err := ch.scanStates(rows, func(state string) MonitorState { return MonitorState(state) }); err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: states: %w", monitorID, err)
	}
	// Phases: one SELECT per phase, unpivoted, then ranked.
	where := ` FROM monitor_runs r WHERE r.monitor_id = ? AND r.started_at >= ? AND r.started_at < ?`
	joined := ` FROM monitor_runs r JOIN sends s ON s.id = r.send_id WHERE r.monitor_id = ? AND r.started_at >= ? AND r.started_at < ?`
	var parts []string
	var args []any
	for _, p := range sendPhaseFields() {
		parts = append(parts, `SELECT r.started_at AS t, '`+string(p.phase)+`' AS phase, `+s.timingExpr(p.field)+` AS v`+joined)
		args = append(args, monitorID, from, to)
	}
	parts = append(parts, `SELECT r.started_at, '`+string(PhaseTotal)+`', r.latency_ms * 1000`+where)
	args = append(args, monitorID, from, to)
	parts = append(parts, `SELECT r.started_at, '`+string(PhaseArrival)+`', r.arrival_ms * 1000`+where)
	args = append(args, monitorID, from, to)
	if err := s.rankPhases(ctx, ch, strings.Join(parts, " UNION ALL "), args, from, width); err != nil {
		return nil, fmt.Errorf("store: chart of monitor %d: %w", monitorID, err)
	}
	return ch, nil
}

// ServerChart aggregates the finished sends to server (host:port, as the
// history shows it) created in r, as MonitorChart does a monitor's runs:
// a send that was sent (or stopped early as asked) counts as up, partly
// sent as degraded, any other outcome as down; the phases are the send's
// connect, TLS, AUTH, final reply and total time.
func (s *Store) ServerChart(ctx context.Context, server string, r ChartRange) (*Chart, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("store: chart of server %q: %w: %w", server, ErrInvalidChart, err)
	}
	from, to, width := micros(r.From), micros(r.To()), int64(r.Bucket/time.Microsecond)
	enc := encText(server)
	ch := newChart(r)
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT (created_at - ?) / ?, status, COUNT(*) FROM sends
		WHERE server = ? AND created_at >= ? AND created_at < ? AND status <> ? GROUP BY 1, 2`),
		from, width, enc, from, to, string(StatusRunning))
	if err != nil {
		return nil, fmt.Errorf("store: chart of server %q: states: %w", server, err)
	}
	if err := ch.scanStates(rows, func(status string) MonitorState { return SendState(smtp.Status(decText(status))) }); err != nil {
		return nil, fmt.Errorf("store: chart of server %q: states: %w", server, err)
	}
	where := ` FROM sends s WHERE s.server = ? AND s.created_at >= ? AND s.created_at < ?`
	var parts []string
	var args []any
	for _, p := range append(sendPhaseFields(), phaseField{PhaseTotal, "total"}) {
		parts = append(parts, `SELECT s.created_at AS t, '`+string(p.phase)+`' AS phase, `+s.timingExpr(p.field)+` AS v`+where)
		args = append(args, enc, from, to)
	}
	if err := s.rankPhases(ctx, ch, strings.Join(parts, " UNION ALL "), args, from, width); err != nil {
		return nil, fmt.Errorf("store: chart of server %q: %w", server, err)
	}
	return ch, nil
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

// scanStates adds the (bucket, state, count) rows to the chart's buckets.
func (ch *Chart) scanStates(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}, state func(string) MonitorState) error {
	defer rows.Close()
	for rows.Next() {
		var b, n int64
		var st string
		if err := rows.Scan(&b, &st, &n); err != nil {
			return err
		}
		if b < 0 || b >= int64(len(ch.Buckets)) {
			continue
		}
		bk := &ch.Buckets[b]
		switch state(st) {
		case MonitorUp:
			bk.Up += int(n)
		case MonitorDegraded:
			bk.Degraded += int(n)
		case MonitorDown:
			bk.Down += int(n)
		}
	}
	return rows.Err()
}

// rankPhases runs values (a query of t, phase, v rows) through the
// database's window functions: per bucket and phase, it ranks the values
// and keeps only the rows at the nearest ranks of p50, p90 and p99
// (rank ceil(p*n/100)), and stores them in ch.
func (s *Store) rankPhases(ctx context.Context, ch *Chart, values string, args []any, from, width int64) error {
	query := `WITH v AS (SELECT (t - ?) / ? AS b, phase, v FROM (` + values + `) x WHERE v > 0),
		ranked AS (SELECT b, phase, v, ROW_NUMBER() OVER (PARTITION BY b, phase ORDER BY v) AS rn,
			COUNT(*) OVER (PARTITION BY b, phase) AS n FROM v)
		SELECT b, phase, n, rn, v FROM ranked
		WHERE rn = (50 * n + 99) / 100 OR rn = (90 * n + 99) / 100 OR rn = (99 * n + 99) / 100`
	rows, err := s.r.QueryContext(ctx, s.q(query), append([]any{from, width}, args...)...)
	if err != nil {
		return fmt.Errorf("phases: %w", err)
	}
	defer rows.Close()
	seen := map[ChartPhase]bool{}
	for rows.Next() {
		var b, n, rn, v int64
		var phase string
		if err := rows.Scan(&b, &phase, &n, &rn, &v); err != nil {
			return fmt.Errorf("phases: %w", err)
		}
		if b < 0 || b >= int64(len(ch.Buckets)) {
			continue
		}
		p := ChartPhase(phase)
		seen[p] = true
		pc := ch.Buckets[b].Phases[p]
		pc.N = int(n)
		d := time.Duration(v) * time.Microsecond
		if rn == (50*n+99)/100 {
			pc.P50 = d
		}
		if rn == (90*n+99)/100 {
			pc.P90 = d
		}
		if rn == (99*n+99)/100 {
			pc.P99 = d
		}
		ch.Buckets[b].Phases[p] = pc
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("phases: %w", err)
	}
	for _, p := range ChartPhases() {
		if seen[p] {
			ch.Phases = append(ch.Phases, p)
		}
	}
	return nil
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
