//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// TestCheckSendFlags checks that bad test message flags are refused with
// the usage status, naming the flag.
func TestCheckSendFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"--send-from", "a@example.org", "example.org"}, want: "needs a recipient (--send-to"},
		{args: []string{"--send-to", "nobody", "example.org"}, want: `--send-to "nobody" is not an address`},
		{args: []string{"--send-to", "a@example.org", "--send-from", "x@y", "example.org"}, want: `--send-from "x@y"`},
		{args: []string{"--send-to", "a@example.org", "192.0.2.1:25"}, want: "needs a sender address (--send-from"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := dispatch(context.Background(), append([]string{"check"}, tt.args...), nil, &out, &errb, func(string) string { return "" })
			if code != checkExitUsage || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", code, errb.String(), checkExitUsage, tt.want)
			}
		})
	}
}

// TestCheckSend runs "sockmail check --send-to" against the test Postfix
// and the real DNS tier: accepted (and delivered) with its alignment, and
// refused.
func TestCheckSend(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	_, pfPort, _ := net.SplitHostPort(pf.SMTPAddr)
	rcpt := testenv.UniqueAddress()
	tests := []struct {
		name    string
		args    []string
		lines   []string
		deliver bool
	}{
		{name: "accepted", args: []string{"--send-to", rcpt, "--send-from", "cli@local.sender.test", "localhost:" + pfPort}, deliver: true,
			lines: []string{"[ok]   127.0.0.1: The test message <sockmail-check-", "was accepted by 127.0.0.1:" + pfPort + " (queue id", "would pass DMARC"}},
		{name: "refused", args: []string{"--send-to", testenv.RejectRecipient550, "--send-from", "cli@local.sender.test", "localhost:" + pfPort},
			lines: []string{"[FAIL] 127.0.0.1: The test message from cli@local.sender.test to reject550@example.test was refused by 127.0.0.1:" + pfPort + " at RCPT: 550"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"check", "--dns", d.Resolver, "--ca-file", pf.CAFile}, tt.args...)
			dispatch(context.Background(), args, nil, &out, &errb, func(string) string { return "" })
			for _, l := range tt.lines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s\nstderr: %s", l, out.String(), errb.String())
				}
			}
			if !tt.deliver {
				return
			}
			id := regexp.MustCompile(`<(sockmail-check-[0-9a-f]+@local\.sender\.test)>`).FindStringSubmatch(out.String())
			if id == nil {
				t.Fatalf("no Message-ID in the output:\n%s", out.String())
			}
			testenv.WaitForMessage(t, pf.Maildir, id[1], 30*time.Second)
		})
	}
}
