package smtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// faker is a scripted connection in the manner of net/smtp's tests: the
// server's whole side is written in advance, and every client write is
// kept as a separate segment, so a test can see which commands went out
// together (pipelining) and compare the client's bytes whole.
type faker struct {
	mu     sync.Mutex
	r      io.Reader
	writes []string
	closed bool
}

func newFaker(server string) *faker {
	return &faker{r: strings.NewReader(strings.ReplaceAll(server, "\n", "\r\n"))}
}

// Read returns at most one line: the server's lines arrive one by one,
// each just when the client reads it, so nothing the client has not read
// yet waits in its buffer where a reply ends (stepFaker puts replies in
// the same read on purpose).
func (f *faker) Read(p []byte) (int, error) {
	for i := range p {
		if _, err := f.r.Read(p[i : i+1]); err != nil {
			if i > 0 {
				return i, nil
			}
			return 0, err
		}
		if p[i] == '\n' {
			return i + 1, nil
		}
	}
	return len(p), nil
}
func (f *faker) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, string(p))
	return len(p), nil
}
func (f *faker) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}
func (f *faker) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (f *faker) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (f *faker) SetDeadline(t time.Time) error      { return nil }
func (f *faker) SetReadDeadline(t time.Time) error  { return nil }
func (f *faker) SetWriteDeadline(t time.Time) error { return nil }

// client returns everything the client wrote, segments joined by "|" so
// the expected string shows the write boundaries.
func (f *faker) client() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.writes, "|")
}

// connDialer hands out one prepared connection.
type connDialer struct{ conn net.Conn }

func (d connDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.conn, nil
}

// fakeConfig returns a config that talks to f.
func fakeConfig(f *faker) Config {
	return Config{Addr: "127.0.0.1:25", Dialer: connDialer{f}, LocalName: "client.test", Transcript: NewTranscript()}
}

// lf converts a readable expected string with "\n" into CRLF.
func lf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const ehloFull = `220 mx.test ESMTP
250-mx.test
250-PIPELINING
250-SIZE 10240000
250-8BITMIME
250-SMTPUTF8
250-DSN
250-ENHANCEDSTATUSCODES
250 CHUNKING
`

const ehloPipelining = `220 mx.test ESMTP
250-mx.test
250-ENHANCEDSTATUSCODES
250-PIPELINING
250-SIZE 10240000
250 8BITMIME
`

const ehloPlain = `220 mx.test ESMTP
250-mx.test
250-ENHANCEDSTATUSCODES
250 SIZE
`

func TestSendScripted(t *testing.T) {
	body := "Subject: hi\n\nhello\n"
	tests := []struct {
		name     string
		server   string
		env      Envelope
		cfg      func(*Config)
		client   string // expected writes, "|" between segments
		status   Status
		queueID  string
		errPhase Phase
		errCode  int
	}{
		{
			name:   "pipelining: three waits, QUIT rides with the body",
			server: ehloPipelining + "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n250 2.0.0 Ok: queued as 4AbC12\n221 2.0.0 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" +
				lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent, queueID: "4AbC12",
		},
		{
			name: "pipelining: ten recipients still one write",
			server: ehloPipelining + "250 Ok\n" + strings.Repeat("250 Ok\n", 10) +
				"354 go\n250 Ok: queued as Q1\n221 Bye\n",
			env: Envelope{From: "a@example.org", To: []string{"r0@x.test", "r1@x.test", "r2@x.test", "r3@x.test", "r4@x.test", "r5@x.test", "r6@x.test", "r7@x.test", "r8@x.test", "r9@x.test"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\n"+
					"RCPT TO:<r0@x.test>\nRCPT TO:<r1@x.test>\nRCPT TO:<r2@x.test>\nRCPT TO:<r3@x.test>\nRCPT TO:<r4@x.test>\n"+
					"RCPT TO:<r5@x.test>\nRCPT TO:<r6@x.test>\nRCPT TO:<r7@x.test>\nRCPT TO:<r8@x.test>\nRCPT TO:<r9@x.test>\nDATA\n") + "|" +
				lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent, queueID: "Q1",
		},
		{
			name:   "chunking: two waits, envelope and BDAT LAST and QUIT in one write",
			server: ehloFull + "250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.0.0 Ok: queued as C1\n221 2.0.0 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 22 LAST\nSubject: hi\n\nhello\nQUIT\n"),
			status: StatusSent, queueID: "C1",
		},
		{
			name:   "no ESMTP extensions: one command a wait",
			server: ehloPlain + "250 Ok\n250 Ok\n354 go\n250 Ok id=1abc-XY\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + lf("Subject: hi\n\nhello\n.\n") + "|" + lf("QUIT\n"),
			status: StatusSent, queueID: "1abc-XY",
		},
		{
			name:   "HELO fallback on 502",
			server: "220 old.test\n502 5.5.2 what\n250 old.test\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			client: lf("EHLO client.test\n") + "|" + lf("HELO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") +
				"|" + lf("DATA\n") + "|" + lf("Subject: hi\n\nhello\n.\n") + "|" + lf("QUIT\n"),
			status: StatusSent,
		},
		{
			name:     "no HELO fallback on 421",
			server:   "220 busy.test\n421 4.3.2 shutting down\n",
			env:      Envelope{From: "a@example.org", To: []string{"b@example.net"}},
			client:   lf("EHLO client.test\n"),
			status:   StatusTempFail,
			errPhase: PhaseEHLO, errCode: 421,
		},
		{
			name:   "partial acceptance: the message goes to the accepted recipient",
			server: ehloPipelining + "250 Ok\n550 5.1.1 <x@example.net>: unknown\n250 Ok\n354 go\n250 Ok: queued as P1\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net", "y@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nRCPT TO:<y@example.net>\nDATA\n") + "|" +
				lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusPartial, queueID: "P1",
		},
		{
			name:   "all recipients refused: DATA refused, no body sent",
			server: ehloPipelining + "250 Ok\n550 5.1.1 unknown\n554 5.5.1 Error: no valid recipients\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nDATA\n") + "|" + lf("QUIT\n"),
			status:   StatusPermFail,
			errPhase: PhaseRcpt, errCode: 550,
		},
		{
			name:   "DATA accepted after the envelope failed: an empty message ends it",
			server: ehloPipelining + "250 Ok\n450 4.2.0 try later\n354 go\n554 no valid recipients\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nDATA\n") + "|" + lf(".\n") + "|" + lf("QUIT\n"),
			status:   StatusTempFail,
			errPhase: PhaseRcpt, errCode: 450,
		},
		{
			name:   "message refused after DATA",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n554 5.7.1 content rejected\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nDATA\n") + "|" + lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status:   StatusPermFail,
			errPhase: PhaseBody, errCode: 554,
		},
		{
			name:   "connection lost after the final dot: outcome unknown",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nDATA\n") + "|" + lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status:   StatusUnknown,
			errPhase: PhaseBody,
		},
		{
			name:   "connection lost during the envelope: temporary",
			server: ehloPipelining + "250 Ok\n",
			env:    Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org>\nRCPT TO:<x@example.net>\nDATA\n"),
			status:   StatusTempFail,
			errPhase: PhaseRcpt,
		},
		{
			name:   "DSN, SMTPUTF8 and 8BITMIME parameters",
			server: ehloFull + "250 Ok\n250 Ok\n250 Ok\n221 Bye\n",
			env: Envelope{From: "a@example.org", To: []string{"b+x=y@example.net"}, EightBit: true, SMTPUTF8: true,
				DSN: &DSN{Notify: []string{"failure", "delay"}, Return: "hdrs", EnvID: "id+1", OriginalRecipient: true}},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1\n"+
					"RCPT TO:<b+x=y@example.net> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+2Bx+3Dy@example.net\nBDAT 22 LAST\nSubject: hi\n\nhello\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:   "SIZE sent when the size is known",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 22},
			client: lf("EHLO client.test\n") + "|" +
				lf("MAIL FROM:<a@example.org> SIZE=22\nRCPT TO:<b@example.net>\nDATA\n") + "|" +
				lf("Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:     "over the server's SIZE: refused before MAIL",
			server:   ehloPipelining + "221 Bye\n",
			env:      Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 20000000},
			client:   lf("EHLO client.test\n") + "|" + lf("QUIT\n"),
			status:   StatusPermFail,
			errPhase: PhaseMail,
		},
		{
			name:     "SMTPUTF8 needed but not offered: refused before MAIL",
			server:   ehloPipelining + "221 Bye\n",
			env:      Envelope{From: "a@example.org", To: []string{"jörg@example.net"}},
			client:   lf("EHLO client.test\n") + "|" + lf("QUIT\n"),
			status:   StatusPermFail,
			errPhase: PhaseMail,
		},
		{
			name:     "greeting 554: QUIT and nothing else",
			server:   "554 5.7.1 go away\n221 2.0.0 Bye\n",
			env:      Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client:   lf("QUIT\n"),
			status:   StatusPermFail,
			errPhase: PhaseGreeting, errCode: 554,
		},
		{
			name:     "421 at MAIL",
			server:   ehloPlain + "421 4.7.0 too many\n",
			env:      Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client:   lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n"),
			status:   StatusTempFail,
			errPhase: PhaseMail, errCode: 421,
		},
		{
			name:     "421 at DATA",
			server:   ehloPlain + "250 Ok\n250 Ok\n421 4.4.2 bye\n",
			env:      Envelope{From: "a@example.org", To: []string{"x@example.net"}},
			client:   lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<x@example.net>\n") + "|" + lf("DATA\n"),
			status:   StatusTempFail,
			errPhase: PhaseData, errCode: 421,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			cfg := fakeConfig(f)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res, err := SendMail(context.Background(), cfg, tt.env, strings.NewReader(body), SendOptions{})
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if st := StatusOf(res, err); st != tt.status {
				t.Errorf("status = %q (err %v), want %q", st, err, tt.status)
			}
			if res.QueueID != tt.queueID {
				t.Errorf("queue id = %q, want %q", res.QueueID, tt.queueID)
			}
			if tt.errPhase != "" {
				var e *Error
				if !asError(err, &e) {
					t.Fatalf("err = %v, want *Error", err)
				}
				if e.Phase != tt.errPhase || e.Code != tt.errCode {
					t.Errorf("error phase/code = %s/%d, want %s/%d (%v)", e.Phase, e.Code, tt.errPhase, tt.errCode, e)
				}
			} else if err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if !f.closed {
				t.Errorf("connection not closed")
			}
		})
	}
}

func asError(err error, target **Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// TestBodyOnTheWire checks RFC 5321 2.3.8 and 4.5.2 on every awkward body:
// the server must see exactly the intended lines, once terminated.
func TestBodyOnTheWire(t *testing.T) {
	tests := []struct {
		name, body, wire string
	}{
		{"empty", "", ".\r\n"},
		{"no final newline", "a", "a\r\n.\r\n"},
		{"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
		{"bare CR", "a\rb\r", "a\r\nb\r\n.\r\n"},
		{"CRLF kept", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"LF dot LF", "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"CR dot CRLF", "a\r.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"lone dot line", ".", "..\r\n.\r\n"},
		{"dot first", ".hidden\r\n", "..hidden\r\n.\r\n"},
		{"dots inside lines untouched", "a.b\r\n.", "a.b\r\n..\r\n.\r\n"},
		{"CR CR LF", "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"},
		{"trailing CR", "a\r", "a\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &Client{tr: NewTranscript()}
			rec := newBodyRecorder(c)
			bw := newBodyWriter(&out, true, rec)
			// Write byte by byte as well as whole: the state machine must not
			// depend on how the message is cut.
			for _, whole := range []bool{true, false} {
				out.Reset()
				*bw = *newBodyWriter(&out, true, rec)
				if whole {
					bw.Write([]byte(tt.body))
				} else {
					for i := 0; i < len(tt.body); i++ {
						bw.Write([]byte{tt.body[i]})
					}
				}
				if err := bw.finish(); err != nil {
					t.Fatal(err)
				}
				out.WriteString(".\r\n")
				if out.String() != tt.wire {
					t.Errorf("whole=%v: wire %q, want %q", whole, out.String(), tt.wire)
				}
			}
		})
	}
}

// TestBeforeEnd: the hook runs when all but the end of the message is on
// the wire, and an error from it withholds the end.
func TestBeforeEnd(t *testing.T) {
	body := "Subject: hi\n\nhello\n"
	tests := []struct {
		name    string
		server  string
		hookErr error
		client  string
		status  Status
	}{
		{
			name:   "DATA: the dot follows the hook in a write of its own",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as H1\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" +
				lf("Subject: hi\n\nhello\n") + "|" + lf(".\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:   "BDAT: the data goes as a chunk, the hook, then an empty last chunk",
			server: ehloFull + "250 Ok\n250 Ok\n250 Ok\n250 Ok: queued as H2\n221 Bye\n",
			client: lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\n") + "|" +
				lf("BDAT 22\nSubject: hi\n\nhello\n") + "|" + lf("BDAT 0 LAST\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:    "DATA: a failing hook withholds the dot",
			server:  ehloPipelining + "250 Ok\n250 Ok\n354 go\n",
			hookErr: errors.New("lease lost"),
			client:  lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + lf("Subject: hi\n\nhello\n"),
			status:  StatusTempFail,
		},
		{
			name:    "BDAT: a failing hook withholds the last chunk",
			server:  ehloFull + "250 Ok\n250 Ok\n",
			hookErr: errors.New("lease lost"),
			client:  lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\n") + "|" + lf("BDAT 22\nSubject: hi\n\nhello\n"),
			status:  StatusTempFail,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.server)
			cfg := fakeConfig(f)
			calls := 0
			var seenAtHook string
			cfg.BeforeEnd = func(context.Context) error {
				calls++
				seenAtHook = f.client()
				return tt.hookErr
			}
			res, err := SendMail(context.Background(), cfg, Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader(body), SendOptions{})
			if got := f.client(); got != tt.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tt.client)
			}
			if calls != 1 {
				t.Errorf("hook called %d times", calls)
			}
			if !strings.HasSuffix(seenAtHook, lf("hello\n")) {
				t.Errorf("at the hook the server had %q: the body should be on the wire", seenAtHook)
			}
			if st := StatusOf(res, err); st != tt.status {
				t.Errorf("status %q (err %v), want %q", st, err, tt.status)
			}
		})
	}
}
