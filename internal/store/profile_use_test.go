package store

import (
	"reflect"
	"testing"
)

func TestDeleteUnusedProfile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		profile := func(name string) int64 {
			t.Helper()
			p := &Profile{Name: name, Host: "mail.example.org", Port: 587, TLSMode: "starttls"}
			if err := s.SaveProfile(ctx, p); err != nil {
				t.Fatal(err)
			}
			return p.ID
		}
		form := func(name string, profileID int64) *Form {
			t.Helper()
			f := testForm(name)
			f.ProfileID = profileID
			if err := s.SaveForm(ctx, f); err != nil {
				t.Fatal(err)
			}
			return f
		}
		// queue stores a submission of f whose item goes through profileID
		// and leaves the item in status.
		queue := func(f *Form, profileID int64, tag string, status OutboxStatus) *OutboxItem {
			t.Helper()
			sub := &Submission{FormID: f.ID, CreatedAt: t0, ClientAddr: "203.0.113.9", Fields: []FieldValue{{"name", tag}}}
			it := &OutboxItem{ProfileID: profileID, MailFrom: "forms@example.org", Rcpts: []string{"owner@example.org"},
				Message: testMessage(tag), NextAttemptAt: t0}
			if status == OutboxHeld {
				sub.Status, sub.BlockReason = SubmissionBlocked, "honeypot"
			}
			if err := s.EnqueueSubmission(ctx, sub, it); err != nil {
				t.Fatal(err)
			}
			if status == OutboxCancelled {
				wantErr(t, "cancel "+tag, s.CancelOutbox(ctx, it.ID), nil)
			}
			return it
		}

		used, spare, waiting, other := profile("used"), profile("spare"), profile("waiting"), profile("other")
		zeta, alpha := form("Zeta site", used), form("Alpha site", used)
		moved := form("Moved site", other)
		// Queued and held items of a form since moved to another profile
		// still go through the profile they were queued with.
		queue(moved, waiting, "q", OutboxQueued)
		queue(moved, waiting, "h", OutboxHeld)
		// A cancelled item waits for nobody: an admin would have to retry it.
		queue(moved, spare, "c", OutboxCancelled)

		tests := []struct {
			name    string
			id      int64
			want    ProfileUse
			wantErr error
		}{
			{"used by two forms", used, ProfileUse{Forms: []FormRef{{alpha.ID, "Alpha site"}, {zeta.ID, "Zeta site"}}}, ErrProfileInUse},
			{"items waiting", waiting, ProfileUse{Waiting: 2}, ErrProfileInUse},
			{"only a cancelled item", spare, ProfileUse{}, nil},
			{"missing", 99999, ProfileUse{}, ErrNotFound},
		}
		for _, tt := range tests {
			u, err := s.ProfileUse(ctx, tt.id)
			if err != nil || !reflect.DeepEqual(u, tt.want) {
				t.Errorf("%s: ProfileUse = %+v, %v; want %+v", tt.name, u, err, tt.want)
			}
			if u.InUse() != (tt.wantErr == ErrProfileInUse) {
				t.Errorf("%s: InUse() = %v", tt.name, u.InUse())
			}
			u, err = s.DeleteUnusedProfile(ctx, tt.id)
			wantErr(t, tt.name, err, tt.wantErr)
			if !reflect.DeepEqual(u, tt.want) {
				t.Errorf("%s: DeleteUnusedProfile use = %+v; want %+v", tt.name, u, tt.want)
			}
			_, err = s.Profile(ctx, tt.id)
			if gone := err != nil; gone != (tt.wantErr != ErrProfileInUse) {
				t.Errorf("%s: after delete Profile error %v", tt.name, err)
			}
		}

		// Once the forms use another profile, the profile can go; the
		// forms and their items are untouched.
		for _, f := range []*Form{alpha, zeta} {
			f.ProfileID = other
			wantErr(t, "move form", s.SaveForm(ctx, f), nil)
		}
		if _, err := s.DeleteUnusedProfile(ctx, used); err != nil {
			t.Fatalf("delete after moving the forms: %v", err)
		}
		if n, err := s.OutboxCounts(ctx); err != nil || n[OutboxQueued] != 1 || n[OutboxHeld] != 1 || n[OutboxCancelled] != 1 {
			t.Errorf("outbox counts %v, %v", n, err)
		}
	})
}
