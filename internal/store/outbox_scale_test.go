package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// BeforeScaleSchema turns a migrated database back into the outbox design
// before migration 0015 (one index over every item by status and due
// time, full heap pages): the baseline of the scale benchmarks, measured
// in the same run. Exported for the external test package.
func BeforeScaleSchema(ctx context.Context, s *Store) error {
	stmts := []string{
		`DROP INDEX IF EXISTS outbox_queued_due`,
		`DROP INDEX IF EXISTS outbox_sending_lease`,
		`CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at)`,
	}
	if s.backend == BackendPostgres {
		stmts = append(stmts, `ALTER TABLE outbox RESET (fillfactor)`)
	}
	for _, q := range stmts {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// NoVacuum turns autovacuum (and so autoanalyze) off on the outbox on
// PostgreSQL, as it may be on a user's machine: the scale benchmarks run
// without it. Nothing on SQLite.
func NoVacuum(ctx context.Context, s *Store) error {
	if s.backend != BackendPostgres {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `ALTER TABLE outbox SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)`)
	return err
}

// FillOutboxHistory stores n finished (sent) outbox items in one
// statement (generate_series on PostgreSQL, a recursive CTE on SQLite),
// one a second up to end, each with a small message; on PostgreSQL it
// then runs ANALYZE (the statistics autovacuum would have gathered before
// it was turned off; no VACUUM). Exported for the external test package.
func FillOutboxHistory(ctx context.Context, s *Store, n int, end time.Time) error {
	cols := `created_at, queued_at, submission_id, form_id, profile_id, mail_from, rcpts, subject, message_id, message,
		status, attempts, next_attempt_at, expires_at, lease_owner, lease_until, taken_over_from, last_error, last_send_id`
	var q string
	if s.backend == BackendPostgres {
		q = `INSERT INTO outbox (` + cols + `) SELECT $1 - ($2 - i) * 1000000, $1 - ($2 - i) * 1000000, NULL, NULL, 0,
			'forms@example.org', '["owner@example.org"]', 'history ' || i, 'history-' || i || '@example.org',
			convert_to('Subject: history ' || i || E'\r\n\r\n' || repeat('x', 200) || E'\r\n', 'UTF8'),
			'sent', 1, $1 - ($2 - i) * 1000000, 0, '', 0, '', '', NULL FROM generate_series(1, $2::bigint) AS i`
	} else {
		q = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
			INSERT INTO outbox (` + cols + `) SELECT ?1 - (?2 - i) * 1000000, ?1 - (?2 - i) * 1000000, NULL, NULL, 0,
			'forms@example.org', '["owner@example.org"]', 'history ' || i, 'history-' || i || '@example.org',
			CAST('Subject: history ' || i || char(13, 10, 13, 10) || replace(hex(zeroblob(100)), '0', 'x') || char(13, 10) AS BLOB),
			'sent', 1, ?1 - (?2 - i) * 1000000, 0, '', 0, '', '', NULL FROM n`
	}
	if _, err := s.w.ExecContext(ctx, q, micros(end), n); err != nil {
		return fmt.Errorf("fill outbox history: %w", err)
	}
	if s.backend == BackendPostgres {
		if _, err := s.w.ExecContext(ctx, `ANALYZE outbox`); err != nil {
			return fmt.Errorf("fill outbox history: %w", err)
		}
	}
	return nil
}

// BenchmarkClaimAfterChurn measures what one claim costs the store, with
// no mail server in the way: 1,000,000 finished items are stored first
// (PostgreSQL with autovacuum off), then 20,000 queued items go through
// ClaimDue (4 at a time), MarkDataSent and FinishAttempt, as the worker
// does. It reports the median ClaimDue time over the first and the last
// thousand claims, with the current schema and with the design before
// migration 0015: a claim that grows with the history or the churn shows
// as a last/first ratio above 1.
//
//	go test -run '^$' -bench ClaimAfterChurn -benchtime 1x -v ./internal/store
//
// SOCKMAIL_BENCH_OUTBOX_HISTORY and SOCKMAIL_BENCH_OUTBOX_CHURN change the
// two counts.
func BenchmarkClaimAfterChurn(b *testing.B) {
	history := benchEnvInt(b, "SOCKMAIL_BENCH_OUTBOX_HISTORY", 1_000_000)
	churn := benchEnvInt(b, "SOCKMAIL_BENCH_OUTBOX_CHURN", 20_000)
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		for _, design := range []string{"before-0015", "migrated"} {
			b.Run(backend+"/"+design, func(b *testing.B) {
				for range b.N {
					first, last := claimAfterChurn(b, backend, design == "before-0015", history, churn)
					b.ReportMetric(float64(first.Microseconds()), "µs/claim-first")
					b.ReportMetric(float64(last.Microseconds()), "µs/claim-last")
					b.ReportMetric(float64(last)/float64(first), "last/first")
				}
			})
		}
	}
}

// claimAfterChurn runs BenchmarkClaimAfterChurn once and returns the
// median claim time of the first and of the last thousand claims.
func claimAfterChurn(b *testing.B, backend string, before bool, history, churn int) (first, last time.Duration) {
	ctx := context.Background()
	dsn := filepath.Join(b.TempDir(), "churn.db")
	if backend == BackendPostgres {
		dsn = testenv.Postgres(b)
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := NoVacuum(ctx, s); err != nil {
		b.Fatal(err)
	}
	if before {
		if err := BeforeScaleSchema(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	if err := FillOutboxHistory(ctx, s, history, now.Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	f := testForm("Churn")
	if err := s.SaveForm(ctx, f); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < churn; i += 16 {
				item := &OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"},
					Message: testMessage(fmt.Sprintf("churn-%d", i)), CreatedAt: now.Add(time.Duration(i) * time.Microsecond)}
				if err := s.EnqueueSubmission(ctx, &Submission{FormID: f.ID, CreatedAt: item.CreatedAt}, item); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ResetTimer()
	var claims []time.Duration
	clock := now.Add(time.Second)
	for done := 0; done < churn; {
		clock = clock.Add(time.Millisecond)
		start := time.Now()
		items, err := s.ClaimDue(ctx, "w1", clock, time.Second, 4)
		claims = append(claims, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if len(items) == 0 {
			b.Fatalf("nothing to claim after %d of %d", done, churn)
		}
		for _, it := range items {
			if err := s.MarkDataSent(ctx, it.ID, "w1", clock); err != nil {
				b.Fatal(err)
			}
			if err := s.FinishAttempt(ctx, it.ID, "w1", OutboxSent, time.Time{}, "", nil); err != nil {
				b.Fatal(err)
			}
		}
		done += len(items)
	}
	b.StopTimer()
	k := min(1000, len(claims)/2)
	return median(claims[:k]), median(claims[len(claims)-k:])
}

// median returns the median of d (sorting a copy).
func median(d []time.Duration) time.Duration {
	c := append([]time.Duration(nil), d...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

// benchEnvInt reads a positive integer setting of a benchmark.
func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
