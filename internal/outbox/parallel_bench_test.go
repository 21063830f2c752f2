package outbox

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// BenchmarkDrainParallel: a queue of 300 messages drained by one worker
// (concurrency 4) to the test Postfix's plain port, with 1 or 4
// connections to the server and with pipelining across messages off
// (Pipeline 1: one message per attempt) or on (Pipeline 8), all in the
// same run. It reports messages per second and the ratio to the first
// mode (1 connection, no pipelining), measured in the same run. Every
// message is counted once in the Maildir.
func BenchmarkDrainParallel(b *testing.B) {
	pf := testenv.Postfix(b)
	profiles := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: pf.SMTPAddr, LocalName: "sockmail.test"}, nil
	}
	const n = 300
	var baseline float64
	for _, mode := range []struct{ conns, pipe int }{{1, 1}, {1, 8}, {4, 1}, {4, 8}} {
		b.Run(fmt.Sprintf("connections=%d/pipeline=%d", mode.conns, mode.pipe), func(b *testing.B) {
			var rate float64
			for range b.N {
				b.StopTimer()
				h := newHarness(b)
				tok := testenv.UniqueToken()
				counter := testenv.NewMaildirCounter(pf.Maildir, regexp.MustCompile(regexp.QuoteMeta(tok)+`-\d+`))
				for i := range n {
					msg := fmt.Sprintf("From: forms@example.org\r\nTo: owner@%s\r\nSubject: drain %s-%d\r\n\r\n%s-%d\r\n", pf.Domain, tok, i, tok, i)
					item := &store.OutboxItem{MailFrom: "forms@example.org", Rcpts: []string{"owner@" + pf.Domain}, Message: []byte(msg)}
					if err := h.s.EnqueueSubmission(context.Background(), &store.Submission{FormID: h.form}, item); err != nil {
						b.Fatal(err)
					}
				}
				w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 4, Connections: mode.conns, Pipeline: mode.pipe, PollInterval: 20 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				stop := run(b, w)
				waitCounts(b, h.s, func(c map[store.OutboxStatus]int) bool { return c[store.OutboxSent] == n })
				took := time.Since(start)
				b.StopTimer()
				stop()
				counter.WaitDistinct(b, n, 200*time.Millisecond)
				if tokens, files := counter.Counts(); len(tokens) != n || files != n {
					b.Errorf("Maildir: %d distinct messages in %d files, want %d each once", len(tokens), files, n)
				}
				counter.RemoveWhenPassed(b)
				rate = n / took.Seconds()
			}
			b.ReportMetric(rate, "msgs/s")
			if baseline == 0 {
				baseline = rate
			} else {
				b.ReportMetric(rate/baseline, "x-vs-1conn-nopipe")
			}
		})
	}
}
