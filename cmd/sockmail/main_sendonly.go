//go:build sendonly

package main

// The "sendonly" build (go build -tags sendonly ./cmd/sockmail), which
// "make build" ships as bin/sockmail, is the command-line client: it
// runs "send" itself and links neither the web app nor the database
// drivers, whose package initialisation a full binary runs at every
// start even for a send that needs none of it (issue 10 item 4). The
// commands it lacks, "serve", "user", "token", "check" and "send --store" (or --database),
// it hands to the full build, bin/sockmail-server, found beside it or
// through SOCKMAIL_SERVER_BINARY (internal/handover): on unix the process
// becomes the full build, same pid, arguments, environment and terminal.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"sockmail/internal/handover"
)

// buildUsage ends the usage text: what this build hands over.
const buildUsage = `
This is the command-line client (bin/sockmail). It runs "send" itself and
hands "serve", "user", "token", "check" and "send --store" to the full build,
sockmail-server,
found beside it or at $` + handover.BinaryEnv + `; exit status 127 when
it is not there, 126 when it cannot be run.
`

// Exit statuses when a command cannot be handed to the full build, as a
// shell reports a command it cannot find or run.
const (
	exitNoServer     = 127 // the full build is not there
	exitServerFailed = 126 // it is there but could not be run
)

// runServe hands "serve" to the full build.
func runServe(_ context.Context, args []string, _, stderr io.Writer, getenv func(string) string) int {
	return handOver("serve", args, stderr, getenv)
}

// runToken hands "token" to the full build.
func runToken(_ context.Context, args []string, _, stderr io.Writer, getenv func(string) string) int {
	return handOver("token", args, stderr, getenv)
}

// runUser hands "user" to the full build.
func runUser(_ context.Context, args []string, _ io.Reader, _, stderr io.Writer, getenv func(string) string) int {
	return handOver("user", args, stderr, getenv)
}

// sendCommand runs "sockmail send", and hands it to the full build when
// it asks for --store or --database, which need the database drivers.
func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var f sendFlags
	// Errors and -h are left to runSend, which reports them.
	if newSendFlagSet(&f).Parse(args) == nil && (f.storeSend || f.database != "") {
		return handOver("send", args, stderr, getenv)
	}
	return runSend(ctx, args, stdout, stderr)
}

// handOver replaces this process with the full build running "sockmail
// CMD ARGS". It returns only when that failed, with the exit status.
func handOver(cmd string, args []string, stderr io.Writer, getenv func(string) string) int {
	what := cmd
	if cmd == "send" {
		what = "send --store"
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "sockmail: %q runs in the full build, %s: %v.\n%s.\n", what, handover.ServerName, err, handover.Hint)
		return code
	}
	self, err := os.Executable()
	if err != nil {
		return fail(exitNoServer, fmt.Errorf("cannot tell where this program is to look beside it: %w", err))
	}
	server, err := handover.Locate(self, getenv)
	if errors.Is(err, handover.ErrNotFound) {
		return fail(exitNoServer, err)
	}
	if err != nil {
		return fail(exitServerFailed, err)
	}
	argv := append([]string{server, cmd}, args...)
	code, err := handover.Exec(server, argv, os.Environ(), self)
	if err != nil {
		return fail(exitServerFailed, err)
	}
	return code
}
