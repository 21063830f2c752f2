package testenv

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDescends(t *testing.T) {
	// 1 ← 10 ← 11 ← 12; 1 ← 20; 30 is its own parent (a loop ends).
	procs := map[int]procInfo{1: {ppid: 0}, 10: {ppid: 1}, 11: {ppid: 10}, 12: {ppid: 11}, 20: {ppid: 1}, 30: {ppid: 30}}
	for _, tc := range []struct {
		pid, ancestor int
		want          bool
	}{
		{10, 10, true}, {12, 10, true}, {11, 10, true}, {20, 10, false},
		{1, 10, false}, {12, 1, true}, {30, 10, false}, {99, 10, false},
	} {
		if got := descends(procs, tc.pid, tc.ancestor); got != tc.want {
			t.Errorf("descends(%d, %d) = %v, want %v", tc.pid, tc.ancestor, got, tc.want)
		}
	}
}

// affinity returns the CPUs pid's main thread may use.
func affinity(t *testing.T, pid int) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		t.Fatalf("CPUs of process %d: %v", pid, err)
	}
	return cpuList(&set)
}

// TestSplitCPUs splits the CPUs between the test Postfix and this side,
// checks the master, this process, a program it starts and PostgreSQL's
// processes, then that all of them got every CPU back.
func TestSplitCPUs(t *testing.T) {
	pf := Postfix(t)
	if runtime.NumCPU() < 2 {
		unavailable(t, "a second CPU", "run on a machine with 2 CPUs or more", errors.New("1 CPU"))
	}
	if os.Geteuid() != 0 {
		unavailable(t, "root", "setting the CPUs of Postfix's and PostgreSQL's processes needs root", errors.New("not root"))
	}
	all := affinity(t, 0)
	master, err := pf.MasterPID()
	if err != nil {
		t.Fatal(err)
	}
	procs, err := readProcs()
	if err != nil {
		t.Fatal(err)
	}
	Postgres(t) // the machine's PostgreSQL is running
	// Its postmaster (a process named postgres whose parent is not): the
	// server's other processes come and go.
	var postgres []int
	for pid, p := range procs {
		if p.comm == PostgresProcess && procs[p.ppid].comm != PostgresProcess {
			postgres = append(postgres, pid)
		}
	}
	if len(postgres) == 0 {
		t.Fatal("no PostgreSQL postmaster (a process named postgres whose parent is not), though PostgreSQL answers")
	}
	half := len(all) / 2
	t.Run("split", func(t *testing.T) {
		SplitCPUs(t, pf)
		child := exec.Command("cat")
		stdin, err := child.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { stdin.Close(); child.Wait() }()
		for _, c := range []struct {
			what string
			pid  int
			want []int
		}{
			{"Postfix's master", master, all[:half]},
			{"this process", 0, all[half:]},
			{"a program this process started", child.Process.Pid, all[half:]},
			{"PostgreSQL's postmaster", postgres[0], all[half:]},
		} {
			if got := affinity(t, c.pid); !slices.Equal(got, c.want) {
				t.Errorf("%s (%d) may use CPUs %v, want %v", c.what, c.pid, got, c.want)
			}
		}
	})
	for _, c := range []struct {
		what string
		pid  int
	}{{"Postfix's master", master}, {"this process", 0}, {"PostgreSQL's postmaster", postgres[0]}} {
		if got := affinity(t, c.pid); !slices.Equal(got, all) {
			t.Errorf("after the split %s (%d) may use CPUs %v, want all of %v", c.what, c.pid, got, all)
		}
	}
}
