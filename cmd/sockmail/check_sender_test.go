//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// TestCheckSenderFlags checks that bad sender-side flags are refused
// with the usage status, naming the flag.
func TestCheckSenderFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"--ip", "192.0.2.1", "example.org"}, want: "--ip and --dkim-selector need the From domain (--from example.org)"},
		{args: []string{"--dkim-selector", "s1", "example.org"}, want: "need the From domain"},
		{args: []string{"--from", "localhost", "example.org"}, want: `--from: "localhost" is not a domain name`},
		{args: []string{"--from", "example.org", "--ip", "192.0.2.256", "example.org"}, want: `--ip: "192.0.2.256" is not an IP address`},
		{args: []string{"--from", "example.org", "--dkim-selector", "a b", "example.org"}, want: `--dkim-selector "a b" is not one or more DNS labels`},
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

// TestCheckSender runs "sockmail check" with the sender-side flags and the
// relay test against the real DNS tier, Postfix and aiosmtpd.
func TestCheckSender(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	aio := testenv.AIOSMTPD(t)
	_, pfPort, _ := net.SplitHostPort(pf.SMTPAddr)
	_, aioPort, _ := net.SplitHostPort(aio.Addr)
	tests := []struct {
		name  string
		args  []string
		code  int
		lines []string
	}{
		{name: "sender aligned", args: []string{"--from", "reject.sender.test", "--ip", "192.0.2.5", "--dkim-selector", "s2048", "localhost:" + pfPort}, code: checkExitWarning,
			lines: []string{"\nsender: reject.sender.test\n", "[ok]   SPF gives pass for mail from 192.0.2.5", "[ok]   Mail from reject.sender.test would pass DMARC"}},
		{name: "spf over the limit", args: []string{"--from", "many.sender.test", "localhost:" + pfPort}, code: checkExitFail,
			lines: []string{"\nsender: many.sender.test\n", "[FAIL] The SPF record needs 11 DNS-querying terms", "[FAIL] many.sender.test has no DMARC record"}},
		{name: "relay refused", args: []string{"--relay-test", "localhost:" + pfPort}, code: checkExitWarning,
			lines: []string{"[ok]   127.0.0.1: The server refuses to relay: RCPT TO:<sockmail-relay-test@example.net> got 554"}},
		{name: "open relay", args: []string{"--relay-test", "aiosmtpd.check.test:" + aioPort}, code: checkExitFail,
			lines: []string{"[FAIL] 127.0.0.1: The server is an open relay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"check", "--dns", d.Resolver, "--ca-file", pf.CAFile}, tt.args...)
			code := dispatch(context.Background(), args, nil, &out, &errb, func(string) string { return "" })
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr: %s\nstdout:\n%s", code, tt.code, errb.String(), out.String())
			}
			for _, l := range tt.lines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s", l, out.String())
				}
			}
		})
	}
}
