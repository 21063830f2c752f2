package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// BenchmarkEnqueueLimited compares, in one run and on a fresh database
// each, the two designs of contact-form rate limits with 32 concurrent
// posts to one form, each under a per-address and a per-form limit too
// high to refuse (every post moves both, the worst case): "attempts",
// the design before issue 16 (TakeAttempt counts the rows of the last
// hour under an advisory lock per key on PostgreSQL, in a transaction of
// its own, then EnqueueSubmission), and "windows" (EnqueueLimited: one
// counter row per key moved by INSERT ... ON CONFLICT DO UPDATE ...
// RETURNING, inside the group commit on SQLite). It reports both rates,
// the p99 of each, and windows/attempts.
//
//	go test -run '^$' -bench EnqueueLimited -benchtime 3000x ./internal/store
func BenchmarkEnqueueLimited(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
			oldRate, oldP99 := benchLimited(b, backend, false)
			newRate, newP99 := benchLimited(b, backend, true)
			b.ReportMetric(newRate, "subs/s")
			b.ReportMetric(newP99, "p99-ms")
			b.ReportMetric(oldRate, "attempts-subs/s")
			b.ReportMetric(oldP99, "attempts-p99-ms")
			b.ReportMetric(newRate/oldRate, "windows/attempts")
		})
	}
}

func benchLimited(b *testing.B, backend string, windows bool) (rate, p99 float64) {
	b.StopTimer()
	ctx := context.Background()
	dsn := filepath.Join(b.TempDir(), "bench.db")
	if backend == BackendPostgres {
		dsn = testenv.Postgres(b)
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f := testForm("Bench")
	if err := s.SaveForm(ctx, f); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("A visitor's message of a realistic size. ", 60)
	msg := append(testMessage("bench"), body...)
	limits := []Limit{{Key: "contact:addr:203.0.113.9", Max: 1 << 30, Window: time.Hour},
		{Key: fmt.Sprint("contact:form:", f.ID), Max: 1 << 30, Window: time.Hour}}
	const clients = 32
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.StartTimer()
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				sub := &Submission{FormID: f.ID, ClientAddr: "203.0.113.9", Origin: "https://www.example.org",
					Fields: []FieldValue{{"name", "Ann"}, {"email", "ann@example.net"}, {"message", body}}, ReplyTo: "ann@example.net"}
				item := &OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: msg}
				t0 := time.Now()
				now := time.Now()
				var over *Limit
				var err error
				if windows {
					over, err = s.EnqueueLimited(ctx, sub, item, limits, now)
				} else if over, err = s.TakeAttempt(ctx, limits, now, now.Add(-time.Hour)); err == nil && over == nil {
					err = s.EnqueueSubmission(ctx, sub, item)
				}
				if err != nil || over != nil {
					b.Errorf("post: %v, over %v", err, over)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return 0, 0
	}
	return float64(len(all)) / elapsed.Seconds(), float64(all[min(len(all)-1, len(all)*99/100)].Microseconds()) / 1000
}
