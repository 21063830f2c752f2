package store

import (
	"testing"
	"time"
)

func TestResends(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		parent := &Send{Source: "web", Server: "mx.example.org:25", Rcpts: []string{"a@example.net"}}
		other := &Send{Source: "cli"}
		for _, snd := range []*Send{parent, other} {
			if err := s.CreateSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Resends(ctx, parent.ID)
		if err != nil || len(got) != 0 {
			t.Fatalf("Resends before any = %v, %v", got, err)
		}
		var kids []int64
		for i := range 3 {
			k := &Send{Source: "web", ParentID: &parent.ID, Server: "relay" + string(rune('a'+i)) + ".example.org:587",
				CreatedAt: time.Date(2025, 3, 1, i, 0, 0, 0, time.UTC)}
			if err := s.CreateSend(ctx, k); err != nil {
				t.Fatal(err)
			}
			kids = append(kids, k.ID)
		}
		// A resend of a resend belongs to its own parent only.
		grandchild := &Send{Source: "web", ParentID: &kids[0]}
		if err := s.CreateSend(ctx, grandchild); err != nil {
			t.Fatal(err)
		}
		got, err = s.Resends(ctx, parent.ID)
		if err != nil || len(got) != 3 {
			t.Fatalf("Resends = %d, %v; want 3", len(got), err)
		}
		for i, r := range got {
			if r.ID != kids[i] || r.ParentID == nil || *r.ParentID != parent.ID || r.Server != "relay"+string(rune('a'+i))+".example.org:587" {
				t.Errorf("resend %d = %+v", i, r)
			}
		}
		if got, err := s.Resends(ctx, kids[0]); err != nil || len(got) != 1 || got[0].ID != grandchild.ID {
			t.Errorf("Resends of a resend = %v, %v", got, err)
		}
		if got, err := s.Resends(ctx, 1<<40); err != nil || len(got) != 0 {
			t.Errorf("Resends of a missing send = %v, %v", got, err)
		}
		// Deleting the parent keeps its resends, unlinked.
		wantErr(t, "DeleteSend", s.DeleteSend(ctx, parent.ID), nil)
		if got, err := s.Resends(ctx, parent.ID); err != nil || len(got) != 0 {
			t.Errorf("Resends of a deleted send = %v, %v", got, err)
		}
		if k, err := s.Send(ctx, kids[1]); err != nil || k.ParentID != nil {
			t.Errorf("resend after its parent was deleted: %+v, %v", k, err)
		}
	})
}
