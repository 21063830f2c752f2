package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestStmtCache: on SQLite a write's statements are prepared once and
// then served from the cache, inside the writer's transactions, with the
// same results; the cache keeps at most maxCachedStmts; a closed cache
// serves and prepares nothing.
func TestStmtCache(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	form := newForm(t, s)
	post := func(i int) {
		t.Helper()
		sub := &Submission{FormID: form, TokenHash: fmt.Sprint("digest-", i)}
		item := &OutboxItem{Rcpts: []string{"a@example.org"}, Message: testMessage(fmt.Sprint(i))}
		limits := []Limit{{Key: "contact:addr:192.0.2.1", Max: 100, Window: time.Hour}}
		if over, err := s.EnqueueLimited(ctx, sub, item, limits, t0); over != nil || err != nil {
			t.Fatalf("post %d: over %v, err %v", i, over, err)
		}
	}
	post(0)
	s.wstmts.wg.Wait() // the first post's statements are prepared
	insert := ""
	s.wstmts.mu.Lock()
	for q := range s.wstmts.stmts {
		if strings.HasPrefix(q, "INSERT INTO submissions") {
			insert = q
		}
	}
	kept := len(s.wstmts.stmts)
	s.wstmts.mu.Unlock()
	if insert == "" || kept < 3 {
		t.Fatalf("after a post the writer keeps %d statements (want its 3: submission, outbox item, count), submission %q", kept, insert)
	}
	for i := 1; i <= 3; i++ {
		post(i)
	}
	s.wstmts.wg.Wait()
	if n := len(s.wstmts.stmts); n != kept {
		t.Errorf("the same posts again: %d statements kept, want the same %d", n, kept)
	}
	if n, err := s.RateCount(ctx, "contact:addr:192.0.2.1", t0, time.Hour); err != nil || n != 4 {
		t.Errorf("RateCount = %d, %v; want 4 (each post counted once through the kept statements)", n, err)
	}
	subs, err := s.ListSubmissions(ctx, SubmissionFilter{FormID: form, Limit: MaxListLimit})
	if err != nil || len(subs) != 4 {
		t.Fatalf("%d submissions, %v; want 4", len(subs), err)
	}

	// A cache of its own, on a pool of its own: bounded, then closed.
	db, err := sql.Open("sqlite", t.TempDir()+"/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newStmtCache(db)
	for i := range maxCachedStmts + 10 {
		c.get(fmt.Sprintf("SELECT %d + ?", i))
	}
	c.wg.Wait()
	if n := len(c.stmts); n != maxCachedStmts {
		t.Errorf("%d statements kept, want at most %d", n, maxCachedStmts)
	}
	st := c.get("SELECT 7 + ?")
	if st == nil {
		t.Fatal("a kept statement is not served")
	}
	var sum int
	if err := st.QueryRowContext(context.Background(), 35).Scan(&sum); err != nil || sum != 42 {
		t.Errorf("kept statement: %d, %v; want 42", sum, err)
	}
	c.close()
	c.wait()
	if c.get("SELECT 7 + ?") != nil || c.get("SELECT 'new'") != nil || len(c.pending) != 0 {
		t.Error("a closed cache serves or prepares statements")
	}
	var nilCache *stmtCache
	if nilCache.get("SELECT 1") != nil {
		t.Error("a nil cache (PostgreSQL) serves a statement")
	}
	nilCache.close()
	nilCache.wait()
}

// TestClaimLimitAtRunTime: SQLite compiles a bare "LIMIT ?" with its
// bound value into the statement's program (and so prepares a kept
// statement again whenever the value changes); ClaimDue's limits, which
// change from one claim to the next, are read at run time instead. The
// program of the claim, bound with an unusual limit, must not hold that
// value as a constant; the same statement with bare LIMITs does.
func TestClaimLimitAtRunTime(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	const limit = 7777
	constants := func(query string) int {
		t.Helper()
		rows, err := s.w.QueryContext(ctx, "EXPLAIN "+query, "owner", 1, 2, limit, 2, limit, limit)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			// addr, opcode, p1: "Integer 7777 r" loads the constant.
			if fmt.Sprint(vals[1]) == "Integer" && fmt.Sprint(vals[2]) == fmt.Sprint(limit) {
				n++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := constants(sqliteClaimQuery); n != 0 {
		t.Errorf("the claim's program loads the bound limit %d as a constant %d times; want it read at run time", limit, n)
	}
	bare := strings.ReplaceAll(sqliteClaimQuery, "CAST(? AS INTEGER)", "?")
	if n := constants(bare); n == 0 {
		t.Errorf("with bare LIMIT ? the program holds no constant %d: the check above proves nothing", limit)
	}
	// And the claim still takes at most limit items, the oldest due first.
	form := newForm(t, s)
	for range 3 {
		if err := s.EnqueueSubmission(ctx, &Submission{FormID: form},
			&OutboxItem{MailFrom: "a@example.org", Rcpts: []string{"b@example.org"}, Message: []byte("Subject: x\r\n\r\nx\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ limit, want int }{{1, 1}, {5, 2}, {3, 0}} {
		got, err := s.ClaimDue(ctx, "me", time.Now().Add(time.Second), time.Minute, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want {
			t.Fatalf("claim of at most %d took %d, want %d", c.limit, len(got), c.want)
		}
	}
}

// TestWriterTempInMemory: the SQLite writer keeps its temporary files,
// the group commit's savepoint journals among them, in memory
// (temp_store = MEMORY, 2), so that a large group does not write them to
// a temporary file page by page.
func TestWriterTempInMemory(t *testing.T) {
	s := openSQLiteStore(t)
	var mode int
	if err := s.w.QueryRowContext(ctxT(t), `PRAGMA temp_store`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 {
		t.Errorf("writer's temp_store = %d, want 2 (MEMORY)", mode)
	}
}
