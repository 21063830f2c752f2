package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// script is a scripted SMTP server: it answers each command by its verb
// ("EHLO", "MAIL", "RCPT", "DATA", "." for the end of the message,
// "RSET", "QUIT", "AUTH"; "RCPT addr" overrides "RCPT" for one
// recipient) with the reply given, or a default. The reply "<close>"
// closes the connection without a reply. It records every line it reads.
type script struct {
	t        *testing.T
	ln       net.Listener
	greeting string
	replies  map[string]string
	// hold, if set for a verb, is waited on before that verb is answered.
	hold map[string]chan struct{}

	mu    sync.Mutex
	lines []string
	conns int
}

// defaultReplies answer a plain ESMTP server with PIPELINING and AUTH.
func defaultReplies() map[string]string {
	return map[string]string{
		"EHLO": "250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME",
		"HELO": "250 mx.test",
		"MAIL": "250 2.1.0 Ok",
		"RCPT": "250 2.1.5 Ok",
		"DATA": "354 End data with <CR><LF>.<CR><LF>",
		".":    "250 2.0.0 Ok: queued as ABC123",
		"RSET": "250 2.0.0 Ok",
		"QUIT": "221 2.0.0 Bye",
		"AUTH": "235 2.7.0 Authentication successful",
	}
}

func startScript(t *testing.T, overrides map[string]string) *script {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, ln: ln, greeting: "220 mx.test ESMTP", replies: defaultReplies(), hold: map[string]chan struct{}{}}
	for k, v := range overrides {
		if k == "GREETING" {
			s.greeting = v
			continue
		}
		s.replies[k] = v
	}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *script) addr() string { return s.ln.Addr().String() }

func (s *script) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go s.session(c)
	}
}

func (s *script) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	say := func(reply string) bool {
		if reply == "<close>" {
			return false
		}
		_, err := c.Write([]byte(reply + "\r\n"))
		return err == nil
	}
	if !say(s.greeting) || !strings.HasPrefix(s.greeting, "220") {
		return
	}
	inData, inAuthLogin := false, 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		if inData {
			if line == "." {
				inData = false
				if !say(s.reply(".", "")) {
					return
				}
			}
			continue
		}
		if inAuthLogin > 0 {
			inAuthLogin--
			reply := "334 UGFzc3dvcmQ6"
			if inAuthLogin == 0 {
				reply = s.reply("AUTH", "")
			}
			if !say(reply) {
				return
			}
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if ch := s.hold[verb]; ch != nil {
			<-ch
		}
		reply := s.reply(verb, arg)
		switch {
		case verb == "DATA" && strings.HasPrefix(reply, "354"):
			inData = true
		case verb == "AUTH" && strings.HasPrefix(strings.ToUpper(arg), "LOGIN"):
			inAuthLogin = 2
			reply = "334 VXNlcm5hbWU6"
		}
		if !say(reply) || verb == "QUIT" {
			return
		}
	}
}

// reply finds the reply to verb with argument arg.
func (s *script) reply(verb, arg string) string {
	if verb == "RCPT" {
		addr := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(arg, ":", 2)[len(strings.SplitN(arg, ":", 2))-1], "<"), ">")
		if r, ok := s.replies["RCPT "+addr]; ok {
			return r
		}
	}
	if r, ok := s.replies[verb]; ok {
		return r
	}
	return "502 5.5.2 Error: command not recognized"
}

// received returns the lines the server read.
func (s *script) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *script) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// count returns how many received lines start with prefix.
func (s *script) count(prefix string) int {
	n := 0
	for _, l := range s.received() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// run runs "sockmail send" with args and returns the status and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runSend(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func noEnv(string) string { return "" }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

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

// TestExitStatusPerPhase runs a send against a server scripted to fail at
// each phase in turn and checks the status and the outcome line.
func TestExitStatusPerPhase(t *testing.T) {
	tests := []struct {
		name     string
		replies  map[string]string
		extra    []string
		want     int
		outcome  string // in the last stdout line
		notSent  string // a command the server must not have seen
		mustSend string // a command the server must have seen
	}{
		{"sent", nil, nil, exitOK, "message 1/1: sent (250 2.0.0 Ok: queued as ABC123); queue id ABC123; accepted: b@example.org (250 2.1.5 Ok)", "", "QUIT"},
		{"greeting refused", map[string]string{"GREETING": "554 5.3.2 go away"}, nil, exitGreeting, "permanent failure in greeting", "EHLO", ""},
		{"greeting 421", map[string]string{"GREETING": "421 4.3.2 busy"}, nil, exitGreeting, "temporary failure in greeting", "EHLO", ""},
		{"ehlo refused", map[string]string{"EHLO": "550 no"}, nil, exitEHLO, "in ehlo", "MAIL", ""},
		{"starttls required but not offered", nil, []string{"--tls", "starttls"}, exitStartTLS, "in starttls", "MAIL", ""},
		{"auth refused", map[string]string{"AUTH": "535 5.7.8 Authentication failed"}, []string{"--tls", "none", "--allow-insecure-auth", "--auth-user", "u", "--auth-password", "p"}, exitAuth, "in auth", "MAIL", ""},
		{"mail refused", map[string]string{"MAIL": "550 5.7.1 sender rejected"}, nil, exitMail, "in mail", "", ""},
		{"every rcpt refused", map[string]string{"RCPT": "550 5.1.1 no such user"}, nil, exitRcpt, "refused: b@example.org (550 5.1.1 no such user)", "", ""},
		{"some rcpt refused", map[string]string{"RCPT c@example.org": "550 5.1.1 no such user"}, []string{"--to", "c@example.org"}, exitPartial, "partly sent (250 2.0.0 Ok: queued as ABC123); queue id ABC123; accepted: b@example.org (250 2.1.5 Ok); refused: c@example.org (550 5.1.1 no such user)", "", "QUIT"},
		{"data refused", map[string]string{"DATA": "554 5.5.1 no valid recipients"}, nil, exitData, "in data", "", ""},
		{"message refused", map[string]string{".": "554 5.7.1 spam"}, nil, exitData, "permanent failure in body", "", ""},
		{"message deferred", map[string]string{".": "451 4.3.0 try later"}, nil, exitData, "temporary failure in body", "", ""},
		{"connection lost after the message", map[string]string{".": "<close>"}, nil, exitUnknown, "unknown outcome", "", ""},
		{"quit after ehlo", nil, []string{"--quit-after", "ehlo"}, exitOK, "message 1/1: stopped after ehlo, as asked", "MAIL", "QUIT"},
		{"quit after rcpt", nil, []string{"--quit-after", "rcpt"}, exitOK, "stopped after rcpt, as asked; accepted: b@example.org", "DATA", "RSET"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, tc.replies)
			args := append([]string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--timeout", "5s"}, tc.extra...)
			code, stdout, stderr := run(t, args...)
			if code != tc.want {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr: %s", code, tc.want, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, tc.outcome) {
				t.Errorf("outcome line %q lacks %q", last, tc.outcome)
			}
			if tc.notSent != "" && srv.count(tc.notSent) > 0 {
				t.Errorf("server saw %s: %q", tc.notSent, srv.received())
			}
			if tc.mustSend != "" && srv.count(tc.mustSend) == 0 {
				t.Errorf("server did not see %s: %q", tc.mustSend, srv.received())
			}
		})
	}
}

func TestConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stdout, _ := run(t, "--server", addr, "--from", "a@example.org", "--to", "b@example.org", "--timeout", "2s")
	if code != exitConnect {
		t.Fatalf("status %d, want %d\n%s", code, exitConnect, stdout)
	}
	if !strings.Contains(stdout, "== connect to "+addr+" failed") || !strings.Contains(stdout, "in connect") {
		t.Errorf("output lacks the connect failure:\n%s", stdout)
	}
}

func TestInterrupted(t *testing.T) {
	srv := startScript(t, nil)
	release := make(chan struct{})
	srv.hold["MAIL"] = release
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	var stdout, stderr syncBuffer
	code := runSend(ctx, []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org"}, &stdout, &stderr)
	if code != exitInterrupted {
		t.Fatalf("status %d, want %d\n%s", code, exitInterrupted, stdout.String())
	}
}

// TestTranscriptIsLive holds the server's reply to MAIL and checks that
// the lines so far are already printed.
func TestTranscriptIsLive(t *testing.T) {
	srv := startScript(t, map[string]string{"EHLO": "250-mx.test\r\n250 8BITMIME"}) // no PIPELINING: MAIL goes alone
	release := make(chan struct{})
	srv.hold["MAIL"] = release
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- runSend(context.Background(), []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "-> MAIL FROM:<a@example.org>") {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("MAIL FROM not printed while the server holds its reply:\n%s", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(stdout.String(), "message 1/1") {
		t.Fatal("outcome printed before the send ended")
	}
	close(release)
	if code := <-done; code != 0 {
		t.Fatalf("status %d\n%s", code, stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{"<- 220 mx.test ESMTP", "-> EHLO localhost", "<- 250 2.1.0 Ok", "-> DATA", "-> Subject: sockmail test", "<- 221 2.0.0 Bye", "message 1/1: sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestQuietAndShowBody(t *testing.T) {
	srv := startScript(t, nil)
	args := []string{"--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--body", "secret body line"}
	_, stdout, _ := run(t, append(args, "--quiet")...)
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "message 1/1: sent") {
		t.Errorf("--quiet printed:\n%s", stdout)
	}
	_, stdout, _ = run(t, args...)
	if strings.Contains(stdout, "secret body line") || !strings.Contains(stdout, "the body is not shown") {
		t.Errorf("body shown without --show-body:\n%s", stdout)
	}
	_, stdout, _ = run(t, append(args, "--show-body")...)
	if !strings.Contains(stdout, "-> secret body line") {
		t.Errorf("--show-body did not show the body:\n%s", stdout)
	}
}

func TestCountOverOneConnection(t *testing.T) {
	srv := startScript(t, nil)
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--count", "3")
	if code != 0 {
		t.Fatalf("status %d\n%s", code, stdout)
	}
	if n := srv.connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if n := srv.count("MAIL FROM"); n != 3 {
		t.Errorf("%d MAIL commands, want 3", n)
	}
	if n := srv.count("QUIT"); n != 1 {
		t.Errorf("%d QUIT commands, want 1", n)
	}
	for i := 1; i <= 3; i++ {
		if want := "message " + string(rune('0'+i)) + "/3: sent"; !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stdout, "[3/3]") {
		t.Errorf("message subjects are not numbered:\n%s", stdout)
	}
	// Pipelined: the second envelope went before the reply to the end of
	// the first message.
	endOfFirst, secondMail, firstFinal := -1, -1, -1
	mails := 0
	for i, l := range strings.Split(stdout, "\n") {
		switch {
		case endOfFirst < 0 && strings.HasSuffix(l, "-> ."):
			endOfFirst = i
		case strings.Contains(l, "-> MAIL FROM:"):
			if mails++; mails == 2 {
				secondMail = i
			}
		case endOfFirst >= 0 && firstFinal < 0 && strings.Contains(l, "<- 250"):
			firstFinal = i
		}
	}
	if secondMail < 0 || firstFinal < 0 || secondMail > firstFinal {
		t.Errorf("second MAIL at line %d, reply to the first message at line %d: not pipelined\n%s", secondMail, firstFinal, stdout)
	}
}

// TestCountEachMessageItsOwnOutcome: with --count the messages go
// pipelined over one connection, each refusal is that message's, and the
// status is that of the first failure.
func TestCountEachMessageItsOwnOutcome(t *testing.T) {
	srv := startScript(t, map[string]string{".": "554 5.7.1 refused"})
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--count", "3")
	if code != exitData {
		t.Fatalf("status %d, want %d\n%s", code, exitData, stdout)
	}
	for i := 1; i <= 3; i++ {
		if want := fmt.Sprintf("message %d/3: permanent failure in body: smtp: body: 554 5.7.1 refused", i); !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if srv.connections() != 1 || srv.count("MAIL FROM") != 3 || srv.count("QUIT") != 1 {
		t.Errorf("%d connections, %d MAIL, %d QUIT; want 1, 3, 1: %q", srv.connections(), srv.count("MAIL FROM"), srv.count("QUIT"), srv.received())
	}
}

func TestJSONOutput(t *testing.T) {
	srv := startScript(t, map[string]string{"RCPT c@example.org": "550 5.1.1 no such user"})
	code, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org,c@example.org", "--json")
	if code != exitPartial {
		t.Fatalf("status %d\n%s", code, stdout)
	}
	var doc struct {
		Server   string `json:"server"`
		ExitCode int    `json:"exit_code"`
		Messages []struct {
			Status     string `json:"status"`
			QueueID    string `json:"queue_id"`
			FinalCode  int    `json:"final_code"`
			Recipients []struct {
				Address  string `json:"address"`
				Accepted bool   `json:"accepted"`
				Code     int    `json:"code"`
			} `json:"recipients"`
		} `json:"messages"`
		Transcript struct {
			Events []struct {
				Dir  string  `json:"dir"`
				Line string  `json:"line"`
				MS   float64 `json:"ms"`
			} `json:"events"`
		} `json:"transcript"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.Server != srv.addr() || doc.ExitCode != exitPartial || len(doc.Messages) != 1 {
		t.Fatalf("doc %+v", doc)
	}
	m := doc.Messages[0]
	if m.Status != string(smtp.StatusPartial) || m.QueueID != "ABC123" || m.FinalCode != 250 || len(m.Recipients) != 2 || m.Recipients[1].Accepted || m.Recipients[1].Code != 550 {
		t.Errorf("message %+v", m)
	}
	if len(doc.Transcript.Events) < 10 || doc.Transcript.Events[0].Dir != "info" {
		t.Errorf("transcript %+v", doc.Transcript.Events)
	}
}

// TestPasswordNeverPrinted authenticates with each mechanism that sends
// the password and looks for it, and its base64 forms, in all output.
func TestPasswordNeverPrinted(t *testing.T) {
	const user, password = "tester@example.test", "s3cret-Pa55"
	forbidden := []string{
		password,
		base64.StdEncoding.EncodeToString([]byte(password)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password)),
	}
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		for _, mode := range []string{"text", "json"} {
			t.Run(mech+"/"+mode, func(t *testing.T) {
				srv := startScript(t, nil)
				t.Setenv(passwordEnv, password)
				args := []string{"--server", srv.addr(), "--tls", "none", "--allow-insecure-auth", "--auth-user", user, "--auth-mech", mech, "--from", "a@example.org", "--to", "b@example.org"}
				if mode == "json" {
					args = append(args, "--json")
				}
				code, stdout, stderr := run(t, args...)
				if code != 0 {
					t.Fatalf("status %d\n%s%s", code, stdout, stderr)
				}
				if !strings.Contains(stdout, "********") {
					t.Errorf("no redacted AUTH line:\n%s", stdout)
				}
				// The server did get the credentials.
				var seen bool
				for _, l := range srv.received() {
					for _, f := range forbidden[1:] {
						seen = seen || strings.Contains(l, f)
					}
				}
				if !seen {
					t.Errorf("server never received the credentials: %q", srv.received())
				}
				for _, f := range forbidden {
					if strings.Contains(stdout+stderr, f) {
						t.Errorf("output contains %q:\n%s", f, stdout)
					}
				}
			})
		}
	}
}

// TestHostileServerTextIsEscaped checks that control characters in the
// server's replies cannot reach the terminal raw.
func TestHostileServerTextIsEscaped(t *testing.T) {
	srv := startScript(t, map[string]string{"RCPT": "550 5.1.1 \x1b[2J\x1b]0;owned\x07 gone"})
	_, stdout, _ := run(t, "--server", srv.addr(), "--tls", "none", "--from", "a@example.org", "--to", "b@example.org")
	if strings.ContainsAny(stdout, "\x1b\x07") {
		t.Fatalf("raw control characters printed: %q", stdout)
	}
	if !strings.Contains(stdout, `\x1b[2J`) {
		t.Errorf("escaped text missing: %q", stdout)
	}
}

// TestPostfixSubmission is the Done-when check of issue 2: a send to the
// local Postfix submission port with STARTTLS, AUTH and an attachment
// prints the live transcript with the password redacted, and the mail is
// in the Maildir with the attachment intact.
func TestPostfixSubmission(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	for _, mech := range []string{"", "PLAIN", "LOGIN", "CRAM-MD5"} {
		t.Run("mech="+mech, func(t *testing.T) {
			attachment := make([]byte, 300<<10)
			rand.Read(attachment)
			path := filepath.Join(t.TempDir(), "report.bin")
			if err := os.WriteFile(path, attachment, 0o600); err != nil {
				t.Fatal(err)
			}
			token, to := testenv.UniqueToken(), testenv.UniqueAddress()
			args := []string{
				"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile,
				"--auth-user", p.User, "--auth-password", p.Password,
				"--from", p.User, "--to", to, "--subject", "done-when " + token,
				"--body", "issue 2 done-when check\n", "--attach", path,
			}
			if mech != "" {
				args = append(args, "--auth-mech", mech)
			}
			code, stdout, stderr := run(t, args...)
			if code != 0 {
				t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			// The transcript, in order: greeting, EHLO, STARTTLS, the
			// verified certificate, EHLO again, AUTH redacted, the
			// transaction, the queue id, QUIT.
			order := []string{"<- 220 ", "-> EHLO localhost", "-> STARTTLS", "<- 220 2.0.0 Ready to start TLS",
				"== TLS handshake done", "== certificate verified for 127.0.0.1", "-> EHLO localhost",
				"-> AUTH ", "<- 235 2.7.0 Authentication successful", "-> MAIL FROM:<" + p.User + ">",
				"-> RCPT TO:<" + to + ">", "-> Content-Type: multipart/mixed", "== queue id: ", "<- 221 ",
				"message 1/1: sent (250 2.0.0 Ok: "}
			rest := stdout
			for _, want := range order {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("transcript lacks %q (in this order):\n%s", want, stdout)
				}
				rest = rest[i+len(want):]
			}
			if !strings.Contains(stdout, "********") {
				t.Errorf("no redacted AUTH payload:\n%s", stdout)
			}
			for _, secret := range []string{
				p.Password,
				base64.StdEncoding.EncodeToString([]byte(p.Password)),
				base64.StdEncoding.EncodeToString([]byte("\x00" + p.User + "\x00" + p.Password)),
			} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("output contains the password or its encoding %q", secret)
				}
			}
			raw := testenv.WaitForMessage(t, p.Maildir, token, 15*time.Second)
			got := attachmentOf(t, raw, "report.bin")
			if !bytes.Equal(got, attachment) {
				t.Errorf("delivered attachment: %d bytes, differs from the %d sent", len(got), len(attachment))
			}
		})
	}
}

// attachmentOf parses a delivered message and returns the decoded content
// of the part with the given file name.
func attachmentOf(t *testing.T, raw []byte, filename string) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no part named %q: %v", filename, err)
		}
		if part.FileName() != filename {
			continue
		}
		if enc := part.Header.Get("Content-Transfer-Encoding"); !strings.EqualFold(enc, "base64") {
			t.Fatalf("attachment encoded %q", enc)
		}
		data, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
		if err != nil {
			t.Fatalf("attachment does not decode: %v", err)
		}
		return data
	}
}

// TestPostfixPhases checks the exit statuses against the real server's
// refusals and a probe that stops early.
func TestPostfixPhases(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	auth := []string{"--ca-file", p.CAFile, "--auth-user", p.User, "--auth-password", p.Password, "--from", p.User}
	tests := []struct {
		name    string
		args    []string
		want    int
		outcome string
	}{
		{"implicit TLS port", append([]string{"--server", p.SMTPSAddr, "--tls", "implicit", "--to", testenv.UniqueAddress()}, auth...), exitOK, "sent"},
		{"recipient refused", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.RejectRecipient550}, auth...), exitRcpt, "refused: " + testenv.RejectRecipient550 + " (550"},
		{"recipient deferred", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.TempFailRecipient451}, auth...), exitRcpt, "temporary failure in rcpt"},
		{"partial", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.UniqueAddress() + "," + testenv.RejectRecipient550}, auth...), exitPartial, "partly sent"},
		{"wrong password", []string{"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile, "--auth-user", p.User, "--auth-password", "wrong", "--from", p.User, "--to", testenv.UniqueAddress()}, exitAuth, "in auth"},
		{"STARTTLS required by the server", []string{"--server", p.SubmissionAddr, "--tls", "none", "--from", p.User, "--to", testenv.UniqueAddress()}, exitMail, "in mail"},
		{"untrusted certificate", []string{"--server", p.SubmissionAddr, "--tls", "starttls", "--from", p.User, "--to", testenv.UniqueAddress()}, exitStartTLS, "in starttls"},
		{"quit after tls", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--quit-after", "tls", "--to", testenv.UniqueAddress()}, auth...), exitOK, "stopped after starttls"},
		{"three over one connection", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--count", "3", "--to", testenv.UniqueAddress()}, auth...), exitOK, "message 3/3: sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append(tc.args, "--timeout", "15s")...)
			if code != tc.want {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.outcome) {
				t.Errorf("output lacks %q:\n%s", tc.outcome, stdout)
			}
		})
	}
}

// render writes a message to a string.
func render(t *testing.T, c io.WriterTo) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// writeDKIMKey writes a new Ed25519 private key as PKCS #8 PEM and returns
// its path and the DNS TXT record that publishes its public key.
func writeDKIMKey(t *testing.T) (string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "dkim.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return path, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

// verifyDKIM checks every DKIM signature of msg with go-msgauth, the key
// published at name as txt.
func verifyDKIM(t *testing.T, msg []byte, name, txt string) {
	t.Helper()
	lookup := func(domain string) ([]string, error) {
		if domain != name {
			return nil, fmt.Errorf("no TXT record for %s", domain)
		}
		return []string{txt}, nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("dkim verify: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("no DKIM signature found")
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("DKIM signature of %s does not verify: %v", v.Domain, v.Err)
		}
	}
}

// TestPostfixFullComposer is the Done-when check of issue 3 through the
// CLI: HTML from a file, a big attachment and an inline image, DKIM
// signed, delivered by the local Postfix; Python's email package (an
// independent parser) reads back every part byte for byte, and the DKIM
// signature verifies.
func TestPostfixFullComposer(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if testenv.InCI() {
			t.Fatalf("%s missing: %v", py, err)
		}
		t.Skipf("%s missing: %v", py, err)
	}
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "x.html")
	html := "<html><body><h1>Grüße</h1><p>Logo: <img src=\"cid:logo.png\"></p></body></html>\n"
	big := make([]byte, 11<<20)
	rand.Read(big)
	logo := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 2000)...)
	for name, data := range map[string][]byte{"x.html": []byte(html), "big.bin": big, "logo.png": logo} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, txt := writeDKIMKey(t)
	token, to := testenv.UniqueToken(), testenv.UniqueAddress()
	code, stdout, stderr := run(t,
		"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile,
		"--auth-user", p.User, "--auth-password", p.Password, "--from", p.User, "--to", to,
		"--subject", "Grüße "+token, "--html-file", htmlPath,
		"--attach", filepath.Join(dir, "big.bin"), "--inline", filepath.Join(dir, "logo.png"),
		"--dkim-key", key, "--dkim-selector", "s1", "--quiet", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("status %d\n%s%s", code, stdout, stderr)
	}
	raw := testenv.WaitForMessage(t, p.Maildir, to, 30*time.Second)

	// Postfix stores LF line ends; the signature was made over CRLF.
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	verifyDKIM(t, crlf, "s1._domainkey.example.test", txt)

	file := filepath.Join(dir, "delivered.eml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import email, email.policy, hashlib, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
parts = []
for part in m.walk():
    if part.is_multipart():
        parts.append({"type": part.get_content_type()})
        continue
    data = part.get_payload(decode=True)
    parts.append({"type": part.get_content_type(), "filename": part.get_filename(), "cid": part.get("Content-ID"),
                  "sha256": hashlib.sha256(data).hexdigest(), "text": part.get_content() if part.get_content_maintype() == "text" else None})
print(json.dumps({"subject": str(m["subject"]), "parts": parts}))
`
	out, err := exec.Command(py, "-c", script, file).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Subject string
		Parts   []struct {
			Type, Filename, Cid, Sha256 string
			Text                        *string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %s: %v", out, err)
	}
	if got.Subject != "Grüße "+token {
		t.Errorf("subject %q", got.Subject)
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	var types []string
	found := map[string]bool{}
	for _, part := range got.Parts {
		types = append(types, part.Type)
		switch {
		case part.Filename == "big.bin":
			found["big"] = part.Sha256 == sum(big)
		case part.Cid == "<logo.png>":
			found["logo"] = part.Sha256 == sum(logo) && part.Type == "image/png"
		case part.Type == "text/html":
			found["html"] = part.Text != nil && *part.Text == html
		case part.Type == "text/plain":
			found["text"] = part.Text != nil && strings.Contains(*part.Text, "Grüße")
		}
	}
	if want := "multipart/mixed multipart/alternative text/plain multipart/related text/html image/png application/octet-stream"; strings.Join(types, " ") != want {
		t.Errorf("structure %q, want %q", strings.Join(types, " "), want)
	}
	for _, k := range []string{"big", "logo", "html", "text"} {
		if !found[k] {
			t.Errorf("part %s missing or not byte-identical; parts %+v", k, got.Parts)
		}
	}
}
