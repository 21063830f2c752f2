package main

// The "send" subcommand: a command-line test send in the spirit of swaks.
// It composes a message (or takes a raw one), runs the SMTP conversation
// with sockmail's own client, prints the transcript as it happens and one
// outcome line per message, and exits with a status that says which phase
// failed.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit statuses of "sockmail send". Each failing phase has its own, so a
// script can tell a refused recipient from an unreachable server.
const (
	exitOK          = 0   // sent, or stopped where --quit-after asked
	exitInternal    = 1   // an unexpected failure of sockmail itself
	exitUsage       = 2   // bad flags or input: nothing was sent
	exitConnect     = 10  // DNS, TCP connect or implicit TLS failed
	exitGreeting    = 11  // no 220 greeting
	exitEHLO        = 12  // EHLO (and HELO) refused
	exitStartTLS    = 13  // STARTTLS missing, refused, or TLS failed
	exitAuth        = 14  // AUTH failed or impossible
	exitMail        = 15  // MAIL FROM refused (or RSET between messages)
	exitRcpt        = 16  // every recipient refused
	exitData        = 17  // DATA, the message or its final reply refused
	exitUnknown     = 18  // connection lost after the message was sent
	exitPartial     = 20  // sent to some recipients, others refused
	exitInterrupted = 130 // interrupted (the context was cancelled)
)

// exitCodeTable is the table --help prints.
const exitCodeTable = `Exit status:
    0  sent (or stopped where --quit-after asked)
    1  unexpected internal error, or --store could not store the send
    2  usage or bad input; nothing was sent
   10  connect failed (DNS, TCP connect, implicit TLS handshake)
   11  greeting: the server did not say 220
   12  ehlo: EHLO (and HELO) refused
   13  starttls: STARTTLS not offered when required, refused, or TLS failed
   14  auth: authentication refused or impossible
   15  mail: MAIL FROM refused (or RSET between messages)
   16  rcpt: every recipient was refused
   17  data: DATA, the message, or its final reply refused
   18  unknown outcome: the connection was lost after the end of the message
       was sent and before the server answered: it may have been delivered
   20  partial: delivered to some recipients, others were refused
  130  interrupted
With --count, each message's outcome is its own (a failed connection ends
the run); the status is that of the first message that failed, or 20 if
every message went but some recipients were refused.
`

// Input limits.
const (
	maxBodyFile = 25 << 20 // --body-file, --html-file
	maxKeyFile  = 64 << 10 // --dkim-key
	maxCount    = 10000    // --count
	maxCAFile   = 1 << 20  // --ca-file
)

// passwordEnv is the environment variable read when --auth-password is
// not given. It keeps the password out of the process list.
const passwordEnv = "SOCKMAIL_AUTH_PASSWORD"

// runSend runs "sockmail send ARGS", printing to stdout and stderr, and
// returns the exit status.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	plan, err := parseSend(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		printSendUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail send: %v\nRun 'sockmail send --help' for usage.\n", err)
		return exitUsage
	}
	plan.stderr = stderr
	return plan.run(ctx, stdout)
}
