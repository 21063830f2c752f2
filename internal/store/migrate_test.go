package store

import (
	"context"
	"strings"
	"sync"
	"testing"
)

func TestMigrationsInStep(t *testing.T) {
	lite, err := migrations(BackendSQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrations(BackendPostgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("%d sqlite and %d postgres migrations", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].version != pg[i].version || lite[i].name != pg[i].name {
			t.Errorf("migration %d: sqlite %s, postgres %s", i, lite[i].name, pg[i].name)
		}
		if lite[i].version != i+1 {
			t.Errorf("migration %s: version %d, want %d (no gaps)", lite[i].name, lite[i].version, i+1)
		}
	}
}

// migrationRows returns the versions recorded in schema_migrations.
func migrationRows(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func wantAllMigrations(t *testing.T, s *Store) {
	t.Helper()
	ms, _ := migrations(s.Backend())
	got := migrationRows(t, s)
	if len(got) != len(ms) {
		t.Fatalf("schema_migrations holds %v, want each of %d migrations once", got, len(ms))
	}
}

func TestOpenTwice(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		s1, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s1.CreateUser(ctx, "a@example.org", "h"); err != nil {
			t.Fatal(err)
		}
		// A second open while the first is still open, then after it closed.
		s2, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		wantAllMigrations(t, s2)
		if _, err := s2.UserByEmail(ctx, "a@example.org"); err != nil {
			t.Fatalf("second store does not see the first one's user: %v", err)
		}
		s2.Close()
		s1.Close()
		s3, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s3.Close()
		wantAllMigrations(t, s3)
		if n, _ := s3.CountUsers(ctx); n != 1 {
			t.Fatalf("after reopen %d users, want 1", n)
		}
	})
}

func TestOpenConcurrently(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		const n = 6
		stores := make([]*Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				stores[i], errs[i] = Open(ctx, dsn)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
		for _, s := range stores {
			if s != nil {
				defer s.Close()
			}
		}
		if t.Failed() {
			return
		}
		wantAllMigrations(t, stores[0])
		if _, err := stores[n-1].CreateUser(ctx, "x@example.org", "h"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			9999, "9999_future", 0); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Fatal("Open of a database with an unknown schema version succeeded")
		}
		if !strings.Contains(err.Error(), "9999") {
			t.Errorf("error %q does not name the version", err)
		}
	})
}

func TestPostgresSearchIndex(t *testing.T) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'send_bodies_search'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatal("pg_trgm index send_bodies_search missing (is the pg_trgm extension available?)")
	}
}
