package handlers_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// chartSeed is what seedChartRuns stored.
type chartSeed struct {
	monitor            *store.Monitor
	up, degraded, down int
	runs               int
}

// seedChartRuns creates a quit-after monitor of the test Postfix, runs it
// once for real through its page ("Run now": up), and stores 60 earlier
// runs with their sends to the same server over the last 20 hours (three
// an hour, some degraded and down), as the scheduler would have.
func seedChartRuns(t *testing.T, a *app, c *client, pf *testenv.PostfixServer) chartSeed {
	t.Helper()
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(pf.SMTPAddr)
	portN, _ := strconv.Atoi(port)
	m := &store.Monitor{Name: "Charted Postfix", Kind: store.MonitorQuitAfter, Target: host, Rcpt: testenv.UniqueAddress(),
		Options: store.MonitorOptions{Port: portN}, Interval: 5, Enabled: true, SlowMS: 2000}
	if err := a.store.CreateMonitor(ctx, m); err != nil {
		t.Fatal(err)
	}
	page := "/monitors/" + strconv.FormatInt(m.ID, 10)
	if r := c.post(page+"/run", url.Values{"_csrf": {c.csrf(page)}}); r.status != http.StatusSeeOther {
		t.Fatalf("run monitor: %d\n%s", r.status, r.body)
	}
	seed := chartSeed{monitor: m, up: 1, runs: 1}
	base := time.Now()
	status := map[store.MonitorState]smtp.Status{store.MonitorUp: smtp.StatusStopped, store.MonitorDegraded: smtp.StatusPartial, store.MonitorDown: smtp.StatusTempFail}
	for k := 1; k <= 20; k++ {
		for j := range 3 {
			at := base.Add(-time.Duration(k)*time.Hour + time.Duration(j)*5*time.Minute)
			state := store.MonitorUp
			switch {
			case k%7 == 0 && j == 0:
				state = store.MonitorDown
			case k%5 == 0:
				state = store.MonitorDegraded
			}
			ms := time.Millisecond
			total := time.Duration(40+k*10+j*25) * ms
			if state == store.MonitorDegraded {
				total += 2 * time.Second
			}
			fin := at.Add(total)
			snd := &store.Send{CreatedAt: at, FinishedAt: &fin, Source: "monitor", Server: pf.SMTPAddr, TLSMode: "starttls",
				MailFrom: "", Rcpts: []string{m.Rcpt}, Status: status[state],
				Timings: &smtp.Timings{Connect: time.Duration(200+k*30+j*100) * time.Microsecond, TLS: time.Duration(3+j+k%4) * ms, Total: total}}
			if err := a.store.CreateSend(ctx, snd); err != nil {
				t.Fatal(err)
			}
			if _, err := a.store.ClaimMonitor(ctx, m.ID, "seed", at, time.Minute); err != nil {
				t.Fatal(err)
			}
			run := &store.MonitorRun{MonitorID: m.ID, Started: at, Finished: fin, State: state, Latency: total, SendID: &snd.ID}
			if err := a.store.FinishMonitorRun(ctx, "seed", run); err != nil {
				t.Fatal(err)
			}
			seed.runs++
			switch state {
			case store.MonitorUp:
				seed.up++
			case store.MonitorDegraded:
				seed.degraded++
			default:
				seed.down++
			}
		}
	}
	return seed
}

// tableValues sums the "Values" column of a phase's table.
func tableValues(t *testing.T, doc *goquery.Selection, phase string) int {
	t.Helper()
	sum := 0
	doc.Find(`[data-testid="chart-phase"][data-phase="` + phase + `"] [data-testid="chart-phase-table"] tbody tr`).Each(func(_ int, s *goquery.Selection) {
		n, err := strconv.Atoi(s.Find("td").First().Text())
		if err != nil {
			t.Errorf("%s table: %v", phase, err)
		}
		sum += n
	})
	return sum
}

// TestChartPages: after a real run of a monitor of the test Postfix and
// 60 stored earlier ones, the monitor's page draws its charts for 24 h
// and 7 d (the strip's counts, a 48- or 56-cell strip, the connect, TLS
// and whole-run tables holding every run), the server's page draws the
// same from its sends, the servers list names it, and a page without a
// server is refused. On both backends.
func TestChartPages(t *testing.T) {
	pf := testenv.Postfix(t)
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend, rootCAs: pf.RootCAs})
			c := a.client()
			c.signUp()
			seed := seedChartRuns(t, a, c, pf)
			totals := strconv.Itoa(seed.up) + " up, " + strconv.Itoa(seed.degraded) + " degraded, " + strconv.Itoa(seed.down) + " down"
			if seed.down == 0 || seed.degraded == 0 {
				t.Fatalf("seed has no down or degraded run: %s", totals)
			}
			page := "/monitors/" + strconv.FormatInt(seed.monitor.ID, 10)
			addr := "/history/server?addr=" + url.QueryEscape(pf.SMTPAddr)
			for _, tt := range []struct {
				name, path, current string
				cells               int
			}{
				{"monitor 24h", page, "24 hours", 48},
				{"monitor 7d", page + "?range=7d", "7 days", 56},
				{"server 24h", addr, "24 hours", 48},
				{"server 30d", addr + "&range=30d", "30 days", 60},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r := c.get(tt.path)
					if r.status != http.StatusOK {
						t.Fatalf("status %d\n%s", r.status, r.body)
					}
					ch := r.testid(t, "charts")
					if ch.Length() != 1 {
						t.Fatalf("no charts section:\n%s", r.body)
					}
					if got := ch.Find(`[data-testid="chart-strip"] title`).First().Text(); !strings.HasSuffix(got, ": "+totals) {
						t.Errorf("strip title %q, want the totals %q", got, totals)
					}
					if n := ch.Find(`rect.chart-cell`).Length(); n != tt.cells {
						t.Errorf("%d strip cells, want %d", n, tt.cells)
					}
					if n := ch.Find(`rect.chart-down`).Length(); n < 1 {
						t.Error("no down cell")
					}
					if got := ch.Find(`[data-testid="chart-range"][aria-current="page"]`).Text(); got != tt.current {
						t.Errorf("current range %q, want %q", got, tt.current)
					}
					for _, phase := range []string{"connect", "tls", "total"} {
						// The real run has a connect and a whole-run time;
						// it may have had no TLS (none offered).
						got, want := tableValues(t, ch, phase), seed.runs
						if phase == "tls" && got == want-1 {
							continue
						}
						if got != want {
							t.Errorf("%s table holds %d values, want %d", phase, got, want)
						}
					}
				})
			}
			r := c.get("/history/servers")
			if r.status != http.StatusOK {
				t.Fatalf("servers: %d", r.status)
			}
			var found bool
			r.testid(t, "server-row").Each(func(_ int, s *goquery.Selection) {
				if s.Find("a").Text() == pf.SMTPAddr {
					found = true
					if n := s.Find("td").Eq(1).Text(); n != strconv.Itoa(seed.runs) {
						t.Errorf("servers list: %s sends to %s, want %d", n, pf.SMTPAddr, seed.runs)
					}
				}
			})
			if !found {
				t.Errorf("servers list without %s:\n%s", pf.SMTPAddr, r.body)
			}
			if r := c.get("/history/server"); r.status != http.StatusBadRequest {
				t.Errorf("server page without addr: %d, want 400", r.status)
			}
		})
	}
}
