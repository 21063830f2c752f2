//go:build linux

package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evict writes the file at path back to disk and drops it from the page
// cache, so that its first run reads it from disk, as after a reboot, and
// later runs find it in the page cache as that first run left it. How
// the file came into the cache matters on this machine: the same
// bin/sockmail started 0.4 to 1 ms sooner copied with cp (written
// sequentially) than as the linker wrote it, and two builds differing
// only in their build ID 0.5 ms apart; once evicted and read back by
// running them, the copies and builds of one program start alike. Every
// program compared is evicted, so none is favoured by how it was written.
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("evict %s from the page cache: fsync: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s from the page cache: fadvise: %w", path, err)
	}
	return nil
}
