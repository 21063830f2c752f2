package store

import (
	"reflect"
	"testing"
	"time"
)

// TestPublicForm: PublicForm returns what FormBySlug does, keeps it for
// its time to live (a change made behind its back, as another instance
// would, is not seen meanwhile, and is seen after), sees this Store's own
// SaveForm and DeleteForm at once, and hands out copies.
func TestPublicForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		s.formTTL = time.Hour // nothing expires during the test unless set so
		f := testForm("Cached")
		wantErr(t, "SaveForm", s.SaveForm(ctx, f), nil)
		got, err := s.PublicForm(ctx, f.Slug)
		wantErr(t, "PublicForm", err, nil)
		if want, _ := s.FormBySlug(ctx, f.Slug); !reflect.DeepEqual(got, want) {
			t.Fatalf("PublicForm:\n got %+v\nwant %+v", got, want)
		}
		got.Recipients[0] = "changed@example.org" // the caller's own copy
		if again, _ := s.PublicForm(ctx, f.Slug); again.Recipients[0] != f.Recipients[0] {
			t.Errorf("a caller's change reached the cache: %v", again.Recipients)
		}

		// Another instance disables the form: not seen until the entry expires.
		if _, err := s.w.ExecContext(ctx, s.q(`UPDATE forms SET enabled = ? WHERE id = ?`), false, f.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.PublicForm(ctx, f.Slug); !got.Enabled {
			t.Errorf("a change behind the cache's back was seen before its time to live")
		}
		s.formTTL = 0
		if got, _ := s.PublicForm(ctx, f.Slug); got.Enabled {
			t.Errorf("the change behind the cache's back was not seen after the time to live")
		}
		s.formTTL = time.Hour

		// This Store's own changes are seen at once.
		f.Enabled, f.Recipients = true, []string{"new-owner@example.org"}
		wantErr(t, "SaveForm update", s.SaveForm(ctx, f), nil)
		if got, _ := s.PublicForm(ctx, f.Slug); !got.Enabled || !reflect.DeepEqual(got.Recipients, f.Recipients) {
			t.Errorf("after SaveForm: %v %v, want enabled %v", got.Enabled, got.Recipients, f.Recipients)
		}
		wantErr(t, "DeleteForm", s.DeleteForm(ctx, f.ID), nil)
		_, err = s.PublicForm(ctx, f.Slug)
		wantErr(t, "PublicForm after DeleteForm", err, ErrNotFound)
		_, err = s.PublicForm(ctx, "nosuchslug")
		wantErr(t, "PublicForm missing", err, ErrNotFound)
	})
}
