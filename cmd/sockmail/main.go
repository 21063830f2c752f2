// Command sockmail sends email by speaking SMTP itself and shows every line
// of the conversation. Subcommands: serve (the web app, the default), send
// (a command-line test send) and user (admin accounts).
//
// It builds two ways. The default build ("go build ./cmd/sockmail", "go
// install") is the full program, which does everything itself; "make
// build" names it bin/sockmail-server. The build with -tags sendonly,
// bin/sockmail, is the command-line client: "send" itself, and "serve",
// "user" and "send --store" handed to the full build (main_sendonly.go),
// so that a send does not start the web app's and databases' packages.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `Usage: sockmail [command] [flags]

Commands:
  serve      run the web app (default); "sockmail serve -h" lists its flags
  send       send a test message and print the transcript; "sockmail send -h"
  check      check a mail domain or server: sockmail check example.org; "sockmail check -h"
  user add   add an admin account: sockmail user add -email you@example.org
             (password from SOCKMAIL_PASSWORD or a prompt)
  token add  add an HTTP API token, printed once: sockmail token add -name ci -scopes send,read [-expires 720h]
` + buildUsage

// dispatch dispatches to a subcommand and returns the exit status.
func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr, getenv)
	case "send":
		return sendCommand(ctx, args, stdout, stderr, getenv)
	case "user":
		return runUser(ctx, args, stdin, stdout, stderr, getenv)
	case "token":
		return runToken(ctx, args, stdout, stderr, getenv)
	case "check":
		return runCheck(ctx, args, stdout, stderr, getenv)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sockmail: unknown command %q\n\n%s", cmd, usage)
	return 2
}
