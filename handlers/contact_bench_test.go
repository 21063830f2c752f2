package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/store"
)

// benchClients is how many visitors post at once.
const benchClients = 32

// BenchmarkContactSubmit is the load test of the public endpoint: 32
// concurrent clients post JSON submissions to POST /f/{slug} through a
// real HTTP server (the real router, the real store), each answer a
// durable success (EnqueueSubmission returned). It reports durable
// submissions per second and the p50/p99 latency, then counts the stored
// submissions and outbox items: every answered success must be there,
// once. In "limits" the form has rate limits (set too high to refuse
// anything, so every post counts all earlier ones: the worst case), so
// each post also counts and records attempts; in "no-limits" it has none.
// The outbox worker does not run.
//
//	go test -run '^$' -bench ContactSubmit -benchtime 5000x ./handlers
func BenchmarkContactSubmit(b *testing.B) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		for _, limits := range []bool{true, false} {
			name := backend + "/limits"
			if !limits {
				name = backend + "/no-limits"
			}
			b.Run(name, func(b *testing.B) { benchContact(b, backend, limits) })
		}
	}
}

func benchContact(b *testing.B, backend string, limits bool) {
	a := newContactApp(b, contactOptions{backend: backend, realClock: true})
	f := a.addForm(b, func(f *store.Form) {
		if limits {
			f.RatePerAddr, f.RatePerForm = 1<<30, 1<<30
		}
	})
	// A token is used once: one per post, issued before the timer starts
	// and in the past, so that each is old enough at once.
	bodies := make([][]byte, b.N)
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

	var next atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < benchClients; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/f/"+f.Slug, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Origin", "https://site.example")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[w] = append(lat[w], time.Since(t0))
				if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"ok":true`)) {
					if failed.Add(1) == 1 {
						b.Errorf("answer %d %s", resp.StatusCode, out)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d posts failed", n, b.N)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submissions/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")

	// Zero loss: every success is stored, once, with its outbox item.
	subs, items := countRows(b, a.store, f.ID)
	if subs != b.N || items != b.N {
		b.Fatalf("%d successes, but %d submissions and %d outbox items stored", b.N, subs, items)
	}
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
