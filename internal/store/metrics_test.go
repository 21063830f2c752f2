package store

import (
	"context"
	"testing"
	"time"

	"sockmail/smtp"
)

// TestMetricsPhasesIncremental: the phase histograms count each finished
// send once, whether it was counted afresh above the watermark or cached
// below it; a send still running holds the watermark back and is counted
// when it finishes; an id seen less than metricsCommitLag ago is not
// cached yet; a counted send stays counted after it is deleted; a new
// store on the same database counts what the database holds.
func TestMetricsPhasesIncremental(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		now := time.Now()
		s.phaseHist.now = func() time.Time { return now }
		finished := func(connect time.Duration) *Send {
			t.Helper()
			fin := time.Now()
			snd := &Send{Source: "web", Server: "mx.example.test:25", Rcpts: []string{"a@example.test"}, Status: smtp.StatusSent,
				FinishedAt: &fin, Timings: &smtp.Timings{Connect: connect, Total: 10 * connect}}
			if err := s.CreateSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
			return snd
		}
		// connects returns the connect histogram's count and sum.
		connects := func(s *Store) (uint64, time.Duration) {
			t.Helper()
			m, err := s.MetricsSnapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range m.Phases {
				if h.Phase == PhaseConnect {
					return h.Count, h.Sum
				}
			}
			t.Fatal("no connect histogram")
			return 0, 0
		}
		want := func(step string, s *Store, n uint64, sum time.Duration) {
			t.Helper()
			if gotN, gotSum := connects(s); gotN != n || gotSum != sum {
				t.Errorf("%s: connect count %d sum %v, want %d and %v (watermark %d)", step, gotN, gotSum, n, sum, s.phaseHist.upTo)
			}
		}
		ms := time.Millisecond

		a := finished(1 * ms)
		want("one send", s, 1, 1*ms)
		running := &Send{Source: "web", Server: "mx.example.test:25", Rcpts: []string{"a@example.test"}}
		if err := s.CreateSend(ctx, running); err != nil {
			t.Fatal(err)
		}
		b := finished(2 * ms)
		want("a send running between two finished", s, 2, 3*ms)
		now = now.Add(2 * metricsCommitLag)
		want("a lag later", s, 2, 3*ms)
		if s.phaseHist.upTo != a.ID {
			t.Errorf("watermark %d, want %d: below the running send only", s.phaseHist.upTo, a.ID)
		}
		running.Status, running.Timings = smtp.StatusSent, &smtp.Timings{Connect: 4 * ms, Total: 40 * ms}
		if err := s.FinishSend(ctx, running); err != nil {
			t.Fatal(err)
		}
		want("the running send finished", s, 3, 7*ms)
		now = now.Add(2 * metricsCommitLag)
		want("another lag later", s, 3, 7*ms)
		if s.phaseHist.upTo != b.ID {
			t.Errorf("watermark %d, want %d: every send seen a lag ago", s.phaseHist.upTo, b.ID)
		}
		if err := s.DeleteSend(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		finished(8 * ms)
		want("one deleted after it was counted, one new", s, 4, 15*ms)

		fresh, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		want("a new store on the same database", fresh, 3, 14*ms)
	})
}
