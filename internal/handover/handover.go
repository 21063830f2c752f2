// Package handover lets the command-line client, bin/sockmail (the build
// with -tags sendonly), pass the commands it does not contain ("serve",
// "user", "send --store") to the full build, bin/sockmail-server, by
// replacing itself with it: on unix the same process (pid, signals,
// standard input and output) runs the full build with the same arguments
// and environment.
//
// The full build is found through the environment variable
// SOCKMAIL_SERVER_BINARY when it is set, else beside the running
// program, under the name sockmail-server. Errors say what is missing;
// Hint says how to make it.
package handover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	// ServerName is the file name of the full build, looked for beside
	// the command-line client.
	ServerName = "sockmail-server"
	// BinaryEnv names the environment variable that, when set, is the
	// path of the full build (it wins over the file beside the client).
	BinaryEnv = "SOCKMAIL_SERVER_BINARY"
	// ByEnv is set by Exec to the path of the program that handed over.
	// A command-line client started with it set was itself handed a
	// command: it refuses to hand it on, which would go round for ever
	// when SOCKMAIL_SERVER_BINARY names a client instead of the full
	// build.
	ByEnv = "SOCKMAIL_HANDED_OVER_BY"
)

// Hint says how to get the full build, for messages about a failed
// Locate.
const Hint = `"make build" makes bin/sockmail and bin/sockmail-server side by side; ` +
	"or set " + BinaryEnv + " to the path of a full build (go build -o sockmail-server ./cmd/sockmail)"

// ErrNotFound matches (errors.Is) the error of Locate when the full
// build is not where it looked.
var ErrNotFound = errors.New("the full build of sockmail was not found")

// notFound is an error that matches ErrNotFound with a message of its own.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == ErrNotFound }

// Locate returns the path of the full build for the command-line client
// whose own path is self (os.Executable): the file named by
// SOCKMAIL_SERVER_BINARY when that is set, else sockmail-server in the
// directory of self, with symbolic links to self followed. getenv reads
// the environment (os.Getenv). The file must be a regular file that may
// be executed. The error matches ErrNotFound when there is no such file.
func Locate(self string, getenv func(string) string) (string, error) {
	if by := getenv(ByEnv); by != "" {
		return "", fmt.Errorf("%s handed this command to %s, which is the command-line client too, not the full build", by, self)
	}
	if p := getenv(BinaryEnv); p != "" {
		if err := checkProgram(p, BinaryEnv+" names "+p); err != nil {
			return "", err
		}
		return p, nil
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	name := ServerName
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	p := filepath.Join(filepath.Dir(self), name)
	if err := checkProgram(p, p); err != nil {
		return "", err
	}
	return p, nil
}

// checkProgram checks that path is a regular file with an execute bit
// (on Windows, which has none, a regular file). what names path in
// errors.
func checkProgram(path, what string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &notFound{msg: what + ": no such file"}
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case fi.IsDir():
		return fmt.Errorf("%s: a directory, not a program", what)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file, so not a program", what)
	case fi.Mode().Perm()&0o111 == 0 && runtime.GOOS != "windows":
		return fmt.Errorf("%s: may not be executed (mode %s)", what, fi.Mode().Perm())
	}
	return nil
}

// Env returns environ with ByEnv set to self: the environment Exec gives
// the full build.
func Env(environ []string, self string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, ByEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, ByEnv+"="+self)
}
