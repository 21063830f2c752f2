package store

import (
	"testing"
	"time"

	"sockmail/smtp"
)

// TestSendFailureRoundTrip checks that a send's failure fields are written
// by CreateSend (a finished send, as the outbox and resend store it) and by
// FinishSend, and read back by Send and ListSends, on both backends.
func TestSendFailureRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		failure smtp.Failure
	}{
		{"no failure", smtp.Failure{}},
		{"reply", smtp.Failure{Phase: smtp.PhaseRcpt, Code: 554, EnhancedCode: "5.7.1", Kind: smtp.KindRelayDenied}},
		{"tls reason", smtp.Failure{Phase: smtp.PhaseStartTLS, Kind: smtp.KindTLSVerify, Reason: smtp.ReasonWrongName}},
		{"hostile enhanced code", smtp.Failure{Phase: smtp.PhaseBody, Code: 550, EnhancedCode: "5.\x00\xff", Kind: smtp.KindOther}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		for _, tt := range tests {
			// Stored whole at once.
			whole := fullSend(nil)
			whole.Status, whole.Error, whole.Failure = smtp.StatusPermFail, "smtp: failed", tt.failure
			if err := s.CreateSend(ctx, whole); err != nil {
				t.Fatal(err)
			}
			// Stored running, then finished.
			run := fullSend(nil)
			if err := s.CreateSend(ctx, run); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Send(ctx, run.ID); err != nil || !got.Failure.IsZero() {
				t.Fatalf("%s: running send has failure %+v, %v", tt.name, got.Failure, err)
			}
			fin := &Send{ID: run.ID, Status: smtp.StatusPermFail, Error: "smtp: failed", Failure: tt.failure}
			if err := s.FinishSend(ctx, fin); err != nil {
				t.Fatal(err)
			}
			for _, id := range []int64{whole.ID, run.ID} {
				got, err := s.Send(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Failure != tt.failure {
					t.Errorf("%s: Send(%d).Failure = %+v, want %+v", tt.name, id, got.Failure, tt.failure)
				}
			}
			page, err := s.ListSends(ctx, SendFilter{Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Sends {
				if m.Failure != tt.failure {
					t.Errorf("%s: ListSends: send %d failure %+v, want %+v", tt.name, m.ID, m.Failure, tt.failure)
				}
			}
		}
	})
}

// TestSendFailureOldRow checks that a row written without the failure
// columns (as before migration 0005) reads back with a zero Failure and
// its error text, which the explain package falls back to.
func TestSendFailureOldRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		const text = "smtp: rcpt: 550 5.1.1 User unknown"
		var id int64
		err := s.w.QueryRowContext(ctx, s.q(`INSERT INTO sends (created_at, source, client_addr, server, tls_mode,
			mail_from, rcpts, subject, status, queue_id, error, duration_ms, message_truncated, recipients)
			VALUES (?, 'web', '', 'mx.test:25', 'none', 'a@example.org', '[]', '', ?, '', ?, 1, ?, '[]') RETURNING id`),
			micros(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), smtp.StatusPermFail, text, false).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, s.q(`INSERT INTO send_bodies (send_id, search_text, headers, events) VALUES (?, '', '', '[]')`), id); err != nil {
			t.Fatal(err)
		}
		got, err := s.Send(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Failure.IsZero() || got.Error != text {
			t.Errorf("old row: failure %+v, error %q; want zero and %q", got.Failure, got.Error, text)
		}
	})
}
