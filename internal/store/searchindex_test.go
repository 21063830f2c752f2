package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestSearchQueue: on SQLite a send is searchable from the moment it is
// stored, before the indexer has put it in the full-text index (it is
// matched from the queue, case-insensitively beyond ASCII as the index
// does), and after; deleting or finishing a queued send leaves the index
// untouched and right; finishing an indexed one re-indexes it; the
// store's own indexer empties the queue.
func TestSearchQueue(t *testing.T) {
	s := openSQLiteStore(t)
	stopIndexing(s)
	ctx := ctxT(t)
	store := func(subject, line string) *Send {
		t.Helper()
		snd := &Send{Source: "web", Status: StatusRunning, Subject: subject, MailFrom: "a@example.org",
			Rcpts: []string{"b@example.org"}, Events: []smtp.Event{{Dir: smtp.DirServer, Phase: smtp.PhaseData, Line: line}}}
		if err := s.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		return snd
	}
	find := func(q string) []int64 {
		t.Helper()
		p, err := s.ListSends(ctx, SendFilter{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != len(p.Sends) {
			t.Errorf("search %q: total %d for %d sends", q, p.Total, len(p.Sends))
		}
		return pageIDs(p)
	}
	queued := func() int {
		t.Helper()
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM send_fts_pending`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	indexAll := func() {
		t.Helper()
		if _, err := s.IndexSearch(ctx, 1000); err != nil {
			t.Fatal(err)
		}
		if n := queued(); n != 0 {
			t.Fatalf("%d sends still queued after IndexSearch", n)
		}
	}

	a := store("Grüße aus KÖLN", "250 queued as AAA111")
	b := store("Report", "250 queued as BBB222")
	gone := store("Delete me", "250 queued as CCC333")
	if n := queued(); n != 3 {
		t.Fatalf("%d sends queued, want 3", n)
	}
	for _, tt := range []struct {
		q    string
		want []int64
	}{
		{"köln", []int64{a.ID}},
		{"GRÜSSE", nil}, // ß is not ss: neither the index nor the queue folds it so
		{"grüße", []int64{a.ID}},
		{"queued as", []int64{gone.ID, b.ID, a.ID}},
		{"bbb222", []int64{b.ID}},
	} {
		if got := find(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("queued: search %q = %v, want %v", tt.q, got, tt.want)
		}
	}
	// A queued send deleted leaves the queue; the index never had it.
	if err := s.DeleteSend(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 2 {
		t.Errorf("%d sends queued after a delete, want 2", n)
	}
	// A queued send finished: the indexer takes its final text.
	b.Status, b.Events = smtp.StatusSent, append(b.Events, smtp.Event{Dir: smtp.DirServer, Phase: smtp.PhaseQuit, Line: "221 relayed-later"})
	if err := s.FinishSend(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := find("relayed-later"); !slices.Equal(got, []int64{b.ID}) {
		t.Errorf("queued, finished: search = %v, want %v", got, []int64{b.ID})
	}
	indexAll()
	checkSearchIndex(t, s)
	for q, want := range map[string][]int64{"köln": {a.ID}, "relayed-later": {b.ID}, "ccc333": nil, "queued as": {b.ID, a.ID}} {
		if got := find(q); !slices.Equal(got, want) {
			t.Errorf("indexed: search %q = %v, want %v", q, got, want)
		}
	}
	// An indexed send finished is indexed again at once (trigger).
	a.Status, a.Events = smtp.StatusSent, []smtp.Event{{Dir: smtp.DirServer, Phase: smtp.PhaseData, Line: "250 queued as ZZZ999"}}
	if err := s.FinishSend(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 0 {
		t.Errorf("finishing an indexed send queued it (%d queued)", n)
	}
	if got := find("zzz999"); !slices.Equal(got, []int64{a.ID}) {
		t.Errorf("indexed, finished: search = %v, want %v", got, []int64{a.ID})
	}
	checkSearchIndex(t, s)
	// Deleting an indexed send removes it from the index.
	if err := s.DeleteSend(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := find("relayed-later"); got != nil {
		t.Errorf("deleted: search = %v", got)
	}
	checkSearchIndex(t, s)

	// A store's own indexer empties the queue by itself.
	s2 := openSQLiteStore(t)
	for i := range 3 {
		snd := &Send{Source: "web", Status: smtp.StatusSent, Subject: fmt.Sprint("own indexer ", i)}
		if err := s2.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the store's indexer to empty the queue", func() (int, bool) {
		var n int
		if err := s2.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM send_fts_pending`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n, n == 0
	})
	checkSearchIndex(t, s2)
}

// TestIndexFailureLogged: the indexer's failures reach the store's logger
// (SetLogger), and the send stays queued, found from the queue, for the
// next round.
func TestIndexFailureLogged(t *testing.T) {
	s := openSQLiteStore(t)
	stopIndexing(s)
	ctx := ctxT(t)
	var logged bytes.Buffer
	s.SetLogger(slog.New(slog.NewTextHandler(&logged, nil)))
	snd := &Send{Source: "web", Status: smtp.StatusSent, Subject: "Unindexed", MailFrom: "a@example.org", Rcpts: []string{"b@example.org"}}
	if err := s.CreateSend(ctx, snd); err != nil {
		t.Fatal(err)
	}
	// The full-text index gone: every round of the indexer fails.
	if _, err := s.w.ExecContext(ctx, `DROP TABLE send_fts`); err != nil {
		t.Fatal(err)
	}
	s.indexRound(ctx)
	if got := logged.String(); !strings.Contains(got, "store: search index") || !strings.Contains(got, "send_fts") {
		t.Errorf("log after a failed round: %q, want the search index's failure naming send_fts", got)
	}
	var queued int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM send_fts_pending WHERE send_id = ?`, snd.ID).Scan(&queued); err != nil || queued != 1 {
		t.Errorf("send %d queued %d times (%v), want still once", snd.ID, queued, err)
	}
}
