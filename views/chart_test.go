package views_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"sockmail/views"
)

// chartCase is a chart drawn by TestChartGolden.
type chartCase struct {
	name string
	in   views.ChartData
	// states are the strip's cells, in order.
	states []string
	// points is how many buckets of each phase have a value.
	points map[string]int
	// rows is how many rows the status table has.
	rows int
}

func chartCases() []chartCase {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	phases := []views.ChartPhaseName{{Key: "connect", Label: "TCP connect"}, {Key: "total", Label: "Whole run"}}
	bk := func(i, up, deg, down int, p map[string]views.ChartPct) views.ChartDataBucket {
		if p == nil {
			p = map[string]views.ChartPct{}
		}
		return views.ChartDataBucket{Start: t0.Add(time.Duration(i) * 30 * time.Minute), Up: up, Degraded: deg, Down: down, Phases: p}
	}
	ranges := []views.ChartRangeLink{{Label: "24 hours", URL: "?range=24h", Current: true}, {Label: "7 days", URL: "?range=7d"}}
	return []chartCase{
		{
			name: "mixed",
			in: views.ChartData{ID: "c", What: "runs", RangeLabel: "the last 3 hours", Bucket: 30 * time.Minute, Phases: phases, Ranges: ranges,
				Buckets: []views.ChartDataBucket{
					bk(0, 4, 0, 0, map[string]views.ChartPct{"connect": {N: 4, P50: 2 * ms, P90: 3 * ms, P99: 3 * ms}, "total": {N: 4, P50: 120 * ms, P90: 180 * ms, P99: 180 * ms}}),
					bk(1, 3, 1, 0, map[string]views.ChartPct{"connect": {N: 4, P50: 2500 * time.Microsecond, P90: 4 * ms, P99: 7 * ms}, "total": {N: 4, P50: 130 * ms, P90: 400 * ms, P99: 410 * ms}}),
					bk(2, 0, 0, 0, nil),
					bk(3, 1, 0, 2, map[string]views.ChartPct{"total": {N: 3, P50: 1000 * ms, P90: 1500 * ms, P99: 1500 * ms}}),
					bk(4, 0, 0, 0, nil),
					bk(5, 2, 0, 0, map[string]views.ChartPct{"connect": {N: 2, P50: 1 * ms, P90: 1 * ms, P99: 1 * ms}, "total": {N: 2, P50: 90 * ms, P90: 95 * ms, P99: 95 * ms}}),
				}},
			states: []string{"up", "degraded", "none", "down", "none", "up"},
			points: map[string]int{"connect": 3, "total": 4},
			rows:   4,
		},
		{
			name: "empty",
			in: views.ChartData{ID: "c", What: "sends", RangeLabel: "the last hour", Bucket: 30 * time.Minute, Ranges: ranges,
				Buckets: []views.ChartDataBucket{bk(0, 0, 0, 0, nil), bk(1, 0, 0, 0, nil)}},
			states: []string{"none", "none"},
		},
	}
}

// TestChartGolden draws the charts of fixed data and compares each SVG
// (the status strip and one plot per phase) byte for byte with
// testdata/chart-*.svg (-update rewrites them), then checks their
// structure: a cell per bucket with its worst state and a taller cell for
// a worse state, a dot per bucket with a value on each percentile line,
// the axis maximum rounded up from the largest p99, and the tables.
func TestChartGolden(t *testing.T) {
	for _, tt := range chartCases() {
		t.Run(tt.name, func(t *testing.T) {
			v := views.NewChartView(tt.in)
			svgs := map[string][]byte{"strip": renderChart(t, views.ChartStripSVG(v))}
			for _, p := range v.Plots {
				svgs[p.Phase.Key] = renderChart(t, views.ChartPlotSVG(p, v.Width))
			}
			for name, got := range svgs {
				path := filepath.Join("testdata", "chart-"+tt.name+"-"+name+".svg")
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to write it)", err)
				}
				if bytes.Contains(want, []byte("\r")) {
					t.Errorf("%s has CR bytes: a checkout converted its line ends", path)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from what is drawn now; run with -update and look at the diff:\n%s", path, got)
				}
			}
			strip := queryChart(t, svgs["strip"])
			var states []string
			heights := map[string]float64{}
			strip.Find(`rect.chart-cell`).Each(func(_ int, s *goquery.Selection) {
				st := s.AttrOr("data-state", "")
				states = append(states, st)
				h, _ := strconv.ParseFloat(s.AttrOr("height", ""), 64)
				heights[st] = h
			})
			if strings.Join(states, ",") != strings.Join(tt.states, ",") {
				t.Errorf("strip states %v, want %v", states, tt.states)
			}
			for _, pair := range [][2]string{{"none", "up"}, {"up", "degraded"}, {"degraded", "down"}} {
				lo, okLo := heights[pair[0]]
				hi, okHi := heights[pair[1]]
				if okLo && okHi && lo >= hi {
					t.Errorf("a %s cell (%v) is not shorter than a %s one (%v)", pair[0], lo, pair[1], hi)
				}
			}
			if len(v.Plots) != len(tt.points) {
				t.Fatalf("%d plots, want %d", len(v.Plots), len(tt.points))
			}
			for _, p := range v.Plots {
				doc := queryChart(t, svgs[p.Phase.Key])
				doc.Find(`[data-testid="chart-line"]`).Each(func(_ int, s *goquery.Selection) {
					if n := s.Find("circle").Length(); n != tt.points[p.Phase.Key] {
						t.Errorf("%s %s: %d dots, want %d", p.Phase.Key, s.AttrOr("data-line", ""), n, tt.points[p.Phase.Key])
					}
				})
			}
			if tt.name == "mixed" {
				// Largest p99: 7 ms connect, 1500 ms whole run; axes to 10 and 2000 ms.
				for key, want := range map[string]string{"connect": "10", "total": "2000"} {
					if got := queryChart(t, svgs[key]).Find("svg").AttrOr("data-max-ms", ""); got != want {
						t.Errorf("%s axis to %s ms, want %s", key, got, want)
					}
				}
				// The 1500 ms p90 of bucket 3 sits at 3/4 of the 2000 ms axis.
				total := v.Plots[1]
				if got, want := total.Lines[1].Dots[2].Y, 24.0+120.0*(1-0.75); got != want {
					t.Errorf("bucket 3's p90 at y %v, want %v", got, want)
				}
			}
			section := queryChart(t, renderChart(t, views.ChartSection(tt.in)))
			if n := section.Find(`[data-testid="chart-status-table"] tbody tr`).Length(); n != tt.rows {
				t.Errorf("status table: %d rows, want %d", n, tt.rows)
			}
			if empty := section.Find(`[data-testid="chart-empty"]`).Length() == 1; empty != (tt.rows == 0) {
				t.Errorf("empty note shown %v with %d rows", empty, tt.rows)
			}
			if cur := section.Find(`[data-testid="chart-range"][aria-current="page"]`).Text(); cur != "24 hours" {
				t.Errorf("current range %q", cur)
			}
		})
	}
}

// renderChart renders a component, ending with a newline as the golden
// files do.
func renderChart(t *testing.T, c templ.Component) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// queryChart parses rendered markup.
func queryChart(t *testing.T, b []byte) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
