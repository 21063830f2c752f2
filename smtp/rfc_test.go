package smtp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sockmail/smtp/message"
)

// rfcCase is one scripted conversation of the conformance tests: the
// server's whole side, the exact client bytes ("|" between writes), and
// the outcome the client must report.
type rfcCase struct {
	name   string
	server string
	cfg    func(*Config)
	env    *Envelope // nil: a@example.org to b@example.net
	client string
	status Status
	kind   Kind // Classify(err).Kind; KindNone for no error
	code   int  // the error's reply code
}

// runRFCCase runs tc through SendMail and checks the client's bytes whole,
// the status, the failure kind and code, that the connection was closed,
// and that the transcript shows only what went on the wire.
func runRFCCase(t *testing.T, tc rfcCase) (*Result, *Transcript) {
	t.Helper()
	f := newFaker(tc.server)
	cfg := fakeConfig(f)
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	env := Envelope{From: "a@example.org", To: []string{"b@example.net"}}
	if tc.env != nil {
		env = *tc.env
	}
	res, err := SendMail(context.Background(), cfg, env, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
	if got := f.client(); got != tc.client {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, tc.client)
	}
	if st := StatusOf(res, err); st != tc.status {
		t.Errorf("status = %q (err %v), want %q", st, err, tc.status)
	}
	fl := Classify(err)
	if fl.Kind != tc.kind || fl.Code != tc.code {
		t.Errorf("failure = %s/%d, want %s/%d (err %v)", fl.Kind, fl.Code, tc.kind, tc.code, err)
	}
	if !f.closed {
		t.Errorf("connection not closed")
	}
	checkTranscriptOnWire(t, cfg.Transcript.Events(), f.wire())
	if t.Failed() {
		t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
	}
	return res, cfg.Transcript
}

// TestGreetingRefused: after a 554 (RFC 5321 3.1, 4.1.1.10) or 521 (RFC
// 7504) greeting the client says QUIT, waits for the reply and says
// nothing else; after a 421 (3.8) it says nothing at all.
func TestGreetingRefused(t *testing.T) {
	tests := []rfcCase{
		{
			name:   "554: QUIT, its 221, nothing else",
			server: "554 5.7.1 No SMTP service here\n221 2.0.0 Bye\n",
			client: lf("QUIT\n"),
			status: StatusPermFail, kind: KindGreetingRefused, code: 554,
		},
		{
			name:   "554 in several lines",
			server: "554-5.7.1 mx.test: your address is listed\n554 5.7.1 see https://example.org/\n221 2.0.0 Bye\n",
			client: lf("QUIT\n"),
			status: StatusPermFail, kind: KindGreetingRefused, code: 554,
		},
		{
			name:   "521: the server closes without answering QUIT",
			server: "521 5.3.2 mx.test does not accept mail\n",
			client: lf("QUIT\n"),
			status: StatusPermFail, kind: KindGreetingRefused, code: 521,
		},
		{
			name:   "554 answered with another 554 to QUIT",
			server: "554 5.7.1 go away\n554 5.7.1 go away\n",
			client: lf("QUIT\n"),
			status: StatusPermFail, kind: KindGreetingRefused, code: 554,
		},
		{
			name:   "421: closed without a word",
			server: "421 4.3.2 Service shutting down\n",
			client: "",
			status: StatusTempFail, kind: KindClosed, code: 421,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, tr := runRFCCase(t, tc)
			for _, ev := range tr.Events() {
				if ev.Dir == DirClient && ev.Line != "QUIT" {
					t.Errorf("client said %q after a refused greeting", ev.Line)
				}
			}
		})
	}
}

// ehloAllAuth offers every mechanism sockmail speaks.
const ehloAllAuth = `220 mx.test ESMTP
250-mx.test
250-ENHANCEDSTATUSCODES
250-PIPELINING
250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2
`

// TestAuthExtraChallenge: a server that sends more challenges than the
// mechanism has messages (RFC 4616: PLAIN has one; LOGIN two prompts;
// CRAM-MD5 one response; XOAUTH2 one empty line after its error) is
// answered "*", which cancels the exchange (RFC 4954 4); the client reads
// the 501, fails with a clear error and never sends the password again.
func TestAuthExtraChallenge(t *testing.T) {
	auth := func(mech string) func(*Config) {
		return func(c *Config) {
			c.Auth = &Auth{Mechanism: mech, Username: "u", Password: "p", Token: "tok"}
			c.AllowInsecureAuth = true
		}
	}
	tests := []rfcCase{
		{
			name:   "PLAIN: a challenge after the initial response",
			server: ehloAllAuth + "334 \n501 5.7.0 Authentication cancelled\n221 Bye\n",
			cfg:    auth("PLAIN"),
			client: segs("EHLO client.test\n", "AUTH PLAIN AHUAcA==\n", "*\n", "QUIT\n"),
			status: StatusPermFail, kind: KindAuthRejected, code: 501,
		},
		{
			name:   "LOGIN: a third prompt after the password",
			server: ehloAllAuth + "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n334 UGFzc3dvcmQ6\n501 5.7.0 cancelled\n221 Bye\n",
			cfg:    auth("LOGIN"),
			client: segs("EHLO client.test\n", "AUTH LOGIN\n", "dQ==\n", "cA==\n", "*\n", "QUIT\n"),
			status: StatusPermFail, kind: KindAuthRejected, code: 501,
		},
		{
			name:   "CRAM-MD5: a second challenge after the response",
			server: ehloAllAuth + "334 PDEyMzQ1QG14LnRlc3Q+\n334 PDEyMzQ1QG14LnRlc3Q+\n501 5.7.0 cancelled\n221 Bye\n",
			cfg:    auth("CRAM-MD5"),
			client: segs("EHLO client.test\n", "AUTH CRAM-MD5\n", "dSA4NjkwMjdhYjg4OTM3M2NkNDQ4NWM2MjBlYmVkNDRmMA==\n", "*\n", "QUIT\n"),
			status: StatusPermFail, kind: KindAuthRejected, code: 501,
		},
		{
			name:   "XOAUTH2: a challenge after the empty line",
			server: ehloAllAuth + "334 eyJzdGF0dXMiOiI0MDEifQ==\n334 eyJzdGF0dXMiOiI0MDEifQ==\n501 5.7.0 cancelled\n221 Bye\n",
			cfg:    auth("XOAUTH2"),
			client: segs("EHLO client.test\n", "AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHRvawEB\n", "\n", "*\n", "QUIT\n"),
			status: StatusPermFail, kind: KindAuthRejected, code: 501,
		},
		{
			name:   "the server takes the cancellation for more: nothing more is said",
			server: ehloAllAuth + "334 \n334 \n",
			cfg:    auth("PLAIN"),
			client: segs("EHLO client.test\n", "AUTH PLAIN AHUAcA==\n", "*\n"),
			status: StatusPermFail, kind: KindAuthRejected,
		},
		{
			name:   "PLAIN accepted: no cancellation",
			server: ehloAllAuth + "235 2.7.0 ok\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			cfg:    auth("PLAIN"),
			client: segs("EHLO client.test\n", "AUTH PLAIN AHUAcA==\n", "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n",
				"Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, tr := runRFCCase(t, tc)
			if tc.status != StatusSent && !strings.Contains(dumpTranscript(tr), "cancelling the exchange") {
				t.Errorf("the transcript does not say the exchange was cancelled")
			}
		})
	}
}

// TestVerdictOutOfStep: replies around DATA that do not arrive in the
// order expected (RFC 5321 4.1.1.4, 4.2; RFC 2920 3.1) never make a
// success: exactly one reply after the "." is the verdict, a reply that
// cannot answer the command it was read for stops the conversation, and
// when the client cannot tell which reply was the verdict the outcome is
// unknown.
func TestVerdictOutOfStep(t *testing.T) {
	envData := "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
	bodyQuit := "Subject: hi\n\nhello\n.\nQUIT\n"
	tests := []rfcCase{
		{
			name:   "an extra 250 before the DATA 354, then a refusal: not sent",
			server: ehloPipelining + "250 Ok\n250 Ok\n250 Ok\n354 go\n554 5.7.1 rejected\n221 Bye\n",
			client: segs("EHLO client.test\n", envData),
			status: StatusTempFail, kind: KindOther,
		},
		{
			name:   "without PIPELINING: DATA answered 250",
			server: ehloPlain + "250 Ok\n250 Ok\n250 Ok\n354 go\n554 5.7.1 rejected\n",
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org>\n", "RCPT TO:<b@example.net>\n", "DATA\n"),
			status: StatusTempFail, kind: KindOther,
		},
		{
			name:   "a stray 250 after the 354, the real verdict a refusal: unknown, never sent",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 2.0.0 Ok\n554 5.7.1 rejected\n221 Bye\n",
			client: segs("EHLO client.test\n", envData, bodyQuit),
			status: StatusUnknown, kind: KindUnknownOutcome,
		},
		{
			name:   "a 354 followed at once by a refusal: the refusal is the verdict",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n554 5.7.1 rejected\n221 Bye\n",
			client: segs("EHLO client.test\n", envData, bodyQuit),
			status: StatusPermFail, kind: KindMessageRefused, code: 554,
		},
		{
			name:   "a second 354 as the reply to the dot: unknown",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n354 go\n221 Bye\n",
			client: segs("EHLO client.test\n", envData, bodyQuit),
			status: StatusUnknown, kind: KindUnknownOutcome,
		},
		{
			name:   "354 to MAIL: out of step, nothing more said",
			server: ehloPipelining + "354 go\n250 Ok\n250 Ok\n",
			client: segs("EHLO client.test\n", envData),
			status: StatusTempFail, kind: KindOther,
		},
		{
			name:   "a refusal of the message followed by a 250 to QUIT: the refusal stands",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n554 5.7.1 rejected\n250 Ok\n",
			client: segs("EHLO client.test\n", envData, bodyQuit),
			status: StatusPermFail, kind: KindMessageRefused, code: 554,
		},
		{
			name:   "a 503 to the QUIT pipelined after the dot is not a failure: QUIT again",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 2.0.0 Ok: queued as Q9\n503 5.5.1 pipelined after end of DATA\n221 Bye\n",
			client: segs("EHLO client.test\n", envData, bodyQuit, "QUIT\n"),
			status: StatusSent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runRFCCase(t, tc) })
	}
}

// ehloUTF8 offers SMTPUTF8 and 8BITMIME; ehloUTF8Only SMTPUTF8 alone.
const (
	ehloUTF8     = "220 mx.test ESMTP\n250-mx.test\n250-8BITMIME\n250 SMTPUTF8\n"
	ehloUTF8Only = "220 mx.test ESMTP\n250-mx.test\n250 SMTPUTF8\n"
)

// TestBodyWithSMTPUTF8: SMTPUTF8 does not imply 8BITMIME (RFC 6531 1.2,
// 3.4): 8-bit content, a UTF-8 header included, is declared BODY=8BITMIME
// (RFC 6152 3) also when SMTPUTF8 is used, whenever the server offers
// 8BITMIME; and a raw message with a UTF-8 header and an 8-bit body sets
// both in the envelope its callers build.
func TestBodyWithSMTPUTF8(t *testing.T) {
	raw := func(data string) *Envelope {
		m, err := message.RawBytes("a@example.org", []string{"b@example.net"}, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return &Envelope{From: m.EnvelopeFrom(), To: m.Recipients(), SMTPUTF8: m.NeedsSMTPUTF8(), EightBit: m.Needs8BitMIME()}
	}
	rest := "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
	dataQuit := func(mail string) string {
		return segs("EHLO client.test\n", mail+"\n", "RCPT TO:<b@example.net>\n", "DATA\n", "Subject: hi\n\nhello\n.\n", "QUIT\n")
	}
	tests := []rfcCase{
		{
			name:   "SMTPUTF8 asked for: BODY=8BITMIME too",
			server: ehloUTF8 + rest,
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, SMTPUTF8: true},
			client: dataQuit("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"),
			status: StatusSent,
		},
		{
			name:   "an 8-bit body with SMTPUTF8",
			server: ehloUTF8 + rest,
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, SMTPUTF8: true, EightBit: true},
			client: dataQuit("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"),
			status: StatusSent,
		},
		{
			name:   "a UTF-8 address: both",
			server: ehloUTF8 + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "jörg@example.org", To: []string{"b@example.net"}},
			client: dataQuit("MAIL FROM:<jörg@example.org> BODY=8BITMIME SMTPUTF8"),
			status: StatusSent,
		},
		{
			name:   "an 8-bit body without SMTPUTF8",
			server: ehloUTF8 + rest,
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, EightBit: true},
			client: dataQuit("MAIL FROM:<a@example.org> BODY=8BITMIME"),
			status: StatusSent,
		},
		{
			name:   "a raw message with a UTF-8 header and an 8-bit body sets both",
			server: ehloUTF8 + rest,
			env:    raw("From: jörg <a@example.org>\r\nSubject: grüße\r\n\r\nnaïve\r\n"),
			client: dataQuit("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"),
			status: StatusSent,
		},
		{
			name:   "a raw message with a UTF-8 header and an ASCII body: BODY=8BITMIME for the header",
			server: ehloUTF8 + rest,
			env:    raw("From: jörg <a@example.org>\r\nSubject: grüße\r\n\r\nplain\r\n"),
			client: dataQuit("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"),
			status: StatusSent,
		},
		{
			name:   "8BITMIME not offered: SMTPUTF8 alone",
			server: ehloUTF8Only + rest,
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, SMTPUTF8: true},
			client: dataQuit("MAIL FROM:<a@example.org> SMTPUTF8"),
			status: StatusSent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runRFCCase(t, tc) })
	}
}

// TestClassifyOutOfStep: the error of replies out of step is temporary
// and not a reply of the server's.
func TestClassifyOutOfStep(t *testing.T) {
	c := &Client{tr: NewTranscript()}
	e := c.outOfStep(PhaseData, &Reply{Code: 250, Lines: []string{"Ok"}}, "DATA")
	if !e.Temporary() || e.Code != 0 || !errors.Is(c.broken, e) {
		t.Errorf("outOfStep = %+v, broken %v", e, c.broken)
	}
}

// TestBatchVerdictOutOfStep: in a batch, a stray reply taken as the
// verdict on one message shows up as replies out of step to the next
// envelope: the earlier message's outcome becomes unknown (never "sent")
// and the later one is not sent.
func TestBatchVerdictOutOfStep(t *testing.T) {
	tests := []struct {
		name   string
		server string
		client string
		status []Status
	}{
		{
			name:   "a stray 250 before the refusal of message 1",
			server: ehloPipelining + envOK + "250 2.0.0 stray\n554 5.7.1 rejected\n250 Ok\n250 Ok\n354 go\n",
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2)),
			status: []Status{StatusUnknown, StatusTempFail},
		},
		{
			name:   "in step: both sent",
			server: ehloPipelining + envOK + queued("A1") + envOK + queued("A2") + "221 Bye\n",
			client: segs("EHLO client.test\n", envSeg(1), bodySeg(1)+envSeg(2), bodySeg(2)+"QUIT\n"),
			status: []Status{StatusSent, StatusSent},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			c, err := Open(context.Background(), fakeConfig(f))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := c.SendBatch(context.Background(), batchMessages(2), true)
			if got := f.client(); got != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tc.client)
			}
			for i, o := range out {
				if st := StatusOf(o.Result, o.Err); st != tc.status[i] {
					t.Errorf("message %d: status %q (err %v), want %q", i+1, st, o.Err, tc.status[i])
				}
			}
			checkTranscriptOnWire(t, c.Transcript().Events(), f.wire())
		})
	}
}
