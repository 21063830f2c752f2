package testenv

import (
	"testing"
	"time"
)

// Waiting for something that happens in other goroutines or processes.
// A test on a slow or loaded machine takes longer, but it still makes
// progress; so a wait fails only when progress stops, never because the
// whole wait took long.

const (
	// StallLimit is how long WaitFor lets the progress stay the same, and
	// WaitUntil a condition stay false, before failing the test.
	StallLimit = 60 * time.Second
	// PollEvery is how often WaitFor and WaitUntil look.
	PollEvery = 10 * time.Millisecond
)

// WaitFor calls cond every PollEvery until it reports done, and returns
// the last progress. cond reports its progress as a comparable value (a
// count of items delivered, a struct of counts, ...): while the value
// changes, WaitFor waits however long it takes; once it has stayed the
// same for StallLimit, the test fails with what was awaited, the last
// progress and when it last changed. Callers must return right after a
// failure: a fake testing.TB may not stop the goroutine.
func WaitFor[P comparable](t testing.TB, what string, cond func() (progress P, done bool)) P {
	t.Helper()
	return WaitForStall(t, StallLimit, what, cond)
}

// WaitForStall is WaitFor with another stall limit: longer for a step
// that shows no progress for a while by design.
func WaitForStall[P comparable](t testing.TB, stall time.Duration, what string, cond func() (progress P, done bool)) P {
	t.Helper()
	start := time.Now()
	last, done := cond()
	changed := start
	for !done {
		time.Sleep(PollEvery)
		var now P
		now, done = cond()
		if now != last {
			last, changed = now, time.Now()
			continue
		}
		if !done && time.Since(changed) >= stall {
			t.Fatalf("testenv: waiting for %s: no progress for %v (progress %+v, last changed %v into the wait)",
				what, stall, last, changed.Sub(start).Round(time.Millisecond))
			return last
		}
	}
	return last
}

// WaitUntil waits until cond is true, failing the test when it has stayed
// false for StallLimit. Use WaitFor when there is progress to report.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, what, func() (struct{}, bool) { return struct{}{}, cond() })
}
