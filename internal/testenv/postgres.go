package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// PostgresDSNVar overrides the DSN of the PostgreSQL database from which
	// test databases are created.
	PostgresDSNVar = "SOCKMAIL_TEST_POSTGRES_DSN"
	// DefaultPostgresDSN is used when neither PostgresDSNVar nor the env
	// file names one: the local server with trust authentication.
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// PostgresStartHint tells a developer how to start PostgreSQL.
	PostgresStartHint = "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` " +
		"(make testservers does), or point " + PostgresDSNVar + " at a server where this user may CREATE DATABASE"

	// testDBPrefix starts the name of every database Postgres creates.
	testDBPrefix = "sockmail_t_"
	// staleTestDB: databases left by killed test runs are dropped after this.
	staleTestDB = 6 * time.Hour
	// pgTimeout bounds each administrative step.
	pgTimeout = 15 * time.Second
)

// Postgres creates a fresh, uniquely named, empty database on the test
// PostgreSQL server and returns a DSN (URL form) for it. The database is
// dropped, even with connections still open, when the test ends. It skips
// (fails under CI=true) when PostgreSQL does not answer.
//
// The server is $SOCKMAIL_TEST_POSTGRES_DSN, else POSTGRES_DSN from the env
// file, else DefaultPostgresDSN.
func Postgres(t testing.TB) string {
	t.Helper()
	base := postgresBaseDSN()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "PostgreSQL", PostgresStartHint, err)
		return ""
	}
	defer conn.Close(context.Background())

	dropStaleDatabases(ctx, conn)

	name := testDBPrefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + strings.TrimPrefix(UniqueToken(), "tok-")
	// template0: CREATE DATABASE from template1 fails while anyone else is
	// connected to template1.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("testenv: CREATE DATABASE %s: %v", name, err)
		return ""
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: DROP DATABASE %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// postgresBaseDSN picks the DSN of the administrative database.
func postgresBaseDSN() string {
	if dsn := os.Getenv(PostgresDSNVar); dsn != "" {
		return dsn
	}
	if env, err := ReadEnv(); err == nil && env["POSTGRES_DSN"] != "" {
		return env["POSTGRES_DSN"]
	}
	return DefaultPostgresDSN
}

// withDatabase returns dsn with its database replaced by name. dsn is a
// postgres:// URL or a keyword=value string.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parsing PostgreSQL DSN: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword=value form the last occurrence of a keyword wins.
	return dsn + " dbname=" + name, nil
}

// dropStaleDatabases drops test databases older than staleTestDB, left
// behind by test binaries that were killed before their cleanup ran. Errors
// are ignored: this is housekeeping.
func dropStaleDatabases(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", testDBPrefix)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		stamp, _, _ := strings.Cut(strings.TrimPrefix(n, testDBPrefix), "_")
		sec, err := strconv.ParseInt(stamp, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) < staleTestDB {
			continue
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}
