package store

import "testing"

// TestProfileMaxConnections: a profile's connection limit (migration
// 0016) is stored, read back and updated, 0 by default, on both backends.
func TestProfileMaxConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		p := &Profile{Name: "limited", Host: "mail.example.org", Port: 25, TLSMode: "none"}
		if err := s.SaveProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, want := range []int{0, 1, 7} {
			p.MaxConnections = want
			if err := s.SaveProfile(ctx, p); err != nil {
				t.Fatal(err)
			}
			got, err := s.Profile(ctx, p.ID)
			if err != nil || got.MaxConnections != want {
				t.Fatalf("MaxConnections = %v (%v), want %d", got, err, want)
			}
		}
	})
}
