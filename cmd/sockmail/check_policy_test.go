//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// TestCheckPolicies runs "sockmail check" on the policy test domains:
// --mta-sts-port reaches the test MTA-STS server, and the text output
// carries the MTA-STS, TLS-RPT and DANE findings.
func TestCheckPolicies(t *testing.T) {
	p := testenv.Policy(t)
	if p == nil {
		return
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		lines []string
	}{
		{name: "correct domain", args: []string{"--mta-sts-port", strconv.Itoa(p.MTASTSPort), "--port", strconv.Itoa(p.GoodPort), "good." + p.Zone},
			code: checkExitWarning, lines: []string{
				"[ok]   good.policy.test announces an MTA-STS policy",
				"[ok]   The MTA-STS policy at https://mta-sts.good.policy.test:" + strconv.Itoa(p.MTASTSPort) + "/.well-known/mta-sts.txt: mode enforce",
				"[ok]   TLS failure reports for good.policy.test go to mailto:tlsrpt@policy.test",
				"[ok]   The MX host mx.policy.test matches the MTA-STS policy.",
				"[ok]   127.0.0.1: The DNSSEC-validated TLSA record 3 1 1 ",
			}},
		{name: "bogus zone", args: []string{"--port", strconv.Itoa(p.GoodPort), p.BogusZone}, code: checkExitFail,
			lines: []string{"[FAIL] DNSSEC validation failed for bogus.test MX"}},
		{name: "bad port", args: []string{"--mta-sts-port", "0", "good." + p.Zone}, code: checkExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"check", "--dns", p.DNS.Resolver, "--ca-file", p.CAFile}, tt.args...)
			code := dispatch(context.Background(), args, nil, &out, &errb, func(string) string { return "" })
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr: %s\nstdout:\n%s", code, tt.code, errb.String(), out.String())
			}
			if tt.code == checkExitUsage && !strings.Contains(errb.String(), "--mta-sts-port 0 is not a port") {
				t.Errorf("stderr %q does not name the bad --mta-sts-port", errb.String())
			}
			for _, l := range tt.lines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s", l, out.String())
				}
			}
		})
	}
}
