package store

import (
	"context"
	"testing"
	"time"
)

// chartBenchRuns is a monitor run every minute for 30 days: what the
// monitor page's 30-day chart reads.
const chartBenchRuns = 30 * 24 * 60

// seedChartRuns stores chartBenchRuns runs of one monitor, each with a
// send to one server carrying timings, ending at end, in three bulk
// statements (a recursive CTE), and returns the monitor.
func seedChartRuns(b *testing.B, s *Store, end time.Time) *Monitor {
	b.Helper()
	ctx := context.Background()
	m := &Monitor{Name: "bench", Kind: MonitorQuitAfter, Target: "mx.example.test", Rcpt: "a@example.test", Interval: 1, Enabled: true, Created: end.Add(-31 * 24 * time.Hour)}
	if err := s.CreateMonitor(ctx, m); err != nil {
		b.Fatal(err)
	}
	startUS, stepUS := micros(end.Add(-chartBenchRuns*time.Minute)), time.Minute.Microseconds()
	seq := `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?) `
	// Timings vary with i so that the percentiles have work to do.
	timings := `'{"connect":' || (500 + i % 997) || ',"tls":' || (3000 + i % 1999) || ',"auth":' || (800 + i % 499) ||
		',"final_reply":' || (1200 + i % 2999) || ',"total":' || (20000 + i % 9973) || '}'`
	if _, err := s.w.ExecContext(ctx, s.q(seq+`INSERT INTO sends (created_at, finished_at, source, client_addr, server, tls_mode,
		mail_from, rcpts, subject, status, queue_id, error, duration_ms, message_truncated, recipients, timings)
		SELECT CAST(? AS BIGINT) + i * CAST(? AS BIGINT), CAST(? AS BIGINT) + i * CAST(? AS BIGINT) + 20000, 'monitor', '', 'mx.example.test:25', 'starttls', 'm@example.test', '[]', '',
			CASE WHEN i % 97 = 0 THEN 'permfail' ELSE 'sent' END, '', '', 20, (1 = 0), '[]', `+timings+` FROM seq`),
		chartBenchRuns, startUS, stepUS, startUS, stepUS); err != nil {
		b.Fatalf("seed sends: %v", err)
	}
	if _, err := s.w.ExecContext(ctx, s.q(seq+`INSERT INTO monitor_runs (monitor_id, started_at, finished_at, state, latency_ms, send_id, arrival_ms)
		SELECT CAST(? AS BIGINT), CAST(? AS BIGINT) + i * CAST(? AS BIGINT), CAST(? AS BIGINT) + i * CAST(? AS BIGINT) + 20000, CASE WHEN i % 97 = 0 THEN 'down' ELSE 'up' END, 20 + i % 9,
			(SELECT id FROM sends WHERE created_at = CAST(? AS BIGINT) + i * CAST(? AS BIGINT)), 600 + i % 401 FROM seq`),
		chartBenchRuns, m.ID, startUS, stepUS, startUS, stepUS, startUS, stepUS); err != nil {
		b.Fatalf("seed runs: %v", err)
	}
	return m
}

// BenchmarkCharts times what the monitor page and /metrics read over a
// month of a monitor running every minute (43,200 runs and sends): the
// 24-hour and 30-day charts of the monitor and of its server, and a
// metrics snapshot, the first of a process and a later one.
//
//	go test -run '^$' -bench Charts -benchtime 5x ./internal/store
func BenchmarkCharts(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
			var s *Store
			if backend == BackendSQLite {
				s = openSQLiteStore(b)
			} else {
				s = openPostgresStore(b)
			}
			end := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
			m := seedChartRuns(b, s, end)
			clock := time.Now()
			s.phaseHist.now = func() time.Time { return clock }
			ctx := context.Background()
			day := ChartRange{From: end.Add(-24 * time.Hour), Bucket: 30 * time.Minute, Buckets: 48}
			month := ChartRange{From: end.Add(-30 * 24 * time.Hour), Bucket: 12 * time.Hour, Buckets: 60}
			for _, c := range []struct {
				name string
				run  func() error
			}{
				{"monitor-24h", func() error { _, err := s.MonitorChart(ctx, m.ID, day); return err }},
				{"monitor-30d", func() error { _, err := s.MonitorChart(ctx, m.ID, month); return err }},
				{"server-30d", func() error { _, err := s.ServerChart(ctx, "mx.example.test:25", month); return err }},
				// The first scrape of a process counts every stored send's
				// timings; later ones only what came since (phaseHistCache,
				// its clock moved past the commit lag each time).
				{"metrics-first", func() error {
					s.phaseHist.mu.Lock()
					s.phaseHist.upTo, s.phaseHist.hists, s.phaseHist.seen = 0, nil, nil
					s.phaseHist.mu.Unlock()
					_, err := s.MetricsSnapshot(ctx)
					return err
				}},
				{"metrics-next", func() error {
					clock = clock.Add(2 * metricsCommitLag)
					_, err := s.MetricsSnapshot(ctx)
					return err
				}},
			} {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						if err := c.run(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
