package store

import (
	"errors"
	"testing"
	"time"
)

// TestClaimedAnyway: on PostgreSQL a claim whose answer was lost (the
// connection cut after the server committed it) is found by its owner
// and lease end, which no other claim of the Store shares; a claim that
// took nothing leaves its error. TestFaultReadOnlyPostgres (outbox) cuts
// connections while the worker claims: before this, one run in about 15
// left an item claimed by nobody until its lease expired.
func TestClaimedAnyway(t *testing.T) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	for _, tag := range []string{"a", "b", "c"} {
		enqueue(t, s, form, tag, SubmissionQueued, t0)
	}
	claimed, err := s.ClaimDue(ctx, "w1", t0, time.Minute, 2)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("ClaimDue: %d items, %v", len(claimed), err)
	}
	until := micros(claimed[0].LeaseUntil)
	lost := errors.New("the answer was lost")
	found, err := s.claimedAnyway(ctx, "w1", until, lost)
	if err != nil || len(found) != 2 {
		t.Fatalf("claimedAnyway: %d items, %v; want the claim's 2", len(found), err)
	}
	for i := range found {
		if found[i].ID != claimed[i].ID && found[i].ID != claimed[1-i].ID || string(found[i].Message) == "" {
			t.Errorf("found item %d (message %d bytes), want one of the claimed %d, %d with its message",
				found[i].ID, len(found[i].Message), claimed[0].ID, claimed[1].ID)
		}
	}
	// A second claim at the same time gets a lease end of its own.
	again, err := s.ClaimDue(ctx, "w1", t0, time.Minute, 5)
	if err != nil || len(again) != 1 {
		t.Fatalf("second ClaimDue: %d items, %v", len(again), err)
	}
	if u := micros(again[0].LeaseUntil); u <= until {
		t.Errorf("second claim's lease end %d, want after the first's %d", u, until)
	}
	if found, err := s.claimedAnyway(ctx, "w1", until, lost); err != nil || len(found) != 2 {
		t.Errorf("after a second claim: %d items, %v; want the first claim's 2 only", len(found), err)
	}
	// A renewal asking for the first claim's lease end gets one of its
	// own too: the renewed item is not taken for the first claim's.
	if err := s.RenewLease(ctx, again[0].ID, "w1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if found, err := s.claimedAnyway(ctx, "w1", until, lost); err != nil || len(found) != 2 {
		t.Errorf("after renewing the second claim's item to the first claim's lease end: %d items, %v; want the first claim's 2 only", len(found), err)
	}
	for _, c := range []struct {
		owner string
		until int64
	}{{"w2", until}, {"w1", until + 7}} {
		if found, err := s.claimedAnyway(ctx, c.owner, c.until, lost); !errors.Is(err, lost) || found != nil {
			t.Errorf("claimedAnyway(%s, %d): %d items, %v; want the claim's own error", c.owner, c.until, len(found), err)
		}
	}
}

// TestClaimUntilIncreases: each claim's lease end is after its owner's
// before, whatever it asked for; other owners' do not matter.
func TestClaimUntilIncreases(t *testing.T) {
	var c claimState
	for _, tc := range []struct {
		owner     string
		ask, want int64
	}{{"w1", 100, 100}, {"w1", 100, 101}, {"w1", 50, 102}, {"w2", 50, 50}, {"w1", 200, 200}, {"w1", 200, 201}, {"w2", 50, 51}} {
		if got := c.until(tc.owner, tc.ask); got != tc.want {
			t.Errorf("until(%s, %d) = %d, want %d", tc.owner, tc.ask, got, tc.want)
		}
	}
}
