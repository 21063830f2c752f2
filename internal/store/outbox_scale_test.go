package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
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

// BenchmarkClaimBlocks counts the PostgreSQL buffers (8 KiB blocks)
// one claim reads, a number the machine's load does not change: with
// 1,000,000 finished items stored first and autovacuum off, it queues
// 101,000 items, then moves 20,000 and then 100,000 of them through a
// claim, the end-of-message mark and "sent", as separate statements the
// way workers do (every change a new row version, none vacuumed), the
// leases of those attempts long expired. At each step it runs the scans
// of a claim (expired leases with and without the mark, due items;
// EXPLAIN ANALYZE BUFFERS in a rolled-back transaction, the third run of
// each, once the first has marked what it found dead) and reports the
// blocks read: with the design before migration 0015, with 0015's
// partial indexes in a full claim, and in the claims between full claims
// (claimState). SQLite updates rows and index entries in place: nothing
// dead to walk over, so it is not measured here.
//
//	go test -run '^$' -bench ClaimBlocks -benchtime 1x -v ./internal/store
func BenchmarkClaimBlocks(b *testing.B) {
	history := benchEnvInt(b, "SOCKMAIL_BENCH_OUTBOX_HISTORY", 1_000_000)
	steps := []int{0, 20_000, 100_000}
	for _, design := range []string{"before-0015", "migrated"} {
		b.Run(design, func(b *testing.B) {
			for range b.N {
				claimBlocks(b, design == "before-0015", history, steps)
			}
		})
	}
}

// claimVariant is one kind of claim BenchmarkClaimBlocks measures, with
// the bounds of its scans.
type claimVariant struct {
	name             string
	staleFrom, floor int64
}

// claimBlocks runs one design of BenchmarkClaimBlocks.
func claimBlocks(b *testing.B, before bool, history int, steps []int) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.Postgres(b))
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
	base := time.Now().Add(-24 * time.Hour)
	if err := FillOutboxHistory(ctx, s, history, base); err != nil {
		b.Fatal(err)
	}
	// The queue: one item due every 5 ms (200 a second) from base on.
	queued := steps[len(steps)-1] + 1000
	var first int64
	err = s.w.QueryRowContext(ctx, `WITH q AS (INSERT INTO outbox (created_at, queued_at, profile_id, mail_from, rcpts,
			subject, message_id, message, status, attempts, next_attempt_at, expires_at, lease_owner, lease_until,
			taken_over_from, last_error)
		SELECT $1 + i * 5000, $1 + i * 5000, 0, 'forms@example.org', '["owner@example.org"]', 'queued ' || i,
			'queued-' || i || '@example.org', convert_to(repeat('x', 1000), 'UTF8'), 'queued', 0, $1 + i * 5000, 0, '', 0, '', ''
		FROM generate_series(0, $2::bigint - 1) AS i RETURNING id) SELECT min(id) FROM q`, micros(base), queued).Scan(&first)
	if err != nil {
		b.Fatal(err)
	}
	// Measured at now: every attempt's lease (5 min) expired long ago.
	now := base.Add(12 * time.Hour)
	const batch = 100
	done := 0
	for _, step := range steps {
		for ; done < step; done += batch {
			lo, hi := first+int64(done), first+int64(done+batch-1)
			leaseUntil := base.Add(time.Duration(done)*5*time.Millisecond + 5*time.Minute)
			for _, q := range []string{
				`UPDATE outbox SET status = 'sending', lease_owner = 'w1', lease_until = $3, attempts = attempts + 1 WHERE id BETWEEN $1 AND $2`,
				`UPDATE outbox SET data_sent_at = $3 WHERE id BETWEEN $1 AND $2`,
				`UPDATE outbox SET status = 'sent', lease_owner = '', lease_until = 0, data_sent_at = NULL, last_send_id = $3 WHERE id BETWEEN $1 AND $2`,
			} {
				if _, err := s.w.ExecContext(ctx, q, lo, hi, micros(leaseUntil)); err != nil {
					b.Fatalf("churn: %v", err)
				}
			}
		}
		nextDue := micros(base) + int64(done)*5000
		variants := []claimVariant{{"full", math.MinInt64, math.MinInt64}}
		if !before {
			// Between full claims: the previous claim, 6 s ago, found the
			// first queued item.
			variants = append(variants, claimVariant{"between", micros(now) - 6_000_000, nextDue - claimFloorSlack.Microseconds()})
		}
		for _, v := range variants {
			blocks, err := claimScanBlocks(ctx, s, before, micros(now), v.staleFrom, v.floor)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(blocks), fmt.Sprintf("blocks/%s-claim-after-%d", v.name, step))
			b.Logf("after %d attempts: a %s claim reads %d blocks", step, v.name, blocks)
		}
	}
}

// claimScanBlocks runs the scans of one claim at nowUS three times in a
// rolled-back transaction and returns the blocks the third read.
func claimScanBlocks(ctx context.Context, s *Store, before bool, nowUS, staleFrom, floor int64) (int64, error) {
	// Each scan with its arguments: now, then its lower bound.
	type scan struct {
		q    string
		args []any
	}
	scans := []scan{
		{`SELECT id FROM outbox WHERE status = 'sending' AND lease_until > $2 AND lease_until <= $1 AND data_sent_at IS NOT NULL
			FOR UPDATE SKIP LOCKED`, []any{nowUS, staleFrom}},
		{`SELECT id FROM outbox WHERE status = 'sending' AND lease_until > $2 AND lease_until <= $1 AND data_sent_at IS NULL
			ORDER BY lease_until LIMIT 4 FOR UPDATE SKIP LOCKED`, []any{nowUS, staleFrom}},
		{`SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at >= $2 AND next_attempt_at <= $1
			ORDER BY next_attempt_at LIMIT 4 FOR UPDATE SKIP LOCKED`, []any{nowUS, floor}},
	}
	if before {
		// The statements as they were: no lower bounds.
		scans = []scan{
			{`SELECT id FROM outbox WHERE status = 'sending' AND lease_until <= $1 AND data_sent_at IS NOT NULL
				FOR UPDATE SKIP LOCKED`, []any{nowUS}},
			{`SELECT id FROM outbox WHERE status = 'sending' AND lease_until <= $1 AND data_sent_at IS NULL
				ORDER BY lease_until LIMIT 4 FOR UPDATE SKIP LOCKED`, []any{nowUS}},
			{`SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1
				ORDER BY next_attempt_at LIMIT 4 FOR UPDATE SKIP LOCKED`, []any{nowUS}},
		}
	}
	var total int64
	for range 3 {
		total = 0
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		for _, sc := range scans {
			var plan string
			if err := tx.QueryRowContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+sc.q, sc.args...).Scan(&plan); err != nil {
				_ = tx.Rollback()
				return 0, fmt.Errorf("%s: %w", sc.q, err)
			}
			var out []struct {
				Plan struct {
					Hit  int64 `json:"Shared Hit Blocks"`
					Read int64 `json:"Shared Read Blocks"`
				}
			}
			if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) != 1 {
				_ = tx.Rollback()
				return 0, fmt.Errorf("plan %s: %v", plan, err)
			}
			total += out[0].Plan.Hit + out[0].Plan.Read
		}
		if err := tx.Rollback(); err != nil {
			return 0, err
		}
	}
	return total, nil
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

// TestClaimBetweenFullClaims: the claims between full ones (claimState,
// PostgreSQL) lose nothing. A lease is taken over at the first claim at
// or after its expiry, however many claims came between; an item queued
// due long before the items a claim found (below the floor) is claimed
// by the next full claim at the latest, once.
func TestClaimBetweenFullClaims(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		form := newForm(t, s)
		lease := time.Minute
		_, a := enqueue(t, s, form, "a", "", t0)
		if got, err := s.ClaimDue(ctx, "crashed", t0, lease, 1); err != nil || !reflect.DeepEqual(claimIDs(got), []int64{a.ID}) {
			t.Fatalf("first claim %v, %v; want [%d]", claimIDs(got), err, a.ID)
		}
		// Claims every second up to the lease's expiry: a claimed at its
		// expiry exactly, by a claim between full ones.
		for at := time.Second; at < lease; at += time.Second {
			if got, err := s.ClaimDue(ctx, "rescuer", t0.Add(at), lease, 4); err != nil || len(got) != 0 {
				t.Fatalf("at +%v claimed %v, %v", at, claimIDs(got), err)
			}
		}
		got, err := s.ClaimDue(ctx, "rescuer", t0.Add(lease), lease, 4)
		if err != nil || !reflect.DeepEqual(claimIDs(got), []int64{a.ID}) || got[0].TakenOverFrom != "crashed" {
			t.Fatalf("at expiry claimed %v, %v; want [%d] taken over", claimIDs(got), err, a.ID)
		}
		// b is due an hour before anything claimed so far.
		_, b := enqueue(t, s, form, "b", "", t0.Add(-time.Hour))
		claims := 0
		// The last full claim was at most at +lease; the next comes at most
		// claimScanEvery later, at the first claim from then on.
		for at := lease + time.Millisecond; at <= lease+claimScanEvery(lease)+time.Second; at += time.Second {
			got, err := s.ClaimDue(ctx, "rescuer", t0.Add(at), lease, 4)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range got {
				if it.ID != b.ID {
					t.Fatalf("at +%v claimed %d, want only %d", at, it.ID, b.ID)
				}
				claims++
			}
		}
		if claims != 1 {
			t.Errorf("b claimed %d times by the next full claim, want 1", claims)
		}
	})
}
