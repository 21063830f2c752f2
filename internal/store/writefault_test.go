package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"sockmail/internal/testenv"
)

// sqliteError returns the error SQLite gives for stmt on a fresh
// database prepared by setup.
func sqliteError(t *testing.T, dsnSuffix string, setup []string, stmt string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append([]string{`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`}, setup...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if dsnSuffix != "" {
		db.Close()
		if db, err = sql.Open("sqlite", "file:"+path+dsnSuffix); err != nil {
			t.Fatal(err)
		}
		defer db.Close()
	}
	_, err = db.Exec(stmt)
	if err == nil {
		t.Fatalf("%s succeeded", stmt)
	}
	return fmt.Errorf("store: something: %w", err)
}

// TestStorageFailure: which errors mean "the database cannot take
// writes", with what reason; real SQLite errors where they can be made.
func TestStorageFailure(t *testing.T) {
	tests := []struct {
		name   string
		err    func(t *testing.T) error
		reason string // "" for not a storage failure
	}{
		{"nil", func(*testing.T) error { return nil }, ""},
		{"not found", func(*testing.T) error { return fmt.Errorf("x: %w", ErrNotFound) }, ""},
		{"sqlite full", func(t *testing.T) error {
			// max_page_count makes the file "full" at its current size.
			return sqliteError(t, "", []string{`PRAGMA max_page_count = 2`}, `INSERT INTO t (v) VALUES (zeroblob(100000))`)
		}, "disk full"},
		{"sqlite read-only", func(t *testing.T) error {
			return sqliteError(t, "?mode=ro", nil, `INSERT INTO t (v) VALUES (1)`)
		}, "the database file is read-only"},
		{"sqlite constraint", func(t *testing.T) error {
			return sqliteError(t, "", []string{`INSERT INTO t (id) VALUES (1)`}, `INSERT INTO t (id) VALUES (1)`)
		}, ""},
		{"postgres read-only", func(*testing.T) error {
			return fmt.Errorf("w: %w", &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"})
		}, "the database is read-only"},
		{"postgres disk full", func(*testing.T) error { return &pgconn.PgError{Code: "53100"} }, "disk full"},
		{"postgres shutting down", func(*testing.T) error { return &pgconn.PgError{Code: "57P01"} }, "the database server is shutting down or restarting (57P01)"},
		{"postgres unique", func(*testing.T) error { return &pgconn.PgError{Code: "23505"} }, ""},
		{"connection lost", func(*testing.T) error { return fmt.Errorf("commit: %w", io.ErrUnexpectedEOF) }, "the connection to the database was lost"},
		{"already classified", func(*testing.T) error {
			return fmt.Errorf("outer: %w", &StorageError{Reason: "disk full", Err: errors.New("x")})
		}, "disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			se, ok := StorageFailure(err)
			switch {
			case tt.reason == "" && ok:
				t.Errorf("%v: a storage failure (%q), want not", err, se.Reason)
			case tt.reason != "" && (!ok || se.Reason != tt.reason):
				t.Errorf("%v: %v %v, want reason %q", err, se, ok, tt.reason)
			case ok && (!errors.Is(se, ErrStorage) || !strings.HasPrefix(se.Error(), "the database cannot take writes: "+tt.reason)):
				t.Errorf("%q does not match ErrStorage or does not say why", se.Error())
			}
		})
	}
}

// TestWriteHealth: the probe passes on a healthy store; a storage
// failure of any write makes WriteHealth fail for the window, then pass.
func TestWriteHealth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now()
		s.SetWriteHealthClock(func() time.Time { return now }, 10*time.Second)
		if err := s.WriteHealth(ctx); err != nil {
			t.Fatalf("healthy: %v", err)
		}
		s.health.note(&pgconn.PgError{Code: "53100"})
		err := s.WriteHealth(ctx)
		if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("after a failed write: %v", err)
		}
		s.health.note(ErrNotFound) // not a storage failure: changes nothing
		now = now.Add(9 * time.Second)
		if err := s.WriteHealth(ctx); err == nil {
			t.Errorf("within the window, no write since: healthy (the probe must not clear the failure)")
		}
		now = now.Add(2 * time.Second)
		if err := s.WriteHealth(ctx); err != nil {
			t.Errorf("after the window: %v", err)
		}
		// A lease renewal and an end-of-message mark change one
		// fixed-size column: on a full disk they fit where a transcript
		// does not, so their success does not clear a failure.
		form := newForm(t, s)
		enqueue(t, s, form, "health", "", t0)
		claimed, err := s.ClaimDue(ctx, "health", t0, time.Minute, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("ClaimDue: %v, %d items", err, len(claimed))
		}
		s.health.note(&pgconn.PgError{Code: "53100"})
		if err := s.RenewLease(ctx, claimed[0].ID, "health", t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDataSent(ctx, claimed[0].ID, "health", t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteHealth(ctx); !errors.Is(err, ErrStorage) {
			t.Errorf("a failure followed by a lease renewal and a mark only: %v, want a storage error", err)
		}
		s.health.note(&pgconn.PgError{Code: "25006"})
		if _, err := s.SetSettingIfAbsent(ctx, "y", nil); err != nil { // a write through inTx
			t.Fatal(err)
		}
		if err := s.WriteHealth(ctx); err != nil {
			t.Errorf("a failure followed by a successful write: %v", err)
		}
	})
}

// TestWriteHealthRealFaults: WriteHealth fails with the reason while the
// database refuses writes (SQLite on a full disk, PostgreSQL read-only
// with its connections cut) and passes once it takes them again.
func TestWriteHealthRealFaults(t *testing.T) {
	tests := []struct {
		name   string
		open   func(t *testing.T) (s *Store, breakIt, heal func())
		reason string
	}{
		{"sqlite disk full", func(t *testing.T) (*Store, func(), func()) {
			disk := testenv.NewSmallDisk(t, 4<<20)
			s, err := Open(context.Background(), filepath.Join(disk.Dir, "sockmail.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, func() { disk.Fill(t) }, func() { disk.Free(t) }
		}, "disk full"},
		{"postgres read-only", func(t *testing.T) (*Store, func(), func()) {
			dsn := testenv.Postgres(t)
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			sw := testenv.NewPostgresSwitch(t, dsn)
			return s, func() { sw.SetReadOnly(t, true) }, func() { sw.SetReadOnly(t, false) }
		}, "the database is read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, breakIt, heal := tt.open(t)
			ctx := context.Background()
			now := time.Now()
			s.SetWriteHealthClock(func() time.Time { return now }, 10*time.Second)
			if err := s.WriteHealth(ctx); err != nil {
				t.Fatalf("healthy: %v", err)
			}
			breakIt()
			// A send with its transcript: the write a full disk refuses
			// first. The first statement on a cut connection may fail
			// as a lost connection; the next ones see the fault itself.
			var err error
			for range 3 {
				if err = s.CreateSend(ctx, fullSend(nil)); err != nil {
					if se, ok := StorageFailure(err); ok && se.Reason == tt.reason {
						break
					}
				}
			}
			if se, ok := StorageFailure(err); !ok || se.Reason != tt.reason {
				t.Fatalf("a send stored while broken: %v, want a storage failure (%s)", err, tt.reason)
			}
			if err := s.WriteHealth(ctx); !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("while broken: %v, want %q", err, tt.reason)
			}
			heal()
			// Within the window, the failure counts until a write
			// succeeds. The first statement after the cut may meet a
			// dead pooled connection; the next one gets a fresh one.
			if err := s.CreateSend(ctx, fullSend(nil)); err != nil {
				if err := s.CreateSend(ctx, fullSend(nil)); err != nil {
					t.Fatalf("a send stored after healing: %v", err)
				}
			}
			if err := s.WriteHealth(ctx); err != nil {
				t.Errorf("after healing and a write: %v", err)
			}
		})
	}
}
