package check

// The real test message, opt-in (issue 14 item 2): after the checks, one
// small text message goes through the checked server, the first MX host
// that answered, or a saved profile's server, with full DATA or BDAT, and
// its conversation is kept in the report like the others.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"sockmail/smtp"
)

// maxAddressLength bounds the test message's addresses (RFC 5321 4.5.3.1.3
// path limit).
const maxAddressLength = 256

// TestSendGroup is the group (Finding.Host) of the test message's
// findings when it goes through a profile, which is not a checked host.
const TestSendGroup = "test message"

// TestSendPurpose is the Purpose of the test message's conversation.
const TestSendPurpose = "test message"

// TestSendOptions asks for a real test message; the zero value sends none.
type TestSendOptions struct {
	// To is the recipient; empty sends nothing.
	To string
	// From is the envelope sender and the From header; empty: the
	// sender-side From domain's or the target domain's
	// sockmail-check@ address.
	From string
	// Via, if set, is the server the message goes through instead of the
	// checked one: a saved profile resolved to its configuration, with
	// its credentials. Its Transcript is replaced.
	Via *smtp.Config
	// ViaName names Via in findings ("profile work").
	ViaName string
}

// Validate checks the addresses, naming what is wrong, and fills in From
// from the sender-side domain (senderFrom) or the target domain.
func (o *TestSendOptions) Validate(senderFrom string, target Target) error {
	if o.To == "" {
		if o.From != "" || o.Via != nil {
			return errors.New("check: a test message sender or profile needs a recipient (--send-to someone@example.org)")
		}
		return nil
	}
	if err := checkAddress("recipient", o.To); err != nil {
		return err
	}
	if o.From == "" {
		switch {
		case senderFrom != "":
			o.From = "sockmail-check@" + senderFrom
		case target.Kind == KindDomain:
			o.From = "sockmail-check@" + target.Host
		default:
			return errors.New("check: a test message through a server needs a sender address (--send-from you@your-domain) or the From domain (--from)")
		}
	}
	return checkAddress("sender", o.From)
}

// checkAddress validates a test message address: one local@domain of at
// most maxAddressLength bytes, without spaces, brackets or line breaks.
func checkAddress(what, a string) error {
	if len(a) > maxAddressLength {
		return fmt.Errorf("check: test message %s is %d bytes long; the limit is %d", what, len(a), maxAddressLength)
	}
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" || strings.Contains(domain, "@") || strings.ContainsAny(a, " \t\r\n<>,;\"") {
		return fmt.Errorf("check: test message %s %q is not an address (local@domain)", what, a)
	}
	if _, err := checkDomain(domain, true); err != nil {
		return fmt.Errorf("check: test message %s %q: %s", what, a, strings.TrimPrefix(err.Error(), "check: "))
	}
	return nil
}

// domainOfAddr returns the lower-cased domain of an address.
func domainOfAddr(a string) string {
	return strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
}

// testMessage returns the test message and its Message-ID (without
// angle brackets).
func testMessage(from, to, target string, now time.Time) ([]byte, string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", fmt.Errorf("check: message id: %w", err)
	}
	id := "sockmail-check-" + hex.EncodeToString(b[:]) + "@" + domainOfAddr(from)
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: <%s>\r\nTo: <%s>\r\nSubject: sockmail check of %s\r\n", from, to, target)
	fmt.Fprintf(&m, "Date: %s\r\nMessage-ID: <%s>\r\n", now.UTC().Format(time.RFC1123Z), id)
	m.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nAuto-Submitted: auto-generated\r\n\r\n")
	fmt.Fprintf(&m, "This is a test message sent by sockmail check of %s.\r\nIt needs no answer; it shows that mail from %s reaches %s.\r\n", target, from, to)
	return m.Bytes(), id, nil
}

// localDialer dials through next (a net.Dialer if nil) and remembers the
// local address of the last connection, the address the server saw
// sockmail connect from.
type localDialer struct {
	next  smtp.Dialer
	mu    sync.Mutex
	local string
}

// DialContext dials and records the connection's local address.
func (l *localDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	next := l.next
	if next == nil {
		next = &net.Dialer{}
	}
	conn, err := next.DialContext(ctx, network, addr)
	if err == nil {
		if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
			l.mu.Lock()
			l.local = a.IP.String()
			l.mu.Unlock()
		}
	}
	return conn, err
}

// localIP returns the recorded local address.
func (l *localDialer) localIP() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.local
}

// testSendHost picks where the test message goes without a profile: the
// server, or the first host (MX order) whose SMTP connection passed.
func (c *checker) testSendHost(hosts []Host) (Host, string, bool) {
	findings := c.rep.Findings()
	for _, h := range hosts {
		if h.Service != "" {
			continue // submission servers need credentials: use a profile
		}
		for _, f := range findings {
			if f.ID == "smtp.connect" && f.Host == h.Name && f.Status == Pass {
				return h, f.Addr, true
			}
		}
	}
	return Host{}, "", false
}

// testSend sends the test message and, when it is accepted, judges how
// the message as sent would align (align.go).
func (c *checker) testSend(ctx context.Context, o TestSendOptions, hosts []Host) {
	var (
		cfg   smtp.Config
		group string
		at    string // the address of a checked host, empty for a profile
		conv  *Conversation
	)
	f := func(st Status, msg, fix string) {
		c.rep.add(Finding{ID: "send.result", Host: group, Addr: at, Status: st, Message: msg, Fix: fix, Conversation: conv.ID})
	}
	if o.Via != nil {
		group = TestSendGroup
		cfg = *o.Via
		conv = c.rep.newConversation(o.ViaName, cfg.Addr, TestSendPurpose)
		cfg.Transcript = conv.Transcript
	} else {
		h, addr, ok := c.testSendHost(hosts)
		if !ok {
			group = TestSendGroup
			conv = &Conversation{}
			f(Fail, fmt.Sprintf("No test message was sent to %s: no host of %s accepted an SMTP connection.", o.To, c.target), "Fix the connection findings above, then run the check again.")
			return
		}
		group, at = h.Name, addr
		conv = c.rep.newConversation(h.Name, net.JoinHostPort(addr, strconv.Itoa(h.Port)), TestSendPurpose)
		cfg = c.config(h, addr, conv, nil)
	}
	dialer := &localDialer{next: cfg.Dialer}
	cfg.Dialer = dialer
	msg, id, err := testMessage(o.From, o.To, c.target.String(), c.now())
	if err != nil {
		f(Fail, err.Error(), "")
		return
	}
	res, err := smtp.SendMail(ctx, cfg, smtp.Envelope{From: o.From, To: []string{o.To}, Size: int64(len(msg))}, bytes.NewReader(msg), smtp.SendOptions{})
	c.rep.setConversationErr(conv, err)
	via := conv.Addr
	if o.Via != nil && o.ViaName != "" {
		via = fmt.Sprintf("%s (%s)", o.ViaName, conv.Addr)
	}
	var se *smtp.Error
	switch {
	case err == nil && res != nil && res.Final != nil:
		queue := "no queue id given"
		if res.QueueID != "" {
			queue = "queue id " + res.QueueID
		}
		f(Pass, fmt.Sprintf("The test message <%s> from %s to %s was accepted by %s (%s).", id, o.From, o.To, via, queue), "")
	case errors.As(err, &se):
		f(Fail, fmt.Sprintf("The test message from %s to %s was refused by %s at %s: %d %s.", o.From, o.To, via, strings.ToUpper(string(se.Phase)), se.Code, oneLine(se.Message)),
			refusalFix(se, o))
		return
	case err != nil:
		f(Fail, fmt.Sprintf("The test message from %s to %s could not be sent through %s: %v.", o.From, o.To, via, err), "Fix the connection findings, then run the check again.")
		return
	default:
		f(Warning, fmt.Sprintf("The test message from %s to %s got no final reply from %s.", o.From, o.To, via), "Run the check again and read the transcript.")
		return
	}
	if ctx.Err() == nil {
		c.align(ctx, o, dialer.localIP(), group, at)
	}
}

// refusalFix says what to change after a refusal, by the phase it came
// in.
func refusalFix(se *smtp.Error, o TestSendOptions) string {
	temp := se.Code >= 400 && se.Code < 500
	switch {
	case temp:
		return "The refusal is temporary (4xx): run the check again later; if it stays, read the server's log."
	case se.Phase == smtp.PhaseRcpt:
		return fmt.Sprintf("The server does not take mail for %s: check the address, or that the server accepts mail for %s (or relays it for you: use a profile with credentials).", o.To, domainOfAddr(o.To))
	case se.Phase == smtp.PhaseMail:
		return fmt.Sprintf("The server refuses the sender %s: use an address it accepts, or a profile that authenticates.", o.From)
	case se.Phase == smtp.PhaseAuth:
		return "Check the profile's user name and password."
	default:
		return "Read the server's reply and the transcript: the message content or size was refused."
	}
}
