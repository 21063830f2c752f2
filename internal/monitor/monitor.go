// Package monitor runs sockmail's monitors: named tests of a mail server
// (a quit-after test from connect to RCPT TO, or a full send through a
// profile) run every few minutes, each run kept as a send in the history
// and judged up, degraded or down with a reason (Evaluate).
//
// A Scheduler claims due monitors from the store under a lease, so that
// several instances sharing a PostgreSQL database run each monitor once
// per interval, runs them with bounded concurrency, one run per monitor
// at a time, and stores each outcome.
package monitor

import (
	"fmt"
	"strings"
	"time"

	"sockmail/internal/store"
)

// Result is what one run of a monitor observed.
type Result struct {
	// Started and Finished bound the run.
	Started, Finished time.Time
	// Err is why the run failed (refused, timed out, rejected); nil when
	// the server did what the monitor asked.
	Err error
	// CertExpiry is when the server's certificate expires; zero when no
	// TLS handshake happened.
	CertExpiry time.Time
	// SendID is the send (source "monitor") that keeps the transcript.
	SendID *int64
	// CheckID is the check a check monitor's run stored.
	CheckID *int64
	// Arrival is how long the message of a full send took from the start
	// of the send to being found in the mailbox (IMAP or the capture
	// server); nil when the run did not look or did not find it.
	Arrival *time.Duration
	// Warnings are reasons, found by the run itself, to judge a working
	// server degraded (a check's warnings).
	Warnings []string
}

// Latency is how long the run took.
func (r Result) Latency() time.Duration { return r.Finished.Sub(r.Started) }

// Thresholds are the limits beyond which a working server is degraded.
type Thresholds struct {
	// Slow: a run taking longer is degraded (0: never).
	Slow time.Duration
	// CertDays: a certificate expiring within this many days of the run
	// is degraded (0: never).
	CertDays int
	// ArrivalLate: a message found later than this after its send began
	// is degraded (0: never).
	ArrivalLate time.Duration
}

// ThresholdsOf returns a stored monitor's thresholds.
func ThresholdsOf(m store.Monitor) Thresholds {
	return Thresholds{Slow: time.Duration(m.SlowMS) * time.Millisecond, CertDays: m.CertDays,
		ArrivalLate: time.Duration(m.Options.ArrivalLateMS) * time.Millisecond}
}

// State is a monitor's health after a run, with the reason when it is
// not up.
type State struct {
	State  store.MonitorState
	Reason string
}

// Evaluate judges a run: down when it failed (the reason names the
// error), degraded when it was slow, its message arrived late, the
// certificate expires soon (or has expired: then down) or the run found
// warnings, up otherwise. Several degradations are all named, joined by
// "; ".
func Evaluate(th Thresholds, r Result) State {
	if r.Err != nil {
		return State{State: store.MonitorDown, Reason: r.Err.Error()}
	}
	var reasons []string
	if !r.CertExpiry.IsZero() {
		left := r.CertExpiry.Sub(r.Finished)
		switch {
		case left <= 0:
			return State{State: store.MonitorDown, Reason: "certificate expired on " + r.CertExpiry.UTC().Format(time.DateOnly)}
		case th.CertDays > 0 && left < time.Duration(th.CertDays)*24*time.Hour:
			reasons = append(reasons, fmt.Sprintf("certificate expires in %d days (%s), within %d",
				int(left/(24*time.Hour)), r.CertExpiry.UTC().Format(time.DateOnly), th.CertDays))
		}
	}
	if th.Slow > 0 && r.Latency() > th.Slow {
		reasons = append(reasons, fmt.Sprintf("slow: %d ms, above %d ms", r.Latency().Milliseconds(), th.Slow.Milliseconds()))
	}
	if th.ArrivalLate > 0 && r.Arrival != nil && *r.Arrival > th.ArrivalLate {
		reasons = append(reasons, fmt.Sprintf("arrival late: %d ms, above %d ms", r.Arrival.Milliseconds(), th.ArrivalLate.Milliseconds()))
	}
	reasons = append(reasons, r.Warnings...)
	if len(reasons) > 0 {
		return State{State: store.MonitorDegraded, Reason: strings.Join(reasons, "; ")}
	}
	return State{State: store.MonitorUp}
}
