package testenv

import (
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite" // truncateWAL's connection
)

// SmallDisk is a small tmpfs mounted for one test: a data folder whose
// filesystem a test can fill up and free again, to see what happens when
// the disk is full.
type SmallDisk struct {
	// Dir is the mounted folder.
	Dir    string
	filler string
}

// NewSmallDisk mounts a tmpfs of size bytes on a fresh folder and
// unmounts it when the test ends. Mounting needs root: without it the
// test is skipped, but under CI (which runs as root) it fails.
func NewSmallDisk(t testing.TB, size int64) *SmallDisk {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if InCI() {
			t.Fatalf("testenv: mount a %d-byte tmpfs (CI runs as root): %v: %s", size, err, out)
		}
		t.Skipf("testenv: cannot mount a tmpfs (not root?): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("testenv: umount %s: %v: %s", dir, err, out)
		}
	})
	return &SmallDisk{Dir: dir, filler: filepath.Join(dir, "filler")}
}

// Fill writes a file until the filesystem has no byte left. A full disk
// refuses only the writes that need new room, and a SQLite write-ahead
// log restarted after a checkpoint keeps its size and takes the next
// commits into it: so first the log of every SQLite database in the
// folder (a NAME-wal beside NAME) is copied into its database and
// truncated (truncateWAL), and every commit after Fill needs new room.
// With small writes the outbox's disk-full test passed its commits on
// into that room 2 runs in 30 under load before.
func (d *SmallDisk) Fill(t testing.TB) {
	t.Helper()
	wals, err := filepath.Glob(filepath.Join(d.Dir, "*-wal"))
	if err != nil {
		t.Errorf("testenv: fill %s: %v", d.Dir, err)
		return
	}
	for _, wal := range wals {
		truncateWAL(t, strings.TrimSuffix(wal, "-wal"))
	}
	f, err := os.OpenFile(d.filler, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Errorf("testenv: fill %s: %v", d.Dir, err)
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, n := range []int{len(buf), 512, 1} {
		for {
			_, err := f.Write(buf[:n])
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("testenv: fill %s: %v", d.Dir, err)
				return
			}
			break
		}
	}
}

// Free removes what Fill wrote.
func (d *SmallDisk) Free(t testing.TB) {
	t.Helper()
	if err := os.Remove(d.filler); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("testenv: free %s: %v", d.Dir, err)
	}
}

// truncateWAL copies the write-ahead log of the SQLite database at path
// into the database and truncates it to nothing, through a connection of
// its own, trying again while the database's other users keep it from
// finishing (each try waits up to 10 s for them). Like Fill it reports a
// failure with Errorf: tests call Fill from other goroutines too.
func truncateWAL(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Errorf("testenv: truncate the log of %s: %v", path, err)
		return
	}
	defer db.Close()
	for try := 1; ; try++ {
		var busy, logFrames, done int
		err := db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
		if err == nil && busy == 0 {
			return
		}
		if try == 10 {
			t.Errorf("testenv: truncate the log of %s: %d tries: busy %d, %v", path, try, busy, err)
			return
		}
	}
}
