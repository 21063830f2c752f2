package store

import (
	"reflect"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

func TestProfiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		if ps, err := s.Profiles(ctx); err != nil || len(ps) != 0 {
			t.Fatalf("Profiles on empty store = %v, %v", ps, err)
		}
		p := &Profile{Name: "postfix", Host: "mail.example.org", Port: 587, TLSMode: "starttls",
			AuthMech: "PLAIN", Username: "u", PasswordEnc: []byte{0, 1, 0xff}, HeloName: "client.example.org"}
		if err := s.SaveProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		if p.ID == 0 || p.CreatedAt.IsZero() || !p.CreatedAt.Equal(p.UpdatedAt) {
			t.Fatalf("after insert %+v", p)
		}
		got, err := s.Profile(ctx, p.ID)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("Profile = %+v, %v\nwant %+v", got, err, p)
		}
		if got, err := s.ProfileByName(ctx, "postfix"); err != nil || got.ID != p.ID {
			t.Fatalf("ProfileByName = %+v, %v", got, err)
		}
		q := &Profile{Name: "exim", Host: "10.0.0.1", Port: 465, TLSMode: "implicit", InsecureSkipVerify: true, AllowInsecureAuth: true}
		if err := s.SaveProfile(ctx, q); err != nil {
			t.Fatal(err)
		}

		// Update: every field changes, CreatedAt stays, UpdatedAt is the
		// time of the update: after the insert (the store keeps
		// microseconds, so the test first lets the clock pass it).
		created := p.CreatedAt
		testenv.WaitUntil(t, "the clock to pass the insert", func() bool { return normTime(time.Now()).After(created) })
		before := normTime(time.Now())
		upd := &Profile{ID: p.ID, Name: "postfix-2", Host: "smtp.example.org", Port: 25, TLSMode: "none",
			InsecureSkipVerify: true, AuthMech: "", Username: "", PasswordEnc: nil, HeloName: "", AllowInsecureAuth: true}
		if err := s.SaveProfile(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if after := normTime(time.Now()); !upd.CreatedAt.Equal(created) || upd.UpdatedAt.Before(before) || upd.UpdatedAt.After(after) {
			t.Errorf("update times: created %v (was %v), updated %v, want within [%v, %v]", upd.CreatedAt, created, upd.UpdatedAt, before, after)
		}
		got, err = s.Profile(ctx, p.ID)
		if err != nil || !reflect.DeepEqual(got, upd) {
			t.Fatalf("after update Profile = %+v, %v\nwant %+v", got, err, upd)
		}

		errs := []struct {
			name string
			p    *Profile
			want error
		}{
			{"insert duplicate name", &Profile{Name: "exim"}, ErrExists},
			{"update to a used name", &Profile{ID: p.ID, Name: "exim"}, ErrExists},
			{"update missing", &Profile{ID: 99999, Name: "ghost"}, ErrNotFound},
		}
		for _, tt := range errs {
			wantErr(t, tt.name, s.SaveProfile(ctx, tt.p), tt.want)
		}

		ps, err := s.Profiles(ctx)
		if err != nil || len(ps) != 2 || ps[0].Name != "exim" || ps[1].Name != "postfix-2" {
			t.Fatalf("Profiles = %+v, %v; want exim, postfix-2", ps, err)
		}
		if !ps[0].InsecureSkipVerify || !ps[0].AllowInsecureAuth || ps[0].PasswordEnc != nil {
			t.Errorf("listed profile %+v", ps[0])
		}

		wantErr(t, "DeleteProfile", s.DeleteProfile(ctx, q.ID), nil)
		wantErr(t, "DeleteProfile again", s.DeleteProfile(ctx, q.ID), ErrNotFound)
		_, err = s.Profile(ctx, q.ID)
		wantErr(t, "Profile deleted", err, ErrNotFound)
		_, err = s.ProfileByName(ctx, "exim")
		wantErr(t, "ProfileByName deleted", err, ErrNotFound)
	})
}
