package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
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

// Fill writes a file until the filesystem has no byte left.
func (d *SmallDisk) Fill(t testing.TB) {
	t.Helper()
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
