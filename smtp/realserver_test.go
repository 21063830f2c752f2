package smtp

import (
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// Real servers, nobody's mocks: the closed loopback Postfix (with Dovecot
// SASL) and aiosmtpd that .ci/servers.sh starts. Each test sends and reads
// the delivered file back. Without the servers the tests skip; under
// CI=true they fail (internal/testenv).

const deliveryWait = testenv.StallLimit

// realMessage is a complete message (Date, Message-ID and From present,
// so Postfix's cleanup adds nothing) whose body follows the marker lines.
func realMessage(token, extraHeaders, body string) string {
	return "From: tester@example.test\r\nTo: someone@example.test\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Message-ID: <" + token + "@sockmail.test>\r\nSubject: " + token + "\r\n" + extraHeaders + "\r\n" + body
}

// normalised returns msg as the server must store it: every line end
// (CRLF, bare CR, bare LF) becomes eol, and the last line is ended.
func normalised(msg, eol string) string {
	s := strings.ReplaceAll(msg, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return strings.ReplaceAll(s, "\n", eol)
}

// clientLines returns the client lines of a transcript.
func clientLines(tr *Transcript) []string { return eventLines(tr.Events(), DirClient) }

func hasLinePrefix(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// TestPostfixMatrix sends through every Postfix port with each TLS mode
// and AUTH mechanism, with PIPELINING and CHUNKING used and disabled, and
// reads each message back from the Maildir byte for byte.
func TestPostfixMatrix(t *testing.T) {
	p := testenv.Postfix(t)
	tests := []struct {
		name               string
		addr               string
		mode               TLSMode
		mech               string // "" no AUTH; "auto" AUTH with no mechanism named
		noPipe, noChunk    bool
		wantTLS, wantMech  string
		wantBDAT, wantPipe bool
	}{
		{name: "2525 plain", addr: p.SMTPAddr, mode: TLSNone, wantBDAT: true, wantPipe: true},
		{name: "2525 starttls", addr: p.SMTPAddr, mode: TLSStartTLS, wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2525 starttls-optional", addr: p.SMTPAddr, mode: TLSStartTLSOptional, wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2525 no pipelining, no chunking", addr: p.SMTPAddr, mode: TLSStartTLS, noPipe: true, noChunk: true, wantTLS: "TLS 1.3"},
		{name: "2525 pipelining, no chunking", addr: p.SMTPAddr, mode: TLSNone, noChunk: true, wantPipe: true},
		{name: "2525 chunking, no pipelining", addr: p.SMTPAddr, mode: TLSNone, noPipe: true, wantBDAT: true},
		{name: "2465 implicit PLAIN", addr: p.SMTPSAddr, mode: TLSImplicit, mech: "PLAIN", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2465 implicit LOGIN", addr: p.SMTPSAddr, mode: TLSImplicit, mech: "LOGIN", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2465 implicit CRAM-MD5", addr: p.SMTPSAddr, mode: TLSImplicit, mech: "CRAM-MD5", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2465 implicit, strongest mechanism", addr: p.SMTPSAddr, mode: TLSImplicit, mech: "auto", wantMech: "CRAM-MD5", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2587 submission PLAIN", addr: p.SubmissionAddr, mode: TLSStartTLS, mech: "PLAIN", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2587 submission LOGIN", addr: p.SubmissionAddr, mode: TLSStartTLS, mech: "LOGIN", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
		{name: "2587 submission CRAM-MD5, nothing pipelined or chunked", addr: p.SubmissionAddr, mode: TLSStartTLS, mech: "CRAM-MD5",
			noPipe: true, noChunk: true, wantTLS: "TLS 1.3"},
		{name: "2587 submission starttls-optional", addr: p.SubmissionAddr, mode: TLSStartTLSOptional, mech: "PLAIN", wantTLS: "TLS 1.3", wantBDAT: true, wantPipe: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token, to := testenv.UniqueToken(), testenv.UniqueAddress()
			tr := NewTranscript()
			cfg := Config{Addr: tt.addr, TLS: tt.mode, TLSConfig: p.TLSConfig(), LocalName: "client.sockmail.test", Transcript: tr,
				DisablePipelining: tt.noPipe, DisableChunking: tt.noChunk}
			if tt.mech != "" {
				cfg.Auth = &Auth{Username: p.User, Password: p.Password}
				if tt.mech != "auto" {
					cfg.Auth.Mechanism = tt.mech
				}
			}
			msg := realMessage(token, "", "Hello from "+tt.name+".\n.leading dot\nlast line")
			res, err := SendMail(context.Background(), cfg, Envelope{From: p.User, To: []string{to}}, strings.NewReader(msg), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
			}
			if !regexp.MustCompile(`^[0-9A-Za-z]{8,}$`).MatchString(res.QueueID) {
				t.Errorf("queue id %q does not look like Postfix's", res.QueueID)
			}
			got := string(testenv.WaitForMessage(t, p.Maildir, token, deliveryWait))
			if !strings.HasSuffix(got, normalised(msg, "\n")) {
				t.Errorf("delivered message does not end with the message sent:\n%q\nwant suffix\n%q", got, normalised(msg, "\n"))
			}
			if !strings.Contains(got, "Delivered-To: "+to) {
				t.Errorf("not delivered to %s", to)
			}
			// The queue id in the final reply is the one in the Received header.
			if !regexp.MustCompile(`\(Postfix\) with E?SMTPS?A? id ` + regexp.QuoteMeta(res.QueueID) + `\b`).MatchString(got) {
				t.Errorf("Received header lacks 'id %s':\n%s", res.QueueID, got[:min(len(got), 600)])
			}
			ev := tr.Events()
			lines := clientLines(tr)
			if tt.wantTLS != "" {
				if !hasEvent(ev, DirInfo, tt.wantTLS) || !hasEvent(ev, DirInfo, "certificate verified for localhost") {
					t.Errorf("no verified %s in:\n%s", tt.wantTLS, dumpTranscript(tr))
				}
				if !strings.Contains(got, "using TLSv1.3") {
					t.Errorf("Received header does not show TLS")
				}
			}
			if tt.mech != "" {
				mech := tt.wantMech
				if mech == "" {
					mech = tt.mech
				}
				if !hasEvent(ev, DirInfo, "authenticating as \""+p.User+"\" with "+mech) {
					t.Errorf("did not authenticate with %s:\n%s", mech, dumpTranscript(tr))
				}
				if !strings.Contains(got, "(Authenticated sender: "+p.User+")") {
					t.Errorf("Received header does not show the authenticated sender")
				}
				assertPasswordAbsent(t, tr, p.Password)
			}
			if hasLinePrefix(lines, "BDAT ") != tt.wantBDAT || hasLinePrefix(lines, "DATA") == tt.wantBDAT {
				t.Errorf("BDAT used %v, DATA used %v; want BDAT %v", hasLinePrefix(lines, "BDAT "), hasLinePrefix(lines, "DATA"), tt.wantBDAT)
			}
			if pipelined := envelopeBeforeReplies(ev); pipelined != tt.wantPipe {
				t.Errorf("envelope pipelined = %v, want %v:\n%s", pipelined, tt.wantPipe, dumpTranscript(tr))
			}
		})
	}
}

// envelopeBeforeReplies reports whether RCPT TO was written before the
// reply to MAIL FROM was read: the mark of a pipelined envelope.
func envelopeBeforeReplies(ev []Event) bool {
	mail := -1
	for i, e := range ev {
		if e.Dir == DirClient && strings.HasPrefix(e.Line, "MAIL FROM:") {
			mail = i
		}
		if mail >= 0 && i > mail {
			if e.Dir == DirServer {
				return false
			}
			if e.Dir == DirClient && strings.HasPrefix(e.Line, "RCPT TO:") {
				return true
			}
		}
	}
	return false
}

func assertPasswordAbsent(t *testing.T, tr *Transcript, password string) {
	t.Helper()
	text := dumpTranscript(tr)
	for _, s := range []string{password, b64(password)} {
		if strings.Contains(text, s) {
			t.Errorf("the transcript holds the password (%q)", s)
		}
	}
}

// awkwardBodies are the bodies RFC 5321 2.3.8 and 4.5.2 make hard: each
// must arrive as one message with exactly the intended lines.
var awkwardBodies = []struct{ name, body string }{
	{"bare LF", "one\ntwo\nthree\n"},
	{"bare CR", "one\rtwo\rthree\r"},
	{"LF dot LF", "before\n.\nafter\n"},
	{"CR dot CRLF", "before\r.\r\nafter\r\n"},
	{"lone dot lines", ".\r\n..\r\n.\r\n...\r\nend"},
	{"dot at the very end", "text\r\n."},
	{"CRLF dot CRLF in the middle", "a\r\n.\r\nb\r\n.\r\n"},
	{"mixed endings", "a\r\nb\nc\rd\r\r\ne\n\n"},
	{"blank lines and dots", "\r\n\r\n.\r\n\r\n"},
}

func TestPostfixAwkwardBodies(t *testing.T) {
	p := testenv.Postfix(t)
	for _, chunk := range []bool{false, true} {
		for _, b := range awkwardBodies {
			name := b.name + " (DATA)"
			if chunk {
				name = b.name + " (BDAT)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				token := testenv.UniqueToken()
				msg := realMessage(token, "", "BEGIN\r\n"+b.body)
				tr := NewTranscript()
				cfg := Config{Addr: p.SMTPAddr, Transcript: tr, DisableChunking: !chunk}
				res, err := SendMail(context.Background(), cfg, Envelope{From: "sender@elsewhere.test", To: []string{testenv.UniqueAddress()}},
					strings.NewReader(msg), SendOptions{})
				if err != nil || StatusOf(res, err) != StatusSent {
					t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
				}
				got := string(testenv.WaitForMessage(t, p.Maildir, token, deliveryWait))
				want := normalised(msg, "\n") // Postfix stores LF line ends
				if !strings.HasSuffix(got, want) {
					t.Errorf("stored:\n%q\nwant it to end with:\n%q", got, want)
				}
				// One message: the body's dots did not end it early.
				if n := strings.Count(got, "Subject: "+token); n != 1 {
					t.Errorf("subject found %d times", n)
				}
			})
		}
	}
}

func TestAIOSMTPDAwkwardBodies(t *testing.T) {
	s := testenv.AIOSMTPD(t)
	for _, b := range awkwardBodies {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			token, to := testenv.UniqueToken(), testenv.UniqueAddress()
			msg := realMessage(token, "", "BEGIN\r\n"+b.body)
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: s.Addr, Transcript: tr}, Envelope{From: "sender@elsewhere.test", To: []string{to}},
				strings.NewReader(msg), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
			}
			got := string(testenv.WaitForMessage(t, s.Maildir, token, deliveryWait))
			// aiosmtpd keeps the bytes as received, dot-unstuffed, CRLF.
			want := "X-Sink-Rcpt-To: <" + to + ">\r\n" + normalised(msg, "\r\n")
			if !strings.HasSuffix(got, want) {
				t.Errorf("stored:\n%q\nwant it to end with:\n%q", got, want)
			}
		})
	}
}

func TestAIOSMTPDSend(t *testing.T) {
	s := testenv.AIOSMTPD(t)
	for _, mode := range []TLSMode{TLSNone, TLSStartTLS} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			token, to := testenv.UniqueToken(), testenv.UniqueAddress()
			msg := realMessage(token, "", "Grüße aus sockmail\n")
			tr := NewTranscript()
			cfg := Config{Addr: s.Addr, TLS: mode, TLSConfig: s.TLSConfig(), LocalName: "client.sockmail.test", Transcript: tr}
			env := Envelope{From: "sender@elsewhere.test", To: []string{to}, EightBit: true, Size: int64(len(msg))}
			res, err := SendMail(context.Background(), cfg, env, strings.NewReader(msg), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
			}
			got := string(testenv.WaitForMessage(t, s.Maildir, token, deliveryWait))
			tlsFlag := "no"
			if mode == TLSStartTLS {
				tlsFlag = "yes"
			}
			want := "X-Sink-Helo: client.sockmail.test\r\nX-Sink-TLS: " + tlsFlag + "\r\n" +
				"X-Sink-Mail-From: <sender@elsewhere.test> SIZE=" + itoa(len(msg)) + " BODY=8BITMIME\r\n" +
				"X-Sink-Rcpt-To: <" + to + ">\r\n" + normalised(msg, "\r\n")
			if !strings.HasSuffix(got, want) {
				t.Errorf("stored:\n%q\nwant it to end with:\n%q", got, want)
			}
			// aiosmtpd offers neither PIPELINING nor CHUNKING.
			if lines := clientLines(tr); hasLinePrefix(lines, "BDAT") || envelopeBeforeReplies(tr.Events()) {
				t.Errorf("used an extension aiosmtpd does not offer:\n%s", dumpTranscript(tr))
			}
		})
	}
}

// TestPostfixRecipients: ten recipients in one transaction, and refused
// recipients reported one by one while the others get the message.
func TestPostfixRecipients(t *testing.T) {
	p := testenv.Postfix(t)
	t.Run("ten recipients", func(t *testing.T) {
		t.Parallel()
		token := testenv.UniqueToken()
		var to []string
		for range 10 {
			to = append(to, testenv.UniqueAddress())
		}
		tr := NewTranscript()
		res, err := SendMail(context.Background(), Config{Addr: p.SMTPAddr, Transcript: tr}, Envelope{From: "sender@elsewhere.test", To: to},
			strings.NewReader(realMessage(token, "", "to ten\n")), SendOptions{})
		if err != nil || StatusOf(res, err) != StatusSent || len(res.Accepted()) != 10 {
			t.Fatalf("send: %v %+v", err, res)
		}
		for _, addr := range to {
			got := string(testenv.WaitForMessage(t, p.Maildir, "Delivered-To: "+addr, deliveryWait))
			if !strings.Contains(got, "Subject: "+token) {
				t.Errorf("copy for %s is another message", addr)
			}
		}
		if !envelopeBeforeReplies(tr.Events()) {
			t.Errorf("ten recipients not pipelined")
		}
	})
	for _, chunk := range []bool{false, true} {
		name := "partial acceptance (DATA)"
		if chunk {
			name = "partial acceptance (BDAT)"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			token, good := testenv.UniqueToken(), testenv.UniqueAddress()
			to := []string{testenv.RejectRecipient550, good, testenv.TempFailRecipient451, testenv.FullRecipient452, "someone@elsewhere.test"}
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: p.SMTPAddr, Transcript: tr, DisableChunking: !chunk},
				Envelope{From: "sender@elsewhere.test", To: to}, strings.NewReader(realMessage(token, "", "partly\n")), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusPartial {
				t.Fatalf("err %v status %q\n%s", err, StatusOf(res, err), dumpTranscript(tr))
			}
			want := []struct {
				code     int
				enhanced string
				text     string
			}{{550, "5.1.1", "User unknown (test)"}, {250, "2.1.5", "Ok"}, {451, "4.3.0", "Temporary failure (test)"},
				{452, "4.2.2", "Mailbox full (test)"}, {554, "5.7.1", "Relay access denied"}}
			if len(res.Recipients) != len(want) {
				t.Fatalf("recipients %+v", res.Recipients)
			}
			for i, w := range want {
				rc := res.Recipients[i]
				if rc.Address != to[i] || rc.Code != w.code || rc.EnhancedCode != w.enhanced || !strings.Contains(rc.Message, w.text) || rc.Accepted != (w.code == 250) {
					t.Errorf("recipient %d = %+v, want %d %s %q", i, rc, w.code, w.enhanced, w.text)
				}
			}
			got := string(testenv.WaitForMessage(t, p.Maildir, token, deliveryWait))
			if !strings.Contains(got, "Delivered-To: "+good) {
				t.Errorf("delivered to the wrong recipient")
			}
		})
	}
}

// TestPostfixRefusals: every kind of refusal Postfix makes, each a typed
// error of the right phase and code.
func TestPostfixRefusals(t *testing.T) {
	p := testenv.Postfix(t)
	tests := []struct {
		name     string
		cfg      Config
		env      Envelope
		headers  string
		phase    Phase
		code     int
		enhanced string
		text     string
	}{
		{name: "header check after DATA", cfg: Config{Addr: p.SMTPAddr, DisableChunking: true},
			env: Envelope{From: "sender@elsewhere.test"}, headers: testenv.RejectHeader + "\r\n",
			phase: PhaseBody, code: 550, enhanced: "5.7.1", text: "Message content rejected (test)"},
		{name: "header check after BDAT", cfg: Config{Addr: p.SMTPAddr},
			env: Envelope{From: "sender@elsewhere.test"}, headers: testenv.RejectHeader + "\r\n",
			phase: PhaseBody, code: 550, enhanced: "5.7.1", text: "Message content rejected (test)"},
		{name: "wrong password, submission", cfg: Config{Addr: p.SubmissionAddr, TLS: TLSStartTLS, TLSConfig: p.TLSConfig(),
			Auth: &Auth{Username: p.User, Password: "wrong-" + p.Password, Mechanism: "PLAIN"}},
			env: Envelope{From: p.User}, phase: PhaseAuth, code: 535, enhanced: "5.7.8", text: "authentication failed"},
		{name: "wrong password, implicit, CRAM-MD5", cfg: Config{Addr: p.SMTPSAddr, TLS: TLSImplicit, TLSConfig: p.TLSConfig(),
			Auth: &Auth{Username: p.User, Password: "wrong", Mechanism: "CRAM-MD5"}},
			env: Envelope{From: p.User}, phase: PhaseAuth, code: 535, enhanced: "5.7.8", text: "authentication failed"},
		{name: "relay denied without AUTH", cfg: Config{Addr: p.SMTPAddr},
			env:   Envelope{From: "sender@elsewhere.test", To: []string{"someone@elsewhere.test"}},
			phase: PhaseRcpt, code: 554, enhanced: "5.7.1", text: "Relay access denied"},
		{name: "submission needs STARTTLS", cfg: Config{Addr: p.SubmissionAddr},
			env: Envelope{From: p.User}, phase: PhaseMail, code: 530, enhanced: "5.7.0", text: "STARTTLS"},
		{name: "submission needs AUTH", cfg: Config{Addr: p.SubmissionAddr, TLS: TLSStartTLS, TLSConfig: p.TLSConfig()},
			env: Envelope{From: p.User}, phase: PhaseRcpt, code: 554, enhanced: "5.7.1"},
		{name: "sender refused", cfg: Config{Addr: p.SMTPAddr},
			env: Envelope{From: testenv.RejectRecipient550}, phase: PhaseMail, code: 550, enhanced: "5.7.1", text: "Access denied (test)"},
		{name: "sender refused temporarily", cfg: Config{Addr: p.SMTPAddr},
			env: Envelope{From: testenv.TempFailRecipient451}, phase: PhaseMail, code: 451, enhanced: "4.3.0"},
		{name: "over the SIZE limit: refused before MAIL", cfg: Config{Addr: p.SMTPAddr},
			env: Envelope{From: "sender@elsewhere.test", Size: 1 << 30}, phase: PhaseMail, text: "the server accepts at most 62914560"},
		{name: "AUTH not offered before TLS on submission", cfg: Config{Addr: p.SubmissionAddr, AllowInsecureAuth: true,
			Auth: &Auth{Username: p.User, Password: p.Password}},
			env: Envelope{From: p.User}, phase: PhaseAuth, text: "does not offer AUTH"},
		{name: "certificate not trusted", cfg: Config{Addr: p.SMTPAddr, TLS: TLSStartTLS},
			env: Envelope{From: "sender@elsewhere.test"}, phase: PhaseStartTLS, text: "certificate did not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token := testenv.UniqueToken()
			tr := NewTranscript()
			cfg := tt.cfg
			cfg.Transcript = tr
			env := tt.env
			if env.To == nil {
				env.To = []string{testenv.UniqueAddress()}
			}
			res, err := SendMail(context.Background(), cfg, env, strings.NewReader(realMessage(token, tt.headers, "refuse me\n")), SendOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error\n%s", err, dumpTranscript(tr))
			}
			if e.Phase != tt.phase || e.Code != tt.code || e.EnhancedCode != tt.enhanced || !strings.Contains(e.Message, tt.text) {
				t.Errorf("err = %v (phase %s code %d enhanced %q); want %s %d %s %q", e, e.Phase, e.Code, e.EnhancedCode, tt.phase, tt.code, tt.enhanced, tt.text)
			}
			wantTemp := tt.code >= 400 && tt.code < 500
			if e.Temporary() != wantTemp {
				t.Errorf("temporary = %v", e.Temporary())
			}
			if st := StatusOf(res, err); (st == StatusTempFail) != wantTemp || (st == StatusPermFail) == wantTemp {
				t.Errorf("status %q", st)
			}
			if cfg.Auth != nil {
				assertPasswordAbsent(t, tr, cfg.Auth.Password)
			}
		})
	}
}

// TestPostfixConnectionReuse: several messages on one connection, with a
// refused transaction in between that makes the client reset, then
// SendAndQuit.
func TestPostfixConnectionReuse(t *testing.T) {
	p := testenv.Postfix(t)
	for _, noPipe := range []bool{false, true} {
		name := "pipelined"
		if noPipe {
			name = "not pipelined"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tr := NewTranscript()
			c, err := Open(ctx, Config{Addr: p.SubmissionAddr, TLS: TLSStartTLS, TLSConfig: p.TLSConfig(), Transcript: tr,
				Auth: &Auth{Username: p.User, Password: p.Password}, DisablePipelining: noPipe})
			if err != nil {
				t.Fatalf("open: %v\n%s", err, dumpTranscript(tr))
			}
			defer c.Close()
			var tokens, ids []string
			send := func(to string, quit bool) (*Result, error) {
				token := testenv.UniqueToken()
				tokens = append(tokens, token)
				env := Envelope{From: p.User, To: []string{to}}
				msg := strings.NewReader(realMessage(token, "", "message "+itoa(len(tokens))+"\n"))
				if quit {
					return c.SendAndQuit(ctx, env, msg)
				}
				return c.Send(ctx, env, msg)
			}
			for i := range 3 {
				res, err := send(testenv.UniqueAddress(), false)
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				ids = append(ids, res.QueueID)
			}
			// A transaction that fails at RCPT leaves the server in a
			// transaction: the next one must start with RSET.
			if _, err := send(testenv.RejectRecipient550, false); err == nil {
				t.Fatal("refused recipient accepted")
			}
			tokens = tokens[:len(tokens)-1]
			res, err := send(testenv.UniqueAddress(), true)
			if err != nil {
				t.Fatalf("send after the refusal: %v\n%s", err, dumpTranscript(tr))
			}
			ids = append(ids, res.QueueID)
			if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 4 {
				t.Errorf("queue ids %q are not four distinct ids", ids)
			}
			for _, token := range tokens {
				testenv.WaitForMessage(t, p.Maildir, token, deliveryWait)
			}
			lines := clientLines(tr)
			if n := countLines(lines, "RSET"); n != 1 {
				t.Errorf("%d RSET, want 1 (after the refused transaction only):\n%s", n, dumpTranscript(tr))
			}
			if n := countLines(lines, "EHLO [127.0.0.1]"); n != 2 {
				t.Errorf("%d EHLO, want 2 (before and after STARTTLS)", n)
			}
			if countLines(lines, "QUIT") != 1 || !hasEvent(tr.Events(), DirServer, "221 2.0.0 Bye") {
				t.Errorf("no clean QUIT")
			}
		})
	}
}

func countLines(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// TestPostfixProbe: StopAfter ends the conversation politely and sends
// nothing.
func TestPostfixProbe(t *testing.T) {
	p := testenv.Postfix(t)
	for _, stop := range []Phase{PhaseConnect, PhaseGreeting, PhaseEHLO, PhaseStartTLS, PhaseAuth, PhaseMail, PhaseRcpt} {
		t.Run(string(stop), func(t *testing.T) {
			t.Parallel()
			tr := NewTranscript()
			cfg := Config{Addr: p.SubmissionAddr, TLS: TLSStartTLS, TLSConfig: p.TLSConfig(), Transcript: tr,
				Auth: &Auth{Username: p.User, Password: p.Password}}
			res, err := SendMail(context.Background(), cfg, Envelope{From: p.User, To: []string{testenv.UniqueAddress()}},
				strings.NewReader("x\n"), SendOptions{StopAfter: stop})
			if err != nil || StatusOf(res, err) != StatusStopped {
				t.Fatalf("err %v status %q\n%s", err, StatusOf(res, err), dumpTranscript(tr))
			}
			lines := clientLines(tr)
			if hasLinePrefix(lines, "DATA") || hasLinePrefix(lines, "BDAT") {
				t.Errorf("message sent on a probe")
			}
			if stop != PhaseConnect && countLines(lines, "QUIT") != 1 {
				t.Errorf("probe did not end with QUIT:\n%s", dumpTranscript(tr))
			}
			if stop == PhaseRcpt && (len(res.Recipients) != 1 || !res.Recipients[0].Accepted) {
				t.Errorf("recipient result %+v", res.Recipients)
			}
		})
	}
}

// TestPostfixInternational: SMTPUTF8 addresses and an 8bit body.
func TestPostfixInternational(t *testing.T) {
	p := testenv.Postfix(t)
	token := testenv.UniqueToken()
	to := "jörg-" + strings.TrimPrefix(token, "tok-") + "@example.test"
	msg := realMessage(token, "", "Grüße, 日本語\n")
	tr := NewTranscript()
	res, err := SendMail(context.Background(), Config{Addr: p.SMTPAddr, Transcript: tr},
		Envelope{From: "sénder@elsewhere.test", To: []string{to}, EightBit: true}, strings.NewReader(msg), SendOptions{})
	if err != nil || StatusOf(res, err) != StatusSent {
		t.Fatalf("send: %v\n%s", err, dumpTranscript(tr))
	}
	if !hasLinePrefix(clientLines(tr), "MAIL FROM:<sénder@elsewhere.test> BODY=8BITMIME SMTPUTF8") {
		t.Errorf("MAIL without SMTPUTF8:\n%s", dumpTranscript(tr))
	}
	got := string(testenv.WaitForMessage(t, p.Maildir, token, deliveryWait))
	if !strings.HasSuffix(got, normalised(msg, "\n")) || !strings.Contains(got, "Delivered-To: "+to) {
		t.Errorf("stored:\n%s", got)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func itoa(n int) string { return strconv.Itoa(n) }
