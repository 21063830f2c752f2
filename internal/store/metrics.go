package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// aggregate query; the histograms read only the sends stored since the
// last snapshot (phaseHistCache).
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

// metricsRunningHolds is how long a send still running holds back the
// histograms' watermark (phaseHistCache): one started longer ago (a
// process that died mid-send leaves it running for good) is passed over,
// and its timings are not counted if it finishes after all.
const metricsRunningHolds = time.Hour

// metricsCommitLag is how long an id must have been seen before the
// watermark passes it: on PostgreSQL a transaction takes its send's id
// before it commits, so a lower id may become visible after a higher
// one; a minute leaves it time to.
const metricsCommitLag = time.Minute

// phaseHistCache keeps the phase histograms of the sends up to a
// watermark id, so that a scrape reads only the sends stored since then
// instead of every stored send's timings. The watermark stays below the
// oldest send still running (unless it started over metricsRunningHolds
// ago) and below ids first seen less than metricsCommitLag ago; ids only
// grow, so no send is counted twice, and the sends above it are counted
// afresh at each scrape. A send deleted once counted (retention, an
// admin) stays counted: the histograms count the sends this process has
// seen stored, and start again from what the database holds when the
// process restarts.
type phaseHistCache struct {
	mu    sync.Mutex
	upTo  int64
	hists map[ChartPhase]*MetricsHistogram
	// seen holds the newest id of recent snapshots, oldest first.
	seen []idSeen
	// now is the clock (time.Now if nil; tests set it).
	now func() time.Time
}

type idSeen struct {
	id int64
	at time.Time
}

// metricsPhases returns the phase histograms: the cached ones advanced to
// the new watermark, plus, counted afresh, the finished sends above it.
func (s *Store) metricsPhases(ctx context.Context) ([]MetricsHistogram, error) {
	c := &s.phaseHist
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	var maxID, minRunning int64
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(id), 0),
		COALESCE((SELECT MIN(id) FROM sends WHERE status = ? AND created_at > ?), 0) FROM sends`),
		string(StatusRunning), micros(now.Add(-metricsRunningHolds))).Scan(&maxID, &minRunning); err != nil {
		return nil, fmt.Errorf("store: metrics: phases: %w", err)
	}
	if n := len(c.seen); n == 0 || c.seen[n-1].id < maxID {
		c.seen = append(c.seen, idSeen{maxID, now})
	}
	upTo := c.upTo
	for len(c.seen) > 0 && now.Sub(c.seen[0].at) >= metricsCommitLag {
		upTo = max(upTo, c.seen[0].id)
		c.seen = c.seen[1:]
	}
	if minRunning > 0 {
		upTo = min(upTo, minRunning-1)
	}
	if c.hists == nil {
		c.hists = map[ChartPhase]*MetricsHistogram{}
	}
	if upTo > c.upTo {
		if err := s.addPhaseHists(ctx, c.hists, c.upTo, upTo); err != nil {
			return nil, err
		}
		c.upTo = upTo
	}
	out := map[ChartPhase]*MetricsHistogram{}
	for p, h := range c.hists {
		cp := *h
		cp.Buckets = slices.Clone(h.Buckets)
		out[p] = &cp
	}
	if maxID > c.upTo {
		if err := s.addPhaseHists(ctx, out, c.upTo, maxID); err != nil {
			return nil, err
		}
	}
	fields := append(sendPhaseFields(), phaseField{PhaseTotal, "total"})
	res := make([]MetricsHistogram, 0, len(fields))
	for _, p := range fields {
		h, ok := out[p.phase]
		if !ok {
			h = &MetricsHistogram{Phase: p.phase, Buckets: make([]uint64, len(MetricsBounds()))}
		}
		res = append(res, *h)
	}
	return res, nil
}

// addPhaseHists adds to hists the timings of the finished sends with ids
// in (after, upTo], counted in the database: per phase, the count, the
// sum and one cumulative count per bound.
func (s *Store) addPhaseHists(ctx context.Context, hists map[ChartPhase]*MetricsHistogram, after, upTo int64) error {
	fields := append(sendPhaseFields(), phaseField{PhaseTotal, "total"})
	var parts []string
	var args []any
	for _, p := range fields {
		parts = append(parts, `SELECT '`+string(p.phase)+`' AS phase, `+s.timingExpr(p.field)+` AS v FROM sends s
			WHERE s.id > ? AND s.id <= ? AND s.timings <> '' AND s.status <> ?`)
		args = append(args, after, upTo, string(StatusRunning))
	}
	bounds := MetricsBounds()
	cols := []string{"phase", "COUNT(*)", "COALESCE(SUM(v), 0)"}
	for _, b := range bounds {
		us := strconv.FormatInt(int64(b*1e6), 10)
		cols = append(cols, "SUM(CASE WHEN v <= "+us+" THEN 1 ELSE 0 END)")
	}
	query := `SELECT ` + strings.Join(cols, ", ") + ` FROM (` + strings.Join(parts, " UNION ALL ") + `) x WHERE v > 0 GROUP BY phase`
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: metrics: phases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var phase string
		var count, sum int64
		bk := make([]int64, len(bounds))
		dest := []any{&phase, &count, &sum}
		for i := range bk {
			dest = append(dest, &bk[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("store: metrics: phases: %w", err)
		}
		p := ChartPhase(phase)
		h := hists[p]
		if h == nil {
			h = &MetricsHistogram{Phase: p, Buckets: make([]uint64, len(bounds))}
			hists[p] = h
		}
		h.Count += uint64(count)
		h.Sum += time.Duration(sum) * time.Microsecond
		for i, n := range bk {
			h.Buckets[i] += uint64(n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: metrics: phases: %w", err)
	}
	return nil
}
