package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 a second on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// ProcessesCPU returns the CPU time (user and system) used so far by the
// machine's processes named comm (as /proc/<pid>/stat names them: the
// program's file name, at most 15 bytes), with that of their children
// that have ended: for "postgres", every server process of a local
// PostgreSQL, the sessions that closed included (the postmaster, also
// named postgres, collects theirs). Two readings around a piece of work
// tell what it cost those processes, which a rate on shared CPUs does
// not.
func ProcessesCPU(comm string) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("testenv: CPU time of %s: %w", comm, err)
	}
	var ticks int64
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		name, t, err := parseProcStat(string(data))
		if err != nil {
			return 0, fmt.Errorf("testenv: CPU time of %s: process %s: %w", comm, e.Name(), err)
		}
		if name == comm {
			ticks += t
		}
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseProcStat returns the program name of a /proc/<pid>/stat line and
// its CPU time in clock ticks: utime, stime, cutime and cstime (fields
// 14-17; the name, field 2, is in parentheses and may hold spaces and
// parentheses itself).
func parseProcStat(line string) (comm string, ticks int64, err error) {
	comm, fields, err := splitProcStat(line, 15)
	if err != nil {
		return "", 0, err
	}
	for _, f := range fields[11:15] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("CPU time %q: %w", f, err)
		}
		ticks += v
	}
	return comm, ticks, nil
}

// splitProcStat returns the program name of a /proc/<pid>/stat line
// (field 2, in parentheses, which may hold spaces and parentheses itself)
// and the fields after it, from field 3 (the state), at least want of
// them.
func splitProcStat(line string, want int) (comm string, fields []string, err error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("no program name in %q", line)
	}
	fields = strings.Fields(line[end+1:])
	if len(fields) < want {
		return "", nil, fmt.Errorf("%d fields after the program name in %q, want at least %d", len(fields), line, want)
	}
	return line[open+1 : end], fields, nil
}

// PostgresProcess is the program name of a PostgreSQL server's
// processes, for ProcessesCPU and TakeCPU.
const PostgresProcess = "postgres"

// CPUSample is a reading of CPU time used so far: Self by this process,
// Server by the machine's processes of a server (ProcessesCPU).
type CPUSample struct{ Self, Server time.Duration }

// Since returns the CPU time used between earlier and c.
func (c CPUSample) Since(earlier CPUSample) CPUSample {
	return CPUSample{Self: c.Self - earlier.Self, Server: c.Server - earlier.Server}
}

// TakeCPU reads this process's CPU time and that of the processes named
// server (none when server is ""), failing tb if it cannot.
func TakeCPU(tb testing.TB, server string) CPUSample {
	tb.Helper()
	self, err := SelfCPU()
	if err != nil {
		tb.Fatal(err)
	}
	var other time.Duration
	if server != "" {
		if other, err = ProcessesCPU(server); err != nil {
			tb.Fatal(err)
		}
	}
	return CPUSample{Self: self, Server: other}
}

// SelfCPU returns the CPU time (user and system) this process has used.
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("testenv: CPU time of this process: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
