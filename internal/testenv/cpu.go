package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTimes is the machine's CPU time from /proc/stat, in clock ticks:
// busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait).
// Benchmarks report how busy the machine was beside their figures, since
// on a machine whose CPUs are all busy a rate says more about what shares
// them than about the code measured.
type CPUTimes struct{ Busy, Idle int64 }

// ReadCPU reads the machine's CPU time.
func ReadCPU() (CPUTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, fmt.Errorf("testenv: CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return CPUTimes{}, fmt.Errorf("testenv: CPU time: unexpected first line of /proc/stat %q", line)
	}
	var t CPUTimes
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("testenv: CPU time: %q: %w", line, err)
		}
		switch i {
		case 3, 4: // idle, iowait
			t.Idle += v
		case 8, 9: // guest time, already counted in user time
		default:
			t.Busy += v
		}
	}
	return t, nil
}

// BusySince returns the share of the machine's CPU time that was busy
// between earlier and t, from 0 to 1.
func (t CPUTimes) BusySince(earlier CPUTimes) float64 {
	busy, all := t.Busy-earlier.Busy, t.Busy-earlier.Busy+t.Idle-earlier.Idle
	if all <= 0 {
		return 0
	}
	return float64(busy) / float64(all)
}
