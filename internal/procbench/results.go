package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// result is one row of the table: a measure of both clients, their ratio
// and the verdict against the target.
type result struct {
	comparison string
	measure    string
	sockmail   string
	baseline   string
	against    string
	ratio      float64
	best       float64 // the same ratio from each client's best run
	target     string
	pass       bool
	info       bool // not a target: the verdict is shown in parentheses
}

// check turns the samples of a comparison into a result.
type check func(cp comparison, s, b []sample) result

// medianWall returns the median wall time of samples.
func medianWall(samples []sample) time.Duration {
	d := make([]time.Duration, len(samples))
	for i, s := range samples {
		d[i] = s.wall
	}
	return median(d)
}

// minWall returns the shortest wall time of samples: the run least
// disturbed by the machine's other load.
func minWall(samples []sample) time.Duration {
	d := make([]time.Duration, len(samples))
	for i, s := range samples {
		d[i] = s.wall
	}
	return slices.Min(d)
}

// median returns the median of v (the mean of the middle two for an even
// count), or 0 for none.
func median[T ~int64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// timeRatio checks sockmail's median time ÷ the baseline's <= max.
func timeRatio(max float64) check {
	return func(cp comparison, s, b []sample) result {
		ms, mb := medianWall(s), medianWall(b)
		ratio := float64(ms) / float64(mb)
		return result{
			comparison: cp.name, measure: "time (median)", against: cp.against,
			sockmail: fmtDuration(ms), baseline: fmtDuration(mb),
			ratio: ratio, best: float64(minWall(s)) / float64(minWall(b)),
			target: fmt.Sprintf("<= %.1fx", max), pass: ratio <= max,
		}
	}
}

// rateRatio checks sockmail's messages per second ÷ the baseline's >= min,
// from the median wall times of whole runs (start-up included).
func rateRatio(min float64) check {
	return func(cp comparison, s, b []sample) result {
		rs := float64(cp.messages) / medianWall(s).Seconds()
		rb := float64(cp.messages) / medianWall(b).Seconds()
		ratio := rs / rb
		return result{
			comparison: cp.name, measure: "msg/s (median run)", against: cp.against,
			sockmail: fmt.Sprintf("%.0f", rs), baseline: fmt.Sprintf("%.0f", rb),
			ratio: ratio, best: float64(minWall(b)) / float64(minWall(s)),
			target: fmt.Sprintf(">= %.1fx", min), pass: ratio >= min,
		}
	}
}

// peakRSSCheck checks sockmail's median peak RSS <= max bytes; the ratio is
// sockmail's ÷ the baseline's.
func peakRSSCheck(max int64) check {
	return func(cp comparison, s, b []sample) result {
		rss := func(samples []sample) int64 {
			v := make([]int64, len(samples))
			for i, x := range samples {
				v[i] = x.peakRSS
			}
			return median(v)
		}
		ms, mb := rss(s), rss(b)
		ratio, best := 0.0, 0.0
		if mb > 0 {
			ratio = float64(ms) / float64(mb)
			best = ratio // peak RSS hardly varies: the medians
		}
		return result{
			comparison: cp.name, measure: "peak RSS (median)", against: cp.against,
			sockmail: fmtMiB(ms), baseline: fmtMiB(mb),
			ratio: ratio, best: best, target: "<= " + fmtMiB(max), pass: ms > 0 && ms <= max,
		}
	}
}

// fmtDuration prints d in milliseconds.
func fmtDuration(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// fmtMiB prints n bytes in MiB.
func fmtMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// printResults prints the table and a summary line.
func printResults(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\tmeasure\tsockmail\tother\tother is\tsockmail/other\tbest runs\ttarget\tverdict")
	failed, targets := 0, 0
	for _, r := range results {
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
		}
		if r.info {
			verdict = "(" + verdict + ", info)"
		} else {
			targets++
			if !r.pass {
				failed++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%s\t%s\n", r.comparison, r.measure, r.sockmail, r.baseline, r.against, r.ratio, r.best, r.target, verdict)
	}
	tw.Flush()
	fmt.Fprintln(w, "Ratios: medians (the verdict), and \"best runs\" from each client's fastest run, the least disturbed by other load.")
	fmt.Fprintf(w, "procbench: %d of %d targets met (rows marked info are not targets)\n", targets-failed, targets)
}
