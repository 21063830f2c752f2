package views

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// ChartPct is one bucket's nearest-rank percentiles of a phase; N is how
// many values they come from (0: none in the bucket).
type ChartPct struct {
	N             int
	P50, P90, P99 time.Duration
}

// ChartDataBucket is one bucket of a chart: the runs (or sends) in each
// state and the percentiles of each phase, keyed by ChartPhaseName.Key.
type ChartDataBucket struct {
	Start              time.Time
	Up, Degraded, Down int
	Phases             map[string]ChartPct
}

// ChartPhaseName is a latency series: its key in ChartDataBucket.Phases
// and the label shown.
type ChartPhaseName struct {
	Key, Label string
}

// ChartRangeLink is one of the ranges a chart can show (24 h, 7 d, 30 d).
type ChartRangeLink struct {
	Label   string
	URL     string
	Current bool
}

// ChartData is what a chart section shows: status over time and phase
// latencies, bucketed.
type ChartData struct {
	// ID prefixes the element ids of the section (unique on the page).
	ID string
	// What names what is charted ("runs", "sends").
	What string
	// RangeLabel says the range in words, lower case ("the last 24
	// hours").
	RangeLabel string
	Bucket     time.Duration
	Buckets    []ChartDataBucket
	Phases     []ChartPhaseName
	Ranges     []ChartRangeLink
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 720.0
	chartLeft   = 64.0 // room for the y axis labels
	chartRight  = 8.0
	stripTop    = 4.0
	stripHeight = 24.0
	plotTop     = 24.0 // the legend is above
	plotHeight  = 120.0
	axisHeight  = 20.0
)

// ChartView is a laid-out chart section (NewChartView).
type ChartView struct {
	ChartData
	Width  float64
	Strip  ChartStrip
	Plots  []ChartPlot
	Empty  bool
	Totals [3]int // up, degraded, down over the range
}

// ChartStrip is the status strip: one cell per bucket.
type ChartStrip struct {
	Height float64
	Cells  []ChartCell
	Ticks  []ChartTick
}

// ChartCell is one bucket of the strip; State is its worst state ("none"
// without runs), Title says the counts.
type ChartCell struct {
	X, W float64
	// Y and H make the state readable without colour: the worse the
	// state, the taller the cell (down fills the strip).
	Y, H  float64
	State string
	Title string
}

// ChartTick is a labelled position on an axis; Anchor is its SVG
// text-anchor (start, middle or end).
type ChartTick struct {
	X, Y   float64
	Label  string
	Anchor string
}

// ChartPlot is one phase's latency plot: a line per percentile.
type ChartPlot struct {
	ID     string
	Phase  ChartPhaseName
	Height float64
	Max    time.Duration
	Lines  []ChartLine
	YTicks []ChartTick
	XTicks []ChartTick
	Rows   []ChartPctRow
}

// ChartLine is one percentile's line; Path is an SVG path joining the
// buckets that have a value (across empty ones: the dots and the table
// say which have one), Dots mark every point so that lone values show.
type ChartLine struct {
	Name  string // p50, p90, p99
	Path  string
	Dots  []ChartTick
	Label string
}

// ChartPctRow is a row of a phase's table.
type ChartPctRow struct {
	When          string
	N             int
	P50, P90, P99 string
}

// ChartStateRow is a row of the status table.
type ChartStateRow struct {
	When               string
	Up, Degraded, Down int
}

// bucketX is the left edge and width of bucket i of n.
func bucketX(i, n int) (float64, float64) {
	w := (chartWidth - chartLeft - chartRight) / float64(n)
	return chartLeft + float64(i)*w, w
}

// NewChartView lays out d.
func NewChartView(d ChartData) ChartView {
	v := ChartView{ChartData: d, Width: chartWidth, Empty: true}
	n := len(d.Buckets)
	v.Strip.Height = stripTop + stripHeight + axisHeight
	for i, b := range d.Buckets {
		x, w := bucketX(i, n)
		gap := 0.0
		if w > 4 {
			gap = 1
		}
		state := "none"
		switch {
		case b.Down > 0:
			state = "down"
		case b.Degraded > 0:
			state = "degraded"
		case b.Up > 0:
			state = "up"
		}
		if state != "none" {
			v.Empty = false
		}
		v.Totals[0] += b.Up
		v.Totals[1] += b.Degraded
		v.Totals[2] += b.Down
		h := map[string]float64{"none": 2, "up": stripHeight / 3, "degraded": stripHeight * 2 / 3, "down": stripHeight}[state]
		v.Strip.Cells = append(v.Strip.Cells, ChartCell{X: x, W: w - gap, Y: stripTop + stripHeight - h, H: h, State: state,
			Title: d.when(b.Start) + ": " + d.counts(b)})
	}
	v.Strip.Ticks = d.xTicks(stripTop + stripHeight + 14)
	for _, p := range d.Phases {
		v.Plots = append(v.Plots, d.plot(p))
	}
	return v
}

// when formats a bucket's start for the range: the time of day for
// buckets under a day, the date for longer ones.
func (d ChartData) when(t time.Time) string {
	t = t.UTC()
	switch {
	case d.Bucket >= 24*time.Hour:
		return t.Format("Jan 2")
	case len(d.Buckets) > 0 && d.Buckets[len(d.Buckets)-1].Start.Sub(d.Buckets[0].Start) >= 24*time.Hour:
		return t.Format("Jan 2 15:04")
	}
	return t.Format("15:04")
}

func (d ChartData) counts(b ChartDataBucket) string {
	if b.Up+b.Degraded+b.Down == 0 {
		return "no " + d.What
	}
	return strconv.Itoa(b.Up) + " up, " + strconv.Itoa(b.Degraded) + " degraded, " + strconv.Itoa(b.Down) + " down"
}

// xTicks labels the first, middle and last buckets at height y.
func (d ChartData) xTicks(y float64) []ChartTick {
	n := len(d.Buckets)
	if n == 0 {
		return nil
	}
	// The first bucket's start, the middle one's and the last one's,
	// anchored so that none runs off the chart.
	ticks := []ChartTick{{X: chartLeft, Y: y, Label: d.when(d.Buckets[0].Start), Anchor: "start"}}
	if n >= 3 {
		x, w := bucketX(n/2, n)
		ticks = append(ticks, ChartTick{X: x + w/2, Y: y, Label: d.when(d.Buckets[n/2].Start), Anchor: "middle"})
	}
	if n >= 2 {
		x, w := bucketX(n-1, n)
		ticks = append(ticks, ChartTick{X: x + w, Y: y, Label: d.when(d.Buckets[n-1].Start), Anchor: "end"})
	}
	return ticks
}

// StateRows are the status table's rows: the buckets with runs.
func (d ChartData) StateRows() []ChartStateRow {
	var rows []ChartStateRow
	for _, b := range d.Buckets {
		if b.Up+b.Degraded+b.Down > 0 {
			rows = append(rows, ChartStateRow{When: d.when(b.Start), Up: b.Up, Degraded: b.Degraded, Down: b.Down})
		}
	}
	return rows
}

// niceMax rounds d up to 1, 2 or 5 times a power of ten milliseconds (at
// least 1 ms), so that the axis reads well.
func niceMax(d time.Duration) time.Duration {
	ms := float64(d) / float64(time.Millisecond)
	if ms <= 1 {
		return time.Millisecond
	}
	p := math.Pow(10, math.Floor(math.Log10(ms)))
	for _, m := range []float64{1, 2, 5, 10} {
		if ms <= m*p {
			return time.Duration(m * p * float64(time.Millisecond))
		}
	}
	return d
}

// FmtMS writes a duration in milliseconds: one decimal under 10 ms.
func FmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if d == 0 {
		return "0 ms"
	}
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(math.Round(ms), 'f', 0, 64) + " ms"
}

func (d ChartData) plot(p ChartPhaseName) ChartPlot {
	pl := ChartPlot{ID: d.ID + "-" + p.Key, Phase: p, Height: plotTop + plotHeight + axisHeight}
	var top time.Duration
	for _, b := range d.Buckets {
		if c := b.Phases[p.Key]; c.N > 0 {
			top = max(top, c.P99)
			pl.Rows = append(pl.Rows, ChartPctRow{When: d.when(b.Start), N: c.N, P50: FmtMS(c.P50), P90: FmtMS(c.P90), P99: FmtMS(c.P99)})
		}
	}
	pl.Max = niceMax(top)
	y := func(v time.Duration) float64 {
		return plotTop + plotHeight - plotHeight*float64(v)/float64(pl.Max)
	}
	for _, f := range []float64{0, 0.5, 1} {
		v := time.Duration(f * float64(pl.Max))
		pl.YTicks = append(pl.YTicks, ChartTick{X: chartLeft - 6, Y: y(v), Label: FmtMS(v)})
	}
	pl.XTicks = d.xTicks(plotTop + plotHeight + 14)
	n := len(d.Buckets)
	for _, line := range []struct {
		name, label string
		val         func(ChartPct) time.Duration
	}{
		{"p50", "median (p50)", func(c ChartPct) time.Duration { return c.P50 }},
		{"p90", "p90", func(c ChartPct) time.Duration { return c.P90 }},
		{"p99", "p99", func(c ChartPct) time.Duration { return c.P99 }},
	} {
		l := ChartLine{Name: line.name, Label: line.label}
		var path strings.Builder
		pen := false
		for i, b := range d.Buckets {
			c := b.Phases[p.Key]
			if c.N == 0 {
				continue
			}
			x, w := bucketX(i, n)
			pt := ChartTick{X: x + w/2, Y: y(line.val(c))}
			if pen {
				path.WriteString("L")
			} else {
				path.WriteString("M")
			}
			path.WriteString(chPx(pt.X) + " " + chPx(pt.Y))
			pen = true
			l.Dots = append(l.Dots, pt)
		}
		l.Path = path.String()
		pl.Lines = append(pl.Lines, l)
	}
	return pl
}

// chPx writes a coordinate with one decimal.
func chPx(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// chartBucket says a bucket's width in words.
func chartBucket(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	}
	return unit(int64(d/time.Minute), "minute")
}
