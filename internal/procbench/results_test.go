package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{5}, 5},
		{[]int64{9, 1, 5}, 5},
		{[]int64{4, 1, 3, 2}, 2}, // (2+3)/2 in integers
		{[]int64{10, 30, 20, 40}, 25},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// runs returns samples with the given wall times in milliseconds and peak
// RSS in MiB.
func runs(ms []int, mib int64) []sample {
	var s []sample
	for _, m := range ms {
		s = append(s, sample{wall: time.Duration(m) * time.Millisecond, peakRSS: mib << 20})
	}
	return s
}

// TestChecks: each check's ratio, best-run ratio and verdict, at and
// around its target.
func TestChecks(t *testing.T) {
	cp := comparison{name: "c", against: "net/smtp", messages: 500}
	tests := []struct {
		name        string
		ck          check
		s, b        []sample
		ratio, best float64
		pass        bool
	}{
		{"time at the limit", timeRatio(1.3), runs([]int{13, 13, 99}, 1), runs([]int{10, 10, 10}, 1), 1.3, 1.3, true},
		{"time over", timeRatio(1.3), runs([]int{14, 20, 9}, 1), runs([]int{10, 10, 10}, 1), 1.4, 0.9, false},
		{"rate twice", rateRatio(2), runs([]int{50, 50, 50}, 1), runs([]int{100, 100, 100}, 1), 2, 2, true},
		{"rate under", rateRatio(2), runs([]int{60, 60, 60}, 1), runs([]int{100, 100, 90}, 1), 100.0 / 60, 1.5, false},
		{"RSS within", peakRSSCheck(16 << 20), runs([]int{1}, 15), runs([]int{1}, 5), 3, 3, true},
		{"RSS over", peakRSSCheck(16 << 20), runs([]int{1}, 17), runs([]int{1}, 5), 3.4, 3.4, false},
		{"RSS unknown", peakRSSCheck(16 << 20), runs([]int{1}, 0), runs([]int{1}, 0), 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.ck(cp, tt.s, tt.b)
			if !near(r.ratio, tt.ratio) || !near(r.best, tt.best) || r.pass != tt.pass {
				t.Errorf("ratio %.3f best %.3f pass %v, want %.3f %.3f %v", r.ratio, r.best, r.pass, tt.ratio, tt.best, tt.pass)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestPrintResults: info rows show their verdict in parentheses and do
// not count as targets.
func TestPrintResults(t *testing.T) {
	var out bytes.Buffer
	printResults(&out, []result{
		{comparison: "a", pass: true},
		{comparison: "b", pass: false},
		{comparison: "c", pass: false, info: true},
	})
	for _, want := range []string{"PASS", "FAIL", "(FAIL, info)", "1 of 2 targets met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
