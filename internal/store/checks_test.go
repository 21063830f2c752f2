package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestChecks stores checks, finishes one with its report and sends, reads
// them back and pages through them newest first.
func TestChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		var ids []int64
		for i := range 5 {
			c := &Check{Target: fmt.Sprintf("example%d.test", i), Options: CheckOptions{Port: 2525 + i, ImplicitTLS: i%2 == 1}, Started: start.Add(time.Duration(i) * time.Minute)}
			if err := s.CreateCheck(ctx, c); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		got, err := s.Check(ctx, ids[1])
		if err != nil || !got.Running() || got.Report != nil || got.Options != (CheckOptions{Port: 2526, ImplicitTLS: true}) || !got.Started.Equal(start.Add(time.Minute)) {
			t.Fatalf("running check %+v, %v", got, err)
		}
		report := []byte(`{"target":"example1.test","kind":"domain"}`)
		if err := s.FinishCheck(ctx, ids[1], start.Add(2*time.Minute), "warning", report, map[int]int64{1: 7, 2: 9}); err != nil {
			t.Fatal(err)
		}
		got, err = s.Check(ctx, ids[1])
		if err != nil || got.Running() || got.Worst != "warning" || string(got.Report) != string(report) || got.Sends[1] != 7 || got.Sends[2] != 9 {
			t.Fatalf("finished check %+v, %v", got, err)
		}
		if err := s.FinishCheck(ctx, 999999, start, "pass", report, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("finish of no check: %v, want ErrNotFound", err)
		}
		if _, err := s.Check(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("read of no check: %v, want ErrNotFound", err)
		}
		tests := []struct {
			limit  int
			before int64
			want   []int64
		}{
			{limit: 2, want: []int64{ids[4], ids[3]}},
			{limit: 2, before: ids[3], want: []int64{ids[2], ids[1]}},
			{limit: 2, before: ids[1], want: []int64{ids[0]}},
			{limit: 0, want: []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		}
		for _, tt := range tests {
			list, err := s.ListChecks(ctx, tt.limit, tt.before)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []int64
			for _, c := range list {
				if c.Report != nil {
					t.Errorf("check %d listed with its report", c.ID)
				}
				gotIDs = append(gotIDs, c.ID)
			}
			if fmt.Sprint(gotIDs) != fmt.Sprint(tt.want) {
				t.Errorf("ListChecks(%d, %d) = %v, want %v", tt.limit, tt.before, gotIDs, tt.want)
			}
		}
	})
}
