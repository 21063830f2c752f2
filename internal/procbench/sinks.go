package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"sockmail/internal/benchsink"
)

// sinkStartLimit bounds the wait for the go-smtp sink's "listening" line.
const sinkStartLimit = 30 * time.Second

// sinks are the servers the clients send to.
type sinks struct {
	goSMTP   string // the go-smtp sink process: PIPELINING, CHUNKING
	smtpSink string // Postfix's smtp-sink: PIPELINING, no CHUNKING
	stops    []func()
}

// stop stops every sink started.
func (s *sinks) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// startSinks starts the go-smtp sink and smtp-sink, each a process of
// its own.
func startSinks(ctx context.Context, b binaries, w io.Writer) (*sinks, error) {
	s := &sinks{}
	addr, stop, err := startGoSink(ctx, b.gosink)
	if err != nil {
		return nil, err
	}
	s.goSMTP = addr
	s.stops = append(s.stops, stop)
	addr, stop, err = benchsink.StartSMTPSink()
	if err != nil {
		s.stop()
		return nil, err
	}
	s.smtpSink = addr
	s.stops = append(s.stops, stop)
	fmt.Fprintf(w, "procbench: go-smtp sink on %s, smtp-sink on %s\n", s.goSMTP, s.smtpSink)
	return s, nil
}

// startGoSink runs the go-smtp sink program and waits for the line that
// gives its address. Closing its stdin stops it.
func startGoSink(ctx context.Context, bin string) (string, func(), error) {
	cmd := exec.CommandContext(ctx, bin, "-listen", "127.0.0.1:0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, fmt.Errorf("go-smtp sink: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("go-smtp sink: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("go-smtp sink: %w", err)
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	// A sink that never prints its line is killed, which ends the read.
	timer := time.AfterFunc(sinkStartLimit, func() { _ = cmd.Process.Kill() })
	line, err := bufio.NewReader(io.LimitReader(stdout, 256)).ReadString('\n')
	timer.Stop()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		stop()
		return "", nil, fmt.Errorf("go-smtp sink: want a first line \"listening ADDRESS\" within %v, got %q (read: %v)", sinkStartLimit, line, err)
	}
	return addr, stop, nil
}
