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

// BenchmarkDrainSubmission: a queue of messages drained by one worker
// (concurrency 4) to the test Postfix's submission port (STARTTLS and
// AUTH), with connections kept between attempts and with one connection
// per attempt (the baseline), in the same run. It reports messages per
// second and, for kept connections, the speed-up over the baseline.
func BenchmarkDrainSubmission(b *testing.B) {
	pf := testenv.Postfix(b)
	profiles := func(context.Context, int64) (smtp.Config, error) {
		return smtp.Config{Addr: pf.SubmissionAddr, TLS: smtp.TLSStartTLS, TLSConfig: pf.TLSConfig(), LocalName: "sockmail.test",
			Auth: &smtp.Auth{Username: pf.User, Password: pf.Password}}, nil
	}
	const n = 200
	var baseline float64
	for _, mode := range []struct {
		name  string
		reuse time.Duration
	}{{"one-connection-each", -1}, {"kept-connections", 0}} {
		b.Run(mode.name, func(b *testing.B) {
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
				w, err := New(Deps{Store: h.s, Profiles: profiles, Concurrency: 4, PollInterval: 20 * time.Millisecond, ReuseIdle: mode.reuse})
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
				counter.RemoveWhenPassed(b)
				rate = n / took.Seconds()
			}
			b.ReportMetric(rate, "msgs/s")
			if mode.reuse < 0 {
				baseline = rate
			} else if baseline > 0 {
				b.ReportMetric(rate/baseline, "x-vs-one-connection-each")
			}
		})
	}
}
