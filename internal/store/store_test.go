package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// openSQLite opens a fresh SQLite store in a temporary directory.
func openSQLiteStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sub", "dir", "sockmail.db"))
	if err != nil {
		t.Fatalf("Open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgresStore opens a store on a fresh PostgreSQL database, dropped
// when the test ends; it skips (fails under CI=true) without PostgreSQL.
func openPostgresStore(t testing.TB) *Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// forEachBackend runs fn against a fresh SQLite store and a fresh
// PostgreSQL store, as parallel subtests "sqlite" and "postgres".
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run(BackendSQLite, func(t *testing.T) {
		t.Parallel()
		fn(t, openSQLiteStore(t))
	})
	t.Run(BackendPostgres, func(t *testing.T) {
		t.Parallel()
		fn(t, openPostgresStore(t))
	})
}

// forEachBackendDSN runs fn with the DSN of a fresh, empty SQLite file and
// of a fresh PostgreSQL database, as parallel subtests.
func forEachBackendDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run(BackendSQLite, func(t *testing.T) {
		t.Parallel()
		fn(t, filepath.Join(t.TempDir(), "sockmail.db"))
	})
	t.Run(BackendPostgres, func(t *testing.T) {
		t.Parallel()
		fn(t, testenv.Postgres(t))
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantErr fails unless errors.Is(err, want) (want nil: err must be nil).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func TestOpenBackend(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		if got := s.Backend(); got != t.Name()[strings.LastIndex(t.Name(), "/")+1:] {
			t.Errorf("Backend() = %q in subtest %s", got, t.Name())
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		ms, err := migrations(s.Backend())
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := ms[len(ms)-1].version; v != want {
			t.Errorf("SchemaVersion = %d, want %d", v, want)
		}
	})
}

func TestSQLitePragmas(t *testing.T) {
	s := openSQLiteStore(t)
	ctx := ctxT(t)
	tests := []struct {
		db     string
		pragma string
		want   string
	}{
		{"w", "journal_mode", "wal"},
		{"w", "foreign_keys", "1"},
		{"w", "synchronous", "1"}, // NORMAL
		{"w", "busy_timeout", "10000"},
		{"r", "journal_mode", "wal"},
		{"r", "foreign_keys", "1"},
		{"r", "busy_timeout", "10000"},
		{"r", "query_only", "1"},
	}
	for _, tt := range tests {
		db := s.w
		if tt.db == "r" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tt.db, tt.pragma, got, tt.want)
		}
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", n)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if s, err := Open(context.Background(), file); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"",
		filepath.Join(file, "below-a-file.db"), // parent is a file
		"postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"postgresql://%zz",
	} {
		if s, err := Open(ctx, dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want error", dsn)
		} else if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("Open(%q) error %q lacks the store: prefix", dsn, err)
		}
	}
}

func TestSQLitePathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag%41", "db file.sqlite")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateUser(context.Background(), "a@example.org", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := filepath.Glob(path); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "db file.sqlite")); len(m) != 1 {
		t.Fatalf("database not created at %q", path)
	}
}

func TestRebind(t *testing.T) {
	pg := &Store{backend: BackendPostgres}
	lite := &Store{backend: BackendSQLite}
	tests := []struct{ in, pg string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT ? , ?`, `SELECT $1 , $2`},
		{`WHERE a = ? AND b LIKE ? ESCAPE '\' AND c = ?`, `WHERE a = $1 AND b LIKE $2 ESCAPE '\' AND c = $3`},
		{`WHERE a = '?' AND b = ?`, `WHERE a = '?' AND b = $1`},
		{`WHERE "we?rd" = ?`, `WHERE "we?rd" = $1`},
		{`VALUES (?,?,?,?,?,?,?,?,?,?,?)`, `VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`},
	}
	for _, tt := range tests {
		if got := pg.q(tt.in); got != tt.pg {
			t.Errorf("postgres q(%q) = %q, want %q", tt.in, got, tt.pg)
		}
		if got := lite.q(tt.in); got != tt.in {
			t.Errorf("sqlite q(%q) = %q, want it unchanged", tt.in, got)
		}
	}
}

// Open must not ANALYZE a new database: statistics of empty FTS5 shadow
// tables make FTS5's merges scan, and inserts become ~13x slower.
func TestSQLiteOpenRecordsNoStatistics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	for range 2 { // create, then reopen
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("Open created sqlite_stat1 on an empty database")
	}
}

// TestPostgresPoolKeepsConnections: connections put back after a burst
// that used every one of them stay open for the next burst (the same
// server sessions serve it), on the requests' pool and on the worker's.
// With fewer idle connections allowed than open ones, each burst closed
// the surplus and the next opened new sessions, a server process each.
func TestPostgresPoolKeepsConnections(t *testing.T) {
	s := openPostgresStore(t)
	ctx := ctxT(t)
	for _, pool := range []struct {
		name string
		db   *sql.DB
		n    int
	}{{"requests", s.w, pgConns}, {"worker", s.async, pgWorkerConns}} {
		t.Run(pool.name, func(t *testing.T) {
			if got := pool.db.Stats().MaxOpenConnections; got != pool.n {
				t.Fatalf("MaxOpenConnections = %d, want %d", got, pool.n)
			}
			// burst holds every connection at once, then puts them back,
			// and returns their sessions' server process ids.
			burst := func() map[int]bool {
				conns := make([]*sql.Conn, pool.n)
				pids := make(map[int]bool, pool.n)
				for i := range conns {
					c, err := pool.db.Conn(ctx)
					if err != nil {
						t.Fatal(err)
					}
					conns[i] = c
					var pid int
					if err := c.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
						t.Fatal(err)
					}
					pids[pid] = true
				}
				for _, c := range conns {
					c.Close()
				}
				return pids
			}
			first, second := burst(), burst()
			if closed := pool.db.Stats().MaxIdleClosed; closed != 0 {
				t.Errorf("%d connections closed when put back after a burst of %d", closed, pool.n)
			}
			var opened []int
			for pid := range second {
				if !first[pid] {
					opened = append(opened, pid)
				}
			}
			if len(opened) > 0 {
				t.Errorf("the second burst of %d opened %d new sessions (server processes %v)", pool.n, len(opened), opened)
			}
		})
	}
}
