package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MetricsCount is a count by one or two labels.
type MetricsCount struct {
	A, B  string
	Count int64
}

// MetricsHistogram is a latency histogram read from the sends' timings:
// Buckets[i] counts the values at or below MetricsBounds()[i] seconds
// (cumulative, as Prometheus wants).
type MetricsHistogram struct {
	Phase   ChartPhase
	Count   uint64
	Sum     time.Duration
	Buckets []uint64
}

// MetricsSnapshot is what /metrics reports, read from the store in one
// go at scrape time: the same on every instance sharing a database.
type MetricsSnapshot struct {
	// Sends counts the stored sends by status (A) and source (B).
	Sends []MetricsCount
	// Phases are the latency histograms of the stored sends' phases
	// (connect, TLS, AUTH, final reply, total); a phase that took no time
	// is not counted.
	Phases []MetricsHistogram
	// Outbox counts the outbox items by status (A).
	Outbox []MetricsCount
	// OutboxOldest is when the oldest item still to deliver (queued or
	// sending) was made; zero when there is none.
	OutboxOldest time.Time
	// Monitors holds each monitor's name (A) and state (B).
	Monitors []MetricsCount
	// Captured is how many messages the capture server holds.
	Captured int64
}

// MetricsBounds are the upper bounds, in seconds, of the latency
// histograms' buckets.
func MetricsBounds() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

// MetricsSnapshot reads the counts /metrics reports. Each is one
// aggregate query; the histograms read every stored send's timings, so a
// scrape costs in proportion to the history (not measured yet at scale).
func (s *Store) MetricsSnapshot(ctx context.Context) (*MetricsSnapshot, error) {
	var m MetricsSnapshot
	counts := func(what, query string, dec bool, args ...any) ([]MetricsCount, error) {
		rows, err := s.r.QueryContext(ctx, s.q(query), args...)
		if err != nil {
			return nil, fmt.Errorf("store: metrics: %s: %w", what, err)
		}
		defer rows.Close()
		var out []MetricsCount
		for rows.Next() {
			var c MetricsCount
			if err := rows.Scan(&c.A, &c.B, &c.Count); err != nil {
				return nil, fmt.Errorf("store: metrics: %s: %w", what, err)
			}
			if dec {
				c.A, c.B = decText(c.A), decText(c.B)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: metrics: %s: %w", what, err)
		}
		return out, nil
	}
	var err error
	if m.Sends, err = counts("sends", `SELECT status, source, COUNT(*) FROM sends GROUP BY status, source ORDER BY 1, 2`, true); err != nil {
		return nil, err
	}
	if m.Outbox, err = counts("outbox", `SELECT status, '', COUNT(*) FROM outbox GROUP BY status ORDER BY 1`, false); err != nil {
		return nil, err
	}
	if m.Monitors, err = counts("monitors", `SELECT name, state, 1 FROM monitors ORDER BY name`, false); err != nil {
		return nil, err
	}
	var oldest *int64
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT MIN(created_at) FROM outbox WHERE status IN (?, ?)`),
		string(OutboxQueued), string(OutboxSending)).Scan(&oldest); err != nil {
		return nil, fmt.Errorf("store: metrics: outbox age: %w", err)
	}
	if oldest != nil {
		m.OutboxOldest = fromMicros(*oldest)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM captured`).Scan(&m.Captured); err != nil {
		return nil, fmt.Errorf("store: metrics: captured: %w", err)
	}
	if m.Phases, err = s.metricsPhases(ctx); err != nil {
		return nil, err
	}
	return &m, nil
}

// metricsPhases builds the histograms in the database: per phase, the
// count, the sum and one cumulative count per bound.
func (s *Store) metricsPhases(ctx context.Context) ([]MetricsHistogram, error) {
	fields := append(sendPhaseFields(), phaseField{PhaseTotal, "total"})
	var parts []string
	for _, p := range fields {
		parts = append(parts, `SELECT '`+string(p.phase)+`' AS phase, `+s.timingExpr(p.field)+` AS v FROM sends s WHERE s.timings <> ''`)
	}
	bounds := MetricsBounds()
	cols := []string{"phase", "COUNT(*)", "COALESCE(SUM(v), 0)"}
	for _, b := range bounds {
		us := strconv.FormatInt(int64(b*1e6), 10)
		cols = append(cols, "SUM(CASE WHEN v <= "+us+" THEN 1 ELSE 0 END)")
	}
	query := `SELECT ` + strings.Join(cols, ", ") + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) x WHERE v > 0 GROUP BY phase`
	rows, err := s.r.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: metrics: phases: %w", err)
	}
	defer rows.Close()
	got := map[ChartPhase]MetricsHistogram{}
	for rows.Next() {
		var phase string
		var count, sum int64
		bk := make([]int64, len(bounds))
		dest := []any{&phase, &count, &sum}
		for i := range bk {
			dest = append(dest, &bk[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: metrics: phases: %w", err)
		}
		h := MetricsHistogram{Phase: ChartPhase(phase), Count: uint64(count), Sum: time.Duration(sum) * time.Microsecond}
		for _, n := range bk {
			h.Buckets = append(h.Buckets, uint64(n))
		}
		got[h.Phase] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: metrics: phases: %w", err)
	}
	out := make([]MetricsHistogram, 0, len(fields))
	for _, p := range fields {
		h, ok := got[p.phase]
		if !ok {
			h = MetricsHistogram{Phase: p.phase, Buckets: make([]uint64, len(bounds))}
		}
		out = append(out, h)
	}
	return out, nil
}
