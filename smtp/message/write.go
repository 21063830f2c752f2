package message

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// Boundaries and encoded content cannot collide (RFC 2046 5.1.1).
//
// Every boundary is "=_" followed by 24 random base32 characters, and the
// three boundaries of a message (mixed, alternative, related) have the same
// length and differ, so none is a prefix of another. A delimiter line is
// "--" + boundary, so it contains "=_". Content never does:
//
//   - base64 lines hold only A-Z a-z 0-9 + / and "=" padding at the very
//     end: no "_";
//   - quoted-printable writes a literal "=" as "=3D", so every "=" is
//     followed by a hex digit or ends the line (soft break): never "_";
//   - 7bit is only chosen for text that does not contain "=_" at all
//     (chooseEncoding), else the text goes quoted-printable;
//   - header fields of parts are built here and hold no "=_" at a line
//     start (folded lines start with white space).
//
// So no content line can start with a delimiter, whatever the content.

// Transfer encodings.
const (
	enc7bit   = "7bit"
	encQP     = "quoted-printable"
	encBase64 = "base64"
)

// b64LineLen is the RFC 2045 6.8 line length for base64.
const b64LineLen = 76

// part is one node of the MIME tree.
type part struct {
	header string // folded fields, each ending in CRLF
	body   []byte // leaf: encoded content, or
	att    *Attachment
	// multipart:
	boundary string
	parts    []*part
}

// normalizeNL turns CRLF and bare CR into LF.
func normalizeNL(s string) string {
	if !strings.ContainsRune(s, '\r') {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// chooseEncoding picks the transfer encoding of LF-separated text: 7bit when
// every line is printable ASCII (tabs allowed), at most 998 bytes and the
// text holds no "=_"; else quoted-printable when at most one byte in six
// needs escaping (it is then smaller than base64); else base64.
func chooseEncoding(s string) string {
	unsafe, line, longest := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			line = 0
			continue
		}
		line++
		longest = max(longest, line)
		if c >= 0x7f || c < ' ' && c != '\t' {
			unsafe++
		}
	}
	switch {
	case unsafe == 0 && longest <= hardLineLen && !strings.Contains(s, "=_"):
		return enc7bit
	case unsafe*6 <= len(s):
		return encQP
	}
	return encBase64
}

// textPart returns a text/subtype leaf holding s, UTF-8, CRLF line endings.
func textPart(subtype, s string) (*part, error) {
	s = normalizeNL(s)
	enc := chooseEncoding(s)
	var body bytes.Buffer
	switch enc {
	case enc7bit:
		body.WriteString(strings.ReplaceAll(s, "\n", "\r\n"))
	case encQP:
		qw := quotedprintable.NewWriter(&body)
		if _, err := io.WriteString(qw, s); err != nil {
			return nil, err
		}
		if err := qw.Close(); err != nil {
			return nil, err
		}
	case encBase64:
		be := base64.NewEncoder(base64.StdEncoding, &lineBreaker{w: &body})
		if _, err := io.WriteString(be, strings.ReplaceAll(s, "\n", "\r\n")); err != nil {
			return nil, err
		}
		if err := be.Close(); err != nil {
			return nil, err
		}
	}
	ct, err := mediaField("Content-Type", "text/"+subtype, map[string]string{"charset": "utf-8"}, "", "")
	if err != nil {
		return nil, err
	}
	return &part{
		header: ct + "Content-Transfer-Encoding: " + enc + "\r\n",
		body:   body.Bytes(),
	}, nil
}

// attachmentPart returns a base64 leaf for a, an attachment or, with
// inline, an inline part.
func attachmentPart(a *Attachment, inline bool) (*part, error) {
	mt, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil {
		return nil, fmt.Errorf("message: attachment %q: content type: %w", a.Filename, err)
	}
	ct, err := mediaField("Content-Type", mt, params, "name", a.Filename)
	if err != nil {
		return nil, err
	}
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	cd, err := mediaField("Content-Disposition", disp, nil, "filename", a.Filename)
	if err != nil {
		return nil, err
	}
	h := ct + cd
	if a.ContentID != "" {
		h += "Content-ID: <" + trimBrackets(a.ContentID) + ">\r\n"
	}
	h += "Content-Transfer-Encoding: base64\r\n"
	return &part{header: h, att: a}, nil
}

// multipartNode returns a multipart/subtype node.
func multipartNode(subtype, boundary string, params map[string]string, parts ...*part) (*part, error) {
	p := map[string]string{"boundary": boundary}
	for k, v := range params {
		p[k] = v
	}
	ct, err := mediaField("Content-Type", "multipart/"+subtype, p, "", "")
	if err != nil {
		return nil, err
	}
	return &part{header: ct, boundary: boundary, parts: parts}, nil
}

// body builds the MIME tree:
//
//	text only:       text/plain
//	HTML:            multipart/alternative(text/plain, text/html)
//	inline parts:    ... text/html becomes multipart/related(text/html, inline...)
//	attachments:     multipart/mixed(body, attachment...)
func (m *Message) body() (*part, error) {
	if m.HTML == "" {
		root, err := textPart("plain", m.Text)
		if err != nil {
			return nil, err
		}
		return m.mixed(root)
	}
	text := m.Text
	if text == "" {
		text = HTMLToText(m.HTML)
	}
	plain, err := textPart("plain", text)
	if err != nil {
		return nil, err
	}
	html, err := textPart("html", m.HTML)
	if err != nil {
		return nil, err
	}
	if len(m.Inline) > 0 {
		parts := []*part{html}
		for _, a := range m.Inline {
			p, err := attachmentPart(a, true)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		html, err = multipartNode("related", m.boundaries[2], map[string]string{"type": "text/html"}, parts...)
		if err != nil {
			return nil, err
		}
	}
	alt, err := multipartNode("alternative", m.boundaries[1], nil, plain, html)
	if err != nil {
		return nil, err
	}
	return m.mixed(alt)
}

// mixed wraps body and the attachments in multipart/mixed, when there are
// attachments.
func (m *Message) mixed(body *part) (*part, error) {
	if len(m.Attachments) == 0 {
		return body, nil
	}
	parts := []*part{body}
	for _, a := range m.Attachments {
		p, err := attachmentPart(a, false)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return multipartNode("mixed", m.boundaries[0], nil, parts...)
}

// header builds the message header fields, without the MIME fields of the
// body.
func (m *Message) header() (string, error) {
	var b strings.Builder
	add := func(s string, err error) error {
		b.WriteString(s)
		return err
	}
	from, _ := checkAddr("From", m.From)
	if err := add(addressField("From", []addr{from})); err != nil {
		return "", err
	}
	if m.Sender != nil {
		s, _ := checkAddr("Sender", m.Sender)
		if err := add(addressField("Sender", []addr{s})); err != nil {
			return "", err
		}
	}
	if len(m.ReplyTo) > 0 {
		if err := add(addressField("Reply-To", addrs("Reply-To", m.ReplyTo))); err != nil {
			return "", err
		}
	}
	switch {
	case len(m.To) > 0:
		if err := add(addressField("To", addrs("To", m.To))); err != nil {
			return "", err
		}
	case len(m.Cc) == 0:
		// Only Bcc: an empty group says so (RFC 5322 3.6.3 allows no To;
		// this keeps clients that expect one happy).
		b.WriteString("To: undisclosed-recipients:;\r\n")
	}
	if len(m.Cc) > 0 {
		if err := add(addressField("Cc", addrs("Cc", m.Cc))); err != nil {
			return "", err
		}
	}
	if strings.Trim(m.Subject, " \t") != "" {
		if err := add(unstructured("Subject", m.Subject, true)); err != nil {
			return "", err
		}
	}
	b.WriteString("Date: " + m.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n")
	id, _ := checkMsgID("Message-ID", m.MessageID)
	b.WriteString("Message-ID: <" + id + ">\r\n")
	if m.InReplyTo != "" {
		id, _ := checkMsgID("In-Reply-To", m.InReplyTo)
		b.WriteString("In-Reply-To: <" + id + ">\r\n")
	}
	if len(m.References) > 0 {
		f := newField("References")
		for _, r := range m.References {
			id, _ := checkMsgID("References", r)
			f.token(" ", "<"+id+">", false)
		}
		if err := add(f.result()); err != nil {
			return "", err
		}
	}
	for _, h := range m.Headers {
		if err := add(unstructured(h.Name, h.Value, false)); err != nil {
			return "", err
		}
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	return b.String(), nil
}

// WriteTo writes the message to w: header, CRLF line endings throughout, no
// line over 998 characters. Attachments are read from their source while
// writing, through a base64 encoder, so memory does not grow with their
// size. It calls Prepare first. It returns the number of bytes written.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	if len(m.Attachments)+len(m.Inline) == 0 {
		// Everything is in memory and goes in a few large writes: a
		// buffer would only be allocated, cleared and copied through for
		// every message of a run.
		err := m.write(&out{w: cw})
		return cw.n, err
	}
	bw := bufio.NewWriterSize(cw, maxWriteBuffer)
	o := &out{w: bw}
	err := m.write(o)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("message: write: %w", ferr)
	}
	return cw.n, err
}

// Repeatable reports that WriteTo writes the whole message each time it
// is called (attachments are opened anew): smtp.SendBatch may send it
// again (smtp.Repeatable).
func (m *Message) Repeatable() bool { return true }

// maxWriteBuffer is the buffer WriteTo writes a message with attachments
// through: they are copied in pieces of this size.
const maxWriteBuffer = 32 << 10

// Size returns the exact number of bytes WriteTo writes, without reading
// attachments (their base64 size follows from Attachment.Size). It calls
// Prepare first.
func (m *Message) Size() (int64, error) {
	o := &out{}
	if err := m.write(o); err != nil {
		return 0, err
	}
	return o.n, nil
}

// write writes or, when o.w is nil, counts the message.
func (m *Message) write(o *out) error {
	if err := m.Prepare(); err != nil {
		return err
	}
	h, err := m.header()
	if err != nil {
		return err
	}
	root, err := m.body()
	if err != nil {
		return err
	}
	o.str(h)
	o.str(root.header)
	o.str("\r\n")
	start := o.n
	if err := o.part(root); err != nil {
		return err
	}
	if o.n > start && o.tail != [2]byte{'\r', '\n'} {
		o.str("\r\n")
	}
	if o.err != nil {
		return fmt.Errorf("message: write: %w", o.err)
	}
	return nil
}

// out writes to w, or only counts when w is nil. It remembers the first
// error and the last two bytes.
type out struct {
	w    io.Writer
	n    int64
	err  error
	tail [2]byte
}

func (o *out) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.w != nil {
		if _, err := o.w.Write(p); err != nil {
			o.err = err
			return 0, err
		}
	}
	o.n += int64(len(p))
	switch len(p) {
	case 0:
	case 1:
		o.tail = [2]byte{o.tail[1], p[0]}
	default:
		o.tail = [2]byte{p[len(p)-2], p[len(p)-1]}
	}
	return len(p), nil
}

func (o *out) str(s string) { _, _ = io.WriteString(o, s) }

// part writes p's body (its header is written by the caller).
func (o *out) part(p *part) error {
	switch {
	case p.att != nil:
		return o.attachment(p.att)
	case p.parts != nil:
		for i, c := range p.parts {
			if i > 0 {
				o.str("\r\n")
			}
			o.str("--" + p.boundary + "\r\n" + c.header + "\r\n")
			if err := o.part(c); err != nil {
				return err
			}
		}
		o.str("\r\n--" + p.boundary + "--")
	default:
		_, _ = o.Write(p.body)
	}
	return nil
}

// base64Len returns the size of n bytes base64-encoded in lines of 76
// characters separated by CRLF, without a final CRLF.
func base64Len(n int64) int64 {
	e := (n + 2) / 3 * 4
	if e == 0 {
		return 0
	}
	lines := (e + b64LineLen - 1) / b64LineLen
	return e + 2*(lines-1)
}

// attachment streams a's content base64-encoded, or counts it when only
// sizing.
func (o *out) attachment(a *Attachment) error {
	if o.w == nil {
		o.n += base64Len(a.Size)
		o.tail = [2]byte{'=', '='} // anything but CRLF: a delimiter follows
		return nil
	}
	rc, err := a.Open()
	if err != nil {
		return fmt.Errorf("message: attachment %q: open: %w", a.Filename, err)
	}
	defer rc.Close()
	be := base64.NewEncoder(base64.StdEncoding, &lineBreaker{w: o})
	n, err := io.Copy(be, io.LimitReader(rc, a.Size+1))
	if o.err != nil {
		return fmt.Errorf("message: write: %w", o.err)
	}
	if err != nil {
		return fmt.Errorf("message: attachment %q: read: %w", a.Filename, err)
	}
	if err := be.Close(); err != nil {
		return fmt.Errorf("message: write: %w", err)
	}
	if n != a.Size {
		return fmt.Errorf("message: attachment %q: source has %s bytes, Size says %d", a.Filename, moreThan(n, a.Size), a.Size)
	}
	return nil
}

func moreThan(n, size int64) string {
	if n > size {
		return fmt.Sprintf("more than %d", size)
	}
	return fmt.Sprint(n)
}

// lineBreaker inserts CRLF every 76 characters, never after the last one.
type lineBreaker struct {
	w    io.Writer
	col  int
	crlf [2]byte // set on first use; a field, so writing it does not allocate
}

func (l *lineBreaker) Write(p []byte) (int, error) {
	l.crlf = [2]byte{'\r', '\n'}
	n := 0
	for len(p) > 0 {
		if l.col == b64LineLen {
			if _, err := l.w.Write(l.crlf[:]); err != nil {
				return n, err
			}
			l.col = 0
		}
		k := min(b64LineLen-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		l.col += k
		n += k
		p = p[k:]
	}
	return n, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
