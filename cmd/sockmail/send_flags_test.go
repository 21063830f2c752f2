package main

// Tests of the flags of "sockmail send": what a plan holds, what is
// refused before anything is sent, the help.

import (
	"encoding/base64"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"sockmail/smtp"
)

// parseCase is a valid command line and what its plan holds: got picks
// the fields the case is about (without branching) to compare with want,
// and has lists what the rendered first message contains.
type parseCase struct {
	name string
	args []string
	env  map[string]string
	got  func(t *testing.T, p *sendPlan) any
	want any
	has  []string
}

func TestParseSendValid(t *testing.T) {
	attach := writeFile(t, "a.txt", "attached\n")
	raw := writeFile(t, "m.eml", "Subject: raw\n\nbody\n")
	logo := writeFile(t, "logo.png", "\x89PNG\r\n\x1a\n fake image")
	dkimKey, dkimTXT := writeDKIMKey(t)
	base := []string{"--from", "a@example.org", "--to", "b@example.org"}
	with := func(extra ...string) []string { return append(extra, base...) }
	tls := func(_ *testing.T, p *sendPlan) any { return p.cfg.TLS }
	auth := func(_ *testing.T, p *sendPlan) any { return *p.cfg.Auth }
	first := func(t *testing.T, p *sendPlan) any { return render(t, p.first) }
	tests := []parseCase{
		{name: "MX delivery by default", args: base,
			got:  func(_ *testing.T, p *sendPlan) any { return []any{p.cfg.Addr, p.cfg.TLS, p.count} },
			want: []any{"", smtp.TLSStartTLSOptional, 1}},
		{name: "port 465 means implicit TLS", args: with("--server", "mx.example.org:465"), got: tls, want: smtp.TLSImplicit},
		{name: "port 587 means starttls-optional", args: with("--server", "mx.example.org:587"), got: tls, want: smtp.TLSStartTLSOptional},
		{name: "explicit tls mode wins", args: with("--server", "h:465", "--tls", "starttls"), got: tls, want: smtp.TLSStartTLS},
		{name: "comma lists and repeats",
			args: []string{"--from", "a@example.org", "--to", "b@example.org, c@example.org", "--to", "d@example.org", "--cc", "e@example.org", "--bcc", "f@example.org"},
			got:  func(_ *testing.T, p *sendPlan) any { return strings.Join(envelopeOf(p.first).To, " ") },
			want: "b@example.org c@example.org d@example.org e@example.org f@example.org"},
		{name: "password from the environment", args: with("--auth-user", "u"), env: map[string]string{passwordEnv: "pw"},
			got: auth, want: smtp.Auth{Username: "u", Password: "pw"}},
		{name: "password flag wins over the environment", args: with("--auth-user", "u", "--auth-password", "flag"), env: map[string]string{passwordEnv: "env"},
			got: auth, want: smtp.Auth{Username: "u", Password: "flag"}},
		{name: "xoauth2 takes the password as token", args: with("--auth-user", "u", "--auth-password", "tok", "--auth-mech", "xoauth2"),
			got: auth, want: smtp.Auth{Mechanism: "XOAUTH2", Username: "u", Token: "tok"}},
		{name: "quit-after tls", args: with("--quit-after", "tls"),
			got: func(_ *testing.T, p *sendPlan) any { return p.stopAfter }, want: smtp.PhaseStartTLS},
		{name: "timeout applies to every wait", args: with("--timeout", "5s"),
			got:  func(_ *testing.T, p *sendPlan) any { return p.cfg.Timeouts },
			want: smtp.Timeouts{Connect: 5 * time.Second, Greeting: 5 * time.Second, Command: 5 * time.Second, Mail: 5 * time.Second, Rcpt: 5 * time.Second, DataInit: 5 * time.Second, DataBlock: 5 * time.Second, DataTerm: 5 * time.Second}},
		{name: "timeout 0 keeps the RFC defaults", args: with("--timeout", "0"),
			got: func(_ *testing.T, p *sendPlan) any { return p.cfg.Timeouts }, want: smtp.Timeouts{}},
		{name: "attachment and subject", args: with("--attach", attach, "--subject", "hi"),
			has: []string{"Subject: hi\r\n", "multipart/mixed", `filename="a.txt"`, base64.StdEncoding.EncodeToString([]byte("attached\n"))}},
		{name: "bcc stays out of the header", args: with("--bcc", "hidden@example.org"),
			got: func(t *testing.T, p *sendPlan) any { return strings.Contains(render(t, p.first), "hidden@") }, want: false},
		{name: "html and text", args: with("--html", "<p>Hi <b>there</b></p>", "--body", "Hi there"),
			has: []string{"multipart/alternative", "Content-Type: text/plain", "Content-Type: text/html", "Hi there"}},
		{name: "html only derives the text", args: with("--html", "<p>Only <i>HTML</i></p>"),
			got: func(t *testing.T, p *sendPlan) any {
				return strings.Contains(render(t, p.first), "This is a test message")
			},
			want: false, has: []string{"multipart/alternative"}},
		{name: "inline image with cid", args: with("--html", `<img src="cid:logo.png">`, "--inline", logo),
			has: []string{"multipart/related", "Content-ID: <logo.png>", "Content-Type: image/png"}},
		{name: "custom header and reply-to", args: with("--header", "X-Campaign: spring", "--reply-to", "Help Desk <help@example.org>"),
			has: []string{"X-Campaign: spring\r\n", "Reply-To: Help Desk <help@example.org>\r\n"}},
		{name: "dkim signature", args: with("--dkim-key", dkimKey, "--dkim-selector", "sel1"),
			got: func(t *testing.T, p *sendPlan) any {
				msg := render(t, p.first)
				verifyDKIM(t, []byte(msg), "sel1._domainkey.example.org", dkimTXT)
				return strings.HasPrefix(msg, "DKIM-Signature:")
			},
			want: true, has: []string{"d=example.org;", "s=sel1;"}},
		{name: "raw data", args: with("--data", raw), got: first, want: "Subject: raw\r\n\r\nbody\r\n"},
		{name: "count over one connection", args: with("--server", "h:25", "--count", "3"),
			got: func(t *testing.T, p *sendPlan) any {
				return []any{p.count, strings.Contains(composed(t, p, 2), "[2/3]")}
			},
			want: []any{3, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
}

// check parses the case's command line and compares the plan.
func (tc parseCase) check(t *testing.T) {
	p, err := parseSend(tc.args, func(k string) string { return tc.env[k] })
	if err != nil {
		t.Fatalf("parseSend: %v", err)
	}
	if tc.got != nil {
		if got := tc.got(t, p); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("got %#v, want %#v", got, tc.want)
		}
	}
	msg := render(t, p.first)
	for _, want := range tc.has {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// composed renders message i of the plan's run.
func composed(t *testing.T, p *sendPlan, i int) string {
	t.Helper()
	m, err := p.compose(i)
	if err != nil {
		t.Fatal(err)
	}
	return render(t, m)
}

// TestBadInputSendsNothing checks that every kind of bad input is refused
// with a clear message and status 2 before a connection is even opened.
func TestBadInputSendsNothing(t *testing.T) {
	srv := startScript(t, nil)
	s := srv.addr()
	ok := []string{"--server", s, "--from", "a@example.org", "--to", "b@example.org"}
	with := func(extra ...string) []string { return append(append([]string(nil), ok...), extra...) }
	raw := writeFile(t, "m.eml", "no header here\n")
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"CR in recipient", with("--to", "x@example.org\rRCPT TO:<y@example.org>"), "--to"},
		{"LF in sender", []string{"--server", s, "--from", "a@example.org\nDATA", "--to", "b@example.org"}, "line break"},
		{"NUL in recipient", with("--to", "x\x00@example.org"), "NUL"},
		{"unbalanced angle brackets", with("--to", "<x@example.org"), "unclosed angle-addr"},
		{"space in address", with("--cc", "x y@example.org"), `--cc "x y@example.org": want local@domain`},
		{"not an address", with("--to", "nobody"), "missing '@'"},
		{"CR in HELO", with("--helo", "evil\r\nMAIL FROM:<x@y>"), "line break"},
		{"space in HELO", with("--helo", "a b"), "no spaces"},
		{"missing attachment", with("--attach", "/nonexistent/file.pdf"), "no such file"},
		{"missing body file", with("--body-file", "/nonexistent/body.txt"), "no such file"},
		{"missing data file", with("--data", "/nonexistent/m.eml"), "no such file"},
		{"data file not a message", with("--data", raw), "--data"},
		{"unknown tls mode", with("--tls", "ssl"), `--tls "ssl"`},
		{"unknown quit-after", with("--quit-after", "data"), "--quit-after"},
		{"unknown auth mech", with("--auth-user", "u", "--auth-password", "p", "--auth-mech", "NTLM"), "--auth-mech"},
		{"CR in subject", with("--subject", "hi\r\nBcc: victim@example.org"), "Subject"},
		{"no sender", []string{"--server", s, "--to", "b@example.org"}, "--from is required"},
		{"no recipient", []string{"--server", s, "--from", "a@example.org"}, "no recipient"},
		{"password without user", with("--auth-password", "p"), "need --auth-user"},
		{"user without password", with("--auth-user", "u"), "needs a password"},
		{"clear-text auth not allowed", with("--tls", "none", "--auth-user", "u", "--auth-password", "p"), "--allow-insecure-auth"},
		{"body and body-file", with("--body", "x", "--body-file", "/etc/hostname"), "exclude"},
		{"data and subject", with("--data", "/etc/hostname", "--subject", "x"), "exclude"},
		{"count zero", with("--count", "0"), "--count"},
		{"count without server", []string{"--from", "a@example.org", "--to", "b@example.org", "--count", "2"}, "needs --server"},
		{"count and quit-after", with("--count", "2", "--quit-after", "ehlo"), "exclude"},
		{"server without port", []string{"--server", "mx.example.org", "--from", "a@example.org", "--to", "b@example.org"}, "host:port"},
		{"unknown flag", with("--frobnicate"), "frobnicate"},
		{"stray argument", with("extra"), "unexpected argument"},
		{"json and quiet", with("--json", "--quiet"), "exclude"},
		{"negative timeout", with("--timeout", "-1s"), "negative"},
		{"ca file without certificates", with("--ca-file", "/etc/hostname"), "no PEM certificate"},
		{"html and html-file", with("--html", "x", "--html-file", "/etc/hostname"), "exclude"},
		{"missing html file", with("--html-file", "/nonexistent/x.html"), "no such file"},
		{"inline without html", with("--inline", "/etc/hostname"), "needs an HTML body"},
		{"missing inline file", with("--html", "x", "--inline", "/nonexistent/logo.png"), "no such file"},
		{"header without colon", with("--header", "X-Test"), "Name: value"},
		{"reserved header", with("--header", "Bcc: victim@example.org"), "Bcc"},
		{"CR in header value", with("--header", "X-Test: a\r\nBcc: victim@example.org"), "X-Test"},
		{"bad reply-to", with("--reply-to", "not an address"), "Reply-To"},
		{"data and html", with("--data", "/etc/hostname", "--html", "x"), "exclude"},
		{"dkim key without selector", with("--dkim-key", "/etc/hostname"), "--dkim-selector"},
		{"dkim selector without key", with("--dkim-selector", "s"), "need --dkim-key"},
		{"dkim key not a key", with("--dkim-key", "/etc/hostname", "--dkim-selector", "s"), "PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != exitUsage {
				t.Errorf("status %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
		})
	}
	if n := srv.connections(); n != 0 {
		t.Fatalf("bad input opened %d connections", n)
	}
}

func TestHelpListsExitStatuses(t *testing.T) {
	code, stdout, stderr := run(t, "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("status %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Usage: sockmail send", "-server host:port", "-quit-after phase", "Exit status:", "16  rcpt", "18  unknown outcome", "20  partial"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := parseSend([]string{"-h"}, noEnv); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
