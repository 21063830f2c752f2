package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Conformance tests that need more than runRFCCase: a server that speaks
// in turns (stepFaker), several connections (seqDialer), and the check
// that CONFORMANCE.md names only tests that exist.

// stepFaker is a faker whose server speaks in turns, as a real one does:
// flight 0 (the greeting) can be read at once, flight i only after the
// client's i-th write. Bytes of a flight arrive together, so a test can
// put a stray reply in the same read as a real one, or in a later one. A
// read with nothing left to read is a client waiting for a server that
// has nothing to say: it reads the end of the connection, and the test
// sees a lost connection.
type stepFaker struct {
	*faker
	mu      sync.Mutex
	flights []string
	next    int
	pending string
}

// newStepFaker splits server at "|" into flights, "\n" becoming CRLF.
func newStepFaker(server string) *stepFaker {
	flights := strings.Split(strings.ReplaceAll(server, "\n", "\r\n"), "|")
	return &stepFaker{faker: newFaker(""), flights: flights[1:], pending: flights[0]}
}

func (f *stepFaker) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == "" {
		return 0, io.EOF
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *stepFaker) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.next < len(f.flights) {
		f.pending += f.flights[f.next]
		f.next++
	}
	f.mu.Unlock()
	return f.faker.Write(p)
}

// seqDialer hands out prepared connections, one per dial, in order.
type seqDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *seqDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.conns) == 0 {
		return nil, errors.New("seqDialer: no more connections")
	}
	c := d.conns[0]
	d.conns = d.conns[1:]
	return c, nil
}

// TestStrayReplyOnKeptConnection: on a connection kept for more messages
// (Send, no QUIT after the message to check the replies against), a reply
// the server sends beyond the one each command gets (RFC 5321 4.2) must
// never make a message "sent" when the server's real answer may have been
// a refusal: a reply waiting after the 354 withholds the message; a second
// reply arriving with the verdict makes the outcome unknown; and a reply
// waiting when the next message starts stops that message before a word
// of it is said.
func TestStrayReplyOnKeptConnection(t *testing.T) {
	const (
		greet = "220 mx.test ESMTP\n|250-mx.test\n250 PIPELINING\n|"
		env   = "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
	)
	tests := []struct {
		name   string
		server string
		client string
		status Status // of the first message
		second Status // of a second message on the same Client
	}{
		{
			name:   "a stray 250 right after the 354: the message is withheld",
			server: greet + "250 Ok\n250 Ok\n354 go\n250 2.0.0 stray\n|554 5.7.1 rejected\n",
			client: segs("EHLO client.test\n", env),
			status: StatusTempFail, second: StatusTempFail,
		},
		{
			name:   "a stray 250 and the refusal in the same read after the dot: unknown",
			server: greet + "250 Ok\n250 Ok\n354 go\n|250 2.0.0 stray\n554 5.7.1 rejected\n|250 Ok\n",
			client: segs("EHLO client.test\n", env, "x\n.\n"),
			status: StatusUnknown, second: StatusTempFail,
		},
		{
			name:   "the verdict alone: sent, and the next message goes on",
			server: greet + "250 Ok\n250 Ok\n354 go\n|250 2.0.0 Ok\n|250 Ok\n250 Ok\n354 go\n|250 2.0.0 Ok\n",
			client: segs("EHLO client.test\n", env, "x\n.\n", env, "y\n.\n"),
			status: StatusSent, second: StatusSent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newStepFaker(tc.server)
			cfg := fakeConfig(f.faker)
			cfg.Dialer = connDialer{f}
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Send(ctx, envelope1, strings.NewReader("x\n"))
			if st := StatusOf(res, err); st != tc.status {
				t.Errorf("first message: status %q (err %v), want %q", st, err, tc.status)
			}
			res, err = c.Send(ctx, envelope1, strings.NewReader("y\n"))
			if st := StatusOf(res, err); st != tc.second {
				t.Errorf("second message: status %q (err %v), want %q", st, err, tc.second)
			}
			if got := f.client(); got != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tc.client)
			}
			checkTranscriptOnWire(t, cfg.Transcript.Events(), f.wire())
			if t.Failed() {
				t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}

// TestStrayReplyBeforeNextMessage: a reply the server sent on its own,
// found waiting when a message starts on a kept connection (after the
// EHLO reply here), means that the replies are out of step: the message
// is not begun, nothing of it is said, and the connection is not idle.
func TestStrayReplyBeforeNextMessage(t *testing.T) {
	server := "220 mx.test ESMTP\n|250-mx.test\n250 PIPELINING\n250 2.0.0 stray\n|250 Ok\n250 Ok\n354 go\n|250 Ok\n"
	f := newStepFaker(server)
	cfg := fakeConfig(f.faker)
	cfg.Dialer = connDialer{f}
	ctx := context.Background()
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wire := f.wire()
	res, err := c.Send(ctx, envelope1, strings.NewReader("y\n"))
	if st := StatusOf(res, err); st != StatusTempFail {
		t.Errorf("status %q (err %v), want %q", st, err, StatusTempFail)
	}
	if !errors.Is(err, errOutOfStep) {
		t.Errorf("err = %v, want replies out of step", err)
	}
	if f.wire() != wire {
		t.Errorf("the message wrote %q", strings.TrimPrefix(f.wire(), wire))
	}
	if c.Idle() {
		t.Errorf("Idle() = true on a connection whose replies are out of step")
	}
	if !hasEvent(cfg.Transcript.Events(), DirInfo, `unread from the server (17 bytes): "250 2.0.0 stray\r\n"`) {
		t.Errorf("the stray reply is not in the transcript:\n%s", dumpTranscript(cfg.Transcript))
	}
	checkTranscriptOnWire(t, cfg.Transcript.Events(), f.wire())
}

// TestRecipientLimits: RFC 5321 4.5.3.1.10: a 552 to RCPT is taken as the
// 452 "too many recipients" it should have been, a temporary failure; and
// 4.5.3.1.8: a client must be ready to send a message to many recipients
// in several transactions: the recipients a server put off with 452 (or
// 552) get the message in a new transaction, on a new connection, as long
// as each transaction takes some.
func TestRecipientLimits(t *testing.T) {
	const (
		ok1   = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 PIPELINING\n"
		quit  = "221 2.0.0 Bye\n"
		body  = "Subject: hi\n\nhello\n.\nQUIT\n"
		mailA = "MAIL FROM:<a@example.org>\n"
	)
	rcpt := func(to ...string) string {
		var b strings.Builder
		for _, a := range to {
			b.WriteString("RCPT TO:<" + a + ">\n")
		}
		return b.String()
	}
	tests := []struct {
		name    string
		to      []string
		servers []string
		clients []string
		status  Status
		temp    bool   // the error (if any) is temporary
		codes   []int  // each recipient's code in the result, in order
		queueID string // the result's queue ids
	}{
		{
			name:    "552 to the only RCPT: temporary",
			to:      []string{"b@example.net"},
			servers: []string{ok1 + "250 2.1.0 Ok\n552 5.5.3 Too many recipients\n554 5.5.1 no valid recipients\n" + quit},
			clients: []string{segs("EHLO client.test\n", mailA+rcpt("b@example.net")+"DATA\n", "QUIT\n")},
			status:  StatusTempFail, temp: true, codes: []int{452},
		},
		{
			name:    "552 5.2.2 (mailbox full) to RCPT is not 'too many recipients': it stays permanent",
			to:      []string{"b@example.net"},
			servers: []string{ok1 + "250 2.1.0 Ok\n552 5.2.2 Mailbox full\n554 5.5.1 no valid recipients\n" + quit},
			clients: []string{segs("EHLO client.test\n", mailA+rcpt("b@example.net")+"DATA\n", "QUIT\n")},
			status:  StatusPermFail, codes: []int{552},
		},
		{
			name: "452 to the third of three: a second transaction for it",
			to:   []string{"b@example.net", "c@example.net", "d@example.net"},
			servers: []string{
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.1.5 Ok\n452 4.5.3 Too many recipients\n354 go\n250 2.0.0 Ok: queued as A1\n" + quit,
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n250 2.0.0 Ok: queued as B2\n" + quit,
			},
			clients: []string{
				segs("EHLO client.test\n", mailA+rcpt("b@example.net", "c@example.net", "d@example.net")+"DATA\n", body),
				segs("EHLO client.test\n", mailA+rcpt("d@example.net")+"DATA\n", body),
			},
			status: StatusSent, codes: []int{250, 250, 250}, queueID: "A1, B2",
		},
		{
			name: "552 to the second of two: a second transaction for it",
			to:   []string{"b@example.net", "c@example.net"},
			servers: []string{
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n552 5.5.3 Too many recipients\n354 go\n250 2.0.0 Ok: queued as A1\n" + quit,
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n250 2.0.0 Ok: queued as B2\n" + quit,
			},
			clients: []string{
				segs("EHLO client.test\n", mailA+rcpt("b@example.net", "c@example.net")+"DATA\n", body),
				segs("EHLO client.test\n", mailA+rcpt("c@example.net")+"DATA\n", body),
			},
			status: StatusSent, codes: []int{250, 250}, queueID: "A1, B2",
		},
		{
			name: "the second transaction fails: partly sent, the rest keeps its refusal",
			to:   []string{"b@example.net", "c@example.net"},
			servers: []string{
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n452 4.5.3 Too many recipients\n354 go\n250 2.0.0 Ok: queued as A1\n" + quit,
				ok1 + "250 2.1.0 Ok\n550 5.1.1 User unknown\n554 5.5.1 no valid recipients\n" + quit,
			},
			clients: []string{
				segs("EHLO client.test\n", mailA+rcpt("b@example.net", "c@example.net")+"DATA\n", body),
				segs("EHLO client.test\n", mailA+rcpt("c@example.net")+"DATA\n", "QUIT\n"),
			},
			status: StatusPartial, codes: []int{250, 550}, queueID: "A1",
		},
		{
			name: "452 for a full mailbox (4.2.2) is that recipient's answer: no second transaction",
			to:   []string{"b@example.net", "c@example.net"},
			servers: []string{
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n452 4.2.2 Mailbox full\n354 go\n250 2.0.0 Ok: queued as A1\n" + quit,
			},
			clients: []string{segs("EHLO client.test\n", mailA+rcpt("b@example.net", "c@example.net")+"DATA\n", body)},
			status:  StatusPartial, codes: []int{250, 452}, queueID: "A1",
		},
		{
			name: "a permanent refusal is not tried again",
			to:   []string{"b@example.net", "c@example.net"},
			servers: []string{
				ok1 + "250 2.1.0 Ok\n250 2.1.5 Ok\n550 5.1.1 User unknown\n354 go\n250 2.0.0 Ok: queued as A1\n" + quit,
			},
			clients: []string{segs("EHLO client.test\n", mailA+rcpt("b@example.net", "c@example.net")+"DATA\n", body)},
			status:  StatusPartial, codes: []int{250, 550}, queueID: "A1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &seqDialer{}
			var fakes []*faker
			for _, s := range tc.servers {
				f := newFaker(s)
				fakes = append(fakes, f)
				d.conns = append(d.conns, f)
			}
			cfg := Config{Addr: "127.0.0.1:25", Dialer: d, LocalName: "client.test", Transcript: NewTranscript()}
			env := Envelope{From: "a@example.org", To: tc.to}
			res, err := SendMail(context.Background(), cfg, env, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
			if st := StatusOf(res, err); st != tc.status {
				t.Errorf("status = %q (err %v), want %q", st, err, tc.status)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Temporary() != tc.temp) {
				t.Errorf("err = %v, want temporary %v", err, tc.temp)
			}
			for i, f := range fakes {
				if got := f.client(); got != tc.clients[i] {
					t.Errorf("connection %d: client wrote:\n%q\nwant:\n%q", i+1, got, tc.clients[i])
				}
			}
			if len(d.conns) != 0 {
				t.Errorf("%d connections not used", len(d.conns))
			}
			var codes []int
			for _, rc := range res.Recipients {
				codes = append(codes, rc.Code)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tc.codes) {
				t.Errorf("recipient codes = %v, want %v", codes, tc.codes)
			}
			if res.QueueID != tc.queueID {
				t.Errorf("queue id = %q, want %q", res.QueueID, tc.queueID)
			}
			if t.Failed() {
				t.Logf("transcript:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}

// TestEnhancedStatusCodesOnlyWhenOffered: RFC 2034 3: a server sends
// enhanced status codes only after it offered ENHANCEDSTATUSCODES, so the
// client reads them only then; text that merely looks like one is text.
// With the extension, the code of the first line is taken, and every line
// of a multi-line reply keeps its own text (RFC 2034 4).
func TestEnhancedStatusCodesOnlyWhenOffered(t *testing.T) {
	const (
		with    = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 PIPELINING\n"
		without = "220 mx.test ESMTP\n250-mx.test\n250 PIPELINING\n"
	)
	tests := []struct {
		name, server string
		enhanced     string
		kind         Kind
	}{
		{"offered", with + "250 2.1.0 Ok\n550 5.1.1 <b@example.net>: User unknown\n554 5.5.1 no valid recipients\n221 Bye\n", "5.1.1", KindMailboxUnknown},
		{"offered, in every line of a multi-line reply", with + "250 2.1.0 Ok\n550-5.1.1 <b@example.net>: User unknown\n550 5.1.1 try another\n554 5.5.1 no valid recipients\n221 Bye\n", "5.1.1", KindMailboxUnknown},
		{"not offered: text only", without + "250 Ok\n550 5.1.1 <b@example.net>: no\n554 no valid recipients\n221 Bye\n", "", KindOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.EnhancedCode != tc.enhanced {
				t.Errorf("error's enhanced code = %q, want %q", e.EnhancedCode, tc.enhanced)
			}
			if len(res.Recipients) != 1 || res.Recipients[0].EnhancedCode != tc.enhanced {
				t.Errorf("recipients = %+v, want enhanced code %q", res.Recipients, tc.enhanced)
			}
			if k := Classify(err).Kind; k != tc.kind {
				t.Errorf("kind = %s, want %s", k, tc.kind)
			}
		})
	}
}

// TestBDATFailureThenRset: RFC 3030 2: after a BDAT is refused the state
// of the transaction is not known: the client sends no more BDAT of it,
// and RSET before the next transaction.
func TestBDATFailureThenRset(t *testing.T) {
	const ehlo = "220 mx.test ESMTP\n250-mx.test\n250-PIPELINING\n250 CHUNKING\n"
	tests := []struct {
		name, server, client string
	}{
		{
			name:   "BDAT LAST refused, pipelined",
			server: ehlo + "250 Ok\n250 Ok\n554 5.7.1 rejected\n250 Ok\n250 Ok\n250 Ok\n250 Ok\n",
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 3 LAST\nx\n",
				"RSET\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nBDAT 3 LAST\ny\n"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			cfg := fakeConfig(f)
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Send(ctx, envelope1, strings.NewReader("x\n")); err == nil {
				t.Fatalf("first message sent, want refused")
			}
			if _, err := c.Send(ctx, envelope1, strings.NewReader("y\n")); err != nil {
				t.Fatalf("second message: %v", err)
			}
			if got := f.client(); got != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, tc.client)
			}
		})
	}
}

// TestAuthLineLength: RFC 4954 4: an AUTH command is held to SMTP's line
// limit (512 octets with CRLF, RFC 5321 4.5.3.1.4); when the initial
// response would make it longer the client must not send one, and sends
// the response after the server's empty 334 challenge instead (a response
// line is not a command: RFC 4954 lets it be longer).
func TestAuthLineLength(t *testing.T) {
	long := strings.Repeat("p", 400)
	tail := "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
	tests := []struct {
		name, server string
		auth         Auth
		first        string // the first line the client sends for AUTH
		lines        int    // client lines of the exchange
	}{
		{"PLAIN short: initial response", ehloAllAuth + "235 2.7.0 ok\n" + tail, Auth{Mechanism: "PLAIN", Username: "u", Password: "p"}, "AUTH PLAIN AHUAcA==", 1},
		{"PLAIN long: no initial response", ehloAllAuth + "334 \n235 2.7.0 ok\n" + tail, Auth{Mechanism: "PLAIN", Username: "u", Password: long}, "AUTH PLAIN", 2},
		{"XOAUTH2 long: no initial response", ehloAllAuth + "334 \n235 2.7.0 ok\n" + tail, Auth{Mechanism: "XOAUTH2", Username: "u", Token: long}, "AUTH XOAUTH2", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			a := tc.auth
			cfg := authConfig(f, &a)
			if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{}); err != nil {
				t.Fatalf("send: %v\n%s", err, dumpTranscript(cfg.Transcript))
			}
			// The lines from AUTH up to MAIL are the exchange.
			var auth []string
			for _, l := range strings.Split(f.wire(), "\r\n") {
				if strings.HasPrefix(l, "MAIL") {
					break
				}
				if strings.HasPrefix(l, "AUTH") && len(l)+2 > 512 {
					t.Errorf("an AUTH command of %d octets went out", len(l)+2)
				}
				if strings.HasPrefix(l, "AUTH") || len(auth) > 0 {
					auth = append(auth, l)
				}
			}
			if len(auth) != tc.lines || (len(auth) > 0 && auth[0] != tc.first) {
				t.Errorf("AUTH exchange = %q, want %d lines starting %q", auth, tc.lines, tc.first)
			}
		})
	}
}

// matrixTestName finds the test names in a matrix row's last cell.
var matrixTestName = regexp.MustCompile("`(Test[A-Za-z0-9_]+)`")

// TestConformanceMatrix: every row of CONFORMANCE.md names a test that
// exists in this package, or says why the requirement does not apply.
func TestConformanceMatrix(t *testing.T) {
	md, err := os.ReadFile("CONFORMANCE.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
	}
	rows := 0
	sc := bufio.NewScanner(strings.NewReader(string(md)))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "|") || strings.HasPrefix(l, "|---") || strings.HasPrefix(l, "| Section") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), " | ")
		if len(cells) != 4 {
			t.Errorf("CONFORMANCE.md:%d: %d cells, want 4 (section, requirement, sockmail, test)", line, len(cells))
			continue
		}
		rows++
		last := strings.TrimSpace(cells[3])
		names := matrixTestName.FindAllStringSubmatch(last, -1)
		if len(names) == 0 && !strings.HasPrefix(last, "Does not apply:") {
			t.Errorf("CONFORMANCE.md:%d: no test named and no \"Does not apply:\" reason: %q", line, last)
		}
		for _, m := range names {
			if !defined[m[1]] {
				t.Errorf("CONFORMANCE.md:%d: test %s does not exist in package smtp", line, m[1])
			}
		}
		if strings.TrimSpace(cells[0]) == "" || strings.TrimSpace(cells[1]) == "" || strings.TrimSpace(cells[2]) == "" {
			t.Errorf("CONFORMANCE.md:%d: an empty cell", line)
		}
	}
	if rows < 20 {
		t.Errorf("CONFORMANCE.md has %d rows; the matrix is incomplete", rows)
	}
}

// TestLongBodyLines: RFC 5321 4.5.3.1.6 (and RFC 5322 2.1.1) limit a line
// of the message to 998 octets and its CRLF. A longer line is refused as
// it is met, before the end of the message is sent, so the server never
// takes a message it may cut or refuse; the error says which line.
func TestLongBodyLines(t *testing.T) {
	const (
		data  = ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
		bdat  = "220 mx.test ESMTP\n250-mx.test\n250-PIPELINING\n250 CHUNKING\n250 Ok\n250 Ok\n250 Ok\n221 Bye\n"
		envDT = "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
	)
	tests := []struct {
		name, server, msg string
		sent              bool
		client            string // "" when not checked
	}{
		{"998 octets: sent", data, "Subject: x\n\n" + strings.Repeat("a", 998) + "\n", true, ""},
		{"998 octets and a bare CR line end: sent", data, "Subject: x\r\n\r\n" + strings.Repeat("a", 998) + "\r", true, ""},
		{"999 octets: refused, the end never sent", data, "Subject: x\n\n" + strings.Repeat("a", 999) + "\nmore\n", false, segs("EHLO client.test\n", envDT)},
		{"999 octets in the last line without a line end", data, "Subject: x\n\n" + strings.Repeat("a", 999), false, segs("EHLO client.test\n", envDT)},
		{"a long header line", data, "Subject: " + strings.Repeat("a", 1200) + "\n\nhi\n", false, segs("EHLO client.test\n", envDT)},
		{"BDAT: 999 octets refused", bdat, "Subject: x\n\n" + strings.Repeat("a", 999) + "\n", false, segs("EHLO client.test\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader(tc.msg), SendOptions{})
			if tc.sent {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if st := StatusOf(res, err); st != StatusPermFail {
				t.Errorf("status %q (err %v), want %q", st, err, StatusPermFail)
			}
			if err == nil || !strings.Contains(err.Error(), "longer than 998 octets") {
				t.Errorf("err = %v, want one about a line longer than 998 octets", err)
			}
			if tc.client != "" && f.client() != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", f.client(), tc.client)
			}
			if strings.Contains(f.wire(), "\r\n.\r\n") || strings.Contains(f.wire(), "LAST") {
				t.Errorf("the end of the message went out:\n%q", f.wire())
			}
		})
	}
}

// TestEnvelopeReplies: the envelope as RFC 5321, 1870, 3461 and 6152 want
// it on the wire, and what each reply to it means.
func TestEnvelopeReplies(t *testing.T) {
	const (
		envDT = "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
		body  = "Subject: hi\n\nhello\n.\nQUIT\n"
		dsn   = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250-PIPELINING\n250 DSN\n"
		size0 = "220 mx.test ESMTP\n250-mx.test\n250-PIPELINING\n250 SIZE 0\n"
		sized = "220 mx.test ESMTP\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250-PIPELINING\n250 SIZE 1000\n"
	)
	dsnAll := &DSN{Notify: []string{"SUCCESS", "FAILURE"}, Return: "FULL", EnvID: "q+1=2", OriginalRecipient: true}
	tests := []rfcCase{
		{
			name:   "null reverse-path: MAIL FROM:<> (RFC 5321 4.1.1.2, 3.6.3)",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{To: []string{"b@example.net"}},
			client: segs("EHLO client.test\n", "MAIL FROM:<>\nRCPT TO:<b@example.net>\nDATA\n", body),
			status: StatusSent,
		},
		{
			name:   "251 user not local, will forward: accepted (RFC 5321 3.4)",
			server: ehloPipelining + "250 Ok\n251 2.1.5 User not local; will forward to <c@example.com>\n354 go\n250 Ok\n221 Bye\n",
			client: segs("EHLO client.test\n", envDT, body),
			status: StatusSent,
		},
		{
			name:   "551 user not local: refused, permanent, no forwarding attempted (RFC 5321 3.4)",
			server: ehloPipelining + "250 Ok\n551 5.1.6 User not local; please try <c@example.com>\n554 5.5.1 no valid recipients\n221 Bye\n",
			client: segs("EHLO client.test\n", envDT, "QUIT\n"),
			status: StatusPermFail, kind: KindOther, code: 551,
		},
		{
			name:   "SIZE 0: no limit; the size is declared (RFC 1870 4)",
			server: size0 + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 50 << 20},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org> SIZE=52428800\nRCPT TO:<b@example.net>\nDATA\n", body),
			status: StatusSent,
		},
		{
			name:   "no SIZE offered: none declared (RFC 1870 5)",
			server: ehloPlain[:len(ehloPlain)-len("250 SIZE\n")] + "250 PIPELINING\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 22},
			client: segs("EHLO client.test\n", envDT, body),
			status: StatusSent,
		},
		{
			name:   "over the SIZE limit: refused before MAIL, nothing of it said (RFC 1870 6)",
			server: sized + "221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 1001},
			client: segs("EHLO client.test\n", "QUIT\n"),
			status: StatusPermFail, kind: KindTooLarge,
		},
		{
			name:   "552 to MAIL with SIZE: permanent, too large (RFC 1870 6.1)",
			server: sized + "552 5.3.4 Message size exceeds fixed maximum message size\n554 5.5.1 no valid recipients\n554 5.5.1 no valid recipients\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 900},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org> SIZE=900\nRCPT TO:<b@example.net>\nDATA\n", "QUIT\n"),
			status: StatusPermFail, kind: KindTooLarge, code: 552,
		},
		{
			name:   "452 to MAIL with SIZE (no room now): temporary (RFC 1870 6.1)",
			server: sized + "452 4.3.1 Insufficient system storage\n554 5.5.1 no valid recipients\n554 5.5.1 no valid recipients\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 900},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org> SIZE=900\nRCPT TO:<b@example.net>\nDATA\n", "QUIT\n"),
			status: StatusTempFail, kind: KindOther, code: 452,
		},
		{
			name:   "552 after the end of data: permanent, too large (RFC 1870 6.2)",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n552 5.3.4 Message too big\n221 Bye\n",
			client: segs("EHLO client.test\n", envDT, body),
			status: StatusPermFail, kind: KindTooLarge, code: 552,
		},
		{
			name:   "DSN offered: RET, ENVID and ORCPT in xtext, NOTIFY (RFC 3461 4)",
			server: dsn + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b+c@example.net"}, DSN: dsnAll},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org> RET=FULL ENVID=q+2B1+3D2\nRCPT TO:<b+c@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bc@example.net\nDATA\n", body),
			status: StatusSent,
		},
		{
			name:   "DSN not offered: no DSN parameter at all (RFC 3461 4)",
			server: ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, DSN: dsnAll},
			client: segs("EHLO client.test\n", envDT, body),
			status: StatusSent,
		},
		{
			name:   "8-bit body to a server without 8BITMIME: refused before MAIL (RFC 6152 3)",
			server: ehloPipelining[:len(ehloPipelining)-len("250 8BITMIME\n")] + "250 PIPELINING\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"b@example.net"}, EightBit: true},
			client: segs("EHLO client.test\n", "QUIT\n"),
			status: StatusPermFail, kind: KindOther,
		},
		{
			name:   "UTF-8 address to a server without SMTPUTF8: refused before MAIL (RFC 6531 3.2)",
			server: ehloPipelining + "221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"jöran@example.net"}},
			client: segs("EHLO client.test\n", "QUIT\n"),
			status: StatusPermFail, kind: KindOther,
		},
		{
			name:   "UTF-8 address with SMTPUTF8: the parameter, and BODY=8BITMIME (RFC 6531 3.4)",
			server: ehloFull + "250 Ok\n250 Ok\n250 Ok\n221 Bye\n",
			env:    &Envelope{From: "a@example.org", To: []string{"jöran@example.net"}},
			client: segs("EHLO client.test\n", "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8\nRCPT TO:<jöran@example.net>\nBDAT 22 LAST\nSubject: hi\n\nhello\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:   "a 4xx to DATA: temporary, no message sent (RFC 5321 4.2.5)",
			server: ehloPipelining + "250 Ok\n250 Ok\n451 4.3.0 try later\n221 Bye\n",
			client: segs("EHLO client.test\n", envDT, "QUIT\n"),
			status: StatusTempFail, kind: KindOther, code: 451,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runRFCCase(t, tc) })
	}
}

// TestDefaultEHLOName: without a configured name, EHLO carries the address
// literal of the connection's local address (RFC 5321 4.1.1.1, 4.1.3), not
// "localhost", which is not a meaningful domain name.
func TestDefaultEHLOName(t *testing.T) {
	f := newFaker(ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
	cfg := fakeConfig(f)
	cfg.LocalName = ""
	if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(f.client(), "|"); first != lf("EHLO [127.0.0.1]\n") {
		t.Errorf("first command %q, want EHLO [127.0.0.1]", first)
	}
}

// TestUndeclared8BitBody: RFC 5321 2.4 and RFC 6152 3: no octet with the
// high bit set goes out unless the MAIL command declared 8-bit content
// (BODY=8BITMIME, or SMTPUTF8). A message whose envelope says 7-bit but
// whose content is not is refused as the first such octet is met, before
// the end of the message is sent.
func TestUndeclared8BitBody(t *testing.T) {
	const (
		data  = ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
		envDT = "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
	)
	tests := []struct {
		name, server, msg string
		env               Envelope
		sent              bool
		client            string // "" when not checked
	}{
		{"7-bit content, nothing declared: sent", data, "Subject: x\n\nplain\n", envelope1, true, ""},
		{"8-bit content declared EightBit: sent with BODY=8BITMIME", data, "Subject: x\n\nh\xc3\xa9\n",
			Envelope{From: "a@example.org", To: []string{"b@example.net"}, EightBit: true}, true,
			segs("EHLO client.test\n", "MAIL FROM:<a@example.org> BODY=8BITMIME\nRCPT TO:<b@example.net>\nDATA\n", "Subject: x\n\nh\xc3\xa9\n.\nQUIT\n")},
		{"8-bit content, nothing declared: refused, the end never sent", data, "Subject: x\n\nh\xc3\xa9\n", envelope1, false,
			segs("EHLO client.test\n", envDT)},
		{"8-bit octet after 64 KiB of ASCII", data, "Subject: x\n\n" + strings.Repeat(strings.Repeat("a", 70)+"\n", 1000) + "\xff\n", envelope1, false, ""},
		{"SMTPUTF8 without 8BITMIME offered: the UTF-8 header may go", ehloUTF8Only + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n", "Subject: h\xc3\xa9\n\nx\n",
			Envelope{From: "a@example.org", To: []string{"b@example.net"}, SMTPUTF8: true}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaker(tc.server)
			cfg := fakeConfig(f)
			res, err := SendMail(context.Background(), cfg, tc.env, strings.NewReader(tc.msg), SendOptions{})
			if tc.client != "" && f.client() != tc.client {
				t.Errorf("client wrote:\n%q\nwant:\n%q", f.client(), tc.client)
			}
			if tc.sent {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if st := StatusOf(res, err); st != StatusPermFail {
				t.Errorf("status %q (err %v), want %q", st, err, StatusPermFail)
			}
			if err == nil || !strings.Contains(err.Error(), "8-bit") {
				t.Errorf("err = %v, want one about undeclared 8-bit content", err)
			}
			if strings.Contains(f.wire(), "\r\n.\r\n") {
				t.Errorf("the end of the message went out")
			}
		})
	}
}

// TestHas8Bit: the word-at-a-time scan finds an 8-bit octet wherever it
// is, and none in ASCII, for every length around its 8- and 32-octet
// steps.
func TestHas8Bit(t *testing.T) {
	for n := 0; n < 80; n++ {
		p := []byte(strings.Repeat("a", n))
		if has8Bit(p) {
			t.Fatalf("%d ASCII octets: 8-bit found", n)
		}
		for at := 0; at < n; at++ {
			q := append([]byte(nil), p...)
			q[at] = 0x80
			if !has8Bit(q) {
				t.Errorf("length %d, 0x80 at %d: not found", n, at)
			}
		}
	}
}

// TestNoSecondStartTLS: RFC 3207 4: a client must not start TLS on a
// session already protected by TLS, even when the server (wrongly) still
// offers STARTTLS; asked to, it says nothing and goes on.
func TestNoSecondStartTLS(t *testing.T) {
	p := certs(t)
	m := &miniServer{tls: p.serverTLS(), implicit: true, ext: []string{"STARTTLS", "PIPELINING"}}
	addr := serve(t, m.handle)
	tr := NewTranscript()
	ctx := context.Background()
	c, err := Open(ctx, Config{Addr: addr, TLS: TLSImplicit, TLSConfig: p.clientTLS("localhost"), Transcript: tr})
	if err != nil {
		t.Fatalf("Open: %v\n%s", err, dumpTranscript(tr))
	}
	if err := c.StartTLS(ctx); err != nil {
		t.Errorf("StartTLS on a TLS connection: %v", err)
	}
	if _, err := c.Send(ctx, envelope1, strings.NewReader("x\n")); err != nil {
		t.Errorf("Send: %v\n%s", err, dumpTranscript(tr))
	}
	if err := c.Quit(ctx); err != nil {
		t.Errorf("Quit: %v", err)
	}
	for _, l := range m.got() {
		if strings.HasPrefix(l, "STARTTLS") {
			t.Errorf("server saw %q on a TLS connection: %q", l, m.got())
		}
	}
}

// TestNullMX: RFC 7505 4.1: a domain whose only MX is "." accepts no mail:
// the client fails at once, permanently, with the enhanced status code
// 5.1.10, asks DNS for no address and connects nowhere; a "." among other
// MX hosts is never looked up or dialed.
func TestNullMX(t *testing.T) {
	tests := []struct {
		name    string
		mx      []*net.MX
		fails   bool
		asked   []string // DNS questions, in order
		dialled int
	}{
		{"null MX alone", []*net.MX{{Host: ".", Pref: 0}}, true, []string{"MX example.net"}, 0},
		{"null MX among others", []*net.MX{{Host: ".", Pref: 0}, {Host: "mx1.example.net.", Pref: 10}}, false,
			[]string{"MX example.net", "A mx1.example.net"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeResolver{mx: map[string][]*net.MX{"example.net": tc.mx}, ip: map[string][]string{"mx1.example.net": {"192.0.2.1"}}}
			d := &countDialer{}
			cfg := Config{Resolver: r, Dialer: d, Transcript: NewTranscript()}
			_, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			var e *Error
			if tc.fails {
				if !errors.As(err, &e) || e.Temporary() || e.EnhancedCode != "5.1.10" || !strings.Contains(e.Message, "accepts no mail") {
					t.Errorf("err = %v (%#v), want a permanent error with 5.1.10 saying the domain accepts no mail", err, e)
				}
			}
			if got := r.questions(); fmt.Sprint(got) != fmt.Sprint(tc.asked) {
				t.Errorf("DNS asked %q, want %q", got, tc.asked)
			}
			if n := int(d.n.Load()); n != tc.dialled {
				t.Errorf("dialled %d times, want %d", n, tc.dialled)
			}
		})
	}
}

// TestStrayReplyDuringBody: a reply the server sends while the message is
// still going out (before its end) is found before the end is written: a
// refusal is the answer to the message, anything else means the replies
// are out of step; either way the end is withheld, so the server cannot
// take the message, and a stray reply is never taken for the verdict
// (RFC 5321 4.2). The hook Config.BeforeEnd runs once the server has sent
// its reply, so the reply is waiting when the client checks.
func TestStrayReplyDuringBody(t *testing.T) {
	tests := []struct {
		name, reply string
		status      Status
		code        int
	}{
		{"a stray 250", "250 2.0.0 Ok: queued as STRAY\r\n", StatusTempFail, 0},
		{"a refusal", "554 5.7.1 rejected while reading\r\n", StatusPermFail, 554},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sent := make(chan struct{})
			ended := make(chan bool, 1)
			addr := serve(t, func(s *serverConn) error {
				for _, step := range []struct{ send, expect string }{
					{"220 mx.test ESMTP\r\n", "EHLO"},
					{"250-mx.test\r\n250 PIPELINING\r\n", "MAIL"},
				} {
					if err := s.send(step.send); err != nil {
						return err
					}
					if _, err := s.expect(step.expect); err != nil {
						return err
					}
				}
				for _, l := range []string{"RCPT", "DATA"} {
					if _, err := s.expect(l); err != nil {
						return err
					}
				}
				if err := s.send("250 Ok\r\n250 Ok\r\n354 go\r\n"); err != nil {
					return err
				}
				if _, err := s.expect("Subject"); err != nil {
					return err
				}
				err := s.send(tc.reply)
				close(sent)
				if err != nil {
					return err
				}
				// Whatever comes now: the end of the message must not.
				for {
					l, err := s.readLine()
					if err != nil {
						ended <- false
						return nil
					}
					if l == "." {
						ended <- true
						return nil
					}
				}
			})
			tr := NewTranscript()
			cfg := Config{Addr: addr, LocalName: "client.test", Transcript: tr,
				BeforeEnd: func(context.Context) error { <-sent; return nil }}
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("Subject: x\n\nbody\n"), SendOptions{})
			if st := StatusOf(res, err); st != tc.status {
				t.Errorf("status %q (err %v), want %q", st, err, tc.status)
			}
			if fl := Classify(err); fl.Code != tc.code {
				t.Errorf("code %d, want %d (err %v)", fl.Code, tc.code, err)
			}
			if <-ended {
				t.Errorf("the end of the message was sent")
			}
			if t.Failed() {
				t.Logf("transcript:\n%s", dumpTranscript(tr))
			}
		})
	}
}

// TestFirstDigitDecides: RFC 5321 4.2.1: a client that meets a reply code
// it does not expect decides by its first digit: any 2yz to EHLO or after
// AUTH is success, any 3yz to DATA asks for the message.
func TestFirstDigitDecides(t *testing.T) {
	const envDT = "MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
	tests := []rfcCase{
		{
			name:   "EHLO answered 251, DATA 350",
			server: "220 mx.test ESMTP\n251-mx.test\n251 PIPELINING\n250 Ok\n250 Ok\n350 go on\n250 Ok\n221 Bye\n",
			client: segs("EHLO client.test\n", envDT, "Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent,
		},
		{
			name:   "AUTH answered 239",
			server: "220 mx.test ESMTP\n250-mx.test\n250-PIPELINING\n250 AUTH PLAIN\n239 2.7.0 welcome\n250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n",
			cfg: func(c *Config) {
				c.Auth = &Auth{Mechanism: "PLAIN", Username: "u", Password: "p"}
				c.AllowInsecureAuth = true
			},
			client: segs("EHLO client.test\n", "AUTH PLAIN AHUAcA==\n", envDT, "Subject: hi\n\nhello\n.\nQUIT\n"),
			status: StatusSent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runRFCCase(t, tc) })
	}
}
