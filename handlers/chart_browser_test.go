package handlers_test

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"sockmail/internal/testenv"
)

// TestChartsBrowser opens a monitor's page in Chromium after a real run
// of the test Postfix and 60 stored earlier runs: the status strip and
// the phase plots are drawn with a size (not collapsed by the style
// sheet), opening a chart's table without JavaScript shows its rows,
// the 7-day link switches the range, and the server's page draws the
// same charts. Screenshots go to $SOCKMAIL_ARTIFACTS
// (monitor-charts*.png, server-charts.png).
func TestChartsBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	pf := testenv.Postfix(t)
	a := newApp(t, appOptions{rootCAs: pf.RootCAs})
	ctx := browser(t)
	signUpInBrowser(t, ctx, a)
	c := a.client()
	if r := c.signIn(adminEmail, adminPassword); r.status != 303 {
		t.Fatalf("sign-in: %d", r.status)
	}
	seed := seedChartRuns(t, a, c, pf)
	page := a.srv.URL + "/monitors/" + strconv.FormatInt(seed.monitor.ID, 10)

	drawn := func(what string, plots int) {
		t.Helper()
		run(t, ctx, what, chromedp.WaitVisible(tid("chart-strip")))
		w := value(t, ctx, chromedp.Evaluate[float64](`document.querySelector('[data-testid="chart-strip"]').getBoundingClientRect().width`))
		if w < 300 {
			t.Errorf("%s: strip %v px wide", what, w)
		}
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="chart-plot"]').length`)); n != plots {
			t.Errorf("%s: %d plots, want %d", what, n, plots)
		}
		h := value(t, ctx, chromedp.Evaluate[float64](`document.querySelector('[data-testid="chart-plot"]').getBoundingClientRect().height`))
		if h < 80 {
			t.Errorf("%s: a plot %v px high", what, h)
		}
	}
	// Connect, TLS (the seeded runs) and the whole run.
	run(t, ctx, "open the monitor", chromedp.Navigate(page))
	drawn("monitor 24 h", 3)
	screenshot(t, ctx, "monitor-charts.png")
	run(t, ctx, "open the status table",
		chromedp.Click(`[data-testid="charts"] details.chart-table summary`),
		chromedp.WaitVisible(tid("chart-status-table")))
	if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="chart-status-table"] tbody tr').length`)); n < 10 {
		t.Errorf("status table: %d rows", n)
	}
	screenshot(t, ctx, "monitor-charts-table.png")
	run(t, ctx, "7 days", chromedp.Click(`[data-testid="chart-range"]:nth-of-type(2)`),
		chromedp.WaitVisible(`[data-testid="chart-range"][aria-current="page"][href*="range=7d"]`))
	drawn("monitor 7 d", 3)
	screenshot(t, ctx, "monitor-charts-7d.png")

	run(t, ctx, "open the server", chromedp.Navigate(a.srv.URL+"/history/server?addr="+url.QueryEscape(pf.SMTPAddr)))
	drawn("server 24 h", 3)
	screenshot(t, ctx, "server-charts.png")
}
