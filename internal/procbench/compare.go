package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// comparison is one pair of client commands, run alternately.
type comparison struct {
	name     string // what is compared, for the table
	group    string // the -only name
	rounds   int
	messages int // messages each run sends, for messages per second
	sockmail []string
	baseline []string
	against  string // name of the baseline client
	checks   []check
	prepare  func() error // run once before the rounds, if set
	// info: printed for comparison, not a target (the full build, which
	// "make build" ships for the web app, sending).
	info bool
}

// Addresses of the benchmark messages. example.test is the test Postfix's
// local domain, delivered to its Maildir.
const (
	benchFrom = "bench@example.test"
	benchTo   = "bench@example.test"
)

// comparisons returns the comparisons the issue asks for.
func comparisons(c config, b binaries, s *sinks, tmp string) []comparison {
	sendWith := func(bin, server string, extra ...string) []string {
		return append([]string{bin, "send", "--server", server, "--from", benchFrom, "--to", benchTo, "--quiet"}, extra...)
	}
	send := func(server string, extra ...string) []string { return sendWith(b.sockmail, server, extra...) }
	full := func(server string, extra ...string) []string { return sendWith(b.server, server, extra...) }
	netsmtp := func(server string, extra ...string) []string {
		return append([]string{b.netsmtp, "--server", server, "--from", benchFrom, "--to", benchTo}, extra...)
	}
	count := strconv.Itoa(c.count)
	attach := filepath.Join(tmp, "attachment.bin")
	const netName = "net/smtp"
	// The cold send is compared with net/smtp as "go build" builds it
	// (what a Go user gets: dynamically linked where cgo is available) and,
	// for information, with net/smtp built static like bin/sockmail.
	staticNet := func(server string) []string {
		return []string{b.netsmtpStatic, "--server", server, "--from", benchFrom, "--to", benchTo}
	}
	comps := []comparison{
		{
			name: "cold send, 1 message, go-smtp sink (bin/sockmail)", group: "cold", rounds: c.coldRounds, messages: 1,
			sockmail: send(s.goSMTP), baseline: netsmtp(s.goSMTP), against: netName + " (" + b.netsmtpLinked + ")",
			checks: []check{timeRatio(1.3)},
		},
		{
			name: "cold send, net/smtp built static too", group: "cold", rounds: c.coldRounds, messages: 1, info: true,
			sockmail: send(s.goSMTP), baseline: staticNet(s.goSMTP), against: netName + " (static)",
			checks: []check{timeRatio(1.3)},
		},
		{
			name: "--count " + count + ", go-smtp sink", group: "count", rounds: c.rounds, messages: c.count,
			sockmail: send(s.goSMTP, "--count", count), baseline: netsmtp(s.goSMTP, "--count", count), against: netName,
			checks: []check{rateRatio(2)},
		},
		{
			name: "--count " + count + ", smtp-sink", group: "count", rounds: c.rounds, messages: c.count,
			sockmail: send(s.smtpSink, "--count", count), baseline: netsmtp(s.smtpSink, "--count", count), against: netName,
			checks: []check{rateRatio(2)},
		},
		{
			name: fmt.Sprintf("%d MiB attachment, go-smtp sink", c.attachMiB), group: "attach", rounds: c.rounds, messages: 1,
			sockmail: send(s.goSMTP, "--attach", attach), baseline: netsmtp(s.goSMTP, "--attach", attach), against: netName,
			checks:  []check{peakRSSCheck(16 << 20), timeRatio(1)},
			prepare: func() error { return writeAttachment(attach, c.attachMiB<<20) },
		},
		{
			name: "cold send, full build (sockmail-server send)", group: "cold", rounds: c.coldRounds, messages: 1, info: true,
			sockmail: full(s.goSMTP), baseline: netsmtp(s.goSMTP), against: netName + " (" + b.netsmtpLinked + ")",
			checks: []check{timeRatio(1.3)},
		},
		{
			name: fmt.Sprintf("%d MiB attachment, full build", c.attachMiB), group: "attach", rounds: c.rounds, messages: 1, info: true,
			sockmail: full(s.goSMTP, "--attach", attach), baseline: netsmtp(s.goSMTP, "--attach", attach), against: netName,
			checks: []check{peakRSSCheck(16 << 20)},
		},
	}
	if c.postfix != "" {
		pc := strconv.Itoa(c.postfixCount)
		comps = append(comps, comparison{
			name: "--count " + pc + ", test Postfix " + c.postfix, group: "postfix", rounds: c.postfixRound, messages: c.postfixCount,
			// No TLS on either side: smtp-source does not speak it.
			sockmail: send(c.postfix, "--tls", "none", "--count", pc),
			baseline: []string{"/usr/sbin/smtp-source", "-d", "-m", pc, "-f", benchFrom, "-t", benchTo, "-M", "localhost", c.postfix},
			against:  "smtp-source",
			checks:   []check{rateRatio(0.9)},
		})
	}
	return comps
}

// writeAttachment writes size pseudo-random bytes (incompressible, like
// most attachments) to path.
func writeAttachment(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	r := rand.New(rand.NewChaCha8([32]byte{'p', 'r', 'o', 'c', 'b', 'e', 'n', 'c', 'h'}))
	buf := make([]byte, 64<<10)
	for written := 0; written < size; written += len(buf) {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		n := min(len(buf), size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("attachment: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("attachment: %w", err)
	}
	return nil
}

// sample is one run of one client.
type sample struct {
	wall    time.Duration
	peakRSS int64 // bytes; 0 where the system does not say
}

// measure runs the two clients of cp alternately, cp.rounds times each:
// within a round the order alternates so that neither always runs right
// after the other's load. A failed run is an error. With log set, every
// run is printed to it.
func measure(ctx context.Context, cp comparison, log io.Writer) ([]result, error) {
	var s, b []sample
	type client struct {
		name    string
		argv    []string
		samples *[]sample
	}
	for r := 0; r < cp.rounds; r++ {
		order := []client{{"sockmail", cp.sockmail, &s}, {cp.against, cp.baseline, &b}}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, c := range order {
			smp, err := runOnce(ctx, c.argv)
			if err != nil {
				return nil, err
			}
			*c.samples = append(*c.samples, smp)
			if log != nil {
				fmt.Fprintf(log, "  round %d %-11s %8s %9s\n", r+1, c.name, fmtDuration(smp.wall), fmtMiB(smp.peakRSS))
			}
		}
	}
	var out []result
	for _, ck := range cp.checks {
		r := ck(cp, s, b)
		r.info = cp.info
		out = append(out, r)
	}
	return out, nil
}

// runOnce runs argv as a process with stdout discarded and returns its
// wall time (start to exit) and peak RSS.
func runOnce(ctx context.Context, argv []string) (sample, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return sample{}, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = devnull // a file, not a pipe: no copying goroutine in the timing
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 4096}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, stderr.String())
	}
	return sample{wall: wall, peakRSS: peakRSS(cmd.ProcessState)}, nil
}

// limitWriter keeps the first n bytes written to w.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if k := min(l.n, len(p)); k > 0 {
		l.n -= k
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
