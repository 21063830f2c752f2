// Command loadtest posts contact-form submissions to a running sockmail
// and proves what became of them (issue 16 item 5): it posts N
// submissions at concurrency C to POST /f/{form} as a site's script does
// (a token from GET /f/{form}/token first, JSON with Accept:
// application/json), reports durable submissions per second and the
// p50/p99 of the answers, then waits for the outbox to deliver them and
// counts them at the mail server: in a Maildir (the test Postfix's, say),
// each submission found by a token unique to it, so that a lost and a
// duplicated message are both seen. It is a measuring tool, not a test:
//
//	go run ./cmd/loadtest -url http://127.0.0.1:8080 -form k3x9... -origin https://www.example.org \
//	    -n 3000 -c 32 -maildir /path/to/Maildir
//
// The form must accept the origin given (or none), deliver to a server
// writing into the Maildir, and have rate limits above N from one
// address. Exit status 0 when every post was answered with success and
// every one arrived exactly once; 1 otherwise; 2 for bad flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the flags, runs the load test and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	rep, err := loadTest(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if !rep.ok() {
		return 1
	}
	return 0
}
