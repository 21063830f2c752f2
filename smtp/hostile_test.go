package smtp

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Tests of the client against servers that misbehave: refusals and drops
// at every phase, deadlines, cancellation, and replies that break the
// protocol. Scripted conversations use the faker and compare the client's
// bytes whole; timing and TLS use real 127.0.0.1:0 listeners (deadlines
// and cancellation: hostile_net_test.go).

const (
	ehloStartTLS = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 STARTTLS\n"
	ehloAuth     = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 AUTH PLAIN LOGIN\n"
	ehloChunking = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 CHUNKING\n"
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
