package monitor

import (
	"errors"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// TestEvaluate judges runs: failures are down with the error as reason,
// slow runs, late arrivals, a check's warnings and certificates expiring
// within the threshold degraded (all named when several apply), an expired certificate down, and runs
// within the thresholds (or without thresholds) up.
func TestEvaluate(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	refused := &smtp.Error{Phase: smtp.PhaseConnect, Message: "connection refused"}
	tests := []struct {
		name   string
		th     Thresholds
		r      Result
		state  store.MonitorState
		reason string
	}{
		{"fast, no cert", Thresholds{Slow: time.Second, CertDays: 14}, Result{Started: t0, Finished: t0.Add(100 * time.Millisecond)}, store.MonitorUp, ""},
		{"no thresholds", Thresholds{}, Result{Started: t0, Finished: t0.Add(time.Hour), CertExpiry: t0.Add(24 * time.Hour)}, store.MonitorUp, ""},
		{"refused", Thresholds{Slow: time.Second}, Result{Started: t0, Finished: t0.Add(5 * time.Second), Err: refused}, store.MonitorDown, "smtp: connect: connection refused"},
		{"rejected rcpt", Thresholds{}, Result{Started: t0, Finished: t0, Err: errors.New("smtp: rcpt: 550 5.1.1 no such user")}, store.MonitorDown, "smtp: rcpt: 550 5.1.1 no such user"},
		{"slow", Thresholds{Slow: 500 * time.Millisecond}, Result{Started: t0, Finished: t0.Add(1200 * time.Millisecond)}, store.MonitorDegraded, "slow: 1200 ms, above 500 ms"},
		{"just at the slow limit", Thresholds{Slow: 500 * time.Millisecond}, Result{Started: t0, Finished: t0.Add(500 * time.Millisecond)}, store.MonitorUp, ""},
		{"cert expiring", Thresholds{CertDays: 14}, Result{Started: t0, Finished: t0, CertExpiry: t0.Add(5*24*time.Hour + time.Hour)}, store.MonitorDegraded, "certificate expires in 5 days (2026-12-11), within 14"},
		{"cert far off", Thresholds{CertDays: 14}, Result{Started: t0, Finished: t0, CertExpiry: t0.Add(90 * 24 * time.Hour)}, store.MonitorUp, ""},
		{"cert expired", Thresholds{}, Result{Started: t0, Finished: t0, CertExpiry: t0.Add(-time.Hour)}, store.MonitorDown, "certificate expired on 2026-12-06"},
		{"slow and expiring", Thresholds{Slow: time.Second, CertDays: 30}, Result{Started: t0, Finished: t0.Add(2 * time.Second), CertExpiry: t0.Add(10 * 24 * time.Hour)},
			store.MonitorDegraded, "certificate expires in 9 days (2026-12-16), within 30; slow: 2000 ms, above 1000 ms"},
		{"failure wins over slowness", Thresholds{Slow: time.Millisecond}, Result{Started: t0, Finished: t0.Add(time.Minute), Err: refused}, store.MonitorDown, "smtp: connect: connection refused"},
		{"arrival late", Thresholds{ArrivalLate: 10 * time.Second}, Result{Started: t0, Finished: t0.Add(20 * time.Second), Arrival: ptr(15 * time.Second)}, store.MonitorDegraded, "arrival late: 15000 ms, above 10000 ms"},
		{"arrival in time", Thresholds{ArrivalLate: 10 * time.Second}, Result{Started: t0, Finished: t0.Add(20 * time.Second), Arrival: ptr(10 * time.Second)}, store.MonitorUp, ""},
		{"arrival without threshold", Thresholds{}, Result{Started: t0, Finished: t0, Arrival: ptr(time.Hour)}, store.MonitorUp, ""},
		{"check warnings", Thresholds{}, Result{Started: t0, Finished: t0, Warnings: []string{"check x.test warns: no PTR"}}, store.MonitorDegraded, "check x.test warns: no PTR"},
		{"slow and late", Thresholds{Slow: time.Second, ArrivalLate: time.Second}, Result{Started: t0, Finished: t0.Add(3 * time.Second), Arrival: ptr(2 * time.Second)},
			store.MonitorDegraded, "slow: 3000 ms, above 1000 ms; arrival late: 2000 ms, above 1000 ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.th, tt.r)
			if got.State != tt.state || got.Reason != tt.reason {
				t.Errorf("Evaluate = %s %q, want %s %q", got.State, got.Reason, tt.state, tt.reason)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
