//go:build unix

package journal

import (
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive lock on f, failing at once if another process
// holds it: two processes appending to one journal would corrupt it.
func lock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("journal: %s is in use by another process: %w", f.Name(), err)
	}
	return nil
}
