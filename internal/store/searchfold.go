package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
)

// Case folding of the history's searchable text on PostgreSQL.
//
// A history search for a common word walks the newest sends and tests
// each one's searchable text until it has a page and a capped count
// (MaxSendCount matches); a rare word goes through the pg_trgm index.
// ILIKE lowercases every text it tests: with 1,000,000 sends and a word
// in 10% of them, counting the first 1,000 matches tested 10,000 texts of
// about 570 bytes and took 85 ms, about 8 µs a text. LIKE on text stored
// lowercased took 8–11 ms for the same walk (measured with EXPLAIN
// ANALYZE on PostgreSQL 15 beside other load; BenchmarkSearchSends).
//
// So since migration 0019 PostgreSQL stores search_text lowercased
// (strings.ToLower, applied to the words searched for too, so that both
// sides fold the same way whatever the database's locale) and matches it
// with LIKE; the same trigram index serves LIKE and ILIKE. Rows stored
// before the migration are folded in the background, newest first, by
// FoldSearchText, which serve runs: the migration itself rewrites
// nothing, so it takes no time at any history size. search_fold.below is
// the lowest send id from which every row is folded (0 once all are);
// rows below it are matched with ILIKE, which finds them folded or not.
// SQLite is not folded: its FTS5 trigram index and LIKE ignore case.

// foldState caches search_fold.below. It only decreases, and a cache that
// lags behind (another instance folded more) only makes a search use
// ILIKE on rows it could have matched with LIKE.
type foldState struct {
	below atomic.Int64
}

// foldSearch returns the searchable text as the backend stores it.
func (s *Store) foldSearch(text string) string {
	if s.backend == BackendPostgres {
		return strings.ToLower(text)
	}
	return text
}

// foldedMatch returns the PostgreSQL condition matching the sends whose
// searchable text contains every word, ignoring case, and its arguments:
// LIKE on the folded rows (send id >= below), ILIKE on the others.
func foldedMatch(words []string, below int64) (string, []any) {
	conds := make([]string, len(words))
	args := make([]any, 0, 3*len(words))
	for i, word := range words {
		p := "%" + escapeLike(strings.ToLower(word)) + "%"
		if below <= 0 {
			conds[i] = `b.search_text LIKE ? ESCAPE '\'`
			args = append(args, p)
			continue
		}
		conds[i] = `(b.send_id >= ? AND b.search_text LIKE ? ESCAPE '\' OR b.send_id < ? AND b.search_text ILIKE ? ESCAPE '\')`
		args = append(args, below, p, below, p)
	}
	return `s.id IN (SELECT b.send_id FROM send_bodies b WHERE ` + strings.Join(conds, " AND ") + `)`, args
}

// loadFold reads search_fold.below into the cache.
func (s *Store) loadFold(ctx context.Context) error {
	var below int64
	if err := s.r.QueryRowContext(ctx, `SELECT below FROM search_fold`).Scan(&below); err != nil {
		return fmt.Errorf("store: read search_fold: %w", err)
	}
	s.fold.below.Store(below)
	return nil
}

// FoldSearchText folds up to batch of the newest rows not folded yet (see
// foldState) in one transaction and reports how many it changed and
// whether rows remain. It does nothing on SQLite. Instances sharing a
// database may run it at once: each batch locks search_fold.
func (s *Store) FoldSearchText(ctx context.Context, batch int) (changed int, more bool, err error) {
	if s.backend != BackendPostgres || batch <= 0 {
		return 0, false, nil
	}
	var below int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		changed, more = 0, false
		if err := tx.QueryRowContext(ctx, `SELECT below FROM search_fold FOR UPDATE`).Scan(&below); err != nil {
			return err
		}
		if below <= 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT send_id, search_text FROM send_bodies
			WHERE send_id < $1 ORDER BY send_id DESC LIMIT $2`, below, batch)
		if err != nil {
			return err
		}
		var ids []int64
		var texts []string
		seen := 0
		for rows.Next() {
			var id int64
			var text string
			if err := rows.Scan(&id, &text); err != nil {
				rows.Close()
				return err
			}
			seen++
			below = id
			if folded := strings.ToLower(text); folded != text {
				ids, texts = append(ids, id), append(texts, folded)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if seen < batch {
			below = 0
		}
		if len(ids) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE send_bodies b SET search_text = f.t
				FROM unnest($1::bigint[], $2::text[]) AS f(id, t) WHERE b.send_id = f.id`, ids, texts); err != nil {
				return err
			}
		}
		changed, more = len(ids), below > 0
		_, err = tx.ExecContext(ctx, `UPDATE search_fold SET below = $1`, below)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: fold searchable text: %w", err)
	}
	prev := s.fold.below.Swap(below)
	if below == 0 && prev != 0 {
		// The planner's statistics still describe the mixed-case text:
		// a lowercase word matched none of their samples, so it took a
		// common word for a rare one and read every match through the
		// index (4–12 s instead of 16 ms at 1,000,000 sends) until the
		// next automatic ANALYZE.
		if _, err := s.w.ExecContext(ctx, `ANALYZE send_bodies`); err != nil {
			return changed, false, fmt.Errorf("store: fold searchable text: analyze: %w", err)
		}
	}
	return changed, more, nil
}
