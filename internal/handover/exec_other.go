//go:build !unix

package handover

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Exec runs the full build at path as a child process with argv (argv[0]
// first), environ with ByEnv set to self, and this process's standard
// input, output and error, waits for it, and returns its exit status.
// Where exec cannot replace a process (Windows), this is the nearest:
// the console's Ctrl-C reaches both processes, and this one only waits.
func Exec(path string, argv, environ []string, self string) (int, error) {
	cmd := &exec.Cmd{Path: path, Args: argv, Env: Env(environ, self),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run the full build %s: %w", path, err)
	}
	return 0, nil
}
