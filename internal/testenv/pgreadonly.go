package testenv

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresSwitch makes a test's PostgreSQL database (from Postgres)
// read-only and writable again, as a failover to a standby and back does.
type PostgresSwitch struct {
	mu    sync.Mutex
	admin *pgx.Conn // opened writable; stays so whatever the database says
	db    string
}

// NewPostgresSwitch connects to dsn's database for a test; the database
// is made writable again when the test ends.
func NewPostgresSwitch(t testing.TB, dsn string) *PostgresSwitch {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", dsn, err)
	}
	s := &PostgresSwitch{admin: admin}
	if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&s.db); err != nil {
		t.Fatalf("testenv: current database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{s.db}.Sanitize()+" RESET default_transaction_read_only")
		admin.Close(ctx)
	})
	return s
}

// SetReadOnly sets the database's default_transaction_read_only and cuts
// every other connection to it, so that the new setting applies at once
// (a session keeps the default it started with): statements in flight
// fail with a lost connection, later writes with SQLSTATE 25006 while
// read-only.
func (s *PostgresSwitch) SetReadOnly(t testing.TB, on bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := context.Background()
	value := "off"
	if on {
		value = "on"
	}
	q := "ALTER DATABASE " + pgx.Identifier{s.db}.Sanitize() + " SET default_transaction_read_only = " + value
	if _, err := s.admin.Exec(ctx, q); err != nil {
		t.Errorf("testenv: %s: %v", q, err)
		return
	}
	if _, err := s.admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, s.db); err != nil {
		t.Errorf("testenv: cut the connections to %s: %v", s.db, err)
	}
}
