package testenv

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SplitCPUs gives the test Postfix's processes the first half of the CPUs
// this process may use, and this process (its threads and the programs it
// starts, such as smtp-source) and the local PostgreSQL's server processes
// the other half, until tb ends; then every one of them may use all of
// them again. A benchmark that compares what a client gets through to
// Postfix with what Postfix's own load generator does measures the
// clients, not how much CPU each takes away from a mail server on the same
// machine, which a mail server on a machine of its own does not lose.
//
// It fails tb on a machine with fewer than 2 CPUs, without Postfix's
// master process id (pf.MasterPIDFile, written by `.ci/servers.sh up`), or
// when an affinity cannot be set (other users' processes need root). A
// benchmark killed meanwhile leaves the split in place until the servers
// restart.
func SplitCPUs(tb testing.TB, pf *PostfixServer) {
	tb.Helper()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		tb.Fatalf("testenv: CPUs of this process: %v", err)
	}
	cpus := cpuList(&all)
	if len(cpus) < 2 {
		tb.Fatalf("testenv: splitting the CPUs needs at least 2, this process may use %v", cpus)
	}
	var server, client unix.CPUSet
	for i, c := range cpus {
		if i < len(cpus)/2 {
			server.Set(c)
		} else {
			client.Set(c)
		}
	}
	master, err := pf.MasterPID()
	if err != nil {
		tb.Fatal(err)
	}
	split := func(postfix, ours *unix.CPUSet) error {
		return setAffinities(func(procs map[int]procInfo) map[int]*unix.CPUSet {
			want := map[int]*unix.CPUSet{}
			for pid := range procs {
				switch {
				case descends(procs, pid, master):
					want[pid] = postfix
				case descends(procs, pid, os.Getpid()) || procs[pid].comm == PostgresProcess:
					want[pid] = ours
				}
			}
			return want
		})
	}
	if err := split(&server, &client); err != nil {
		_ = split(&all, &all)
		tb.Fatalf("testenv: splitting the CPUs: %v", err)
	}
	tb.Cleanup(func() {
		if err := split(&all, &all); err != nil {
			tb.Errorf("testenv: giving Postfix, PostgreSQL and this process all CPUs again: %v", err)
		}
	})
	tb.Logf("CPUs split: Postfix %v; this process, what it starts and PostgreSQL %v", cpuList(&server), cpuList(&client))
}

// MasterPID returns the process id of Postfix's master process, from
// MasterPIDFile.
func (pf *PostfixServer) MasterPID() (int, error) {
	if pf.MasterPIDFile == "" {
		return 0, fmt.Errorf("testenv: no POSTFIX_MASTER_PID_FILE in the test servers' env file: %s", StartHint)
	}
	data, err := os.ReadFile(pf.MasterPIDFile)
	if err != nil {
		return 0, fmt.Errorf("testenv: Postfix's master process: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("testenv: Postfix's master process id in %s: %w", pf.MasterPIDFile, err)
	}
	return pid, nil
}

// cpuList returns the CPUs in set.
func cpuList(set *unix.CPUSet) []int {
	var out []int
	for c := 0; len(out) < set.Count(); c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// procInfo is what setAffinities knows of a process.
type procInfo struct {
	comm string
	ppid int
}

// descends reports whether pid is ancestor or one of its descendants.
func descends(procs map[int]procInfo, pid, ancestor int) bool {
	for seen := 0; pid > 0 && seen < len(procs); seen++ {
		if pid == ancestor {
			return true
		}
		pid = procs[pid].ppid
	}
	return false
}

// setAffinities sets, for every thread of every process want chooses
// (from the machine's processes), the CPUs it may use, parents before
// their children so that a process started meanwhile inherits its
// parent's new set, and looks again until a round finds every chosen
// thread already set (or fails after 5 rounds).
func setAffinities(want func(map[int]procInfo) map[int]*unix.CPUSet) error {
	for range 5 {
		procs, err := readProcs()
		if err != nil {
			return err
		}
		chosen := want(procs)
		pids := make([]int, 0, len(chosen))
		for pid := range chosen {
			pids = append(pids, pid)
		}
		// A parent's pid is smaller unless the ids wrapped around; the
		// next round catches a child set before its parent.
		slices.Sort(pids)
		changed := false
		for _, pid := range pids {
			c, err := setProcessAffinity(pid, chosen[pid])
			if err != nil {
				return fmt.Errorf("process %d (%s): %w", pid, procs[pid].comm, err)
			}
			changed = changed || c
		}
		if !changed {
			return nil
		}
	}
	return errors.New("processes kept starting with other CPUs for 5 rounds")
}

// setProcessAffinity sets the CPUs every thread of pid may use and
// reports whether any had another set. Threads and processes that ended
// meanwhile are passed over.
func setProcessAffinity(pid int, set *unix.CPUSet) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	changed := false
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var now unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &now); errors.Is(err, unix.ESRCH) {
			continue
		} else if err != nil {
			return changed, fmt.Errorf("thread %d: %w", tid, err)
		}
		if now == *set {
			continue
		}
		changed = true
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return changed, fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return changed, nil
}

// readProcs reads the program name and parent of the machine's processes.
func readProcs() (map[int]procInfo, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]procInfo{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		comm, fields, err := splitProcStat(string(data), 2) // the state, then the parent
		if err != nil {
			return nil, fmt.Errorf("process %d: %w", pid, err)
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("process %d: parent %q: %w", pid, fields[1], err)
		}
		procs[pid] = procInfo{comm: comm, ppid: ppid}
	}
	return procs, nil
}
