// Package mailread reads messages for display: header fields decoded from
// RFC 2047 encoded-words in any charset golang.org/x/text knows (RFC 2047,
// RFC 2231), the MIME tree walked (RFC 2045, 2046), text and HTML parts
// chosen, attachments listed. Every page that shows stored or captured
// mail reads it through this package, so a header decodes the same way
// everywhere.
package mailread

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// CharsetReader returns a reader that converts input from charset to
// UTF-8, for every charset the WHATWG encoding standard or the IANA
// registry names (windows-1252, ISO-8859-*, Shift_JIS, EUC-KR, GB18030,
// KOI8-R, ...). It is the CharsetReader of mime.WordDecoder and of
// mime/multipart parsing here.
func CharsetReader(charset string, input io.Reader) (io.Reader, error) {
	cs := strings.ToLower(strings.TrimSpace(charset))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	}
	enc, err := htmlindex.Get(cs)
	if err != nil {
		if enc, err = ianaindex.MIME.Encoding(cs); err != nil || enc == nil {
			return nil, fmt.Errorf("mailread: unknown charset %q", charset)
		}
	}
	return enc.NewDecoder().Reader(input), nil
}

// DecodeHeader decodes the RFC 2047 encoded-words of a header field value.
// A value that cannot be decoded (unknown charset, malformed word) is
// returned as it is, so nothing is hidden.
func DecodeHeader(v string) string {
	dec := mime.WordDecoder{CharsetReader: CharsetReader}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// Subject returns the decoded Subject of a message's header block (the
// bytes before the first empty line; a whole message works too), or ""
// when there is none or the block cannot be parsed.
func Subject(head []byte) string {
	head, _, _ = bytes.Cut(head, []byte("\r\n\r\n"))
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), head...), "\r\n\r\n"...)))
	if err != nil {
		return ""
	}
	return DecodeHeader(m.Header.Get("Subject"))
}

// ToUTF8 converts text in charset to UTF-8 for display. Bytes that are
// invalid in the charset become U+FFFD; an empty or unknown charset is
// read as UTF-8.
func ToUTF8(b []byte, charset string) string {
	if r, err := CharsetReader(charset, bytes.NewReader(b)); err == nil {
		if out, err := io.ReadAll(r); err == nil {
			b = out
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
