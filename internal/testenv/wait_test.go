package testenv

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The waits run in a synctest bubble: its clock moves only when every
// goroutine in it is blocked, so minutes of waiting take no real time and
// the outcome does not depend on the machine.

func TestWaitFor(t *testing.T) {
	tests := []struct {
		name string
		// step is the progress at fake time d into the wait, and whether
		// the condition holds.
		step       func(d time.Duration) (int, bool)
		wantFail   bool
		wantInFail []string
		wantLast   int
	}{
		{
			name:     "done at once",
			step:     func(time.Duration) (int, bool) { return 7, true },
			wantLast: 7,
		},
		{
			name: "slow but steady: ten minutes in all, one step every 50 s",
			step: func(d time.Duration) (int, bool) {
				n := int(d / (50 * time.Second))
				return n, n >= 12
			},
			wantLast: 12,
		},
		{
			name: "stops at 3",
			step: func(d time.Duration) (int, bool) {
				return min(int(d/time.Second), 3), false
			},
			wantFail:   true,
			wantInFail: []string{"the thing", "no progress for 1m0s", "progress 3", "last changed 3s into the wait"},
			wantLast:   3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ft := &fakeTB{TB: t}
				start := time.Now()
				got := WaitFor(ft, "the thing", func() (int, bool) { return tt.step(time.Since(start)) })
				if got != tt.wantLast {
					t.Errorf("WaitFor returned progress %d, want %d", got, tt.wantLast)
				}
				if (ft.failed != "") != tt.wantFail {
					t.Fatalf("failed = %q, want failure %v", ft.failed, tt.wantFail)
				}
				for _, s := range tt.wantInFail {
					if !strings.Contains(ft.failed, s) {
						t.Errorf("failure %q does not say %q", ft.failed, s)
					}
				}
				if tt.wantFail {
					// The failure comes a stall limit after the last change,
					// not earlier and not much later.
					if d := time.Since(start); d < 3*time.Second+StallLimit || d > 3*time.Second+StallLimit+time.Second {
						t.Errorf("failed %v into the wait, want %v", d, 3*time.Second+StallLimit)
					}
				}
			})
		})
	}
}

func TestWaitUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTB{TB: t}
		start := time.Now()
		WaitUntil(ft, "late", func() bool { return time.Since(start) > StallLimit-time.Second })
		if ft.failed != "" {
			t.Errorf("a condition true within the limit failed: %q", ft.failed)
		}
		WaitUntil(ft, "never true", func() bool { return false })
		if !strings.Contains(ft.failed, "never true") {
			t.Errorf("failure %q does not name what was awaited", ft.failed)
		}
	})
}

func TestWaitForStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTB{TB: t}
		start := time.Now()
		WaitForStall(ft, 5*time.Minute, "a slow step", func() (int, bool) { return 0, time.Since(start) > 4*time.Minute })
		if ft.failed != "" {
			t.Errorf("failed within the longer limit: %q", ft.failed)
		}
		WaitForStall(ft, time.Second, "a short one", func() (int, bool) { return 0, false })
		if !strings.Contains(ft.failed, "no progress for 1s") {
			t.Errorf("failure %q", ft.failed)
		}
	})
}
