package alert

import (
	"errors"
	"testing"
	"time"

	"sockmail/internal/store"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// TestDecide: every transition between states, with degraded counted or
// not, and the repeat while down.
func TestDecide(t *testing.T) {
	const (
		unknown  = store.MonitorUnknown
		up       = store.MonitorUp
		degraded = store.MonitorDegraded
		down     = store.MonitorDown
	)
	tests := []struct {
		name       string
		alerted    store.MonitorState
		alertedAt  time.Time
		onDegraded bool
		repeat     int
		current    store.MonitorState
		now        time.Time
		want       Decision
	}{
		{name: "no run yet", alerted: unknown, current: unknown, now: t0, want: Decision{}},
		{name: "first run up: no alert", alerted: unknown, current: up, now: t0, want: Decision{Update: true, State: up}},
		{name: "first run down", alerted: unknown, current: down, now: t0, want: Decision{Event: EventDown, Update: true, State: down}},
		{name: "up stays up", alerted: up, current: up, now: t0, want: Decision{}},
		{name: "up to down", alerted: up, current: down, now: t0, want: Decision{Event: EventDown, Update: true, State: down}},
		{name: "up to degraded, degraded alerted", alerted: up, onDegraded: true, current: degraded, now: t0, want: Decision{Event: EventDegraded, Update: true, State: degraded}},
		{name: "up to degraded, degraded ignored", alerted: up, current: degraded, now: t0, want: Decision{}},
		{name: "down to up: resolved", alerted: down, current: up, now: t0, want: Decision{Event: EventResolved, Update: true, State: up}},
		{name: "down to degraded, degraded ignored: resolved", alerted: down, current: degraded, now: t0, want: Decision{Event: EventResolved, Update: true, State: up}},
		{name: "down to degraded, degraded alerted", alerted: down, onDegraded: true, current: degraded, now: t0, want: Decision{Event: EventDegraded, Update: true, State: degraded}},
		{name: "degraded to up: resolved", alerted: degraded, onDegraded: true, current: up, now: t0, want: Decision{Event: EventResolved, Update: true, State: up}},
		{name: "degraded to down", alerted: degraded, onDegraded: true, current: down, now: t0, want: Decision{Event: EventDown, Update: true, State: down}},
		{name: "still down, no repeat set", alerted: down, alertedAt: t0, current: down, now: t0.Add(24 * time.Hour), want: Decision{}},
		{name: "still down, repeat not due", alerted: down, alertedAt: t0, repeat: 30, current: down, now: t0.Add(29 * time.Minute), want: Decision{}},
		{name: "still down, repeat due", alerted: down, alertedAt: t0, repeat: 30, current: down, now: t0.Add(30 * time.Minute), want: Decision{Event: EventRepeat, Update: true, State: down}},
		{name: "still degraded: no repeat", alerted: degraded, alertedAt: t0, onDegraded: true, repeat: 30, current: degraded, now: t0.Add(time.Hour), want: Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := store.AlertSettings{AlertedState: tt.alerted, AlertedAt: tt.alertedAt, OnDegraded: tt.onDegraded, RepeatMinutes: tt.repeat}
			if got := Decide(a, tt.current, tt.now); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestQuietUntil: windows within a day and across midnight, in a time
// zone with a daylight-saving change, and none when start equals end.
func TestQuietUntil(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, y int, mo time.Month, d, h, m int) time.Time {
		return time.Date(y, mo, d, h, m, 0, 0, loc)
	}
	tests := []struct {
		name  string
		q     Quiet
		t     time.Time
		quiet bool
		until time.Time
	}{
		{name: "none", q: Quiet{Start: 600, End: 600, Loc: time.UTC}, t: at(time.UTC, 2026, 12, 6, 10, 0)},
		{name: "day window, inside", q: Quiet{Start: 12 * 60, End: 14 * 60, Loc: time.UTC}, t: at(time.UTC, 2026, 12, 6, 13, 0), quiet: true, until: at(time.UTC, 2026, 12, 6, 14, 0)},
		{name: "day window, at its end", q: Quiet{Start: 12 * 60, End: 14 * 60, Loc: time.UTC}, t: at(time.UTC, 2026, 12, 6, 14, 0)},
		{name: "day window, before", q: Quiet{Start: 12 * 60, End: 14 * 60, Loc: time.UTC}, t: at(time.UTC, 2026, 12, 6, 11, 59)},
		{name: "night window, evening", q: Quiet{Start: 22 * 60, End: 7 * 60, Loc: paris}, t: at(paris, 2026, 12, 6, 23, 30), quiet: true, until: at(paris, 2026, 12, 7, 7, 0)},
		{name: "night window, morning", q: Quiet{Start: 22 * 60, End: 7 * 60, Loc: paris}, t: at(paris, 2026, 12, 7, 6, 59), quiet: true, until: at(paris, 2026, 12, 7, 7, 0)},
		{name: "night window, day", q: Quiet{Start: 22 * 60, End: 7 * 60, Loc: paris}, t: at(paris, 2026, 12, 7, 12, 0)},
		{name: "in UTC terms", q: Quiet{Start: 22 * 60, End: 7 * 60, Loc: paris}, t: at(time.UTC, 2026, 12, 6, 21, 30), quiet: true, until: at(time.UTC, 2026, 12, 7, 6, 0)},
		{name: "across the spring change", q: Quiet{Start: 22 * 60, End: 7 * 60, Loc: paris}, t: at(paris, 2026, 3, 28, 23, 0), quiet: true, until: at(time.UTC, 2026, 3, 29, 5, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until, quiet := tt.q.Until(tt.t)
			if quiet != tt.quiet || !until.Equal(tt.until) {
				t.Errorf("Until(%v) = %v, %v; want %v, %v", tt.t, until, quiet, tt.until, tt.quiet)
			}
		})
	}
}

// TestVerify: a signed body verifies; a changed body, timestamp or
// secret, a stale or future timestamp and malformed headers do not.
func TestVerify(t *testing.T) {
	body := []byte(`{"event":"down"}`)
	sig := Sign("s3cret", t0, body)
	ts := "1796551200" // t0
	if got := time.Unix(1796551200, 0); !got.Equal(t0) {
		t.Fatalf("test timestamp %v is not t0", got)
	}
	tests := []struct {
		name          string
		secret, ts    string
		sig           string
		body          []byte
		now           time.Time
		want, wantNot error
	}{
		{name: "good", secret: "s3cret", ts: ts, sig: sig, body: body, now: t0.Add(time.Minute)},
		{name: "body changed", secret: "s3cret", ts: ts, sig: sig, body: []byte(`{"event":"up"}`), now: t0, want: ErrBadSignature},
		{name: "timestamp changed (replay with a fresh time)", secret: "s3cret", ts: "1796551260", sig: sig, body: body, now: t0.Add(time.Minute), want: ErrBadSignature},
		{name: "other secret", secret: "other", ts: ts, sig: sig, body: body, now: t0, want: ErrBadSignature},
		{name: "stale", secret: "s3cret", ts: ts, sig: sig, body: body, now: t0.Add(6 * time.Minute), want: ErrStale},
		{name: "future", secret: "s3cret", ts: ts, sig: sig, body: body, now: t0.Add(-6 * time.Minute), want: ErrStale},
		{name: "no prefix", secret: "s3cret", ts: ts, sig: sig[len("sha256="):], body: body, now: t0, want: ErrBadSignature},
		{name: "not hex", secret: "s3cret", ts: ts, sig: "sha256=zz", body: body, now: t0, want: ErrBadSignature},
		{name: "no timestamp", secret: "s3cret", ts: "", sig: sig, body: body, now: t0, want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.ts, tt.sig, tt.body, tt.now, 0)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
