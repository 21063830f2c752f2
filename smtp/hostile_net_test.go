package smtp

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// Tests of the client against misbehaving servers on real 127.0.0.1:0
// listeners: deadlines (a server that stops reading, drips its replies or
// streams forever) and cancellation. The scripted conversations are in
// hostile_test.go.

// endlessBody is a message that never ends: it writes lines until the
// writer fails (or a safety limit).
type endlessBody struct{}

func (endlessBody) WriteTo(w io.Writer) (int64, error) {
	line := []byte(strings.Repeat("0123456789", 7) + "\n")
	var n int64
	for n < 1<<30 {
		m, err := w.Write(line)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stuckAfterDATA answers up to 354 and then never reads again until the
// test ends.
func stuckAfterDATA(stop <-chan struct{}) func(*serverConn) error {
	return stuckAfter(stop, "250 mx.test\n", "DATA")
}

// stuckAfter answers EHLO with ehlo, then MAIL, RCPT and (when last is
// "DATA") DATA one line at a time, and then never reads again until the
// test ends. With CHUNKING the client's first chunk waits for the
// envelope replies, so the server stops reading inside the first chunk.
func stuckAfter(stop <-chan struct{}, ehlo, last string) func(*serverConn) error {
	return func(s *serverConn) error {
		if err := s.send("220 mx.test ESMTP\n"); err != nil {
			return err
		}
		steps := []struct{ expect, reply string }{{"EHLO", ehlo}, {"MAIL FROM:", "250 Ok\n"}, {"RCPT TO:", "250 Ok\n"}}
		if last == "DATA" {
			steps = append(steps, struct{ expect, reply string }{"DATA", "354 go\n"})
		}
		for _, step := range steps {
			if _, err := s.expect(step.expect); err != nil {
				return err
			}
			if err := s.send(step.reply); err != nil {
				return err
			}
		}
		<-stop
		return nil
	}
}

// TestServerStopsReading: a server that stops reading mid-body cannot
// block the client longer than Timeouts.DataBlock, and the failure is a
// temporary network failure (not the message's fault, not an unknown
// outcome), with DATA and with BDAT.
func TestServerStopsReading(t *testing.T) {
	tests := []struct{ name, ehlo, last string }{
		{"DATA", "250 mx.test\n", "DATA"},
		{"BDAT pipelined", "250-mx.test\n250-PIPELINING\n250 CHUNKING\n", "BDAT"},
		{"BDAT", "250-mx.test\n250 CHUNKING\n", "BDAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stop := make(chan struct{})
			addr := serve(t, stuckAfter(stop, tt.ehlo, tt.last))
			t.Cleanup(func() { close(stop) })
			tr := NewTranscript()
			// Without PIPELINING a whole chunk may fit the socket buffers and
			// the client then waits for the chunk's reply: DataTerm bounds it.
			cfg := Config{Addr: addr, Transcript: tr, Timeouts: Timeouts{DataBlock: 300 * time.Millisecond, DataTerm: 300 * time.Millisecond}}
			start := time.Now()
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, endlessBody{}, SendOptions{})
			elapsed := time.Since(start)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Phase != PhaseBody || !e.Temporary() || e.OutcomeUnknown || !isTimeout(err) {
				t.Errorf("phase %s temporary %v unknown %v timeout %v, want a temporary body timeout: %v", e.Phase, e.Temporary(), e.OutcomeUnknown, isTimeout(err), e)
			}
			if !strings.Contains(err.Error(), "timed out") {
				t.Errorf("error does not say it timed out: %v", err)
			}
			if StatusOf(res, err) != StatusTempFail {
				t.Errorf("status %q, want temporary failure", StatusOf(res, err))
			}
			if elapsed < 300*time.Millisecond {
				t.Errorf("gave up after %v, before the write deadline of 300ms", elapsed)
			}
			for _, ev := range tr.Events() {
				if ev.Dir == DirClient && ev.Line == "QUIT" {
					t.Errorf("transcript shows QUIT written into a stuck connection")
				}
			}
		})
	}
}

// drip writes text one byte every 50 ms until it is done or the client
// goes away.
func drip(prefix, text string) func(*serverConn) error {
	return func(s *serverConn) error {
		if prefix != "" {
			if err := s.send(prefix); err != nil {
				return err
			}
			if _, err := s.expect("EHLO"); err != nil {
				return err
			}
		}
		for i := 0; i < len(text); i++ {
			if _, err := s.Write([]byte{text[i]}); err != nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	}
}

// TestDripFeed: a server that sends a byte at a time cannot keep a reply
// going past its phase's deadline; the deadline is for the whole reply,
// not for each byte.
func TestDripFeed(t *testing.T) {
	tests := []struct {
		name    string
		handler func(*serverConn) error
		timeout Timeouts
		phase   Phase
	}{
		{"greeting", drip("", "220 "+strings.Repeat("x", 60)+"\r\n"), Timeouts{Greeting: 300 * time.Millisecond}, PhaseGreeting},
		{"ehlo", drip("220 mx.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10000000\r\n"), Timeouts{Command: 300 * time.Millisecond}, PhaseEHLO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serve(t, tt.handler)
			cfg := Config{Addr: addr, Timeouts: tt.timeout, Transcript: NewTranscript()}
			start := time.Now()
			_, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x"), SendOptions{})
			elapsed := time.Since(start)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Phase != tt.phase || !e.Temporary() || !isTimeout(err) {
				t.Errorf("phase %s temporary %v timeout %v, want %s, temporary, timeout: %v", e.Phase, e.Temporary(), isTimeout(err), tt.phase, e)
			}
			if !strings.Contains(err.Error(), "timed out waiting for the server") {
				t.Errorf("error is not clear about the timeout: %v", err)
			}
			// A deadline per byte would let the drip finish (over 3 s):
			// the timeout error shows the deadline is for the whole reply.
			// Only the lower bound is checked: a slow machine may take
			// longer, never less.
			if elapsed < 300*time.Millisecond {
				t.Errorf("gave up after %v, before the deadline of 300ms", elapsed)
			}
			if !hasEvent(cfg.Transcript.Events(), DirInfo, "timed out") {
				t.Errorf("transcript does not note the timeout:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}

// TestEndlessContinuationStream: a server streaming "220-x" forever makes
// the client give up after the line cap without buffering it all.
func TestEndlessContinuationStream(t *testing.T) {
	addr := serve(t, func(s *serverConn) error {
		chunk := []byte(strings.Repeat("220-x\r\n", 100))
		for i := 0; i < 100000; i++ {
			if _, err := s.Write(chunk); err != nil {
				return nil
			}
		}
		return nil
	})
	tr := NewTranscript()
	_, err := Dial(context.Background(), Config{Addr: addr, Transcript: tr})
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "more than") {
		t.Fatalf("err = %v, want a protocol error about the line cap", err)
	}
	if n := len(eventLines(tr.Events(), DirServer)); n > maxReplyLines+1 {
		t.Errorf("transcript kept %d server lines, want at most %d", n, maxReplyLines+1)
	}
}

// blockAfterEHLO greets, reads EHLO, tells got, and never answers.
func blockAfterEHLO(got chan<- struct{}, stop <-chan struct{}) func(*serverConn) error {
	return func(s *serverConn) error {
		if err := s.send("220 mx.test\n"); err != nil {
			return err
		}
		if _, err := s.expect("EHLO"); err != nil {
			return err
		}
		close(got)
		<-stop
		return nil
	}
}

// TestCancelAbortsBlockingRead: cancelling the context ends a read that
// would otherwise wait for the 5-minute command timeout, at once.
func TestCancelAbortsBlockingRead(t *testing.T) {
	got, stop := make(chan struct{}), make(chan struct{})
	addr := serve(t, blockAfterEHLO(got, stop))
	t.Cleanup(func() { close(stop) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTranscript()
	wait := sendInBackground(ctx, Config{Addr: addr, Transcript: tr}, strings.NewReader("x"))
	<-got // the client wrote EHLO and waits for the reply
	cancel()
	// Without the cancel the read would wait for the 5-minute command
	// timeout: returning within the stall limit shows the cancel ended it.
	err := wait(t, "send did not return after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseEHLO {
		t.Errorf("err = %v, want *Error in phase ehlo", err)
	}
	if st := StatusOf(nil, err); st != StatusAborted {
		t.Errorf("status %q, want aborted", st)
	}
	if !hasEvent(tr.Events(), DirInfo, "aborted") {
		t.Errorf("transcript does not say the send was aborted:\n%s", dumpTranscript(tr))
	}
}

// TestCancelAbortsBlockingWrite: cancelling the context ends a body write
// into a server that stopped reading, at once, not after DataBlock.
func TestCancelAbortsBlockingWrite(t *testing.T) {
	stop := make(chan struct{})
	addr := serve(t, stuckAfterDATA(stop))
	t.Cleanup(func() { close(stop) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := NewTranscript()
	wait := sendInBackground(ctx, Config{Addr: addr, Transcript: tr}, endlessBody{})
	// Wait until the client is writing the body. The body never ends and
	// the server never reads it: the write fills the socket buffers and
	// blocks, and only the cancel (or DataBlock, 3 minutes by default)
	// can end the send.
	testenv.WaitUntil(t, "the 354 reply", func() bool { return hasEvent(tr.Events(), DirServer, "354") })
	cancel()
	err := wait(t, "send did not return after cancel: the body write ignores the context")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	if st := StatusOf(nil, err); st != StatusAborted {
		t.Errorf("status %q, want aborted", st)
	}
}

// TestCancelledBeforeStart: a context cancelled before the send starts
// sends nothing.
func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := newFaker(ehloPipelining)
	_, err := SendMail(ctx, fakeConfig(f), Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x"), SendOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if f.wire() != "" {
		t.Errorf("client wrote %q after cancel", f.wire())
	}
}

// TestConnectRefused: a closed port is a temporary connect failure, with
// a partial transcript.
func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := NewTranscript()
	res, err := SendMail(context.Background(), Config{Addr: addr, Transcript: tr}, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x"), SendOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseConnect || !e.Temporary() {
		t.Fatalf("err = %v, want a temporary connect error", err)
	}
	if res == nil || res.Server != addr {
		t.Errorf("result = %+v, want the server named", res)
	}
	ev := tr.Events()
	if !hasEvent(ev, DirInfo, "connecting to "+addr) || !hasEvent(ev, DirInfo, "connect to "+addr+" failed") {
		t.Errorf("partial transcript lacks the connect attempt:\n%s", dumpTranscript(tr))
	}
}

// sendInBackground starts a send of msg from a@example.org to
// b@example.net and returns a function that waits for its error, failing
// the test with stuck when none comes within the stall limit.
func sendInBackground(ctx context.Context, cfg Config, msg Message) func(t *testing.T, stuck string) error {
	errc := make(chan error, 1)
	go func() {
		_, err := SendMail(ctx, cfg, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, msg, SendOptions{})
		errc <- err
	}()
	return func(t *testing.T, stuck string) error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(testenv.StallLimit):
			t.Fatal(stuck)
			return nil
		}
	}
}
