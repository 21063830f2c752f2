package message

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Message limits.
const (
	maxHeaderText = 16 << 10 // Subject or custom field value, bytes
	maxFields     = 100      // custom header fields
	maxIDs        = 100      // References entries
	maxMsgID      = 250      // bytes, without angle brackets
)

// Content is a complete message ready for an SMTP transaction: its envelope,
// its exact bytes and what the client must ask the server for. [Message],
// [Raw] and [Signed] implement it.
//
// An SMTP client sends MAIL FROM:<EnvelopeFrom()> with SIZE=Size(), adds
// SMTPUTF8 when NeedsSMTPUTF8 reports true (and refuses to send when the
// server does not offer it), adds BODY=8BITMIME when Needs8BitMIME reports
// true (and refuses when not offered), sends RCPT TO for every Recipients()
// entry, then streams WriteTo into DATA (dot-stuffing it) or BDAT. If
// WriteTo fails part way, the client must not end the DATA command: it
// should drop the connection so that a truncated message is never
// delivered.
type Content interface {
	// EnvelopeFrom returns the RFC 5321 reverse-path address, "" for the
	// null reverse-path.
	EnvelopeFrom() string
	// Recipients returns the RFC 5321 forward-path addresses, without
	// duplicates.
	Recipients() []string
	// NeedsSMTPUTF8 reports whether the envelope or the header holds UTF-8
	// (RFC 6531, RFC 6532).
	NeedsSMTPUTF8() bool
	// Needs8BitMIME reports whether the content holds octets above 127
	// outside what SMTPUTF8 covers (RFC 6152).
	Needs8BitMIME() bool
	// Size returns the exact number of bytes WriteTo writes.
	Size() (int64, error)
	// WriteTo writes the message, CRLF line endings, no dot-stuffing.
	WriteTo(w io.Writer) (int64, error)
}

// Field is a custom header field, written after the standard ones in the
// order given.
type Field struct {
	// Name is the field name (RFC 5322 3.6.8 printable ASCII without ":").
	// Fields that Message sets itself are refused: Date, From, Sender,
	// Reply-To, To, Cc, Bcc, Subject, Message-ID, In-Reply-To, References,
	// MIME-Version, Content-*, DKIM-Signature and Return-Path.
	Name string
	// Value is unstructured text, without leading and trailing white space.
	// Printable ASCII is written as given and folded at white space;
	// anything else becomes RFC 2047 encoded-words.
	Value string
}

// Message is an email message to compose: fill in the fields, then call
// WriteTo (or Size). Addresses are validated, never concatenated from raw
// input: build them with [ParseAddress] and [ParseAddressList], or as
// mail.Address values whose Address is "local@domain" with a dot-atom local
// part. A Message is not safe for concurrent use until Prepare has run.
type Message struct {
	// From is the author; required.
	From *mail.Address
	// Sender is the agent that sends on behalf of From (RFC 5322 3.6.2);
	// optional. When set, it is also the envelope sender.
	Sender *mail.Address
	// To, Cc and Bcc are the recipients; at least one is required. Bcc
	// addresses go to the envelope only, never into the header.
	To, Cc, Bcc []*mail.Address
	// ReplyTo is where replies should go; optional.
	ReplyTo []*mail.Address

	// Subject is unstructured text of any length up to 16 KiB; it is folded
	// and, when not plain ASCII, written as RFC 2047 encoded-words. Leading
	// and trailing white space is dropped. Empty means no Subject field.
	Subject string
	// Date is the origination date; Prepare sets it to the current time when
	// zero.
	Date time.Time
	// MessageID is the Message-ID without angle brackets. Prepare generates
	// one ("random@domain-of-From") when empty; read it back after Prepare.
	MessageID string
	// InReplyTo is the Message-ID of the message replied to; optional.
	InReplyTo string
	// References lists Message-IDs of the thread; optional.
	References []string
	// Headers are custom header fields.
	Headers []Field

	// Text is the text/plain body. With HTML empty, the message is a single
	// text/plain part (possibly empty). Any valid UTF-8 is accepted, NUL and
	// other control characters included: they are quoted-printable or
	// base64 encoded, never sent raw. Line endings become CRLF.
	Text string
	// HTML is the text/html body. The message becomes multipart/alternative
	// with Text, or with text derived from the HTML when Text is empty.
	HTML string
	// Attachments are attached files; they make the message
	// multipart/mixed.
	Attachments []*Attachment
	// Inline are parts the HTML shows through "cid:" URLs, each with a
	// ContentID; they put the HTML in a multipart/related. Inline parts need
	// an HTML body.
	Inline []*Attachment

	rand       io.Reader        // random source; nil means crypto/rand
	now        func() time.Time // clock; nil means time.Now
	boundaries []string         // mixed, alternative, related; fixed by Prepare
}

// Validate checks the whole message without writing it: addresses, header
// text (no line breaks or NUL anywhere), custom fields, Message-IDs, bodies
// and attachments (without opening them). It is called by Prepare, WriteTo
// and Size. The checks run in that order and the first error is returned.
func (m *Message) Validate() error {
	for _, check := range []func() error{
		m.validateAddresses,
		m.validateSubject,
		m.validateIDs,
		m.validateFields,
		m.validateBodies,
		m.validateAttachments,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateAddresses checks From, Sender, To, Cc, Bcc and Reply-To, and that
// there is at least one recipient.
func (m *Message) validateAddresses() error {
	if m.From == nil {
		return errors.New("message: From: required")
	}
	if _, err := checkAddr("From", m.From); err != nil {
		return err
	}
	if m.Sender != nil {
		if _, err := checkAddr("Sender", m.Sender); err != nil {
			return err
		}
	}
	lists := []struct {
		name string
		list []*mail.Address
	}{{"To", m.To}, {"Cc", m.Cc}, {"Bcc", m.Bcc}, {"Reply-To", m.ReplyTo}}
	n := 0
	for _, l := range lists {
		if err := checkAddrList(l.name, l.list); err != nil {
			return err
		}
		if l.name != "Reply-To" {
			n += len(l.list)
		}
	}
	if n == 0 {
		return errors.New("message: no recipient: To, Cc or Bcc is required")
	}
	return nil
}

// checkAddrList checks every address of the header field name, then their
// number.
func checkAddrList(name string, list []*mail.Address) error {
	for _, a := range list {
		if _, err := checkAddr(name, a); err != nil {
			return err
		}
	}
	if len(list) > maxAddresses {
		return fmt.Errorf("message: %s: more than %d addresses", name, maxAddresses)
	}
	return nil
}

// validateSubject checks the Subject text and its length.
func (m *Message) validateSubject() error {
	if err := checkText("Subject", m.Subject); err != nil {
		return err
	}
	if len(m.Subject) > maxHeaderText {
		return fmt.Errorf("message: Subject: longer than %d bytes", maxHeaderText)
	}
	return nil
}

// validateIDs checks Message-ID, In-Reply-To and References.
func (m *Message) validateIDs() error {
	if m.MessageID != "" {
		if _, err := checkMsgID("Message-ID", m.MessageID); err != nil {
			return err
		}
	}
	if m.InReplyTo != "" {
		if _, err := checkMsgID("In-Reply-To", m.InReplyTo); err != nil {
			return err
		}
	}
	if len(m.References) > maxIDs {
		return fmt.Errorf("message: References: more than %d entries", maxIDs)
	}
	for _, id := range m.References {
		if _, err := checkMsgID("References", id); err != nil {
			return err
		}
	}
	return nil
}

// validateFields checks the custom header fields: their number, then each
// name, value and value length in order.
func (m *Message) validateFields() error {
	if len(m.Headers) > maxFields {
		return fmt.Errorf("message: more than %d custom header fields", maxFields)
	}
	for _, h := range m.Headers {
		if err := checkFieldName(h.Name); err != nil {
			return err
		}
		if err := checkText(h.Name, h.Value); err != nil {
			return err
		}
		if len(h.Value) > maxHeaderText {
			return fmt.Errorf("message: %s: longer than %d bytes", h.Name, maxHeaderText)
		}
	}
	return nil
}

// validateBodies checks that Text and HTML are valid UTF-8.
func (m *Message) validateBodies() error {
	if !utf8.ValidString(m.Text) {
		return errors.New("message: Text: is not valid UTF-8")
	}
	if !utf8.ValidString(m.HTML) {
		return errors.New("message: HTML: is not valid UTF-8")
	}
	return nil
}

// validateAttachments checks the attachments and the inline parts, which
// need an HTML body and distinct Content-IDs (compared without regard to
// case and angle brackets).
func (m *Message) validateAttachments() error {
	for _, a := range m.Attachments {
		if err := a.check("attachment", false); err != nil {
			return err
		}
	}
	if len(m.Inline) > 0 && m.HTML == "" {
		return errors.New("message: inline parts need an HTML body")
	}
	ids := make(map[string]bool)
	for _, a := range m.Inline {
		if err := a.check("inline part", true); err != nil {
			return err
		}
		id := strings.ToLower(trimBrackets(a.ContentID))
		if ids[id] {
			return fmt.Errorf("message: inline part %q: duplicate Content-ID %q", a.Filename, a.ContentID)
		}
		ids[id] = true
	}
	return nil
}

// Prepare validates the message and fixes what would otherwise change from
// one WriteTo to the next: it sets Date when zero and MessageID when empty,
// chooses the MIME boundaries, and detects the content type of attachments
// that have none (reading at most 512 bytes of each). After Prepare, WriteTo
// writes the same bytes every time as long as the fields and attachment
// sources do not change. WriteTo and Size call it.
func (m *Message) Prepare() error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.Date.IsZero() {
		now := time.Now
		if m.now != nil {
			now = m.now
		}
		m.Date = now()
	}
	if m.MessageID == "" {
		id, err := m.random()
		if err != nil {
			return err
		}
		from, _ := checkAddr("From", m.From)
		domain := from.domain
		if !isASCII(domain) {
			domain = "localhost"
		}
		m.MessageID = strings.ToLower(id) + "@" + domain
	}
	if m.boundaries == nil {
		b := make([]string, 0, 3)
		for len(b) < 3 {
			r, err := m.random()
			if err != nil {
				return err
			}
			// All boundaries have the same length, so none is a prefix
			// of another unless equal.
			if s := "=_" + r; !containsString(b, s) {
				b = append(b, s)
			}
		}
		m.boundaries = b
	}
	for _, a := range m.Attachments {
		if err := a.detectType(); err != nil {
			return err
		}
	}
	for _, a := range m.Inline {
		if err := a.detectType(); err != nil {
			return err
		}
	}
	return nil
}

// random returns 120 random bits as 24 base32 characters (A-Z, 2-7).
func (m *Message) random() (string, error) {
	r := m.rand
	if r == nil {
		r = rand.Reader
	}
	var b [15]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("message: random source: %w", err)
	}
	return base32.StdEncoding.EncodeToString(b[:]), nil
}

// isPrintableASCII reports whether s holds only characters from "!" to "~".
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func trimBrackets(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
}

// checkMsgID validates a msg-id (RFC 5322 3.6.4), given with or without
// angle brackets, and returns it without them.
func checkMsgID(field, id string) (string, error) {
	if err := checkRaw(id); err != nil {
		return "", fmt.Errorf("message: %s: %w", field, err)
	}
	id = trimBrackets(strings.TrimSpace(id))
	left, right, ok := strings.Cut(id, "@")
	switch {
	case !ok || left == "" || right == "" || strings.Contains(right, "@"):
		return "", fmt.Errorf("message: %s: %q is not of the form id-left@id-right", field, id)
	case len(id) > maxMsgID:
		return "", fmt.Errorf("message: %s: longer than %d bytes", field, maxMsgID)
	}
	dotAtom := func(s string) bool {
		if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c >= 0x80 || !isAtext(rune(c)) && c != '.' {
				return false
			}
		}
		return true
	}
	// id-right may also be a no-fold-literal: "[" *dtext "]".
	literal := len(right) >= 2 && right[0] == '[' && right[len(right)-1] == ']' &&
		!strings.ContainsAny(right[1:len(right)-1], "[]\\") && isPrintableASCII(right)
	if !dotAtom(left) || !dotAtom(right) && !literal {
		return "", fmt.Errorf("message: %s: %q is not a valid msg-id", field, id)
	}
	return id, nil
}

// addrs returns the checked form of list; Validate has run.
func addrs(field string, list []*mail.Address) []addr {
	out := make([]addr, 0, len(list))
	for _, a := range list {
		c, err := checkAddr(field, a)
		if err == nil {
			out = append(out, c)
		}
	}
	return out
}

// Recipients returns the addr-specs of To, Cc and Bcc, in that order,
// without duplicates (domains compared without regard to case), with
// non-ASCII domains in their A-label form: the RCPT TO list. Invalid
// addresses are left out; Validate reports them.
func (m *Message) Recipients() []string {
	seen := make(map[string]bool)
	var out []string
	for _, l := range [][]*mail.Address{m.To, m.Cc, m.Bcc} {
		for _, a := range addrs("", l) {
			key := a.local + "@" + strings.ToLower(a.domain)
			if !seen[key] {
				seen[key] = true
				out = append(out, a.spec())
			}
		}
	}
	return out
}

// EnvelopeFrom returns the MAIL FROM address: the Sender's addr-spec when
// Sender is set, else the From addr-spec; "" when neither is valid.
func (m *Message) EnvelopeFrom() string {
	a := m.Sender
	if a == nil {
		a = m.From
	}
	c, err := checkAddr("", a)
	if err != nil {
		return ""
	}
	return c.spec()
}

// NeedsSMTPUTF8 reports whether an address of the message (envelope or
// header) has a non-ASCII local part, or a non-ASCII domain without an IDNA
// A-label form. Such addresses are written in UTF-8 (RFC 6532) and the
// client must send with the SMTPUTF8 extension (RFC 6531), or refuse to
// send when the server does not offer it. Display names and the Subject
// never need it: they are written as RFC 2047 encoded-words.
func (m *Message) NeedsSMTPUTF8() bool {
	lists := [][]*mail.Address{{m.From}, m.To, m.Cc, m.Bcc, m.ReplyTo}
	if m.Sender != nil {
		lists = append(lists, []*mail.Address{m.Sender})
	}
	for _, l := range lists {
		for _, a := range addrs("", l) {
			if a.utf8 {
				return true
			}
		}
	}
	return false
}

// Needs8BitMIME always reports false: a Message never holds 8-bit body data,
// text is sent as 7bit, quoted-printable or base64.
func (m *Message) Needs8BitMIME() bool { return false }
