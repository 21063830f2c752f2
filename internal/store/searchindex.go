package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// The history's full-text index on SQLite is written in batches
// (migration 0022): a stored send is queued in send_fts_pending, and the
// store's own indexer moves the queue into send_fts. A search matches the
// queued sends itself (pendingMatches), so nothing stored is missed
// meanwhile.

// searchIndexEvery is how often the indexer looks for queued sends.
const searchIndexEvery = time.Second

// searchIndexBatch is how many queued sends one indexing transaction
// takes: large enough that FTS5 writes one segment for many sends, small
// enough that the writer is not held for long (contact posts wait for
// it).
const searchIndexBatch = 256

// IndexSearch adds up to limit queued sends (the oldest first) to the
// full-text index, in one write, and returns how many it added. Nothing
// on PostgreSQL. The store runs it itself every searchIndexEvery; it is
// exported for tests and tools that want the index complete now.
func (s *Store) IndexSearch(ctx context.Context, limit int) (int, error) {
	if s.backend != BackendSQLite || limit <= 0 {
		return 0, nil
	}
	var n int
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var upTo sql.NullInt64
		if err := s.txQueryRow(ctx, tx, `SELECT MAX(send_id), COUNT(*) FROM
			(SELECT send_id FROM send_fts_pending ORDER BY send_id LIMIT ?)`, limit).Scan(&upTo, &n); err != nil {
			return err
		}
		if !upTo.Valid {
			return nil
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO send_fts (rowid, search_text)
			SELECT b.send_id, b.search_text FROM send_fts_pending p JOIN send_bodies b ON b.send_id = p.send_id
			WHERE p.send_id <= ?`, upTo.Int64); err != nil {
			return err
		}
		_, err := s.txExec(ctx, tx, `DELETE FROM send_fts_pending WHERE send_id <= ?`, upTo.Int64)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: index search: %w", err)
	}
	return n, nil
}

// indexRound runs IndexSearch until the queue is empty (startEvery calls
// it every searchIndexEvery). A failure is logged (SetLogger) and tried
// again at the next round (the queued sends stay searchable).
func (s *Store) indexRound(ctx context.Context) {
	// Looked for on a reader first: an idle store takes no write.
	var queued bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM send_fts_pending)`).Scan(&queued); err != nil || !queued {
		return
	}
	for ctx.Err() == nil {
		n, err := s.IndexSearch(ctx, searchIndexBatch)
		if err != nil && ctx.Err() == nil {
			s.logError("store: search index", err)
		}
		if err != nil || n < searchIndexBatch {
			return
		}
	}
}

// startEvery calls round every interval, in a goroutine of its own, until
// the returned stop is called; stop waits for the round under way (Close
// calls it).
func startEvery(every time.Duration, round func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			round(ctx)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// pendingMatches returns, newest first, the queued (not yet indexed)
// sends that q's conditions other than the index's MATCH select and
// whose searchable text holds every one of q's indexed words, in tx (the
// transaction that reads the index too, so that a send the indexer moves
// meanwhile is seen once). The words are matched as FTS5's trigram
// tokenizer does: case-insensitive substrings.
func (s *Store) pendingMatches(ctx context.Context, tx *sql.Tx, q *sendQuery) ([]SendSummary, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+summaryColumns+`, b.search_text
		FROM send_fts_pending p CROSS JOIN sends s ON s.id = p.send_id JOIN send_bodies b ON b.send_id = s.id`+
		q.plain.String()+` ORDER BY p.send_id DESC`, q.plain.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	words := make([]string, len(q.indexed))
	for i, w := range q.indexed {
		words[i] = foldCase(w)
	}
	var out []SendSummary
	for rows.Next() {
		var text string
		m, err := scanSummary(rows, &text)
		if err != nil {
			return nil, err
		}
		text = foldCase(text)
		if !containsAll(text, words) {
			continue
		}
		out = append(out, *m)
	}
	return out, rows.Err()
}

// foldCase lowercases s rune by rune, as the trigram tokenizer folds case.
func foldCase(s string) string { return strings.Map(unicode.ToLower, s) }

// containsAll tells whether text holds every one of words.
func containsAll(text string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}
