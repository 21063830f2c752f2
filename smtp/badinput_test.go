package smtp

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Bad input is refused with a clear error before anything is sent: not a
// byte on the wire, and for SendMail not even a connection or a DNS query.

// countDialer counts dial attempts and refuses them.
type countDialer struct{ n atomic.Int32 }

func (d *countDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	return nil, errors.New("test: must not dial")
}

func TestBadInputBeforeConnecting(t *testing.T) {
	ok := Envelope{From: "a@example.org", To: []string{"b@example.net"}}
	tests := []struct {
		name  string
		env   Envelope
		cfg   func(*Config)
		opts  SendOptions
		phase Phase
		msg   string
	}{
		{name: "sender with CR", env: Envelope{From: "a@example.org\r", To: ok.To}, phase: PhaseMail, msg: "forbidden character"},
		{name: "sender with LF and a command", env: Envelope{From: "a@example.org>\nRCPT TO:<x@evil.test", To: ok.To}, phase: PhaseMail, msg: "forbidden character"},
		{name: "sender with NUL", env: Envelope{From: "a\x00@example.org", To: ok.To}, phase: PhaseMail, msg: "forbidden character"},
		{name: "sender with <", env: Envelope{From: "<a@example.org", To: ok.To}, phase: PhaseMail, msg: "forbidden character"},
		{name: "recipient with >", env: Envelope{From: ok.From, To: []string{"b@example.net>"}}, phase: PhaseRcpt, msg: "forbidden character"},
		{name: "recipient with a space", env: Envelope{From: ok.From, To: []string{"b c@example.net"}}, phase: PhaseRcpt, msg: "forbidden character"},
		{name: "recipient with a tab", env: Envelope{From: ok.From, To: []string{"b\t@example.net"}}, phase: PhaseRcpt, msg: "forbidden character"},
		{name: "recipient with CRLF, second of two", env: Envelope{From: ok.From, To: []string{"b@example.net", "c@example.net\r\nDATA"}}, phase: PhaseRcpt, msg: "forbidden character"},
		{name: "recipient with an escape", env: Envelope{From: ok.From, To: []string{"b\x1b@example.net"}}, phase: PhaseRcpt, msg: "control character"},
		{name: "recipient without a domain", env: Envelope{From: ok.From, To: []string{"b"}}, phase: PhaseRcpt, msg: "not of the form local@domain"},
		{name: "recipient too long", env: Envelope{From: ok.From, To: []string{strings.Repeat("b", 250) + "@example.net"}}, phase: PhaseRcpt, msg: "limit is 256"},
		{name: "no recipients", env: Envelope{From: ok.From}, phase: PhaseRcpt, msg: "no recipients"},
		{name: "empty recipient", env: Envelope{From: ok.From, To: []string{""}}, phase: PhaseRcpt, msg: "not of the form"},
		{name: "DSN NOTIFY unknown", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{Notify: []string{"ALWAYS"}}}, phase: PhaseRcpt, msg: "NOTIFY value"},
		{name: "DSN NOTIFY=NEVER with others", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{Notify: []string{"NEVER", "FAILURE"}}}, phase: PhaseRcpt, msg: "NEVER cannot be combined"},
		{name: "DSN ENVID with a space", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{EnvID: "a b"}}, phase: PhaseMail, msg: "printable ASCII"},
		{name: "DSN ENVID with CRLF", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{EnvID: "a\r\nQUIT"}}, phase: PhaseMail, msg: "printable ASCII"},
		{name: "DSN ENVID over 100 characters once xtext-encoded (RFC 3461 4.4)", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{EnvID: strings.Repeat("+", 40)}}, phase: PhaseMail, msg: "ENVID is 120 characters as xtext"},
		{name: "DSN ORCPT over 500 characters once xtext-encoded (RFC 3461 4.2)", env: Envelope{From: ok.From, To: []string{strings.Repeat("=", 62) + "é@" + strings.Repeat("d", 182) + ".example"}, DSN: &DSN{OriginalRecipient: true}}, phase: PhaseRcpt, msg: "ORCPT"},
		{name: "HELO name over 255 octets (RFC 5321 4.5.3.1.2)", env: ok, cfg: func(c *Config) { c.LocalName = strings.Repeat("a", 252) + ".test" }, phase: PhaseEHLO, msg: "limit is 255"},
		{name: "HELO name not ASCII (RFC 5321 4.1.2, RFC 6531 3.7.1)", env: ok, cfg: func(c *Config) { c.LocalName = "bücher.example" }, phase: PhaseEHLO, msg: "A-labels"},
		{name: "DSN RET unknown", env: Envelope{From: ok.From, To: ok.To, DSN: &DSN{Return: "ALL"}}, phase: PhaseMail, msg: "RET value"},
		{name: "HELO name with CRLF", env: ok, cfg: func(c *Config) { c.LocalName = "client.test\r\nMAIL FROM:<x@evil.test>" }, phase: PhaseConnect, msg: "HELO name contains a forbidden character"},
		{name: "HELO name with LF", env: ok, cfg: func(c *Config) { c.LocalName = "client\n" }, phase: PhaseConnect, msg: "forbidden character"},
		{name: "HELO name with a space", env: ok, cfg: func(c *Config) { c.LocalName = "client test" }, phase: PhaseEHLO, msg: "contains a space"},
		{name: "AUTH user with CRLF", env: ok, cfg: func(c *Config) { c.Auth = &Auth{Username: "u\r\nQUIT", Password: "p"} }, phase: PhaseAuth, msg: "line break or NUL"},
		{name: "AUTH token with LF", env: ok, cfg: func(c *Config) { c.Auth = &Auth{Username: "u", Token: "t\n"} }, phase: PhaseAuth, msg: "line break or NUL"},
		{name: "AUTH password with NUL", env: ok, cfg: func(c *Config) { c.Auth = &Auth{Username: "u", Password: "p\x00q"} }, phase: PhaseAuth, msg: "NUL"},
		{name: "unknown TLS mode", env: ok, cfg: func(c *Config) { c.TLS = TLSMode(7) }, phase: PhaseConnect, msg: "unknown TLS mode"},
		{name: "address not host:port", env: ok, cfg: func(c *Config) { c.Addr = "mx.example.net" }, phase: PhaseConnect, msg: "is not host:port"},
		{name: "bad StopAfter", env: ok, opts: SendOptions{StopAfter: PhaseBody}, phase: PhaseConnect, msg: "cannot stop after"},
		{name: "MX mode, bad recipient", env: Envelope{From: ok.From, To: []string{"b@example.net\r\n"}}, cfg: func(c *Config) { c.Addr = "" }, phase: PhaseRcpt, msg: "forbidden character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &countDialer{}
			r := &fakeResolver{}
			tr := NewTranscript()
			cfg := Config{Addr: "mx.example.net:25", Dialer: d, Resolver: r, Transcript: tr}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			res, err := SendMail(context.Background(), cfg, tt.env, strings.NewReader("x\n"), tt.opts)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Phase != tt.phase || e.Code != 0 || e.Temporary() || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("err = %v (phase %s, temporary %v); want phase %s, permanent, %q", e, e.Phase, e.Temporary(), tt.phase, tt.msg)
			}
			if StatusOf(res, err) != StatusPermFail {
				t.Errorf("status %q", StatusOf(res, err))
			}
			if n := d.n.Load(); n != 0 {
				t.Errorf("dialed %d times", n)
			}
			if q := r.questions(); len(q) != 0 {
				t.Errorf("DNS asked %q", q)
			}
			if !hasEvent(tr.Events(), DirInfo, tt.msg) {
				t.Errorf("the refusal is not in the transcript:\n%s", dumpTranscript(tr))
			}
			if lines := eventLines(tr.Events(), DirClient); len(lines) != 0 {
				t.Errorf("transcript shows client lines %q", lines)
			}
		})
	}
}

// TestBadInputOnOpenConnection: Client.Send refuses a bad envelope without
// writing a byte, and the connection stays usable.
func TestBadInputOnOpenConnection(t *testing.T) {
	bad := []Envelope{
		{From: "a@example.org", To: []string{"b@example.net\r\nRSET"}},
		{From: "a@example.org\n", To: []string{"b@example.net"}},
		{From: "a@example.org"},
		{From: "a@example.org", To: []string{"<b@example.net>"}},
	}
	f := newFaker(ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as G1\n221 Bye\n")
	cfg := fakeConfig(f)
	ctx := context.Background()
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := f.client()
	for _, env := range bad {
		if _, err := c.Send(ctx, env, strings.NewReader("x\n")); err == nil {
			t.Errorf("Send(%+v) accepted", env)
		}
		if got := f.client(); got != before {
			t.Fatalf("client wrote %q for a bad envelope", strings.TrimPrefix(got, before))
		}
	}
	res, err := c.SendAndQuit(ctx, envelope1, strings.NewReader("x\n"))
	if err != nil || res.QueueID != "G1" {
		t.Fatalf("good send after bad ones: %v", err)
	}
	want := lf("EHLO client.test\n") + "|" + lf("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n") + "|" + lf("x\n.\nQUIT\n")
	if got := f.client(); got != want {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
	}
}

// shortConn fails one write part way, like a write deadline that fires
// with part of the buffer sent.
type shortConn struct {
	*faker
	mu     sync.Mutex
	writes int
	failAt int // index of the write to cut
	unsent int // bytes of it that do not go out
}

func (c *shortConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	i := c.writes
	c.writes++
	c.mu.Unlock()
	if i != c.failAt {
		return c.faker.Write(p)
	}
	n := len(p) - c.unsent
	_, _ = c.faker.Write(p[:n])
	return n, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// TestEndOfMessageNotSent: a write that fails before the final "." is out
// is a temporary failure; one that fails after it (only the pipelined QUIT
// unsent) leaves the outcome unknown.
func TestEndOfMessageNotSent(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		unsent  int
		status  Status
		unknown bool
	}{
		{"DATA: last byte of the dot line unsent", ehloPipelining + "250 Ok\n250 Ok\n354 go\n", len("QUIT\r\n") + 1, StatusTempFail, false},
		{"DATA: only QUIT unsent", ehloPipelining + "250 Ok\n250 Ok\n354 go\n", len("QUIT\r\n"), StatusUnknown, true},
		{"BDAT: part of the chunk unsent", ehloFull + "250 Ok\n250 Ok\n", len("QUIT\r\n") + 1, StatusTempFail, false},
		{"BDAT: only QUIT unsent", ehloFull + "250 Ok\n250 Ok\n", len("QUIT\r\n"), StatusUnknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker(tt.script)
			failAt := 2 // EHLO, envelope, then the message
			if strings.HasPrefix(tt.name, "BDAT") {
				failAt = 1 // EHLO, then envelope and message together
			}
			conn := &shortConn{faker: f, failAt: failAt, unsent: tt.unsent}
			cfg := fakeConfig(f)
			cfg.Dialer = connDialer{conn}
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			var e *Error
			if !errors.As(err, &e) || e.OutcomeUnknown != tt.unknown || e.Phase != PhaseBody && !tt.unknown {
				t.Errorf("err = %v (unknown %v), want unknown=%v", err, e != nil && e.OutcomeUnknown, tt.unknown)
			}
			if st := StatusOf(res, err); st != tt.status {
				t.Errorf("status %q, want %q\n%s", st, tt.status, dumpTranscript(cfg.Transcript))
			}
		})
	}
}
