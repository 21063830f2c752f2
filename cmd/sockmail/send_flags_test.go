package main

// Tests of the flags of "sockmail send": what a plan holds, what is
// refused before anything is sent, the help.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"sockmail/smtp"
)

func TestParseSendValid(t *testing.T) {
	attach := writeFile(t, "a.txt", "attached\n")
	raw := writeFile(t, "m.eml", "Subject: raw\n\nbody\n")
	logo := writeFile(t, "logo.png", "\x89PNG\r\n\x1a\n fake image")
	dkimKey, dkimTXT := writeDKIMKey(t)
	base := []string{"--from", "a@example.org", "--to", "b@example.org"}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, p *sendPlan)
	}{
		{"MX delivery by default", base, nil, func(t *testing.T, p *sendPlan) {
			if p.cfg.Addr != "" || p.cfg.TLS != smtp.TLSStartTLSOptional || p.count != 1 {
				t.Errorf("cfg %+v count %d", p.cfg, p.count)
			}
		}},
		{"port 465 means implicit TLS", append([]string{"--server", "mx.example.org:465"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if p.cfg.TLS != smtp.TLSImplicit {
				t.Errorf("TLS %v", p.cfg.TLS)
			}
		}},
		{"port 587 means starttls-optional", append([]string{"--server", "mx.example.org:587"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if p.cfg.TLS != smtp.TLSStartTLSOptional {
				t.Errorf("TLS %v", p.cfg.TLS)
			}
		}},
		{"explicit tls mode wins", append([]string{"--server", "h:465", "--tls", "starttls"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if p.cfg.TLS != smtp.TLSStartTLS {
				t.Errorf("TLS %v", p.cfg.TLS)
			}
		}},
		{"comma lists and repeats", []string{"--from", "a@example.org", "--to", "b@example.org, c@example.org", "--to", "d@example.org", "--cc", "e@example.org", "--bcc", "f@example.org"}, nil, func(t *testing.T, p *sendPlan) {
			got := strings.Join(envelopeOf(p.first).To, " ")
			if got != "b@example.org c@example.org d@example.org e@example.org f@example.org" {
				t.Errorf("recipients %q", got)
			}
		}},
		{"password from the environment", append([]string{"--auth-user", "u"}, base...), map[string]string{passwordEnv: "pw"}, func(t *testing.T, p *sendPlan) {
			if p.cfg.Auth == nil || p.cfg.Auth.Username != "u" || p.cfg.Auth.Password != "pw" {
				t.Errorf("auth %+v", p.cfg.Auth)
			}
		}},
		{"password flag wins over the environment", append([]string{"--auth-user", "u", "--auth-password", "flag"}, base...), map[string]string{passwordEnv: "env"}, func(t *testing.T, p *sendPlan) {
			if p.cfg.Auth.Password != "flag" {
				t.Errorf("password %q", p.cfg.Auth.Password)
			}
		}},
		{"xoauth2 takes the password as token", append([]string{"--auth-user", "u", "--auth-password", "tok", "--auth-mech", "xoauth2"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if a := p.cfg.Auth; a.Mechanism != "XOAUTH2" || a.Token != "tok" || a.Password != "" {
				t.Errorf("auth %+v", a)
			}
		}},
		{"quit-after tls", append([]string{"--quit-after", "tls"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if p.stopAfter != smtp.PhaseStartTLS {
				t.Errorf("stopAfter %q", p.stopAfter)
			}
		}},
		{"timeout applies to every wait", append([]string{"--timeout", "5s"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if to := p.cfg.Timeouts; to.Connect != 5*time.Second || to.DataTerm != 5*time.Second || to.Rcpt != 5*time.Second {
				t.Errorf("timeouts %+v", to)
			}
		}},
		{"timeout 0 keeps the RFC defaults", append([]string{"--timeout", "0"}, base...), nil, func(t *testing.T, p *sendPlan) {
			if p.cfg.Timeouts != (smtp.Timeouts{}) {
				t.Errorf("timeouts %+v", p.cfg.Timeouts)
			}
		}},
		{"attachment and subject", append([]string{"--attach", attach, "--subject", "hi"}, base...), nil, func(t *testing.T, p *sendPlan) {
			var b bytes.Buffer
			if _, err := p.first.WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Subject: hi\r\n", "multipart/mixed", `filename="a.txt"`, base64.StdEncoding.EncodeToString([]byte("attached\n"))} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("message lacks %q:\n%s", want, b.String())
				}
			}
		}},
		{"bcc stays out of the header", []string{"--from", "a@example.org", "--to", "b@example.org", "--bcc", "hidden@example.org"}, nil, func(t *testing.T, p *sendPlan) {
			var b bytes.Buffer
			p.first.WriteTo(&b)
			if strings.Contains(b.String(), "hidden@") {
				t.Errorf("Bcc address in the message:\n%s", b.String())
			}
		}},
		{"html and text", append([]string{"--html", "<p>Hi <b>there</b></p>", "--body", "Hi there"}, base...), nil, func(t *testing.T, p *sendPlan) {
			msg := render(t, p.first)
			for _, want := range []string{"multipart/alternative", "Content-Type: text/plain", "Content-Type: text/html", "Hi there"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		}},
		{"html only derives the text", append([]string{"--html", "<p>Only <i>HTML</i></p>"}, base...), nil, func(t *testing.T, p *sendPlan) {
			msg := render(t, p.first)
			if !strings.Contains(msg, "multipart/alternative") || strings.Contains(msg, "This is a test message") {
				t.Errorf("message:\n%s", msg)
			}
		}},
		{"inline image with cid", append([]string{"--html", `<img src="cid:logo.png">`, "--inline", logo}, base...), nil, func(t *testing.T, p *sendPlan) {
			msg := render(t, p.first)
			for _, want := range []string{"multipart/related", "Content-ID: <logo.png>", "Content-Type: image/png"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		}},
		{"custom header and reply-to", append([]string{"--header", "X-Campaign: spring", "--reply-to", "Help Desk <help@example.org>"}, base...), nil, func(t *testing.T, p *sendPlan) {
			msg := render(t, p.first)
			for _, want := range []string{"X-Campaign: spring\r\n", "Reply-To: Help Desk <help@example.org>\r\n"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		}},
		{"dkim signature", append([]string{"--dkim-key", dkimKey, "--dkim-selector", "sel1"}, base...), nil, func(t *testing.T, p *sendPlan) {
			msg := render(t, p.first)
			if !strings.HasPrefix(msg, "DKIM-Signature:") || !strings.Contains(msg, "d=example.org;") || !strings.Contains(msg, "s=sel1;") {
				t.Errorf("message:\n%s", msg)
			}
			verifyDKIM(t, []byte(msg), "sel1._domainkey.example.org", dkimTXT)
		}},
		{"raw data", append([]string{"--data", raw}, base...), nil, func(t *testing.T, p *sendPlan) {
			var b bytes.Buffer
			p.first.WriteTo(&b)
			if b.String() != "Subject: raw\r\n\r\nbody\r\n" {
				t.Errorf("raw message %q", b.String())
			}
		}},
		{"count over one connection", append([]string{"--server", "h:25", "--count", "3"}, base...), nil, func(t *testing.T, p *sendPlan) {
			m, err := p.compose(2)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			m.WriteTo(&b)
			if p.count != 3 || !strings.Contains(b.String(), "[2/3]") {
				t.Errorf("count %d, message 2:\n%s", p.count, b.String())
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseSend(tc.args, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatalf("parseSend: %v", err)
			}
			tc.check(t, p)
		})
	}
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
		{"CR in recipient", with("--to", "x@example.org\rRCPT TO:<y@example.org>"), "forbidden character"},
		{"LF in sender", []string{"--server", s, "--from", "a@example.org\nDATA", "--to", "b@example.org"}, "forbidden character"},
		{"NUL in recipient", with("--to", "x\x00@example.org"), "forbidden character"},
		{"angle brackets", with("--to", "<x@example.org>"), "forbidden character"},
		{"space in address", with("--cc", "x y@example.org"), "forbidden character"},
		{"not an address", with("--to", "nobody"), "local@domain"},
		{"empty list item", with("--to", "x@example.org,,y@example.org"), "empty address"},
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
