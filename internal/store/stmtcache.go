package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the prepared statements of a SQLite connection pool, so
// that a query run again is not parsed again. database/sql prepares every
// query it is given and modernc's driver keeps nothing, so without it
// SQLite's parser was a sixth of a contact post's CPU, most of it inside
// the single writer's transaction where every other write waits (issue
// 16). PostgreSQL needs none: pgx keeps its own per connection.
//
// A query is prepared in the background the first time it is asked for
// (the pool's one writer connection may be held by the caller's own
// transaction) and served from the cache from then on; until then it runs
// as before. At most maxCachedStmts are kept: every query in this package
// is a fixed string, or one of a few shapes that vary with a batch's size.
type stmtCache struct {
	db      *sql.DB
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
	closed  bool
	wg      sync.WaitGroup
}

// maxCachedStmts bounds a stmtCache.
const maxCachedStmts = 256

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// get returns query's kept statement, or nil (and prepares it for next
// time). A nil cache keeps nothing.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil {
		return st
	}
	if c.closed || c.pending[query] || len(c.stmts)+len(c.pending) >= maxCachedStmts {
		return nil
	}
	c.pending[query] = true
	c.wg.Go(func() {
		st, err := c.db.PrepareContext(context.Background(), query)
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.pending, query)
		switch {
		case err != nil: // run unprepared; asked again next time
		case c.closed:
			st.Close()
		default:
			c.stmts[query] = st
		}
	})
	return nil
}

// close closes the kept statements. It is called before the pool is
// closed; a preparation still waiting for a connection then fails.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	stmts := c.stmts
	c.stmts = map[string]*sql.Stmt{}
	c.mu.Unlock()
	for _, st := range stmts {
		st.Close()
	}
}

// wait waits for the preparations under way (after the pool is closed).
func (c *stmtCache) wait() {
	if c != nil {
		c.wg.Wait()
	}
}

// txExec runs query (with "?" placeholders: s.q is applied) in tx, a
// transaction of s.w, through its kept statement when there is one.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	query = s.q(query)
	if st := s.wstmts.get(query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRow is txExec for a query that returns at most one row.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	query = s.q(query)
	if st := s.wstmts.get(query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// txQuery is txExec for a query that returns rows.
func (s *Store) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st := s.wstmts.get(query); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// readQuery runs query (s.q is applied) on the readers, through its kept
// statement when there is one.
func (s *Store) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st := s.rstmts.get(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, query, args...)
}

// readQueryRow is readQuery for a query that returns at most one row.
func (s *Store) readQueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = s.q(query)
	if st := s.rstmts.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}
