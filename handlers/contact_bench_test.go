package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// benchClients is how many visitors post at once.
const benchClients = 32

// benchBacklog is how many submissions are queued before the timer
// starts, so that a running worker is delivering from the first post.
const benchBacklog = 200

// BenchmarkContactSubmit is the load test of the public endpoint: 32
// concurrent clients post JSON submissions to POST /f/{slug} through a
// real HTTP server (the real router, the real store), each answer a
// durable success (EnqueueSubmission returned). It reports durable
// submissions per second and the p50/p99 latency, then counts the stored
// submissions and outbox items: every answered success must be there,
// once. In "limits" the form has rate limits (set too high to refuse
// anything: every post moves the per-address and the per-form counter,
// the worst case for a hot row), so each post is also counted; in
// "no-limits" it has none.
//
// Each case runs with no outbox worker (the baseline, reported as
// off-submissions/s and off-p99-ms) and with the real worker delivering,
// through a profile, to the test Postfix's submission port (STARTTLS,
// AUTH), a backlog of 200 queued before the timer so that it is busy from
// the first post; each pass on a fresh database. The machine's speed
// drifts by a fifth within minutes, so the two alternate over rounds
// (SOCKMAIL_BENCH_CONTACT_ROUNDS, 3 by default: off then on, on then off,
// ...) and each figure is the median of its rounds; each round is logged
// (-v). The figures without a prefix are the worker's; on/off is the
// median of the rounds' ratios of its submissions/s over the baseline's,
// each measured beside the other (issue 16: at least 0.9);
// cpu-us/op is this process's CPU time a post (the HTTP server, the
// store, the worker and the 32 clients), pg-cpu-us/op on PostgreSQL the
// local server's (all its processes): on 2 shared cores these say what a
// post costs when the rate says mostly how fast the machine was;
// delivered is how many messages the worker delivered meanwhile (the
// fewest of its rounds: more than 0 in a run of 1,000 posts or more, or
// the comparison would prove nothing).
//
//	go test -run '^$' -bench ContactSubmit -benchtime 10000x -v ./handlers
func BenchmarkContactSubmit(b *testing.B) {
	rounds := 3
	if v := os.Getenv("SOCKMAIL_BENCH_CONTACT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("SOCKMAIL_BENCH_CONTACT_ROUNDS=%q: want a positive integer", v)
		}
		rounds = n
	}
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		for _, limits := range []bool{true, false} {
			name := backend + "/limits"
			if !limits {
				name = backend + "/no-limits"
			}
			b.Run(name, func(b *testing.B) {
				n := rounds
				if b.N < 1000 {
					n = 1 // Go's first call, b.N = 1, only sizes the run
				}
				var offs, ons []benchResult
				var ratios []float64
				for r := range n {
					var off, on benchResult
					if r%2 == 0 {
						off = benchContact(b, backend, limits, nil)
						on = benchContact(b, backend, limits, testenv.Postfix(b))
					} else {
						on = benchContact(b, backend, limits, testenv.Postfix(b))
						off = benchContact(b, backend, limits, nil)
					}
					offs, ons = append(offs, off), append(ons, on)
					ratios = append(ratios, on.rate/off.rate)
					b.Logf("round %d: off %.0f/s p99 %.1f ms, CPU a post %.0f µs here, %.0f µs PostgreSQL; on %.0f/s p99 %.1f ms, %.0f µs, %.0f µs, %d delivered; on/off %.2f",
						r+1, off.rate, off.p99, off.cpu, off.pg, on.rate, on.p99, on.cpu, on.pg, on.delivered, on.rate/off.rate)
				}
				on, off := medianResult(ons), medianResult(offs)
				b.ReportMetric(1e9/on.rate, "ns/op")
				b.ReportMetric(on.rate, "submissions/s")
				b.ReportMetric(on.p50, "p50-ms")
				b.ReportMetric(on.p99, "p99-ms")
				b.ReportMetric(float64(on.delivered), "delivered")
				b.ReportMetric(off.rate, "off-submissions/s")
				b.ReportMetric(off.p99, "off-p99-ms")
				b.ReportMetric(median(ratios), "on/off")
				b.ReportMetric(100*on.busy, "busy-%")
				b.ReportMetric(100*off.busy, "off-busy-%")
				b.ReportMetric(on.cpu, "cpu-us/op")
				b.ReportMetric(off.cpu, "off-cpu-us/op")
				if backend == store.BackendPostgres {
					b.ReportMetric(on.pg, "pg-cpu-us/op")
					b.ReportMetric(off.pg, "off-pg-cpu-us/op")
				}
				if b.N >= 1000 && on.delivered == 0 {
					b.Errorf("the worker delivered nothing while %d posts came in", b.N)
				}
			})
		}
	}
}

// passScope is b for one pass of benchContact: what the pass registers
// with Cleanup runs when the pass ends (close), not when b does.
type passScope struct {
	testing.TB
	cleanups []func()
}

// Cleanup registers f to run at close.
func (p *passScope) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

// close runs the registered functions, the last registered first.
func (p *passScope) close() {
	for _, f := range slices.Backward(p.cleanups) {
		f()
	}
}

// median is the median of v (which it sorts).
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// medianResult is the median of each figure of rs (the fewest delivered).
func medianResult(rs []benchResult) benchResult {
	med := func(f func(benchResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	out := benchResult{
		rate: med(func(r benchResult) float64 { return r.rate }),
		p50:  med(func(r benchResult) float64 { return r.p50 }),
		p99:  med(func(r benchResult) float64 { return r.p99 }),
		busy: med(func(r benchResult) float64 { return r.busy }),
		cpu:  med(func(r benchResult) float64 { return r.cpu }),
		pg:   med(func(r benchResult) float64 { return r.pg }),
	}
	out.delivered = slices.MinFunc(rs, func(a, b benchResult) int { return a.delivered - b.delivered }).delivered
	return out
}

// benchResult is one pass of benchContact.
type benchResult struct {
	rate, p50, p99 float64
	// delivered is how many messages the worker delivered while the
	// posts came in.
	delivered int
	// busy is how busy the machine's CPUs were meanwhile, 0 to 1.
	busy float64
	// cpu is this process's CPU time a post in microseconds (the
	// server, its worker and the benchmark's clients), pg PostgreSQL's
	// (its server processes; 0 on SQLite, which runs in this process).
	cpu, pg float64
}

// benchContact posts b.N submissions and measures them; with pf, a
// worker delivers to pf meanwhile.
func benchContact(b *testing.B, backend string, limits bool, pf *testenv.PostfixServer) benchResult {
	b.StopTimer()
	o := contactOptions{backend: backend, realClock: true}
	if pf != nil {
		o.worker, o.roots = true, pf.CA.RootCAs
	}
	// The app (its worker, its database) ends with the pass, before the
	// next one: a worker left running would drain its queue beside it.
	scope := &passScope{TB: b}
	defer scope.close()
	a := newContactApp(scope, o)
	var profileID int64
	if pf != nil {
		host, port, _ := net.SplitHostPort(pf.SubmissionAddr)
		n, _ := strconv.Atoi(port)
		sealed, err := a.box.Seal([]byte(pf.Password))
		if err != nil {
			b.Fatal(err)
		}
		p := &store.Profile{Name: "Postfix submission", Host: host, Port: n, TLSMode: "starttls",
			AuthMech: "PLAIN", Username: pf.User, PasswordEnc: sealed}
		if err := a.store.SaveProfile(context.Background(), p); err != nil {
			b.Fatal(err)
		}
		profileID = p.ID
	}
	f := a.addForm(b, func(f *store.Form) {
		if limits {
			f.RatePerAddr, f.RatePerForm = 1<<30, 1<<30
		}
		if pf != nil {
			f.ProfileID, f.FromAddr, f.Recipients = profileID, pf.User, []string{"bench-" + strings.ToLower(testenv.UniqueToken()) + "@" + pf.Domain}
		}
	})
	// A token is used once: one per post, issued before the timer starts
	// and in the past, so that each is old enough at once.
	total := benchBacklog + b.N
	bodies := make([][]byte, total)
	a.issueInPast(b, func() {
		for i := range bodies {
			var tok struct{ Token string }
			r := a.visit(b, http.MethodGet, "/f/"+f.Slug+"/token", "", nil)
			if err := json.Unmarshal([]byte(r.body), &tok); err != nil || tok.Token == "" {
				b.Fatalf("token: %d %s", r.status, r.body)
			}
			bodies[i], _ = json.Marshal(map[string]string{
				"_token": tok.Token, "name": "Load Test", "email": "load@visitor.test",
				"message": "Hello,\nthis is one of many messages of the load test; it is about as long as a short contact message.\nBye.",
			})
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}, Timeout: time.Minute}
	defer client.CloseIdleConnections()

	var failed atomic.Int64
	post := func(body []byte) (time.Duration, bool) {
		req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/f/"+f.Slug, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Origin", "https://site.example")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			failed.Add(1)
			return 0, false
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"ok":true`)) {
			if failed.Add(1) == 1 {
				b.Errorf("answer %d %s", resp.StatusCode, out)
			}
		}
		return took, true
	}
	// The backlog, posted by every client at once as the measured posts
	// are (the database pool, its sessions' prepared statements and the
	// HTTP connections are then what they will be), then wait until a
	// worker has delivered some of it.
	var backlog sync.WaitGroup
	for c := range benchClients {
		backlog.Go(func() {
			for i := c; i < benchBacklog; i += benchClients {
				post(bodies[i])
			}
		})
	}
	backlog.Wait()
	sentBefore := 0
	if pf != nil {
		waitProgress(b, "first deliveries of the backlog", time.Minute, func() (bool, string) {
			sentBefore = sentCount(b, a.store)
			return sentBefore > 0, strconv.Itoa(sentBefore)
		})
	}

	var next atomic.Int64
	lat := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	cpu0, err := testenv.ReadCPU()
	if err != nil {
		b.Fatal(err)
	}
	server := "" // SQLite runs in this process
	if backend == store.BackendPostgres {
		server = testenv.PostgresProcess
	}
	cpuUsed := testenv.TakeCPU(b, server)
	b.StartTimer()
	start := time.Now()
	for w := 0; w < benchClients; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				if took, ok := post(bodies[benchBacklog+i]); ok {
					lat[w] = append(lat[w], took)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, err := testenv.ReadCPU()
	if err != nil {
		b.Fatal(err)
	}
	cpuUsed = testenv.TakeCPU(b, server).Since(cpuUsed)
	res := benchResult{rate: float64(b.N) / elapsed.Seconds(), busy: cpu1.BusySince(cpu0),
		cpu: float64(cpuUsed.Self.Microseconds()) / float64(b.N), pg: float64(cpuUsed.Server.Microseconds()) / float64(b.N)}
	if pf != nil {
		res.delivered = sentCount(b, a.store) - sentBefore
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d posts failed", n, total)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	res.p50, res.p99 = pct(0.50), pct(0.99)

	// Zero loss: every success is stored, once, with its outbox item.
	subs, items := countRows(b, a.store, f.ID)
	if subs != total || items != total {
		b.Fatalf("%d successes, but %d submissions and %d outbox items stored", total, subs, items)
	}
	return res
}

// sentCount is how many outbox items have been delivered.
func sentCount(b *testing.B, st *store.Store) int {
	c, err := st.OutboxCounts(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return c[store.OutboxSent]
}

// countRows counts a form's submissions and outbox items, page by page.
func countRows(b *testing.B, st *store.Store, formID int64) (subs, items int) {
	ctx := context.Background()
	var before int64
	for {
		page, err := st.ListSubmissions(ctx, store.SubmissionFilter{FormID: formID, Limit: store.MaxListLimit, Before: before})
		if err != nil {
			b.Fatal(err)
		}
		subs += len(page)
		if len(page) < store.MaxListLimit {
			break
		}
		before = page[len(page)-1].ID
	}
	before = 0
	seen := map[string]bool{}
	for {
		page, err := st.ListOutbox(ctx, store.OutboxFilter{FormID: formID, Limit: store.MaxListLimit, Before: before})
		if err != nil {
			b.Fatal(err)
		}
		for _, it := range page {
			if seen[it.MessageID] {
				b.Fatalf("Message-ID %s queued twice", it.MessageID)
			}
			seen[it.MessageID] = true
		}
		items += len(page)
		if len(page) < store.MaxListLimit {
			break
		}
		before = page[len(page)-1].ID
	}
	return subs, items
}
