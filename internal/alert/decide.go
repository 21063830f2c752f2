// Package alert sends sockmail's monitor alerts: when a monitor changes
// state (up to down or degraded, and back: "resolved"), and again every
// repeat interval while it stays down, each channel of the monitor gets
// an alert: an email through a profile, stored in the outbox in the
// same transaction as the alert (so it is never lost), and a webhook,
// a JSON body signed with HMAC-SHA256 (Sign, Verify), stored and
// retried with backoff by a Worker under a lease until the receiver
// answers 2xx.
//
// During a monitor's quiet hours alerts are held and go out when the
// quiet hours end, unless the monitor recovered meanwhile: then the held
// alerts and the resolved alert are dropped (kept in the history as
// dropped), since nothing is wrong any more.
//
// The state last alerted about is kept in the store and moved by
// compare-and-set, so that a change is alerted once even with several
// instances on one database, and a Worker's sweep finds a change whose
// alert a crash lost between storing the run and recording the alert.
package alert

import (
	"fmt"
	"time"

	"sockmail/internal/store"
)

// Events of alerts.
const (
	EventDown     = "down"
	EventDegraded = "degraded"
	EventRepeat   = "repeat"
	EventResolved = "resolved"
)

// Decision is what Decide concluded for a monitor.
type Decision struct {
	// Event is the alert to send ("" for none).
	Event string
	// Update says the alerted state moves to State (at the decision's
	// time), with or without an alert.
	Update bool
	State  store.MonitorState
}

// effective is the state alerts consider: a degraded monitor counts as
// up unless its alerts cover degraded.
func effective(s store.MonitorState, onDegraded bool) store.MonitorState {
	if s == store.MonitorDegraded && !onDegraded {
		return store.MonitorUp
	}
	return s
}

// Decide compares a monitor's current state with the state last alerted
// about (alerted, at alertedAt) under its settings at now:
//
//   - no run yet (unknown): nothing;
//   - the same (effective) state: nothing, or a repeat when it is down
//     and the repeat interval has passed since the last alert;
//   - down or degraded: that alert;
//   - up after down or degraded: resolved; up at first: no alert (the
//     alerted state still moves).
func Decide(a store.AlertSettings, current store.MonitorState, now time.Time) Decision {
	if current == store.MonitorUnknown || current == "" {
		return Decision{}
	}
	cur := effective(current, a.OnDegraded)
	prev := a.AlertedState
	if prev == "" {
		prev = store.MonitorUnknown
	}
	if cur == prev {
		if cur == store.MonitorDown && a.RepeatMinutes > 0 && !now.Before(a.AlertedAt.Add(time.Duration(a.RepeatMinutes)*time.Minute)) {
			return Decision{Event: EventRepeat, Update: true, State: cur}
		}
		return Decision{}
	}
	switch cur {
	case store.MonitorDown:
		return Decision{Event: EventDown, Update: true, State: cur}
	case store.MonitorDegraded:
		return Decision{Event: EventDegraded, Update: true, State: cur}
	}
	if prev == store.MonitorUnknown || prev == store.MonitorUp {
		return Decision{Update: true, State: cur}
	}
	return Decision{Event: EventResolved, Update: true, State: cur}
}

// Quiet is a daily window of quiet hours in a time zone.
type Quiet struct {
	// Start and End are minutes after midnight; equal: no quiet hours.
	// Start after End spans midnight (22:00 to 07:00).
	Start, End int
	Loc        *time.Location
}

// QuietOf returns a monitor's quiet hours.
func QuietOf(a store.AlertSettings) (Quiet, error) {
	loc, err := time.LoadLocation(a.QuietTZ)
	if err != nil {
		return Quiet{}, fmt.Errorf("alert: quiet hours of monitor %d: %w", a.MonitorID, err)
	}
	return Quiet{Start: a.QuietStart, End: a.QuietEnd, Loc: loc}, nil
}

// Until reports whether t is within the quiet hours and, if so, when
// they end (the first instant alerts may go out).
func (q Quiet) Until(t time.Time) (time.Time, bool) {
	if q.Start == q.End || q.Loc == nil {
		return time.Time{}, false
	}
	lt := t.In(q.Loc)
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, q.Loc)
	at := func(day, minute int) time.Time {
		d := midnight.AddDate(0, 0, day)
		return time.Date(d.Year(), d.Month(), d.Day(), minute/60, minute%60, 0, 0, q.Loc)
	}
	// The windows that may contain t: one starting yesterday (spanning
	// midnight) and one starting today.
	for _, day := range []int{-1, 0} {
		start := at(day, q.Start)
		endDay := day
		if q.End <= q.Start {
			endDay++
		}
		end := at(endDay, q.End)
		if !t.Before(start) && t.Before(end) {
			return end, true
		}
	}
	return time.Time{}, false
}
