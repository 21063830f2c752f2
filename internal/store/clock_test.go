package store

import (
	"testing"
	"time"
)

// TestSharedClock: an instance whose clock is ten minutes fast reads the
// database's time through its SharedClock.
func TestSharedClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		for _, skew := range []time.Duration{10 * time.Minute, -3 * time.Hour, 0} {
			c := NewSharedClock(func() time.Time { return time.Now().Add(skew) })
			offset, err := c.Sync(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if d := offset + skew; d < -time.Second || d > time.Second {
				t.Errorf("skew %v: measured offset %v", skew, offset)
			}
			if d := time.Until(c.Now()); d < -time.Second || d > time.Second {
				t.Errorf("skew %v: shared clock %v off the database's (this machine's) clock", skew, d)
			}
		}
	})
}
