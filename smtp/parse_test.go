package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// Table tests of the small parsers: queue ids, enhanced status codes,
// reply lines, EHLO keywords, xtext, and the error's text.

func TestParseQueueID(t *testing.T) {
	tests := []struct{ server, text, want string }{
		{"Postfix", "2.0.0 Ok: queued as 4XyZ1k2Lmnz9sT", "4XyZ1k2Lmnz9sT"},
		{"Postfix, short ids", "2.0.0 Ok: queued as 8C1D82A0F1", "8C1D82A0F1"},
		{"Postfix, no enhanced code", "Ok: queued as ABC123", "ABC123"},
		{"Exim", "OK id=1qXyZa-000AbC-2D", "1qXyZa-000AbC-2D"},
		{"Exim with enhanced code", "2.0.0 OK id=1qXyZa-000AbC-2D", "1qXyZa-000AbC-2D"},
		{"Sendmail", "2.0.0 3AB4cDe5012345 Message accepted for delivery", "3AB4cDe5012345"},
		{"Sendmail, 'Mail accepted'", "3AB4cDe5012345 Mail accepted", "3AB4cDe5012345"},
		{"qmail-ish", "ok 1700000000 qp 12345", ""},
		{"Gmail", "2.0.0 OK  1700000000 d2e1a72fcca58-6c0a1b2c3d4si123456pfb.123 - gsmtp", "d2e1a72fcca58-6c0a1b2c3d4si123456pfb.123"},
		{"Gmail, short form", "2.0.0 OK 1700000000 - gsmtp", "1700000000"},
		{"aiosmtpd", "OK", ""},
		{"aiosmtpd, default handler", "Message accepted for delivery", ""},
		{"OpenSMTPD", "2.0.0 4d8ec3c5 Message accepted for delivery", "4d8ec3c5"},
		{"Microsoft (InternalId is not an id= marker)", "2.6.0 <abc@host> [InternalId=123, Hostname=X] Queued mail for delivery", ""},
		{"queued as in angle brackets", "Ok: queued as <Q1>", "Q1"},
		{"queued as with a trailing dot", "Ok, queued as Q2.", "Q2"},
		{"queued as: with a colon", "Ok queued as: Q3", "Q3"},
		{"nothing", "2.0.0 Ok", ""},
		{"empty", "", ""},
		{"marker at the end", "Ok: queued as ", ""},
	}
	for _, tt := range tests {
		if got := parseQueueID(tt.text); got != tt.want {
			t.Errorf("%s: parseQueueID(%q) = %q, want %q", tt.server, tt.text, got, tt.want)
		}
	}
}

func TestEnhancedCode(t *testing.T) {
	tests := []struct {
		code  int
		first string
		want  string
	}{
		{250, "2.0.0 Ok", "2.0.0"},
		{550, "5.1.1 <x@y>: unknown", "5.1.1"},
		{452, "4.2.2 full", "4.2.2"},
		{250, "2.0.0", "2.0.0"},
		{250, "5.1.1 class mismatch", ""},
		{550, "2.0.0 class mismatch", ""},
		{421, "5.3.2 class mismatch", ""},
		{250, "3.0.0 no such class", ""},
		{250, "2.0 short", ""},
		{250, "2.0.0.0 long", ""},
		{250, "2.1000.0 subject too long", ""},
		{250, "2.100.999 at the limits", "2.100.999"},
		{250, "2..0 empty part", ""},
		{250, "2.a.0 letters", ""},
		{250, "Ok 2.0.0 not first", ""},
		{250, "", ""},
		{250, "2.0.0\tTab separated", ""},
	}
	for _, tt := range tests {
		r := &Reply{Code: tt.code, Lines: []string{tt.first, "2.0.0 second line ignored"}}
		if got := r.EnhancedCode(); got != tt.want {
			t.Errorf("EnhancedCode(%d %q) = %q, want %q", tt.code, tt.first, got, tt.want)
		}
	}
	if got := (&Reply{Code: 250}).EnhancedCode(); got != "" {
		t.Errorf("no lines: %q", got)
	}
}

func TestParseReplyLine(t *testing.T) {
	tests := []struct {
		line   string
		code   int
		more   bool
		text   string
		reason string // error reason substring; "" for success
	}{
		{"250 Ok", 250, false, "Ok", ""},
		{"250-PIPELINING", 250, true, "PIPELINING", ""},
		{"250", 250, false, "", ""},
		{"250 ", 250, false, "", ""},
		{"250-", 250, true, "", ""},
		{"554 5.7.1 no", 554, false, "5.7.1 no", ""},
		{"220  two spaces", 220, false, " two spaces", ""},
		{"599 top", 599, false, "top", ""},
		{"200 bottom", 200, false, "bottom", ""},
		{"25", 0, false, "", "too short"},
		{"", 0, false, "", "too short"},
		{"199 low", 0, false, "", "does not start with a reply code"},
		{"600 high", 0, false, "", "does not start with a reply code"},
		{"2x0 Ok", 0, false, "", "does not start with a reply code"},
		{"-250 Ok", 0, false, "", "does not start with a reply code"},
		{"250Ok", 0, false, "", "not followed by space or hyphen"},
		{"250\tOk", 0, false, "", "not followed by space or hyphen"},
		{"2500 Ok", 0, false, "", "not followed by space or hyphen"},
	}
	for _, tt := range tests {
		code, more, text, err := parseReplyLine(tt.line)
		if tt.reason != "" {
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("parseReplyLine(%q) err = %v, want %q", tt.line, err, tt.reason)
			}
			continue
		}
		if err != nil || code != tt.code || more != tt.more || text != tt.text {
			t.Errorf("parseReplyLine(%q) = %d %v %q %v, want %d %v %q", tt.line, code, more, text, err, tt.code, tt.more, tt.text)
		}
	}
}

// TestReadReply reads whole replies from a stream, including the ones a
// hostile server sends.
func TestReadReply(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		code   int
		lines  []string
		reason string
	}{
		{"one line", "250 Ok\r\n", 250, []string{"Ok"}, ""},
		{"multi line", "250-a\r\n250-b\r\n250 c\r\n", 250, []string{"a", "b", "c"}, ""},
		{"bare LF", "250-a\n250 b\n", 250, []string{"a", "b"}, ""},
		{"code only, then more", "250-\r\n250\r\n", 250, []string{"", ""}, ""},
		{"CR inside a line kept", "250 a\rb\r\n", 250, []string{"a\rb"}, ""},
		{"NUL inside a line kept", "250 a\x00b\r\n", 250, []string{"a\x00b"}, ""},
		{"codes disagree", "250-a\r\n251 b\r\n", 0, nil, "reply code 251 inside a 250 reply"},
		{"EOF mid reply", "250-a\r\n250-b", 0, nil, ""},
		{"empty line inside", "250-a\r\n\r\n250 b\r\n", 0, nil, "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			rr := replyReader{br: bufio.NewReaderSize(strings.NewReader(tt.in), readBufferSize), onLine: func(l string) { seen = append(seen, l) }}
			r, err := rr.readReply()
			switch {
			case tt.lines != nil:
				if err != nil || r.Code != tt.code || !slices.Equal(r.Lines, tt.lines) {
					t.Fatalf("got %+v %v, want %d %q", r, err, tt.code, tt.lines)
				}
			case tt.reason != "":
				var pe *ProtocolError
				if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.reason) {
					t.Fatalf("err = %v, want %q", err, tt.reason)
				}
			default:
				if !errors.Is(err, errConnLost) {
					t.Fatalf("err = %v, want errConnLost", err)
				}
			}
			if len(seen) == 0 {
				t.Errorf("onLine never called")
			}
		})
	}
}

func TestParseEHLO(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		ext   map[string]string
		mechs []string
	}{
		{
			name:  "Postfix",
			lines: []string{"mx.test", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"},
			ext: map[string]string{"PIPELINING": "", "SIZE": "10240000", "VRFY": "", "ETRN": "", "STARTTLS": "", "ENHANCEDSTATUSCODES": "",
				"8BITMIME": "", "DSN": "", "SMTPUTF8": "", "CHUNKING": ""},
		},
		{
			name:  "lower case keywords and mechanisms",
			lines: []string{"mx.test", "pipelining", "size 1000", "auth plain login"},
			ext:   map[string]string{"PIPELINING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN"},
			mechs: []string{"PLAIN", "LOGIN"},
		},
		{
			name:  "legacy AUTH= with AUTH",
			lines: []string{"mx.test", "AUTH LOGIN PLAIN", "AUTH=LOGIN PLAIN"},
			ext:   map[string]string{"AUTH": "LOGIN PLAIN"},
			mechs: []string{"LOGIN", "PLAIN"},
		},
		{
			name:  "tab between keyword and parameter",
			lines: []string{"mx.test", "SIZE\t2048", "AUTH\tPLAIN"},
			ext:   map[string]string{"SIZE": "2048", "AUTH": "PLAIN"},
			mechs: []string{"PLAIN"},
		},
		{
			name:  "legacy AUTH= alone",
			lines: []string{"mx.test", "AUTH=PLAIN LOGIN CRAM-MD5"},
			ext:   map[string]string{"AUTH": "PLAIN LOGIN CRAM-MD5"},
			mechs: []string{"PLAIN", "LOGIN", "CRAM-MD5"},
		},
		{
			name:  "AUTH lines merged, duplicates dropped",
			lines: []string{"mx.test", "AUTH PLAIN", "AUTH LOGIN plain", "AUTH=CRAM-MD5"},
			ext:   map[string]string{"AUTH": "PLAIN LOGIN CRAM-MD5"},
			mechs: []string{"PLAIN", "LOGIN", "CRAM-MD5"},
		},
		{
			name:  "AUTH with no mechanisms",
			lines: []string{"mx.test", "AUTH"},
			ext:   map[string]string{"AUTH": ""},
		},
		{
			name:  "SIZE without a value, then with one",
			lines: []string{"mx.test", "SIZE", "SIZE 5000"},
			ext:   map[string]string{"SIZE": "5000"},
		},
		{
			name:  "SIZE twice: the first value stays",
			lines: []string{"mx.test", "SIZE 100", "SIZE 5000"},
			ext:   map[string]string{"SIZE": "100"},
		},
		{
			name:  "SIZE without a value",
			lines: []string{"mx.test", "SIZE"},
			ext:   map[string]string{"SIZE": ""},
		},
		{
			name:  "smtp-sink: trailing empty line, blanks around",
			lines: []string{"mx.test", "  PIPELINING  ", "8BITMIME", ""},
			ext:   map[string]string{"PIPELINING": "", "8BITMIME": ""},
		},
		{
			name:  "name line only",
			lines: []string{"mx.test Hello client"},
			ext:   map[string]string{},
		},
		{
			name:  "the first line is the greeting, never a keyword",
			lines: []string{"PIPELINING"},
			ext:   map[string]string{},
		},
		{
			name:  "parameters keep their inner spacing",
			lines: []string{"mx.test", "X-FOO  a  b "},
			ext:   map[string]string{"X-FOO": "a  b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext, mechs := parseEHLO(tt.lines)
			if !maps.Equal(ext, tt.ext) {
				t.Errorf("ext = %q, want %q", ext, tt.ext)
			}
			if !slices.Equal(mechs, tt.mechs) {
				t.Errorf("mechs = %q, want %q", mechs, tt.mechs)
			}
		})
	}
}

func TestXtext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a+b", "a+2Bb"},
		{"a=b", "a+3Db"},
		{"a b", "a+20b"},
		{"tab\there", "tab+09here"},
		{"\x7f", "+7F"},
		{"é", "+C3+A9"},
		{"<id@host>", "<id@host>"},
		{"+=+", "+2B+3D+2B"},
		{"!~", "!~"},
	}
	for _, tt := range tests {
		if got := xtext(tt.in); got != tt.want {
			t.Errorf("xtext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUTF8AddrXtext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"jörg@example.net", "jörg@example.net"},
		{"a+b@x", `a\x{2B}b@x`},
		{"a=b@x", `a\x{3D}b@x`},
		{`a\b@x`, `a\x{5C}b@x`},
	}
	for _, tt := range tests {
		if got := utf8AddrXtext(tt.in); got != tt.want {
			t.Errorf("utf8AddrXtext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Phase: PhaseRcpt, Code: 550, EnhancedCode: "5.1.1", Message: "5.1.1 <x@y>: unknown"}, "smtp: rcpt: 550 5.1.1 <x@y>: unknown"},
		{&Error{Phase: PhaseRcpt, Code: 550, EnhancedCode: "5.1.1", Message: "unknown"}, "smtp: rcpt: 550 5.1.1 unknown"},
		{&Error{Phase: PhaseMail, Code: 451, Message: "line one\nline two"}, "smtp: mail: 451 line one / line two"},
		{&Error{Phase: PhaseConnect, Message: "cannot connect", Err: errors.New("refused")}, "smtp: connect: cannot connect: refused"},
		{&Error{Phase: PhaseBody, Message: "server closed the connection", Err: errConnLost, OutcomeUnknown: true},
			"smtp: body: server closed the connection: connection closed by server (outcome unknown: the server may have accepted the message)"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestTemporary(t *testing.T) {
	tests := []struct {
		e    *Error
		want bool
	}{
		{&Error{Code: 421}, true},
		{&Error{Code: 450}, true},
		{&Error{Code: 499}, true},
		{&Error{Code: 500}, false},
		{&Error{Code: 554}, false},
		{&Error{Code: 334}, false},
		{netError(PhaseConnect, "x", errConnLost), true},
		{netError(PhaseConnect, "x", &ProtocolError{Reason: "r"}), false},
		{localError(PhaseMail, "bad"), false},
		{netError(PhaseConnect, "x", &net.DNSError{Err: "no such host", IsNotFound: true}), false},
		{netError(PhaseConnect, "x", &net.DNSError{Err: "server misbehaving", IsTemporary: true}), true},
		{netError(PhaseConnect, "x", &net.DNSError{Err: "i/o timeout", IsTimeout: true}), true},
		{netError(PhaseConnect, "x", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
	}
	for _, tt := range tests {
		if got := tt.e.Temporary(); got != tt.want {
			t.Errorf("%+v Temporary() = %v, want %v", tt.e, got, tt.want)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	good := []string{"a@b", "user.name+tag@example.org", "jörg@bücher.example", `"quoted"@example.org`}
	for _, a := range good {
		if err := CheckAddress(a); err != nil {
			t.Errorf("CheckAddress(%q) = %v, want ok", a, err)
		}
	}
	bad := []string{"", "a", "@b", "a@", "a b@c", "a@b\r", "a@b\nRCPT TO:<x@y>", "a\x00@b", "<a@b>", "a>@b", "a@b\t", "a\x1b@b", "a\x7f@b",
		strings.Repeat("l", 65) + "@b", "a@" + strings.Repeat("d", 255)}
	for _, a := range bad {
		if err := CheckAddress(a); err == nil {
			t.Errorf("CheckAddress(%q) = nil, want an error", a)
		}
	}
}

func TestTLSModeNames(t *testing.T) {
	for _, m := range []TLSMode{TLSNone, TLSStartTLS, TLSStartTLSOptional, TLSImplicit} {
		got, err := ParseTLSMode(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseTLSMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseTLSMode("ssl"); err == nil {
		t.Errorf("ParseTLSMode(ssl) accepted")
	}
	if s := TLSMode(9).String(); s != "TLSMode(9)" {
		t.Errorf("String of unknown mode = %q", s)
	}
}

func TestTimeouts(t *testing.T) {
	d := DefaultTimeouts()
	// RFC 5321 4.5.3.2.
	if d.Greeting != 5*time.Minute || d.Mail != 5*time.Minute || d.Rcpt != 5*time.Minute ||
		d.DataInit != 2*time.Minute || d.DataBlock != 3*time.Minute || d.DataTerm != 10*time.Minute {
		t.Errorf("defaults %+v are not RFC 5321's", d)
	}
	got := Timeouts{Command: time.Second, DataTerm: -1}.withDefaults()
	if got.Command != time.Second || got.DataTerm != d.DataTerm || got.Connect != d.Connect {
		t.Errorf("withDefaults = %+v", got)
	}
	tt := Timeouts{Connect: 1, Greeting: 2, Command: 3, Mail: 4, Rcpt: 5, DataInit: 6, DataBlock: 7, DataTerm: 8}
	for phase, want := range map[Phase]time.Duration{
		PhaseConnect: 1, PhaseGreeting: 2, PhaseEHLO: 3, PhaseStartTLS: 3, PhaseAuth: 3, PhaseReset: 3, PhaseQuit: 3,
		PhaseMail: 4, PhaseRcpt: 5, PhaseData: 6, PhaseBody: 8,
	} {
		if got := tt.forPhase(phase); got != want {
			t.Errorf("forPhase(%s) = %v, want %v", phase, got, want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	final := &Reply{Code: 250}
	tests := []struct {
		res  *Result
		err  error
		want Status
	}{
		{&Result{Final: final, Recipients: []RecipientResult{{Accepted: true}}}, nil, StatusSent},
		{&Result{Final: final, Recipients: []RecipientResult{{Accepted: true}, {Code: 550}}}, nil, StatusPartial},
		{&Result{}, nil, StatusStopped},
		{nil, nil, StatusNotStated},
		{nil, &Error{Code: 451}, StatusTempFail},
		{nil, &Error{Code: 550}, StatusPermFail},
		{nil, &Error{OutcomeUnknown: true, temporary: true}, StatusUnknown},
		{nil, netError(PhaseEHLO, "aborted", fmt.Errorf("%w (x)", context.Canceled)), StatusAborted},
		{nil, errStopped, StatusStopped},
		{nil, errors.New("something else"), StatusPermFail},
	}
	for i, tt := range tests {
		if got := StatusOf(tt.res, tt.err); got != tt.want {
			t.Errorf("%d: StatusOf = %q, want %q", i, got, tt.want)
		}
	}
}
