package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
	"sockmail/views"
)

// ChartStore aggregates runs and sends for the charts. *store.Store is
// one; a Handler whose store is not one shows no charts.
type ChartStore interface {
	MonitorChart(ctx context.Context, monitorID int64, r store.ChartRange) (*store.Chart, error)
	ServerChart(ctx context.Context, server string, r store.ChartRange) (*store.Chart, error)
	ChartServers(ctx context.Context, since time.Time) ([]store.ChartServer, error)
}

// chartSpan is a range a chart offers: its query value, label, and
// buckets.
type chartSpan struct {
	key, label, words string
	bucket            time.Duration
	buckets           int
}

// chartSpans are the ranges, the default first: 24 h in half hours, 7 d
// in 3 hours, 30 d in 12 hours (48 to 60 buckets each).
func chartSpans() []chartSpan {
	return []chartSpan{
		{"24h", "24 hours", "the last 24 hours", 30 * time.Minute, 48},
		{"7d", "7 days", "the last 7 days", 3 * time.Hour, 56},
		{"30d", "30 days", "the last 30 days", 12 * time.Hour, 60},
	}
}

// chartRange reads ?range= (24h, 7d or 30d; anything else is 24h) and
// returns the span and the store range ending with the bucket that holds
// now. Buckets are aligned to multiples of their width since the epoch,
// so that a bucket holds the same runs on every load.
func chartRange(c echo.Context, now time.Time) (chartSpan, store.ChartRange) {
	spans := chartSpans()
	sp := spans[0]
	for _, s := range spans {
		if s.key == c.QueryParam("range") {
			sp = s
		}
	}
	end := now.UTC().Truncate(sp.bucket).Add(sp.bucket)
	return sp, store.ChartRange{From: end.Add(-time.Duration(sp.buckets) * sp.bucket), Bucket: sp.bucket, Buckets: sp.buckets}
}

// chartPhaseLabels names the phases as the charts show them.
func chartPhaseLabel(p store.ChartPhase) string {
	switch p {
	case store.PhaseConnect:
		return "TCP connect"
	case store.PhaseTLS:
		return "TLS handshake"
	case store.PhaseAuth:
		return "AUTH"
	case store.PhaseFinalReply:
		return "Final reply (after the message)"
	case store.PhaseTotal:
		return "Whole run"
	case store.PhaseArrival:
		return "End-to-end arrival"
	}
	return string(p)
}

// chartData turns a stored chart into what the view draws; link makes the
// URL of another range.
func chartData(id, what string, sp chartSpan, ch *store.Chart, link func(key string) string) views.ChartData {
	d := views.ChartData{ID: id, What: what, RangeLabel: sp.words, Bucket: ch.Range.Bucket}
	for _, s := range chartSpans() {
		d.Ranges = append(d.Ranges, views.ChartRangeLink{Label: s.label, URL: link(s.key), Current: s.key == sp.key})
	}
	for _, p := range ch.Phases {
		d.Phases = append(d.Phases, views.ChartPhaseName{Key: string(p), Label: chartPhaseLabel(p)})
	}
	for _, b := range ch.Buckets {
		vb := views.ChartDataBucket{Start: b.Start, Up: b.Up, Degraded: b.Degraded, Down: b.Down, Phases: map[string]views.ChartPct{}}
		for p, pc := range b.Phases {
			vb.Phases[string(p)] = views.ChartPct{N: pc.N, P50: pc.P50, P90: pc.P90, P99: pc.P99}
		}
		d.Buckets = append(d.Buckets, vb)
	}
	return d
}

// chartStore is the store's chart queries, nil when it has none.
func (h *Handler) chartStore() ChartStore {
	cs, _ := h.history.(ChartStore)
	return cs
}

// monitorCharts is the chart section of a monitor's page (nil when the
// store draws no charts).
func (h *Handler) monitorCharts(c echo.Context, m *store.Monitor) (*views.ChartData, error) {
	cs := h.chartStore()
	if cs == nil {
		return nil, nil
	}
	sp, r := chartRange(c, h.now())
	ch, err := cs.MonitorChart(c.Request().Context(), m.ID, r)
	if err != nil {
		return nil, fmt.Errorf("handlers: charts of monitor %d: %w", m.ID, err)
	}
	d := chartData("monitor-charts", "runs", sp, ch, func(key string) string {
		return "/monitors/" + strconv.FormatInt(m.ID, 10) + "?range=" + key + "#monitor-charts-h"
	})
	return &d, nil
}

// chartRoutes adds the per-server pages of the history.
func (h *Handler) chartRoutes(g *echo.Group) {
	g.GET("/history/servers", h.serversPage)
	g.GET("/history/server", h.serverPage)
}

// serversPage lists the servers of the last 30 days' sends, each linked
// to its charts.
func (h *Handler) serversPage(c echo.Context) error {
	cs := h.chartStore()
	if cs == nil {
		return echo.NewHTTPError(http.StatusNotFound, "Charts are not available with this store.")
	}
	list, err := cs.ChartServers(c.Request().Context(), h.now().Add(-30*24*time.Hour))
	if err != nil {
		return fmt.Errorf("handlers: servers: %w", err)
	}
	var rows []views.ServerRow
	for _, s := range list {
		rows = append(rows, views.ServerRow{Server: s.Server, Sends: s.Sends, Last: fmtWhen(s.Last),
			URL: "/history/server?addr=" + url.QueryEscape(s.Server)})
	}
	return render(c, http.StatusOK, views.ServersPage(h.page(c, "Servers", "history"), rows))
}

// serverPage shows the charts of one server's sends (?addr=host:port).
func (h *Handler) serverPage(c echo.Context) error {
	cs := h.chartStore()
	if cs == nil {
		return echo.NewHTTPError(http.StatusNotFound, "Charts are not available with this store.")
	}
	addr := c.QueryParam("addr")
	if addr == "" || len(addr) > store.MaxMonitorTarget+6 {
		return echo.NewHTTPError(http.StatusBadRequest, "Name a server as host:port (addr=).")
	}
	sp, r := chartRange(c, h.now())
	ch, err := cs.ServerChart(c.Request().Context(), addr, r)
	if err != nil {
		return fmt.Errorf("handlers: charts of server: %w", err)
	}
	d := chartData("server-charts", "sends", sp, ch, func(key string) string {
		return "/history/server?addr=" + url.QueryEscape(addr) + "&range=" + key + "#server-charts-h"
	})
	return render(c, http.StatusOK, views.ServerPage(h.page(c, "Server "+addr, "history"), addr, d))
}
