package testenv

import (
	"os"
	"strings"
	"testing"
)

func TestBusySince(t *testing.T) {
	for _, tc := range []struct {
		earlier, later CPUTimes
		want           float64
	}{
		{CPUTimes{100, 100}, CPUTimes{150, 150}, 0.5},
		{CPUTimes{100, 100}, CPUTimes{190, 110}, 0.9},
		{CPUTimes{100, 100}, CPUTimes{100, 200}, 0},
		{CPUTimes{100, 100}, CPUTimes{100, 100}, 0}, // no tick passed
	} {
		if got := tc.later.BusySince(tc.earlier); got != tc.want {
			t.Errorf("%+v since %+v: %v, want %v", tc.later, tc.earlier, got, tc.want)
		}
	}
	a, err := ReadCPU()
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy <= 0 || a.Idle < 0 {
		t.Errorf("ReadCPU: %+v, want busy time above 0", a)
	}
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		comm       string
		ticks      int64
		wantErr    bool
	}{
		{"postgres backend", "2242 (postgres) S 2241 2241 2241 0 -1 4194368 1205 0 0 0 3 5 7 11 20 0 1 0 1187 229105664 1921 18446744073709551615",
			"postgres", 3 + 5 + 7 + 11, false},
		{"spaces and parentheses in the name", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 100 200 0 0 20 0 1 0 5 0 0 0",
			"a (b) c", 300, false},
		{"no name", "77 a R 1", "", 0, true},
		{"too short", "77 (x) R 1 2 3", "", 0, true},
		{"not a number", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 u 200 0 0 20 0 1 0 5 0 0 0", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comm, ticks, err := parseProcStat(tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if comm != tc.comm || ticks != tc.ticks {
				t.Errorf("got %q %d ticks, want %q %d", comm, ticks, tc.comm, tc.ticks)
			}
		})
	}
}

func TestProcessesCPU(t *testing.T) {
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	// Reading /proc costs CPU: the reading moves after a few (a clock
	// tick, 10 ms, of this process's CPU), since this process is one of
	// those named as it is. 10,000 readings are far more than a tick.
	comm := strings.TrimSpace(string(self))
	before, err := ProcessesCPU(comm)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		now, err := ProcessesCPU(comm)
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			break
		}
		if i == 10_000 {
			t.Fatalf("the CPU time of the processes named %q stayed %v over %d readings", comm, now, i)
		}
	}
	if got, err := ProcessesCPU("no-such-program"); err != nil || got != 0 {
		t.Errorf("no-such-program: %v, %v; want 0, nil", got, err)
	}
	if got, err := SelfCPU(); err != nil || got <= 0 {
		t.Errorf("SelfCPU: %v, %v; want above 0", got, err)
	}
	a := TakeCPU(t, "")
	if a.Self <= 0 || a.Server != 0 {
		t.Errorf("TakeCPU without a server: %+v, want Self above 0 and Server 0", a)
	}
	b := TakeCPU(t, comm)
	if d := b.Since(a); d.Self < 0 || d.Server <= 0 || b.Since(b) != (CPUSample{}) {
		t.Errorf("TakeCPU(%q) %+v since %+v: %+v, want Self not below 0 and Server above 0", comm, b, a, d)
	}
}
