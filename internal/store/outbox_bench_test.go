package store

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// BenchmarkEnqueueSubmission measures durable submissions per second with
// 16 concurrent callers (a busy endpoint): on SQLite each commit is
// fsynced (synchronous=FULL) and concurrent calls share commits.
//
//	go test -run '^$' -bench EnqueueSubmission -benchtime 3s ./internal/store
func BenchmarkEnqueueSubmission(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
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
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sub := &Submission{FormID: f.ID, ClientAddr: "203.0.113.9", Origin: "https://www.example.org",
						Fields: []FieldValue{{"name", "Ann"}, {"email", "ann@example.net"}, {"message", body}}, ReplyTo: "ann@example.net"}
					item := &OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"}, Message: msg}
					if err := s.EnqueueSubmission(ctx, sub, item); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "subs/s")
		})
	}
}
