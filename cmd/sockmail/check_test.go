//go:build !sendonly

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// TestCheckUsage checks that bad flags and targets are refused with the
// usage status and a message naming what is wrong, before anything is
// looked up.
func TestCheckUsage(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: nil, want: "no target"},
		{args: []string{"a.example", "b.example"}, want: "one target at a time; got 2"},
		{args: []string{"https://example.org"}, want: "no scheme"},
		{args: []string{"192.0.2.1"}, want: "give a port"},
		{args: []string{"--port", "0", "example.org"}, want: "--port 0 is not a port"},
		{args: []string{"--port", "2525", "mail.example.org:25"}, want: "a server target carries its port"},
		{args: []string{"--dns", "resolver.example:53", "example.org"}, want: `--dns "resolver.example:53" is not an IP address and port`},
		{args: []string{"example.org"}, env: map[string]string{"SOCKMAIL_DNS": "127.0.0.1"}, want: `$SOCKMAIL_DNS "127.0.0.1" is not an IP address and port`},
		{args: []string{"--timeout", "0s", "example.org"}, want: "--timeout 0s must be above 0"},
		{args: []string{"--dns-timeout", "2m", "example.org"}, want: "--dns-timeout 2m0s must be above 0 and at most 1m"},
		{args: []string{"--parallel", "17", "example.org"}, want: "--parallel 17 must be from 1 to 16"},
		{args: []string{"--helo", "two words", "example.org"}, want: "--helo \"two words\" must be one word"},
		{args: []string{"--ca-file", "/nonexistent/ca.pem", "example.org"}, want: "--ca-file: open /nonexistent/ca.pem"},
		{args: []string{"--no-such-flag", "example.org"}, want: "flag provided but not defined: -no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			code := dispatch(context.Background(), append([]string{"check"}, tt.args...), nil, &out, &errb, getenv)
			if code != checkExitUsage {
				t.Errorf("exit status %d, want %d; stderr: %s", code, checkExitUsage, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) || !strings.Contains(errb.String(), "sockmail check --help") {
				t.Errorf("stderr %q, want it to contain %q and the help hint", errb.String(), tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

func TestCheckHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), []string{"check", "--help"}, nil, &out, &errb, func(string) string { return "" }); code != 0 {
		t.Fatalf("exit status %d: %s", code, errb.String())
	}
	for _, want := range []string{"Usage: sockmail check [flags] TARGET", "-json", "-dns host:port", "$SOCKMAIL_DNS", "64  bad flags", "2  at least one failure"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCheckExitStatus runs checks of the test zones against the real DNS
// and Postfix and checks the exit status by worst finding and the human
// output grouped by host.
func TestCheckExitStatus(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	_, pfPort, _ := net.SplitHostPort(pf.SMTPAddr)
	_, smtpsPort, _ := net.SplitHostPort(pf.SMTPSAddr)
	tests := []struct {
		name  string
		args  []string
		code  int
		lines []string
	}{
		// A null MX is a statement, not a fault.
		{name: "null MX passes", args: []string{"nullmx.check.test"}, code: checkExitPass,
			lines: []string{"DNS\n", "  [info] nullmx.check.test publishes a null MX (RFC 7505)"}},
		// Postfix under its own name: all passes but the old TLS versions it accepts.
		{name: "warnings", args: []string{"--port", pfPort, "--ca-file", pf.CAFile, "good.check.test"}, code: checkExitWarning,
			lines: []string{"MX 10 localhost, port " + pfPort + "\n", "[warn] 127.0.0.1: The server accepts TLS 1.0", "[ok]   127.0.0.1: The certificate is valid for localhost."}},
		// Under other names the certificate does not match.
		{name: "failures", args: []string{"--port", pfPort, "--ca-file", pf.CAFile, "check.test"}, code: checkExitFail,
			lines: []string{"MX 10 mx1.check.test", "MX 20 mx2.check.test", "MX 30 mx3.check.test", "[FAIL] 127.0.0.1: The certificate is not valid for mx2.check.test"}},
		{name: "server target", args: []string{"--ca-file", pf.CAFile, "localhost:" + pfPort}, code: checkExitWarning,
			lines: []string{"localhost, port " + pfPort + "\n"}},
		{name: "implicit TLS", args: []string{"--implicit-tls", "--ca-file", pf.CAFile, net.JoinHostPort("localhost", smtpsPort)}, code: checkExitWarning,
			lines: []string{"[ok]   127.0.0.1: The server chose TLS 1.3", "[ok]   127.0.0.1: The certificate is valid for localhost."}},
		{name: "verbose", args: []string{"-v", "--port", pfPort, "nullmx.check.test"}, code: checkExitPass,
			lines: []string{"\nDNS lookups\n  nullmx.check.test. MX @", ": NOERROR AD: nullmx.check.test. ", " IN MX 0 . ("}},
		{name: "verbose transcripts", args: []string{"-v", "--ca-file", pf.CAFile, "localhost:" + pfPort}, code: checkExitWarning,
			lines: []string{"\nConversation 1: localhost, 127.0.0.1:" + pfPort + " (check)\n", "<- 220 localhost ESMTP", "-> STARTTLS", "\nConversation 5: localhost, 127.0.0.1:" + pfPort + " (probe TLS 1.3)\n", "-> QUIT"}},
		{name: "nonexistent domain", args: []string{"missing.check.test"}, code: checkExitFail,
			lines: []string{"[FAIL] The domain missing.check.test does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			getenv := func(k string) string {
				if k == "SOCKMAIL_DNS" {
					return d.Resolver
				}
				return ""
			}
			code := dispatch(context.Background(), append([]string{"check"}, tt.args...), nil, &out, &errb, getenv)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr: %s\nstdout:\n%s", code, tt.code, errb.String(), out.String())
			}
			for _, l := range tt.lines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output lacks %q:\n%s", l, out.String())
				}
			}
			if !strings.Contains(out.String(), "resolver "+d.Resolver) {
				t.Errorf("output does not name the resolver %s", d.Resolver)
			}
		})
	}
}

// TestCheckJSON checks the shape of --json: the report's fields, findings
// grouped by host, every lookup with its AD bit, every conversation with
// its transcript.
func TestCheckJSON(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	_, pfPort, _ := net.SplitHostPort(pf.SMTPAddr)
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), []string{"check", "--json", "--dns", d.Resolver, "--port", pfPort, "--ca-file", pf.CAFile, "good.check.test"},
		nil, &out, &errb, func(string) string { return "" })
	if code != checkExitWarning {
		t.Fatalf("exit status %d, want %d; stderr: %s", code, checkExitWarning, errb.String())
	}
	var rep struct {
		Target   string  `json:"target"`
		Kind     string  `json:"kind"`
		Resolver string  `json:"resolver"`
		Worst    string  `json:"worst"`
		TookMS   float64 `json:"took_ms"`
		Hosts    []struct {
			Name       string `json:"name"`
			Preference int    `json:"preference"`
			Port       int    `json:"port"`
		} `json:"hosts"`
		Groups []struct {
			Host     string `json:"host"`
			Findings []struct {
				ID, Status, Message, Fix, Addr string
				Conversation                   int
			} `json:"findings"`
		} `json:"groups"`
		Lookups []struct {
			Name, Type, Rcode string
			AD                bool
			Answer            []string
			TookMS            float64 `json:"took_ms"`
		} `json:"lookups"`
		Conversations []struct {
			ID         int    `json:"id"`
			Purpose    string `json:"purpose"`
			Addr       string `json:"addr"`
			Transcript struct {
				Events []struct {
					Dir, Phase, Line string
				} `json:"events"`
			} `json:"transcript"`
		} `json:"conversations"`
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &top); err != nil {
		t.Fatalf("decode --json: %v", err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"conversations", "groups", "hosts", "kind", "lookups", "resolver", "started", "target", "took_ms", "worst"}; !slices.Equal(keys, want) {
		t.Errorf("--json keys %v, want %v", keys, want)
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode --json: %v", err)
	}
	if rep.Target != "good.check.test" || rep.Kind != "domain" || rep.Resolver != d.Resolver || rep.Worst != "warning" {
		t.Errorf("head %q %q %q %q", rep.Target, rep.Kind, rep.Resolver, rep.Worst)
	}
	if len(rep.Hosts) != 1 || rep.Hosts[0].Name != "localhost" || rep.Hosts[0].Preference != 10 || fmt.Sprint(rep.Hosts[0].Port) != pfPort {
		t.Errorf("hosts %+v", rep.Hosts)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Host != "" || rep.Groups[1].Host != "localhost" {
		t.Fatalf("groups %+v", rep.Groups)
	}
	if len(rep.Lookups) == 0 || rep.Lookups[0].Type != "MX" || !rep.Lookups[0].AD || rep.Lookups[0].Rcode != "NOERROR" ||
		len(rep.Lookups[0].Answer) != 1 || !strings.Contains(rep.Lookups[0].Answer[0], "MX 10 localhost.") {
		t.Errorf("first lookup %+v", rep.Lookups)
	}
	if len(rep.Conversations) != 5 {
		t.Fatalf("%d conversations, want the check and four TLS probes", len(rep.Conversations))
	}
	ids := map[int]bool{}
	for _, c := range rep.Conversations {
		ids[c.ID] = true
		if len(c.Transcript.Events) == 0 || c.Transcript.Events[len(c.Transcript.Events)-1].Phase != "quit" {
			t.Errorf("conversation %d (%s): transcript does not end with QUIT: %+v", c.ID, c.Purpose, c.Transcript.Events)
		}
	}
	for _, g := range rep.Groups {
		for _, f := range g.Findings {
			if f.Conversation != 0 && !ids[f.Conversation] {
				t.Errorf("finding %s cites conversation %d, which is not in the report", f.ID, f.Conversation)
			}
			if f.Status == "warning" && f.Fix == "" {
				t.Errorf("warning %s says nothing about what to change", f.ID)
			}
		}
	}
}
