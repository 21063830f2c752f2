package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// Benchmarks. The list and search benchmarks run over benchSends stored
// sends, seeded once per test binary run and per backend (seeding takes
// tens of seconds), and shared by BenchmarkListSends and
// BenchmarkSearchSends; TestMain removes them at the end.
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/store

// benchSends is how many sends the list and search benchmarks run over
// unless SOCKMAIL_BENCH_SENDS says otherwise (issue 16 sets its targets
// at 1,000,000; seeding that many takes minutes per backend).
const benchSends = 1_000_000

// benchSendsEnv overrides benchSends.
const benchSendsEnv = "SOCKMAIL_BENCH_SENDS"

// benchSendCount is benchSends or the benchSendsEnv setting.
func benchSendCount(b *testing.B) int {
	v := os.Getenv(benchSendsEnv)
	if v == "" {
		return benchSends
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10_000 {
		b.Fatalf("%s=%q: want a number of sends of at least 10000", benchSendsEnv, v)
	}
	return n
}

// fixtures holds the seeded stores of this run. It is test-only state,
// shared between benchmark functions: the one package-level variable.
var fixtures = &benchFixtures{m: map[string]*benchFixture{}}

type benchFixtures struct {
	mu sync.Mutex
	m  map[string]*benchFixture
}

type benchFixture struct {
	s       *Store
	ids     []int64 // in insertion order
	cleanup func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.mu.Lock()
	for _, f := range fixtures.m {
		f.cleanup()
	}
	fixtures.mu.Unlock()
	os.Exit(code)
}

// benchStatuses spreads sends over statuses: 70% sent, 10% temporary
// failure, 10% partly sent, 5% permanent failure, 5% unknown outcome.
var benchStatuses = func() []smtp.Status {
	var out []smtp.Status
	add := func(st smtp.Status, n int) {
		for range n {
			out = append(out, st)
		}
	}
	add(smtp.StatusSent, 14)
	add(smtp.StatusTempFail, 2)
	add(smtp.StatusPartial, 2)
	add(smtp.StatusPermFail, 1)
	add(smtp.StatusUnknown, 1)
	return out
}()

// benchQueueID is the unique queue id of the i-th seeded send.
func benchQueueID(i int) string { return fmt.Sprintf("Q%07dX", i) }

// benchSend returns the i-th seeded send: a realistic envelope and a
// 20-line transcript, unique in its queue id and recipient.
func benchSend(i int, base time.Time) *Send {
	status := benchStatuses[i%len(benchStatuses)]
	qid := benchQueueID(i)
	rcpt := fmt.Sprintf("user%d@example%d.net", i, i%1000)
	events := transcript(20, qid)
	events[11].Line = "RCPT TO:<" + rcpt + ">"
	if status == smtp.StatusTempFail {
		events[12].Line = "451 4.7.1 <" + rcpt + ">: Recipient address rejected: Greylisted, try again later"
	}
	finished := base.Add(time.Duration(i)*time.Minute + 800*time.Millisecond)
	return &Send{
		CreatedAt: base.Add(time.Duration(i) * time.Minute), FinishedAt: &finished,
		Source: []string{"web", "cli", "contact"}[i%3], ClientAddr: "192.0.2.10", Server: "mx.example.org:25",
		TLSMode: "starttls", MailFrom: "sender@example.org", Rcpts: []string{rcpt},
		Subject: "Order #" + strconv.Itoa(i) + " confirmation", Headers: "From: sender@example.org\r\nTo: " + rcpt + "\r\n",
		Message: []byte("From: sender@example.org\r\nTo: " + rcpt + "\r\nSubject: Order\r\n\r\nThanks.\r\n"),
		Status:  status, QueueID: qid, Events: events, DurationMS: 812.5,
		Recipients: []smtp.RecipientResult{{Address: rcpt, Accepted: status == smtp.StatusSent, Code: 250, EnhancedCode: "2.1.5", Message: "Ok"}},
	}
}

// seedChunk is how many sends seed stores per transaction.
const seedChunk = 20_000

// foldBenchBatch is the batch of FoldSearchText after seeding.
const foldBenchBatch = 2000

// seed stores n sends, seedChunk per transaction, and returns their ids.
func seed(ctx context.Context, s *Store, n int) ([]int64, error) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]int64, 0, n)
	for from := 0; from < n; from += seedChunk {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for i := from; i < min(n, from+seedChunk); i++ {
				snd := benchSend(i, base)
				if err := s.insertSend(ctx, tx, snd); err != nil {
					return err
				}
				ids = append(ids, snd.ID)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// In service the store's indexer has indexed them (SQLite).
	for {
		n, err := s.IndexSearch(ctx, seedChunk)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	// serve folds what a database stored before migration 0019 at start;
	// here there is nothing to fold, but the mark goes to 0.
	for more := true; more; {
		var err error
		if _, more, err = s.FoldSearchText(ctx, foldBenchBatch); err != nil {
			return nil, err
		}
	}
	var err error
	// Bring the database to the state it reaches in service: autovacuum
	// on PostgreSQL (statistics, visibility map for index-only scans);
	// on SQLite a checkpointed WAL and the statistics Open refreshes.
	if s.Backend() == BackendPostgres {
		_, err = s.w.ExecContext(ctx, `VACUUM ANALYZE`)
	} else {
		_, err = s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE); ANALYZE`)
	}
	return ids, err
}

// benchStore returns the seeded store of a backend, seeding it on first use.
func benchStore(b *testing.B, backend string) *benchFixture {
	b.Helper()
	fixtures.mu.Lock()
	defer fixtures.mu.Unlock()
	if f, ok := fixtures.m[backend]; ok {
		return f
	}
	ctx := context.Background()
	var f benchFixture
	var err error
	switch backend {
	case BackendSQLite:
		dir, derr := os.MkdirTemp("", "sockmail-bench-")
		if derr != nil {
			b.Fatal(derr)
		}
		f.cleanup = func() { os.RemoveAll(dir) }
		f.s, err = Open(ctx, filepath.Join(dir, "bench.db"))
	case BackendPostgres:
		var dsn string
		dsn, f.cleanup = benchPostgres(b)
		f.s, err = Open(ctx, dsn)
	}
	if err != nil {
		f.cleanup()
		b.Fatal(err)
	}
	closeDB := f.cleanup
	f.cleanup = func() { f.s.Close(); closeDB() }
	start := time.Now()
	n := benchSendCount(b)
	if f.ids, err = seed(ctx, f.s, n); err != nil {
		f.cleanup()
		b.Fatal(err)
	}
	b.Logf("%s: seeded %d sends in %v", backend, n, time.Since(start).Round(time.Millisecond))
	fixtures.m[backend] = &f
	return &f
}

// benchPostgres creates a database that outlives one benchmark function
// (testenv.Postgres drops its database when the benchmark ends) and
// returns its DSN and a function dropping it. The name carries testenv's
// prefix and timestamp, so testenv drops it if this process is killed.
func benchPostgres(b *testing.B) (string, func()) {
	base := os.Getenv(testenv.PostgresDSNVar)
	if base == "" {
		if env, err := testenv.ReadEnv(); err == nil && env["POSTGRES_DSN"] != "" {
			base = env["POSTGRES_DSN"]
		} else {
			base = testenv.DefaultPostgresDSN
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if testenv.InCI() {
			b.Fatalf("PostgreSQL unavailable: %v", err)
		}
		b.Skipf("PostgreSQL unavailable: %v; %s", err, testenv.PostgresStartHint)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("sockmail_t_%d_bench_%d", time.Now().Unix(), os.Getpid())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		b.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Database = name
	dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		dsn = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	return dsn, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
}

// reportPerOp reports the mean time of one loop iteration in ms.
func reportPerOp(b *testing.B, start time.Time, unit string) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), unit)
}

func BenchmarkInsertSend(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
			var s *Store
			if backend == BackendSQLite {
				s = openSQLiteStore(b)
			} else {
				s = openPostgresStore(b)
			}
			ctx := context.Background()
			events := transcript(200, "Q1234567X")
			msg := make([]byte, 4096)
			i := 0
			start := time.Now()
			for b.Loop() {
				snd := &Send{Source: "web", Server: "mx.example.org:25", MailFrom: "a@example.org",
					Rcpts: []string{"b@example.net"}, Subject: "bench " + strconv.Itoa(i), Message: msg}
				if err := s.CreateSend(ctx, snd); err != nil {
					b.Fatal(err)
				}
				snd.Status, snd.QueueID, snd.Events = smtp.StatusSent, "Q1234567X", events
				if err := s.FinishSend(ctx, snd); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// On SQLite the sends are searchable at once, and indexed by
			// the store's indexer within a second: what is still queued
			// is indexed inside the measurement (run with -cpu 1 to count
			// the indexer's own work done meanwhile too).
			for {
				n, err := s.IndexSearch(ctx, 1000)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			reportPerOp(b, start, "ms/send")
		})
	}
}

func BenchmarkListSends(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
			f := benchStore(b, backend)
			mid := f.ids[len(f.ids)/2]
			cases := []struct {
				name string
				f    SendFilter
				min  int // sends expected on the page
			}{
				{"first-page", SendFilter{}, DefaultSendLimit},
				{"deep-page", SendFilter{Before: mid}, DefaultSendLimit},
				{"status", SendFilter{Status: smtp.StatusPermFail}, DefaultSendLimit},
				{"source+since", SendFilter{Source: "contact", Since: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}, DefaultSendLimit},
				{"recipient-rare-old", SendFilter{Recipient: "user123@"}, 1},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					benchList(b, f.s, c.f, c.min)
				})
			}
		})
	}
}

func BenchmarkSearchSends(b *testing.B) {
	for _, backend := range []string{BackendSQLite, BackendPostgres} {
		b.Run(backend, func(b *testing.B) {
			f := benchStore(b, backend)
			cases := []struct {
				name string
				q    string
				min  int
			}{
				{"queue-id-1-match", benchQueueID(54321), 1},
				{"queue-id-oldest", benchQueueID(7), 1},
				{"greylisted-10pct", "greylisted", DefaultSendLimit},
				{"two-words", "greylisted user14@", 1},
				{"everywhere-capped", "postfix", DefaultSendLimit},
				{"short-word", "Ok", DefaultSendLimit},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					benchList(b, f.s, SendFilter{Query: c.q}, c.min)
				})
			}
		})
	}
}

func benchList(b *testing.B, s *Store, f SendFilter, minSends int) {
	ctx := context.Background()
	p, err := s.ListSends(ctx, f)
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Sends) < minSends {
		b.Fatalf("filter %+v: %d sends on the page (total %d), want at least %d", f, len(p.Sends), p.Total, minSends)
	}
	start := time.Now()
	for b.Loop() {
		if _, err := s.ListSends(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	reportPerOp(b, start, "ms/page")
	b.ReportMetric(float64(p.Total), "total")
}
