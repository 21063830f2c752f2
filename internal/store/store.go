// Package store persists sockmail's data: admin users, server-side
// sessions, login and form throttling, settings, SMTP server profiles, the
// history of sends with their transcripts, and mail received by the capture
// server.
//
// Two backends share one code path over database/sql: SQLite (the default,
// a file, through the pure-Go modernc.org/sqlite) and PostgreSQL (through
// pgx's database/sql driver) for several instances behind a load balancer.
// Queries are written once with "?" placeholders and rebound to "$n" for
// PostgreSQL; the schema differs only in the per-backend migration files
// under migrations/.
//
// Times are stored as microseconds since the Unix epoch and read back in
// UTC: a time given to the store comes back truncated to the microsecond.
// Methods that create a row update the struct they are given to what was
// stored (ID, defaults, truncated times), so it compares equal to what a
// later read returns.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// The names Backend returns.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// ErrNotFound is returned when the asked-for row does not exist (or, for a
// session, has expired).
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned when a row with the same unique key (a user's
// email, a profile's name) already exists.
var ErrExists = errors.New("store: already exists")

// sqliteBusyTimeout is how long a SQLite connection waits for a lock held
// by another process (for example a CLI send while the server runs).
const sqliteBusyTimeout = 10 * time.Second

// Store is the database. It is safe for concurrent use.
type Store struct {
	backend string
	// w runs every write. On SQLite it has exactly one connection: SQLite
	// allows one writer at a time, and queuing writers in database/sql
	// instead of in SQLite's busy handler is what keeps "database is
	// locked" away under concurrent sends.
	w *sql.DB
	// r runs reads. On SQLite it is a pool of read-only connections that
	// WAL lets run beside the writer; on PostgreSQL it is w.
	r *sql.DB
	// async runs the outbox worker's writes on PostgreSQL (writeTx): its
	// sessions commit with synchronous_commit off. Nil on SQLite.
	async *sql.DB
	// countCap is where ListSends stops counting (MaxSendCount; tests
	// lower it).
	countCap int
	// enq batches concurrent EnqueueSubmission calls on SQLite into one
	// durable commit (groupcommit.go).
	enq groupCommit
	// health remembers the last storage failure of a write (WriteHealth).
	health writeHealth
	// claims is what ClaimDue remembers between calls on PostgreSQL
	// (outbox.go).
	claims claimState
	// ahead holds the rate-limit counts taken ahead on PostgreSQL
	// (rateahead.go).
	ahead rateAhead
	// phaseHist is what MetricsSnapshot has counted of the sends'
	// timings so far (metricsPhases).
	phaseHist phaseHistCache
	// fold caches how far PostgreSQL's searchable text is lowercased
	// (searchfold.go).
	fold foldState
	// forms is what PublicForm keeps, for formTTL (FormCacheTTL; tests
	// change it).
	forms   formCache
	formTTL time.Duration
	// intake counts the submissions stored (IntakeCount); storing those
	// being stored now (IntakeStoring).
	intake  atomic.Uint64
	storing atomic.Int64
	// wstmts and rstmts keep the prepared statements of w and r on
	// SQLite (stmtcache.go); nil on PostgreSQL.
	wstmts, rstmts *stmtCache
	// stopIndexer stops the SQLite full-text indexer (searchindex.go);
	// nil on PostgreSQL.
	stopIndexer func()
	// stopAheadLoop stops the giving back of idle rate-limit counts
	// (giveBackIdle); nil on SQLite.
	stopAheadLoop func()
	// log is where the store's own loops (the search indexer, the idle
	// counts' give-back) report failures; SetLogger sets it, and until
	// then they go nowhere.
	log atomic.Pointer[slog.Logger]
}

// SetLogger makes the store report the failures of its background work
// (the SQLite search indexer, the PostgreSQL give-back of idle
// rate-limit counts) to l; both try again at their next round.
func (s *Store) SetLogger(l *slog.Logger) { s.log.Store(l) }

// logError reports a failure of background work, if a logger is set.
func (s *Store) logError(msg string, err error) {
	if l := s.log.Load(); l != nil {
		l.Error(msg, "err", err)
	}
}

// Open opens the database named by dsn and brings its schema up to date.
// A dsn starting with postgres:// or postgresql:// is a PostgreSQL
// connection string; anything else is the path of a SQLite file, created
// with its parent directories if missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, dsn)
}

// The connections an instance opens to PostgreSQL (README "Several
// instances"): pgConns for requests, pgWorkerConns for the outbox
// worker's writes; a connection idle for pgIdleTime closes.
const (
	pgConns       = 16
	pgWorkerConns = 8
	pgIdleTime    = 5 * time.Minute
)

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parse postgres dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	// Every open connection may stay idle: with fewer idle than open
	// (8 of 16 until issue 16), a burst of posts closed a connection
	// whenever it was put back while 8 others were idle, and opened
	// another for the next caller; each new session forks a server
	// process that builds its catalog caches and prepares its statements
	// again, which cost PostgreSQL about as much CPU as the posts
	// themselves (contact intake without limits: 0.87-1.1 ms of the
	// server's CPU a post, 0.38-0.54 ms with none closed;
	// TestPostgresPoolKeepsConnections). Idle ones still close after
	// pgIdleTime.
	db.SetMaxOpenConns(pgConns)
	db.SetMaxIdleConns(pgConns)
	db.SetConnMaxIdleTime(pgIdleTime)
	// The outbox worker's writes: sessions that commit with
	// synchronous_commit off (see writeTx), so that a transaction
	// needs no SET LOCAL of its own and a one-statement write (an
	// end-of-message mark) is one round trip.
	acfg := cfg.Copy()
	acfg.RuntimeParams["synchronous_commit"] = "off"
	async := stdlib.OpenDB(*acfg)
	async.SetMaxOpenConns(pgWorkerConns)
	async.SetMaxIdleConns(pgWorkerConns)
	async.SetConnMaxIdleTime(pgIdleTime)
	s := &Store{backend: BackendPostgres, w: db, r: db, async: async, countCap: MaxSendCount, formTTL: FormCacheTTL}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadFold(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.stopAheadLoop = startEvery(aheadIdleEvery, s.giveBackIdle)
	return s, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: database path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("store: create database directory: %w", err)
	}
	// A file: URI so that '?', '#' and '%' in the path are escaped.
	name := "file:" + (&url.URL{Path: abs}).EscapedPath()
	busy := "_pragma=busy_timeout(" + strconv.FormatInt(sqliteBusyTimeout.Milliseconds(), 10) + ")"
	// The writer begins transactions with BEGIN IMMEDIATE, taking the
	// write lock up front: a deferred transaction that reads and then
	// writes could otherwise fail with SQLITE_BUSY without waiting. Its
	// temporary files stay in memory (temp_store): the group commit runs
	// each request under a savepoint, whose journal of the pages it
	// changes SQLite otherwise spills to a temporary file past 64 KiB, a
	// write(2) a page (8% of the CPU of contact posts under load;
	// TestWriterTempInMemory).
	w, err := sql.Open("sqlite", name+"?"+busy+
		"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{backend: BackendSQLite, w: w, r: w, countCap: MaxSendCount, formTTL: FormCacheTTL}
	// The writer connects first: it creates the file and turns on WAL,
	// which is persistent, before any reader opens it.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// No ANALYZE or PRAGMA optimize here: on a new, empty database they
	// record statistics saying the FTS5 shadow tables are empty, and FTS5's
	// own merge queries then scan instead of seek, making every later
	// insert about 13 times slower (measured: 10,000 sends in 43 s instead
	// of 3.2 s). The queries here plan well without statistics.
	r, err := sql.Open("sqlite", name+"?"+busy+"&_pragma=foreign_keys(1)&_pragma=query_only(1)&_pragma=cache_size(-8000)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.r = r
	s.wstmts, s.rstmts = newStmtCache(w), newStmtCache(r)
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open sqlite reader: %w", err)
	}
	s.stopIndexer = startEvery(searchIndexEvery, s.indexRound)
	return s, nil
}

// Backend reports which database the store uses: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.backend }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
	}
	return nil
}

// Close closes the database, first giving back the rate-limit counts
// taken ahead and not used (giveBackAhead, PostgreSQL).
func (s *Store) Close() error {
	s.forms.changed() // a closed store serves nothing, not even a kept form
	if s.stopIndexer != nil {
		s.stopIndexer()
	}
	if s.stopAheadLoop != nil {
		s.stopAheadLoop()
	}
	var errs []error
	errs = append(errs, s.giveBackAhead(context.Background()))
	s.wstmts.close()
	s.rstmts.close()
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.async != nil {
		errs = append(errs, s.async.Close())
	}
	errs = append(errs, s.w.Close())
	s.wstmts.wait()
	s.rstmts.wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// q adapts a query written with "?" placeholders to the backend: on
// PostgreSQL each "?" outside a quoted literal becomes $1, $2, ... This is
// the one place where the dialects' placeholders differ.
func (s *Store) q(query string) string {
	if s.backend != BackendPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// inTx runs fn in a write transaction, committing if fn returns nil. A
// storage failure (StorageFailure) is remembered for WriteHealth.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	err := s.runTx(ctx, fn)
	s.health.note(err)
	return err
}

// runTx runs fn in a write transaction, committing if fn returns nil; it
// does not tell WriteHealth.
func (s *Store) runTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return runTxOn(ctx, s.w, fn)
}

// runTxOn runs fn in a transaction of db, committing if fn returns nil.
func runTxOn(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// micros and fromMicros convert times to and from the stored form:
// microseconds since the Unix epoch, read back in UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// normTime returns t as the store will give it back, or now if t is zero.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return fromMicros(micros(t))
}

// nullInt64 binds a nullable integer.
func nullInt64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// ptrInt64 reads a nullable integer.
func ptrInt64(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

// ptrTime reads a nullable time.
func ptrTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

// nullBytes binds a byte slice, nil or empty as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// bytesOrNil reads a byte slice, NULL or empty as nil.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
