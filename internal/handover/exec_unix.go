//go:build unix

package handover

import (
	"fmt"
	"syscall"
)

// Exec replaces the running program with the full build at path, giving
// it argv (argv[0] first) and environ with ByEnv set to self. The process
// stays the same: its pid, its standard input, output and error, its
// terminal and the signals sent to it. Exec returns only when the
// replacement failed; the exit status is then the caller's to choose.
func Exec(path string, argv, environ []string, self string) (int, error) {
	if err := syscall.Exec(path, argv, Env(environ, self)); err != nil {
		return 0, fmt.Errorf("run the full build %s: %w", path, err)
	}
	return 0, nil // not reached: on success the process is the full build
}
