package store

import (
	"context"
	"fmt"
)

// MaxResends bounds the list Resends returns.
const MaxResends = 100

// Resends returns the sends that re-sent the send id (their ParentID is
// id), oldest first, at most MaxResends. A send without resends, or one
// that does not exist, has none.
func (s *Store) Resends(ctx context.Context, id int64) ([]SendSummary, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+summaryColumns+` FROM sends s WHERE s.parent_id = ?
		ORDER BY s.id LIMIT ?`), id, MaxResends)
	if err != nil {
		return nil, fmt.Errorf("store: resends of %d: %w", id, err)
	}
	defer rows.Close()
	var out []SendSummary
	for rows.Next() {
		m, err := scanSummary(rows)
		if err != nil {
			return nil, fmt.Errorf("store: resends of %d: %w", id, err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: resends of %d: %w", id, err)
	}
	return out, nil
}
