package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Write failures: the one place where an error from either database is
// recognised as "the database cannot take writes" (a full disk, an I/O
// error, a read-only database, a lost connection) and given a reason an
// admin can act on. Callers test with errors.Is(err, ErrStorage) after
// StorageFailure, or ask StorageFailure directly.

// ErrStorage is matched (errors.Is) by every *StorageError: the database
// cannot take writes right now. It is not the caller's fault and may pass.
var ErrStorage = errors.New("store: the database cannot take writes")

// StorageError is a write the database refused for a reason outside the
// request: Reason says which ("disk full", "read-only", ...), Err is the
// driver's error.
type StorageError struct {
	Reason string
	Err    error
}

// Error says what is wrong in words an admin can act on.
func (e *StorageError) Error() string {
	return "the database cannot take writes: " + e.Reason + " (" + e.Err.Error() + ")"
}

// Unwrap returns the driver's error.
func (e *StorageError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrStorage) true.
func (e *StorageError) Is(target error) bool { return target == ErrStorage }

// StorageFailure returns err's *StorageError when err (or what it wraps)
// is a storage failure: on SQLite a full disk (SQLITE_FULL), an I/O error
// (SQLITE_IOERR), a read-only or unopenable file (SQLITE_READONLY,
// SQLITE_CANTOPEN), a lock held too long (SQLITE_BUSY) or a corrupt file;
// on PostgreSQL a read-only transaction (25006), insufficient resources
// (53xxx: disk full, out of memory, too many connections), a server
// shutting down (57P0x), a system or I/O error (58xxx), a connection
// failure (08xxx) or a connection lost or refused on the network.
// Constraint violations, missing rows and other errors of the request
// itself give nil, false.
func StorageFailure(err error) (*StorageError, bool) {
	if err == nil {
		return nil, false
	}
	var se *StorageError
	if errors.As(err, &se) {
		return se, true
	}
	if reason := storageReason(err); reason != "" {
		return &StorageError{Reason: reason, Err: err}, true
	}
	return nil, false
}

// storageReason returns why err is a storage failure, or "".
func storageReason(err error) string {
	var le *sqlite.Error
	if errors.As(err, &le) {
		switch le.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return "disk full"
		case sqlite3.SQLITE_IOERR:
			return "I/O error"
		case sqlite3.SQLITE_READONLY:
			return "the database file is read-only"
		case sqlite3.SQLITE_CANTOPEN:
			return "the database file cannot be opened"
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return "the database is locked by another process"
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return "the database file is damaged"
		}
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "25006":
			return "the database is read-only"
		case pe.Code == "53100":
			return "disk full"
		case strings.HasPrefix(pe.Code, "53"):
			return "the database server is out of resources (" + pe.Code + ")"
		case strings.HasPrefix(pe.Code, "57P"):
			return "the database server is shutting down or restarting (" + pe.Code + ")"
		case strings.HasPrefix(pe.Code, "58"):
			return "the database server has a system or I/O error (" + pe.Code + ")"
		case strings.HasPrefix(pe.Code, "08"):
			return "the connection to the database failed (" + pe.Code + ")"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return "the database server cannot be reached"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &ne):
		return "the connection to the database was lost"
	case strings.Contains(err.Error(), "conn closed"), strings.Contains(err.Error(), "unexpected EOF"):
		return "the connection to the database was lost"
	}
	return ""
}

// DefaultWriteFailureWindow is how long after a storage failure
// WriteHealth keeps reporting it.
const DefaultWriteFailureWindow = 15 * time.Second

// writeHealth remembers the last storage failure of a write, and
// whether a write succeeded since.
type writeHealth struct {
	mu     sync.Mutex
	at     time.Time // of the last storage failure
	reason string
	okBy   uint64 // failures counted when a write last succeeded
	fails  uint64 // storage failures counted
	now    func() time.Time
	window time.Duration
}

// note records the outcome of a write: a storage failure, or a success
// (nil), which shows that the database takes writes again.
func (h *writeHealth) note(err error) {
	if err == nil {
		h.mu.Lock()
		h.okBy = h.fails
		h.mu.Unlock()
		return
	}
	se, ok := StorageFailure(err)
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	h.at, h.reason = h.clock(), se.Reason
}

// noteFailure records a storage failure of a write but not a success: for
// writes that change a fixed-size column of an existing row (a lease
// renewal, an end-of-message mark). On a full SQLite disk such an update
// fits in pages the file already has and succeeds while a send's
// transcript or a held outcome is still refused, so its success must not
// tell WriteHealth that the database takes writes again.
func (h *writeHealth) noteFailure(err error) {
	if err != nil {
		h.note(err)
	}
}

func (h *writeHealth) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// SetWriteHealthClock sets the clock and the window of WriteHealth (a
// window <= 0 is DefaultWriteFailureWindow); for tests and for serve.
func (s *Store) SetWriteHealthClock(now func() time.Time, window time.Duration) {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	s.health.now, s.health.window = now, window
}

// WriteHealth tells whether the database takes writes: it writes a small
// probe row (settings key "health.probe") and also reports a storage
// failure of any write in the last window (DefaultWriteFailureWindow)
// unless another write succeeded after it, since a full disk may still
// take a one-row update and refuse the next send's transcript. nil means
// healthy; otherwise the error is a *StorageError (ErrStorage) saying
// what is wrong, or the probe's own error.
func (s *Store) WriteHealth(ctx context.Context) error {
	now := time.Now()
	// runTx, not inTx: the probe's success proves too little to clear a
	// failure of a real write.
	probeErr := s.runTx(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, encText("health.probe"), []byte(strconv.FormatInt(now.UnixMicro(), 10)))
		return err
	})
	if probeErr != nil {
		s.health.note(probeErr)
		if se, ok := StorageFailure(probeErr); ok {
			return fmt.Errorf("store: write probe: %w", se)
		}
		return fmt.Errorf("store: write probe: %w", probeErr)
	}
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	window := h.window
	if window <= 0 {
		window = DefaultWriteFailureWindow
	}
	if h.fails > h.okBy {
		if ago := h.clock().Sub(h.at); ago < window {
			return fmt.Errorf("store: a write failed %s ago: %w", ago.Round(time.Second),
				&StorageError{Reason: h.reason, Err: errors.New("last storage failure of a write")})
		}
	}
	return nil
}
