package smtp

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Tests of the client against servers that misbehave: refusals and drops
// at every phase, deadlines, cancellation, and replies that break the
// protocol. Scripted conversations use the faker and compare the client's
// bytes whole; timing and TLS use real 127.0.0.1:0 listeners.

const (
	ehloStartTLS = "220 mx.test ESMTP\n250-mx.test\n250 STARTTLS\n"
	ehloAuth     = "220 mx.test ESMTP\n250-mx.test\n250 AUTH PLAIN LOGIN\n"
	ehloChunking = "220 mx.test ESMTP\n250-mx.test\n250 CHUNKING\n"
)

// wire returns the client's bytes without the write boundaries.
func (f *faker) wire() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.writes, "")
}

// checkTranscriptOnWire fails when the transcript shows a command line that
// never reached the wire: every client event outside the message body must
// be found, in order, in what the client wrote.
func checkTranscriptOnWire(t *testing.T, events []Event, wire string) {
	t.Helper()
	pos := 0
	for _, ev := range events {
		if ev.Dir != DirClient || ev.Phase == PhaseBody || ev.Secret {
			continue
		}
		i := strings.Index(wire[pos:], ev.Line+"\r\n")
		if i < 0 {
			t.Errorf("transcript shows %q (phase %s) but the client never sent it; wire %q", ev.Line, ev.Phase, wire)
			return
		}
		pos += i + len(ev.Line) + 2
	}
}

// phaseCase is one scripted conversation that fails at a phase.
type phaseCase struct {
	name   string
	server string
	cfg    func(*Config)
	to     []string
	client string // expected writes, "|" between segments
	phase  Phase
	code   int
	status Status
	// quitSent: QUIT went out pipelined with the message before the
	// failure could be known.
	quitSent bool
}

func runPhaseCase(t *testing.T, tc phaseCase) (*Result, *faker, *Transcript, error) {
	t.Helper()
	f := newFaker(tc.server)
	cfg := fakeConfig(f)
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	to := tc.to
	if to == nil {
		to = []string{"b@example.net"}
	}
	res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: to}, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
	if got := f.client(); got != tc.client {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, tc.client)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if e.Phase != tc.phase || e.Code != tc.code {
		t.Errorf("error phase/code = %s/%d, want %s/%d (%v)", e.Phase, e.Code, tc.phase, tc.code, e)
	}
	if st := StatusOf(res, err); st != tc.status {
		t.Errorf("status = %q, want %q (%v)", st, tc.status, err)
	}
	if res == nil {
		t.Errorf("nil result")
	}
	if !f.closed {
		t.Errorf("connection not closed")
	}
	events := cfg.Transcript.Events()
	checkTranscriptOnWire(t, events, f.wire())
	if !tc.quitSent {
		if strings.Contains(f.wire(), "QUIT") {
			t.Errorf("QUIT sent after the server closed the conversation")
		}
		for _, ev := range events {
			if ev.Dir == DirClient && ev.Line == "QUIT" {
				t.Errorf("transcript shows QUIT after the server closed the conversation")
			}
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
	}
	return res, f, cfg.Transcript, err
}

var (
	withStartTLS         = func(c *Config) { c.TLS = TLSStartTLS }
	withStartTLSOptional = func(c *Config) { c.TLS = TLSStartTLSOptional }
	withInsecureAuth     = func(c *Config) {
		c.Auth = &Auth{Username: "u", Password: "p"}
		c.AllowInsecureAuth = true
	}
)

const body = "Subject: hi\r\n\r\nhello\r\n"

// Test421AtEveryPhase: a 421 anywhere is a temporary *Error of that phase,
// and nothing, not even QUIT, is said after it (RFC 5321 3.8).
func Test421AtEveryPhase(t *testing.T) {
	const bye = "421 4.3.2 Service shutting down\n"
	tests := []phaseCase{
		{name: "greeting", server: bye, client: "", phase: PhaseGreeting},
		{name: "ehlo", server: "220 mx.test\n" + bye, client: lf("EHLO client.test\n"), phase: PhaseEHLO},
		{name: "starttls required", server: ehloStartTLS + bye, cfg: withStartTLS,
			client: lf("EHLO client.test\n") + "|" + lf("STARTTLS\n"), phase: PhaseStartTLS},
		{name: "starttls optional: 421 is not a refusal to go on from", server: ehloStartTLS + bye, cfg: withStartTLSOptional,
			client: lf("EHLO client.test\n") + "|" + lf("STARTTLS\n"), phase: PhaseStartTLS},
		{name: "auth", server: ehloAuth + bye, cfg: withInsecureAuth,
			client: lf("EHLO client.test\n") + "|" + lf("AUTH PLAIN AHUAcA==\n"), phase: PhaseAuth},
		{name: "mail", server: ehloPlain + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n"), phase: PhaseMail},
		{name: "mail pipelined", server: ehloPipelining + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"), phase: PhaseMail},
		{name: "rcpt", server: ehloPlain + "250 Ok\n" + bye, to: []string{"b@example.net", "c@example.net"},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n"), phase: PhaseRcpt},
		{name: "rcpt pipelined", server: ehloPipelining + "250 Ok\n" + bye, to: []string{"b@example.net", "c@example.net"},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nRCPT TO:<c@example.net>\nDATA\n"), phase: PhaseRcpt},
		{name: "data", server: ehloPlain + "250 Ok\n250 Ok\n" + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n"), phase: PhaseData},
		{name: "data pipelined", server: ehloPipelining + "250 Ok\n250 Ok\n" + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"), phase: PhaseData},
		{name: "after the body", server: ehloPlain + "250 Ok\n250 Ok\n354 go\n" + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + body + lf(".\n"),
			phase:  PhaseBody},
		{name: "after the body, pipelined (QUIT already sent with it)", server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n" + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"),
			phase:  PhaseBody, quitSent: true},
		{name: "after BDAT LAST", server: ehloChunking + "250 Ok\n250 Ok\n" + bye,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("BDAT 22 LAST\n") + body,
			phase:  PhaseBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.code = 421
			tc.status = StatusTempFail
			_, _, _, err := runPhaseCase(t, tc)
			var e *Error
			if errors.As(err, &e) {
				if !e.Temporary() {
					t.Errorf("421 not temporary: %v", e)
				}
				if e.EnhancedCode != "4.3.2" {
					t.Errorf("enhanced code = %q, want 4.3.2", e.EnhancedCode)
				}
				if e.OutcomeUnknown {
					t.Errorf("a 421 reply is a known outcome")
				}
			}
		})
	}
}

// TestDropAtEveryPhase: a connection closed by the server is a temporary
// failure of the phase it happened in, except after the end of the
// message, where the outcome is unknown.
func TestDropAtEveryPhase(t *testing.T) {
	tests := []phaseCase{
		{name: "before the greeting", server: "", client: "", phase: PhaseGreeting},
		{name: "inside the greeting line", server: "220 mx.te", client: "", phase: PhaseGreeting},
		{name: "ehlo", server: "220 mx.test\n", client: lf("EHLO client.test\n"), phase: PhaseEHLO},
		{name: "inside the ehlo reply", server: "220 mx.test\n250-mx.test\n250-PIPEL", client: lf("EHLO client.test\n"), phase: PhaseEHLO},
		{name: "starttls", server: ehloStartTLS, cfg: withStartTLS,
			client: lf("EHLO client.test\n") + "|" + lf("STARTTLS\n"), phase: PhaseStartTLS},
		{name: "auth", server: ehloAuth, cfg: withInsecureAuth,
			client: lf("EHLO client.test\n") + "|" + lf("AUTH PLAIN AHUAcA==\n"), phase: PhaseAuth},
		{name: "mail", server: ehloPlain,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n"), phase: PhaseMail},
		{name: "mail pipelined", server: ehloPipelining,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"), phase: PhaseMail},
		{name: "rcpt", server: ehloPlain + "250 Ok\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n"), phase: PhaseRcpt},
		{name: "data", server: ehloPlain + "250 Ok\n250 Ok\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n"), phase: PhaseData},
		{name: "data pipelined", server: ehloPipelining + "250 Ok\n250 Ok\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"), phase: PhaseData},
		{name: "bdat before the envelope replies", server: ehloFull,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 22 LAST\n") + body + lf("QUIT\n"),
			phase:  PhaseMail, status: StatusUnknown, quitSent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status == "" {
				tc.status = StatusTempFail
			}
			_, _, _, err := runPhaseCase(t, tc)
			var e *Error
			if errors.As(err, &e) && tc.status == StatusTempFail {
				if !e.Temporary() || e.OutcomeUnknown {
					t.Errorf("temporary=%v unknown=%v, want a temporary known failure: %v", e.Temporary(), e.OutcomeUnknown, e)
				}
				if !errors.Is(err, errConnLost) {
					t.Errorf("err = %v, want it to wrap errConnLost", err)
				}
			}
		})
	}
}

// TestDropAfterEndOfMessage: lost after the final "." (or BDAT LAST) and
// before its reply, the server may or may not have the message.
func TestDropAfterEndOfMessage(t *testing.T) {
	tests := []phaseCase{
		{name: "data", server: ehloPlain + "250 Ok\n250 Ok\n354 go\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + body + lf(".\n")},
		{name: "data pipelined", server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"), quitSent: true},
		{name: "data pipelined, inside the final reply", server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 2.0.0 Ok: que",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"), quitSent: true},
		{name: "bdat", server: ehloChunking + "250 Ok\n250 Ok\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("BDAT 22 LAST\n") + body},
		{name: "bdat pipelined", server: ehloFull + "250 Ok\n250 Ok\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 22 LAST\n") + body + lf("QUIT\n"), quitSent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.phase = PhaseBody
			tc.status = StatusUnknown
			_, _, tr, err := runPhaseCase(t, tc)
			var e *Error
			if errors.As(err, &e) {
				if !e.OutcomeUnknown {
					t.Errorf("OutcomeUnknown not set: %v", e)
				}
				if e.Temporary() {
					t.Errorf("an unknown outcome must not be retried blindly as temporary: %v", e)
				}
				if !strings.Contains(e.Error(), "outcome unknown") {
					t.Errorf("message does not say the outcome is unknown: %v", e)
				}
			}
			if !hasEvent(tr.Events(), DirInfo, "UNKNOWN") {
				t.Errorf("transcript does not say the outcome is unknown")
			}
		})
	}
}

// TestNoQuitReplyIsFine: a server that takes the message and hangs up
// without answering QUIT has still taken the message.
func TestNoQuitReplyIsFine(t *testing.T) {
	for _, server := range []string{
		ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as Q9\n",
		ehloPlain + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as Q9\n",
	} {
		f := newFaker(server)
		res, err := SendMail(context.Background(), fakeConfig(f), Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			strings.NewReader("x\n"), SendOptions{})
		if err != nil || StatusOf(res, err) != StatusSent || res.QueueID != "Q9" {
			t.Errorf("err=%v status=%q queue=%q, want sent Q9", err, StatusOf(res, err), res.QueueID)
		}
	}
}

// TestRefusals covers negative replies that are not 421: DATA refused,
// recipients refused in part or in whole, STARTTLS missing or refused.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name     string
		server   string
		cfg      func(*Config)
		to       []string
		client   string
		status   Status
		phase    Phase
		code     int
		rcpts    []RecipientResult
		info     string // an info event that must be present
		wantTemp bool
	}{
		{
			name:   "DATA refused",
			server: ehloPlain + "250 Ok\n250 Ok\n554 5.5.1 Error: no valid recipients\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + lf("QUIT\n"),
			status: StatusPermFail, phase: PhaseData, code: 554,
		},
		{
			name:   "DATA refused temporarily",
			server: ehloPlain + "250 Ok\n250 Ok\n451 4.3.0 later\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + lf("QUIT\n"),
			status: StatusTempFail, phase: PhaseData, code: 451, wantTemp: true,
		},
		{
			name:   "MAIL refused",
			server: ehloPlain + "550 5.7.1 sender refused\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("QUIT\n"),
			status: StatusPermFail, phase: PhaseMail, code: 550,
		},
		{
			name:   "RCPT partly refused, one at a time",
			server: ehloPlain + "250 Ok\n250 2.1.5 Ok\n550 5.1.1 <c@example.net>: unknown\n452 4.2.2 full\n354 go\n250 Ok: queued as R1\n221 Bye\n",
			to:     []string{"b@example.net", "c@example.net", "d@example.net"},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("RCPT TO:<c@example.net>\n") +
				"|" + lf("RCPT TO:<d@example.net>\n") + "|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
			status: StatusPartial,
			rcpts: []RecipientResult{
				{Address: "b@example.net", Accepted: true, Code: 250, EnhancedCode: "2.1.5", Message: "2.1.5 Ok"},
				{Address: "c@example.net", Code: 550, EnhancedCode: "5.1.1", Message: "5.1.1 <c@example.net>: unknown"},
				{Address: "d@example.net", Code: 452, EnhancedCode: "4.2.2", Message: "4.2.2 full"},
			},
		},
		{
			name:   "RCPT partly refused, pipelined",
			server: ehloPipelining + "250 Ok\n452 4.2.2 full\n250 Ok\n354 go\n250 Ok: queued as R2\n221 Bye\n",
			to:     []string{"b@example.net", "c@example.net"},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nRCPT TO:<c@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"),
			status: StatusPartial,
			rcpts: []RecipientResult{
				{Address: "b@example.net", Code: 452, EnhancedCode: "4.2.2", Message: "4.2.2 full"},
				{Address: "c@example.net", Accepted: true, Code: 250, Message: "Ok"},
			},
		},
		{
			name:   "every RCPT refused, one temporarily: the permanent one decides",
			server: ehloPlain + "250 Ok\n451 4.3.0 later\n550 5.1.1 unknown\n221 Bye\n",
			to:     []string{"b@example.net", "c@example.net"},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("RCPT TO:<c@example.net>\n") + "|" + lf("QUIT\n"),
			status: StatusPermFail, phase: PhaseRcpt, code: 550,
		},
		{
			name:   "every RCPT refused temporarily",
			server: ehloPlain + "250 Ok\n451 4.3.0 later\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("QUIT\n"),
			status: StatusTempFail, phase: PhaseRcpt, code: 451, wantTemp: true,
		},
		{
			name:   "STARTTLS required but not offered: nothing else is said",
			server: ehloPlain + "221 Bye\n", cfg: withStartTLS,
			client: lf("EHLO client.test\n") + "|" + lf("QUIT\n"),
			status: StatusPermFail, phase: PhaseStartTLS,
		},
		{
			name:   "STARTTLS required and refused",
			server: ehloStartTLS + "454 4.7.0 TLS not available\n221 Bye\n", cfg: withStartTLS,
			client: lf("EHLO client.test\n") + "|" + lf("STARTTLS\n") + "|" + lf("QUIT\n"),
			status: StatusTempFail, phase: PhaseStartTLS, code: 454, wantTemp: true,
		},
		{
			name:   "STARTTLS optional and refused: goes on in clear, says so",
			server: ehloStartTLS + "454 4.7.0 TLS not available\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n", cfg: withStartTLSOptional,
			client: lf("EHLO client.test\n") + "|" + lf("STARTTLS\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
			status: StatusSent, info: "refused STARTTLS: going on WITHOUT encryption",
		},
		{
			name:   "STARTTLS optional and not offered: goes on in clear, says so",
			server: ehloPlain + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n", cfg: withStartTLSOptional,
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
			status: StatusSent, info: "does not offer STARTTLS: going on WITHOUT encryption",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			cfg := fakeConfig(f)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			to := tt.to
			if to == nil {
				to = []string{"b@example.net"}
			}
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: to}, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if st := StatusOf(res, err); st != tt.status {
				t.Errorf("status = %q (err %v), want %q", st, err, tt.status)
			}
			if tt.phase != "" {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err = %v, want *Error", err)
				}
				if e.Phase != tt.phase || e.Code != tt.code || e.Temporary() != tt.wantTemp {
					t.Errorf("phase/code/temporary = %s/%d/%v, want %s/%d/%v (%v)", e.Phase, e.Code, e.Temporary(), tt.phase, tt.code, tt.wantTemp, e)
				}
			} else if err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if tt.rcpts != nil {
				if len(res.Recipients) != len(tt.rcpts) {
					t.Fatalf("recipients = %+v, want %+v", res.Recipients, tt.rcpts)
				}
				for i := range tt.rcpts {
					if res.Recipients[i] != tt.rcpts[i] {
						t.Errorf("recipient %d = %+v, want %+v", i, res.Recipients[i], tt.rcpts[i])
					}
				}
			}
			if tt.info != "" && !hasEvent(cfg.Transcript.Events(), DirInfo, tt.info) {
				t.Errorf("no info event %q in:\n%s", tt.info, dumpTranscript(cfg.Transcript))
			}
			checkTranscriptOnWire(t, cfg.Transcript.Events(), f.wire())
		})
	}
}

// TestMalformedReplies: replies that break RFC 5321 are protocol errors
// (permanent, nothing more said); odd but legal ones are accepted.
func TestMalformedReplies(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		server string // raw, CRLF included
		reason string // "" means the send must succeed
		phase  Phase
	}{
		{"line over the limit", "220 " + long(5000) + "\r\n", "longer than", PhaseGreeting},
		{"line over the limit, no newline at all", "220 " + long(20000), "longer than", PhaseGreeting},
		{"line one byte over the limit", "220 " + long(maxLineLength-3) + "\r\n", "longer than", PhaseGreeting},
		{"endless continuation lines", strings.Repeat("220-x\r\n", 1000), "more than 256 lines", PhaseGreeting},
		{"continuation lines over the byte limit", strings.Repeat("220-"+long(4000)+"\r\n", 40), "reply longer than", PhaseGreeting},
		{"codes disagree inside a reply", "220 mx.test\r\n250-mx.test\r\n251 PIPELINING\r\n", "reply code 251 inside a 250 reply", PhaseEHLO},
		{"code class disagrees", "220-mx.test\r\n520 hi\r\n", "inside a 220 reply", PhaseGreeting},
		{"no code", "hello there\r\n", "does not start with a reply code", PhaseGreeting},
		{"short line", "22\r\n", "too short", PhaseGreeting},
		{"code followed by junk", "220x mx.test\r\n", "not followed by space or hyphen", PhaseGreeting},
		{"code out of range", "199 mx.test\r\n", "does not start with a reply code", PhaseGreeting},
		{"line at the limit is fine", "220 " + long(maxLineLength-4) + "\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n250 Ok\r\n221 Bye\r\n", "", ""},
		{"bare code replies", "220\r\n250\r\n250\r\n250\r\n354\r\n250\r\n221\r\n", "", ""},
		{"bare LF line ends", "220 mx.test\n250 mx.test\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n", "", ""},
		{"256 continuation lines are the limit, not over it", strings.Repeat("220-x\r\n", maxReplyLines-1) + "220 x\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n250 Ok\r\n221 Bye\r\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faker{r: strings.NewReader(tt.server)}
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x\n"), SendOptions{})
			if tt.reason == "" {
				if err != nil || StatusOf(res, err) != StatusSent {
					t.Fatalf("err = %v, want success\n%s", err, dumpTranscript(cfg.Transcript))
				}
				return
			}
			var e *Error
			var pe *ProtocolError
			if !errors.As(err, &e) || !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *Error wrapping *ProtocolError", err, err)
			}
			if !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("reason = %q, want %q", pe.Reason, tt.reason)
			}
			if e.Phase != tt.phase || e.Temporary() {
				t.Errorf("phase %s temporary %v, want %s and permanent", e.Phase, e.Temporary(), tt.phase)
			}
			if len(pe.Error()) > 200 {
				t.Errorf("error message is %d bytes: a hostile line must be cut", len(pe.Error()))
			}
			if strings.Contains(f.wire(), "QUIT") {
				t.Errorf("QUIT sent on a connection that is out of step: %q", f.wire())
			}
			for _, ev := range cfg.Transcript.Events() {
				if len(ev.Line) > maxLineLength+100 {
					t.Errorf("transcript holds a %d-byte line", len(ev.Line))
				}
			}
		})
	}
}

// TestEHLOVariants drives whole sends through EHLO replies real servers
// send: lower case keywords, duplicates, legacy AUTH=, SIZE without a
// value, smtp-sink's empty last line.
func TestEHLOVariants(t *testing.T) {
	tests := []struct {
		name   string
		ehlo   string
		cfg    func(*Config)
		auth   string // the server's AUTH replies
		client string // after the EHLO line
		env    Envelope
	}{
		{
			name:   "lower case pipelining still pipelines",
			ehlo:   "250-mx.test\n250-pipelining\n250 size 1000\n",
			env:    Envelope{Size: 10},
			client: lf("MAIL FROM:<a@example.org> SIZE=10\nRCPT TO:<b@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"),
		},
		{
			name:   "smtp-sink: trailing empty 250 line",
			ehlo:   "250-mx.test\n250-PIPELINING\n250-8BITMIME\n250 \n",
			client: lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + body + lf(".\nQUIT\n"),
		},
		{
			name:   "SIZE without a value: parameter sent, no limit",
			ehlo:   "250-mx.test\n250 SIZE\n",
			env:    Envelope{Size: 50000000},
			client: lf("MAIL FROM:<a@example.org> SIZE=50000000\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
		},
		{
			name:   "duplicate SIZE: the first value wins",
			ehlo:   "250-mx.test\n250-SIZE 100000\n250 SIZE 10\n",
			env:    Envelope{Size: 5000},
			client: lf("MAIL FROM:<a@example.org> SIZE=5000\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
		},
		{
			name: "legacy AUTH= line alone",
			ehlo: "250-mx.test\n250 AUTH=LOGIN\n",
			cfg:  withInsecureAuth,
			auth: "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 ok\n",
			client: lf("AUTH LOGIN\n") + "|" + lf("dQ==\n") + "|" + lf("cA==\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
		},
		{
			name: "AUTH and legacy AUTH=, lower case mechanisms",
			ehlo: "250-mx.test\n250-auth login plain\n250-AUTH=LOGIN PLAIN\n250 8bitmime\n",
			cfg:  withInsecureAuth,
			auth: "235 ok\n",
			client: lf("AUTH PLAIN AHUAcA==\n") + "|" + lf("MAIL FROM:<a@example.org> BODY=8BITMIME\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + body + lf(".\n") + "|" + lf("QUIT\n"),
			env: Envelope{EightBit: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Enough positive replies for any of the conversations.
			script := "220 mx.test\n" + tt.ehlo + tt.auth + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
			f := newFaker(script)
			cfg := fakeConfig(f)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			env := tt.env
			env.From, env.To = "a@example.org", []string{"b@example.net"}
			res, err := SendMail(context.Background(), cfg, env, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("err = %v\n%s", err, dumpTranscript(cfg.Transcript))
			}
			want := lf("EHLO client.test\n") + "|" + tt.client
			if got := f.client(); got != want {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
			}
		})
	}
}

// --- real listeners: deadlines and cancellation ---

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
			if elapsed > 5*time.Second {
				t.Errorf("took %v; the write deadline is 300ms", elapsed)
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
			if elapsed < 250*time.Millisecond || elapsed > 1500*time.Millisecond {
				t.Errorf("gave up after %v, want about 300ms", elapsed)
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
	errc := make(chan error, 1)
	go func() {
		_, err := SendMail(ctx, Config{Addr: addr, Transcript: tr}, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x"), SendOptions{})
		errc <- err
	}()
	<-got
	time.Sleep(20 * time.Millisecond) // let the client block in its read
	cancelled := time.Now()
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("send did not return after cancel")
	}
	if d := time.Since(cancelled); d > 100*time.Millisecond {
		t.Errorf("returned %v after cancel, want within 100ms", d)
	}
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
	errc := make(chan error, 1)
	go func() {
		_, err := SendMail(ctx, Config{Addr: addr, Transcript: tr}, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, endlessBody{}, SendOptions{})
		errc <- err
	}()
	// Wait until the client is writing the body.
	deadline := time.Now().Add(5 * time.Second)
	for !hasEvent(tr.Events(), DirServer, "354") {
		if time.Now().After(deadline) {
			t.Fatal("no 354")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the socket buffers fill up
	cancelled := time.Now()
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("send did not return after cancel: the body write ignores the context")
	}
	if d := time.Since(cancelled); d > 100*time.Millisecond {
		t.Errorf("returned %v after cancel, want within 100ms", d)
	}
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
