package store

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestCaptured(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		if got, err := s.ListCaptured(ctx, 10, 0); err != nil || len(got) != 0 {
			t.Fatalf("ListCaptured on empty store = %v, %v", got, err)
		}
		raw := []byte("From: a@example.org\r\nSubject: hi\r\n\r\nbody \x00\xff\r\n")
		first := &Captured{ReceivedAt: time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC), MailFrom: "a@example.org",
			Rcpts: []string{"b@example.org", "c@example.org"}, Subject: "hi \xff\x00", Raw: raw,
			RemoteAddr: "127.0.0.1:5555", TLS: true, AuthUser: "bob"}
		if err := s.SaveCaptured(ctx, first); err != nil {
			t.Fatal(err)
		}
		if first.ID == 0 || first.Size != int64(len(raw)) || first.ReceivedAt.Nanosecond() != 6000 {
			t.Fatalf("after SaveCaptured %+v", first)
		}
		got, err := s.Captured(ctx, first.ID)
		if err != nil || !reflect.DeepEqual(got, first) {
			t.Fatalf("Captured = %+v, %v\nwant %+v", got, err, first)
		}
		var ids []int64
		for i := range 5 {
			c := &Captured{MailFrom: fmt.Sprintf("n%d@example.org", i), Raw: []byte("x"), Size: 42}
			if err := s.SaveCaptured(ctx, c); err != nil {
				t.Fatal(err)
			}
			if c.Size != 42 || c.ReceivedAt.IsZero() {
				t.Errorf("SaveCaptured changed a set Size or left ReceivedAt zero: %+v", c)
			}
			ids = append(ids, c.ID)
		}
		page, err := s.ListCaptured(ctx, 4, 0)
		if err != nil || len(page) != 4 || page[0].ID != ids[4] || page[3].ID != ids[1] {
			t.Fatalf("ListCaptured(4, 0) = %+v, %v", page, err)
		}
		for _, c := range page {
			if c.Raw != nil {
				t.Errorf("ListCaptured returned Raw for %d", c.ID)
			}
		}
		page, err = s.ListCaptured(ctx, 4, page[3].ID)
		if err != nil || len(page) != 2 || page[0].ID != ids[0] || page[1].ID != first.ID {
			t.Fatalf("ListCaptured second page = %+v, %v", page, err)
		}
		listed := page[1]
		want := *first
		want.Raw = nil
		if !reflect.DeepEqual(listed, want) {
			t.Errorf("listed %+v\nwant %+v", listed, want)
		}
		wantErr(t, "DeleteCaptured", s.DeleteCaptured(ctx, first.ID), nil)
		wantErr(t, "DeleteCaptured again", s.DeleteCaptured(ctx, first.ID), ErrNotFound)
		_, err = s.Captured(ctx, first.ID)
		wantErr(t, "Captured deleted", err, ErrNotFound)
	})
}

// TestPruneCaptured: each limit drops the oldest messages and keeps the
// newest; DeleteAllCaptured empties the table. Both backends.
func TestPruneCaptured(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		limits  CapturedLimits
		kept    int // newest messages kept, of 6 (sizes 10, 20, ... 60; received a day apart)
		deleted int
	}{
		{"none", CapturedLimits{}, 6, 0},
		{"count", CapturedLimits{MaxMessages: 4}, 4, 2},
		{"count above", CapturedLimits{MaxMessages: 10}, 6, 0},
		{"bytes", CapturedLimits{MaxBytes: 60 + 50 + 40}, 3, 3},
		{"bytes just under", CapturedLimits{MaxBytes: 60 + 50 + 40 - 1}, 2, 4},
		{"bytes above", CapturedLimits{MaxBytes: 1000}, 6, 0},
		{"age", CapturedLimits{OlderThan: base.Add(3 * 24 * time.Hour)}, 3, 3},
		{"all three, count wins", CapturedLimits{MaxMessages: 1, MaxBytes: 1000, OlderThan: base}, 1, 5},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := ctxT(t)
				if _, err := s.DeleteAllCaptured(ctx); err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for i := range 6 {
					c := &Captured{ReceivedAt: base.Add(time.Duration(i) * 24 * time.Hour), MailFrom: "a@example.org",
						Raw: []byte("x"), Size: int64(10 * (i + 1))}
					if err := s.SaveCaptured(ctx, c); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, c.ID)
				}
				n, err := s.PruneCaptured(ctx, tt.limits)
				if err != nil || n != tt.deleted {
					t.Fatalf("PruneCaptured = %d, %v; want %d", n, err, tt.deleted)
				}
				list, err := s.ListCaptured(ctx, 100, 0)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, c := range list {
					got = append(got, c.ID)
				}
				want := ids[6-tt.kept:]
				slices.Reverse(want)
				if !slices.Equal(got, want) {
					t.Errorf("kept %v, want %v", got, want)
				}
			})
		}
		ctx := ctxT(t)
		n, err := s.DeleteAllCaptured(ctx)
		if err != nil || n != 1 {
			t.Errorf("DeleteAllCaptured = %d, %v; want 1", n, err)
		}
		if list, err := s.ListCaptured(ctx, 10, 0); err != nil || len(list) != 0 {
			t.Errorf("after DeleteAllCaptured: %d, %v", len(list), err)
		}
	})
}
