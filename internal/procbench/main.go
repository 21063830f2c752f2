// Command procbench is the whole-process benchmark of "sockmail send"
// (issue 10, item 4): it builds bin/sockmail (the command-line client)
// and bin/sockmail-server (the full build) as "make build" does, and two
// helper programs, a
// minimal Go net/smtp client (internal/procbench/netsmtpclient) and a
// go-smtp sink (internal/procbench/gosmtpsink), starts that sink and
// Postfix's smtp-sink as processes of their own, and runs sockmail and the
// baseline client alternately, several rounds, as separate processes. It
// prints, per comparison, the median of each and their ratio, against the
// target the issue sets, with PASS or FAIL:
//
//  1. cold send of one small message: time, sockmail ÷ net/smtp <= 1.3;
//     bin/sockmail is built as "make build" builds it (static,
//     CGO_ENABLED=0, -tags sendonly), net/smtp as a plain "go build"
//     builds it (dynamically linked where cgo is available: what a Go
//     user gets), and, for information, static too; and, for
//     information, the full build bin/sockmail-server sending;
//  2. --count 500 over one connection, against the go-smtp sink and
//     against smtp-sink: messages per second, sockmail ÷ net/smtp >= 2;
//  3. a 20 MiB attachment: sockmail's peak RSS <= 16 MiB and its time no
//     slower than net/smtp's;
//  4. --count 2000 to the test Postfix (127.0.0.1:2525) against Postfix's
//     own load generator smtp-source: messages per second, the ratio
//     printed (parity kept: >= 0.9).
//
// It is a benchmark, not a test: "make bench" runs it, "make test" does
// not, and it exits 0 whatever the verdicts (1 when a run itself fails).
// The machine's other load shows in the numbers: the clients take turns
// within each round (the order alternates) and medians are compared.
//
// Run from the repository root: go run ./internal/procbench [flags].
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	rounds       int    // rounds of the cold, --count and attachment runs
	coldRounds   int    // rounds of the cold send, which is short
	count        int    // messages of the --count runs
	attachMiB    int    // size of the attachment
	postfix      string // the test Postfix; "" skips comparison 4
	postfixCount int
	postfixRound int
	out          string // where bin/sockmail and bin/sockmail-server go
	only         string // run only this comparison (cold, count, attach, postfix)
	verbose      bool   // print every run's time and peak RSS
}

func main() {
	var c config
	flag.IntVar(&c.rounds, "rounds", 15, "interleaved `rounds` of the --count and attachment comparisons")
	flag.IntVar(&c.coldRounds, "cold-rounds", 41, "interleaved `rounds` of the cold-send comparison")
	flag.IntVar(&c.count, "count", 500, "messages over one connection in the --count comparison")
	flag.IntVar(&c.attachMiB, "attach-mib", 20, "attachment size in MiB")
	flag.StringVar(&c.postfix, "postfix", "127.0.0.1:2525", "test Postfix `host:port` for the smtp-source comparison (\"\" skips it)")
	flag.IntVar(&c.postfixCount, "postfix-count", 2000, "messages in the Postfix comparison")
	flag.IntVar(&c.postfixRound, "postfix-rounds", 2, "interleaved `rounds` of the Postfix comparison")
	flag.StringVar(&c.out, "bin", "bin", "`directory` for bin/sockmail and bin/sockmail-server")
	flag.StringVar(&c.only, "only", "", "run only one comparison: cold, count, attach or postfix")
	flag.BoolVar(&c.verbose, "v", false, "print every run's wall time and peak RSS")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench: %v\n", err)
		os.Exit(1)
	}
}

// run builds the programs, starts the sinks and runs the comparisons.
func run(ctx context.Context, c config, w io.Writer) error {
	if c.rounds < 1 || c.coldRounds < 1 || c.postfixRound < 1 || c.count < 1 || c.postfixCount < 1 || c.attachMiB < 1 {
		return fmt.Errorf("rounds, counts and sizes must be at least 1")
	}
	tmp, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	bins, err := build(ctx, c.out, tmp)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "procbench: built in %v, as \"make build\" (%s): %s, the command-line client (%.1f MB), and %s, the full build (%.1f MB); net/smtp client as \"go build\" makes it (%s) and static\n",
		time.Since(start).Round(time.Millisecond), sockmailEnv, bins.sockmail, float64(bins.sockmailSize)/1e6,
		bins.server, float64(bins.serverSize)/1e6, bins.netsmtpLinked)
	env, err := startSinks(ctx, bins, w)
	if err != nil {
		return err
	}
	defer env.stop()
	comps := comparisons(c, bins, env, tmp)
	var results []result
	for _, cp := range comps {
		if c.only != "" && cp.group != c.only {
			continue
		}
		if cp.prepare != nil {
			if err := cp.prepare(); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "procbench: %s: %d rounds ...\n", cp.name, cp.rounds)
		var log io.Writer
		if c.verbose {
			log = w
		}
		r, err := measure(ctx, cp, log)
		if err != nil {
			return fmt.Errorf("%s: %w", cp.name, err)
		}
		results = append(results, r...)
	}
	fmt.Fprintln(w)
	printResults(w, results)
	return nil
}
