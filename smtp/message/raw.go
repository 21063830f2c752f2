package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Raw is a complete message supplied by the user (header and body, as in an
// .eml file), sent as is with an envelope given separately. Only line
// endings change: bare CR and bare LF become CRLF, and a final CRLF is added
// when missing.
//
// The constructors read the source once to check it and to learn its size
// and flags (a counting pass, constant memory), then WriteTo reads it again
// while writing. So Size and the flags cost nothing afterwards, but the
// source must yield the same bytes each time it is opened: WriteTo fails if
// the size it sees differs.
type Raw struct {
	from     string
	to       []string
	open     func() (io.ReadCloser, error)
	size     int64
	utf8     bool // envelope or header holds non-ASCII
	eightBit bool // body holds octets above 127
}

// NewRaw returns a raw message read from open, with the envelope sender from
// ("" for the null reverse-path) and recipients to, each a plain addr-spec
// (local@domain). It reads the source once now and refuses a message that
// holds a NUL byte, a line longer than 998 octets, or that does not start
// with a header field.
func NewRaw(from string, to []string, open func() (io.ReadCloser, error)) (*Raw, error) {
	if open == nil {
		return nil, errors.New("message: raw: no source")
	}
	r := &Raw{open: open}
	if from != "" {
		a, err := checkSpec(from)
		if err != nil {
			return nil, fmt.Errorf("message: raw: envelope sender %q: %w", from, err)
		}
		r.from, r.utf8 = a.spec(), a.utf8
	}
	if len(to) == 0 {
		return nil, errors.New("message: raw: no recipient")
	}
	if len(to) > maxAddresses {
		return nil, fmt.Errorf("message: raw: more than %d recipients", maxAddresses)
	}
	seen := make(map[string]bool)
	for _, s := range to {
		a, err := checkSpec(s)
		if err != nil {
			return nil, fmt.Errorf("message: raw: recipient %q: %w", s, err)
		}
		r.utf8 = r.utf8 || a.utf8
		if key := a.local + "@" + strings.ToLower(a.domain); !seen[key] {
			seen[key] = true
			r.to = append(r.to, a.spec())
		}
	}
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("message: raw: open: %w", err)
	}
	defer rc.Close()
	n := &crlfWriter{check: true}
	if _, err := io.Copy(n, rc); err != nil {
		return nil, fmt.Errorf("message: raw: %w", err)
	}
	if err := n.Close(); err != nil {
		return nil, fmt.Errorf("message: raw: %w", err)
	}
	r.size = n.n
	r.utf8 = r.utf8 || n.utf8Header
	r.eightBit = n.eightBitBody
	return r, nil
}

// RawBytes returns a raw message holding data; see NewRaw. data is not
// copied and must not change until the message is sent.
func RawBytes(from string, to []string, data []byte) (*Raw, error) {
	return NewRaw(from, to, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// RawFile returns a raw message read from the file at path; see NewRaw.
func RawFile(from string, to []string, path string) (*Raw, error) {
	return NewRaw(from, to, func() (io.ReadCloser, error) { return os.Open(path) })
}

// EnvelopeFrom returns the envelope sender, "" for the null reverse-path.
func (r *Raw) EnvelopeFrom() string { return r.from }

// Recipients returns the envelope recipients without duplicates.
func (r *Raw) Recipients() []string { return append([]string(nil), r.to...) }

// NeedsSMTPUTF8 reports whether the envelope or the message header holds
// non-ASCII octets (RFC 6531, RFC 6532).
func (r *Raw) NeedsSMTPUTF8() bool { return r.utf8 }

// Needs8BitMIME reports whether the message body holds octets above 127
// (RFC 6152 BODY=8BITMIME).
func (r *Raw) Needs8BitMIME() bool { return r.eightBit }

// Size returns the number of bytes WriteTo writes, learnt by the counting
// pass of the constructor.
func (r *Raw) Size() (int64, error) { return r.size, nil }

// Repeatable reports that WriteTo writes the whole message each time it
// is called (the source is opened anew): smtp.SendBatch may send it again
// after a server refused it pipelined after the end of the message before.
func (r *Raw) Repeatable() bool { return true }

// WriteTo writes the message with CRLF line endings. It fails if the source
// now yields another size than the constructor saw.
func (r *Raw) WriteTo(w io.Writer) (int64, error) {
	rc, err := r.open()
	if err != nil {
		return 0, fmt.Errorf("message: raw: open: %w", err)
	}
	defer rc.Close()
	cw := &countWriter{w: w}
	// At most maxWriteBuffer; a small message needs no large buffer.
	bw := bufio.NewWriterSize(cw, int(min(maxWriteBuffer, 1<<10+r.size)))
	n := &crlfWriter{w: bw}
	_, err = io.Copy(n, rc)
	if err == nil {
		err = n.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return cw.n, fmt.Errorf("message: raw: %w", err)
	}
	if n.n != r.size {
		return cw.n, fmt.Errorf("message: raw: source changed: %d bytes written, %d expected", n.n, r.size)
	}
	return cw.n, nil
}

// crlfWriter normalises line endings to CRLF while passing data on to w
// (or only counting when w is nil): CRLF stays, a bare CR or a bare LF
// becomes CRLF, and Close ends an unterminated last line. With check, it
// also refuses NUL bytes, lines over 998 octets and a first line that is
// not a header field, and records where non-ASCII octets are.
type crlfWriter struct {
	w     io.Writer
	check bool
	n     int64 // bytes written to w

	cr       bool // a CR was seen and its line not yet ended
	line     int  // octets on the current line
	lines    int  // lines ended so far
	inHeader bool
	first    []byte // start of the first line, to check it

	utf8Header   bool
	eightBitBody bool
}

func (c *crlfWriter) emit(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	c.n += int64(len(p))
	if c.w == nil {
		return nil
	}
	_, err := c.w.Write(p)
	return err
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	if c.lines == 0 && c.line == 0 && !c.cr {
		c.inHeader = true
	}
	start := 0 // start of the current run of ordinary octets
	for i, b := range p {
		if b != '\r' && b != '\n' {
			if c.cr { // bare CR: its line ends here, before this run
				c.cr = false
				if err := c.endLine(); err != nil {
					return i, err
				}
			}
			if err := c.octet(b); err != nil {
				return i, err
			}
			continue
		}
		if err := c.emit(p[start:i]); err != nil {
			return i, err
		}
		start = i + 1
		switch {
		case b == '\n':
			c.cr = false
			if err := c.endLine(); err != nil {
				return i, err
			}
		case c.cr: // CR after a bare CR
			if err := c.endLine(); err != nil {
				return i, err
			}
		default:
			c.cr = true
		}
	}
	if err := c.emit(p[start:]); err != nil {
		return start, err
	}
	return len(p), nil
}

// endLine writes a CRLF and closes the current line.
func (c *crlfWriter) endLine() error {
	if c.check && c.lines == 0 {
		if err := checkFirstLine(c.first); err != nil {
			return err
		}
	}
	if c.line == 0 && c.lines > 0 {
		c.inHeader = false
	}
	c.lines++
	c.line = 0
	return c.emit([]byte("\r\n"))
}

// octet accounts for one ordinary octet of the current line.
func (c *crlfWriter) octet(b byte) error {
	c.line++
	if !c.check {
		return nil
	}
	if c.line > hardLineLen {
		return fmt.Errorf("line %d is longer than %d octets", c.lines+1, hardLineLen)
	}
	if b == 0 {
		return fmt.Errorf("line %d holds a NUL byte", c.lines+1)
	}
	if c.lines == 0 && len(c.first) < 80 {
		c.first = append(c.first, b)
	}
	if b >= 0x80 {
		if c.inHeader {
			c.utf8Header = true
		} else {
			c.eightBitBody = true
		}
	}
	return nil
}

// Close ends an unterminated last line.
func (c *crlfWriter) Close() error {
	if c.cr || c.line > 0 {
		c.cr = false
		if err := c.endLine(); err != nil {
			return err
		}
	}
	if c.check && c.lines == 0 {
		return errors.New("empty message")
	}
	return nil
}

// checkFirstLine refuses a message that does not start with "Name:".
func checkFirstLine(first []byte) error {
	name, _, ok := bytes.Cut(first, []byte(":"))
	if !ok || len(name) == 0 {
		return errors.New("does not start with a header field")
	}
	for _, b := range name {
		if b < '!' || b > '~' {
			return errors.New("does not start with a header field")
		}
	}
	return nil
}
