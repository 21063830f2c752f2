package smtp

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// Postfix's smtp-sink as a real misbehaving server: 421 and disconnect
// (-Q), a silent disconnect (-q), soft and hard rejects (-r, -f), and a
// server that stops reading mid-body (-A). It comes with the postfix
// package that .ci/servers.sh installs; the test starts its own sinks.

// startSink runs smtp-sink with args on a free loopback port and returns
// the address; the process is killed at cleanup.
func startSink(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/smtp-sink"); err != nil {
			if testenv.InCI() {
				t.Fatalf("smtp-sink not installed (CI=true): %v", err)
			}
			t.Skipf("smtp-sink not installed (it comes with postfix): %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, append(args, addr, "10")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	testenv.WaitUntil(t, "smtp-sink to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

func TestSmtpSink(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		msg      string
		timeouts Timeouts
		status   Status
		phase    Phase
		code     int
	}{
		{name: "accepts (trailing empty EHLO line)", status: StatusSent},
		{name: "421 at connect", args: []string{"-Q", "connect"}, status: StatusTempFail, phase: PhaseGreeting, code: 421},
		{name: "421 at EHLO", args: []string{"-Q", "ehlo"}, status: StatusTempFail, phase: PhaseEHLO, code: 421},
		{name: "421 at MAIL", args: []string{"-Q", "mail"}, status: StatusTempFail, phase: PhaseMail, code: 421},
		{name: "421 at RCPT", args: []string{"-Q", "rcpt"}, status: StatusTempFail, phase: PhaseRcpt, code: 421},
		{name: "421 at DATA", args: []string{"-Q", "data"}, status: StatusTempFail, phase: PhaseData, code: 421},
		{name: "421 after the dot", args: []string{"-Q", "."}, status: StatusTempFail, phase: PhaseBody, code: 421},
		{name: "drop at EHLO", args: []string{"-q", "ehlo"}, status: StatusTempFail, phase: PhaseEHLO},
		{name: "drop at RCPT", args: []string{"-q", "rcpt"}, status: StatusTempFail, phase: PhaseRcpt},
		{name: "drop after the dot", args: []string{"-q", "."}, status: StatusUnknown, phase: PhaseBody},
		{name: "450 at RCPT", args: []string{"-r", "rcpt"}, status: StatusTempFail, phase: PhaseRcpt, code: 450},
		{name: "500 at MAIL", args: []string{"-f", "mail"}, status: StatusPermFail, phase: PhaseMail, code: 500},
		{name: "HELO fallback after 500 at EHLO", args: []string{"-f", "ehlo"}, status: StatusSent},
		// -A: after its 354 smtp-sink reads nothing more and sends 550
		// after the delay. With ten minutes the client's write deadline
		// ends the send first however slow the machine; with one second
		// the 550 comes while the client is still writing.
		{name: "stops reading mid-body", args: []string{"-A", "600"}, msg: strings.Repeat("0123456789012345678901234567890123456789\n", 400000),
			timeouts: Timeouts{DataBlock: 300 * time.Millisecond}, status: StatusTempFail, phase: PhaseBody},
		{name: "refuses mid-body: its 550 is the answer, not the broken pipe", args: []string{"-A", "1"}, msg: strings.Repeat("0123456789012345678901234567890123456789\n", 400000),
			status: StatusPermFail, phase: PhaseBody, code: 550},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startSink(t, tt.args...)
			msg := tt.msg
			if msg == "" {
				msg = "Subject: sink\n\nhello\n"
			}
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: addr, Transcript: tr, Timeouts: tt.timeouts}, envelope1, strings.NewReader(msg), SendOptions{})
			if st := StatusOf(res, err); st != tt.status {
				t.Fatalf("status %q (err %v), want %q\n%s", st, err, tt.status, dumpTranscript(tr))
			}
			if tt.phase == "" {
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Phase != tt.phase || e.Code != tt.code {
				t.Errorf("err = %v, want phase %s code %d", err, tt.phase, tt.code)
			}
			// After a 421 nothing is said; after the dot QUIT was already
			// pipelined with the message.
			if tt.code == 421 && tt.phase != PhaseBody && countLines(clientLines(tr), "QUIT") != 0 {
				t.Errorf("QUIT after 421:\n%s", dumpTranscript(tr))
			}
		})
	}
}
