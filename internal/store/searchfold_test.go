package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"sockmail/smtp"
)

// TestFoldSearchText: on PostgreSQL new sends store their searchable text
// lowercased; sends stored before migration 0019 (mixed case, below the
// fold mark) are found by any case of a word while they wait, are folded
// newest first in batches, the mark going down to 0, and are found the
// same afterwards. SQLite has nothing to fold and finds the same sends.
func TestFoldSearchText(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var ids []int64
		for i := range 7 {
			snd := &Send{Source: "web", Server: "mx.example.org:25", MailFrom: "a@example.org",
				Rcpts: []string{fmt.Sprintf("User%d@Example.NET", i)}, Subject: fmt.Sprintf("Échec Greylisted %d", i)}
			if err := s.CreateSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
			snd.Status, snd.QueueID = smtp.StatusTempFail, fmt.Sprintf("QID%dABC", i)
			snd.Events = []smtp.Event{{Dir: smtp.DirServer, Phase: smtp.PhaseRcpt, Line: "451 4.7.1 Greylisted, TRY AGAIN"}}
			if err := s.FinishSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, snd.ID)
		}
		find := func(when, q string) {
			t.Helper()
			p, err := s.ListSends(ctx, SendFilter{Query: q})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range p.Sends {
				got = append(got, m.ID)
			}
			want := slices.Clone(ids)
			slices.Reverse(want)
			if !slices.Equal(got, want) || p.Total != len(ids) {
				t.Errorf("%s: search %q found %v (total %d), want %v", when, q, got, p.Total, want)
			}
		}
		queries := []string{"greylisted", "GREYLISTED", "try again", "échec", "ÉCHEC", "example.net"}
		if s.Backend() == BackendSQLite {
			// FTS5's trigram tokenizer folds ASCII only.
			queries = queries[:3]
		}
		for _, q := range queries {
			find("new sends", q)
		}
		if s.Backend() != BackendPostgres {
			if _, more, err := s.FoldSearchText(ctx, 10); err != nil || more {
				t.Errorf("FoldSearchText on SQLite: more %v, err %v; want nothing to do", more, err)
			}
			return
		}
		var stored string
		if err := s.r.QueryRowContext(ctx, `SELECT search_text FROM send_bodies WHERE send_id = $1`, ids[0]).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if want := "qid0abc"; !strings.Contains(stored, want) {
			t.Errorf("stored searchable text %q: want it lowercased (holding %q)", stored, want)
		}

		// Make the sends look stored before migration 0019: mixed case,
		// all below the mark.
		if _, err := s.w.ExecContext(ctx, `UPDATE send_bodies SET search_text = upper(search_text)`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, `UPDATE search_fold SET below = $1`, ids[len(ids)-1]+1); err != nil {
			t.Fatal(err)
		}
		if err := s.loadFold(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range queries {
			find("before folding", q)
		}
		var batches []int
		for {
			changed, more, err := s.FoldSearchText(ctx, 3)
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, changed)
			if !more {
				break
			}
			if len(batches) > 10 {
				t.Fatalf("still folding after %v", batches)
			}
			// Halfway: the folded newest rows and the rest are both found.
			for _, q := range queries {
				find("while folding", q)
			}
		}
		if want := []int{3, 3, 1}; !slices.Equal(batches, want) {
			t.Errorf("rows folded per batch of 3: %v, want %v", batches, want)
		}
		var below int64
		if err := s.r.QueryRowContext(ctx, `SELECT below FROM search_fold`).Scan(&below); err != nil || below != 0 || s.fold.below.Load() != 0 {
			t.Errorf("after folding: search_fold.below %d (cached %d), err %v; want 0", below, s.fold.below.Load(), err)
		}
		var upper int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM send_bodies WHERE search_text <> lower(search_text)`).Scan(&upper); err != nil || upper != 0 {
			t.Errorf("%d rows not lowercased after folding (err %v)", upper, err)
		}
		for _, q := range queries {
			find("after folding", q)
		}
		if changed, more, err := s.FoldSearchText(ctx, 3); changed != 0 || more || err != nil {
			t.Errorf("FoldSearchText when done: %d, %v, %v; want nothing", changed, more, err)
		}
	})
}
