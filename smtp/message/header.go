package message

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"
)

// Line length limits.
const (
	// softLineLen is the RFC 5322 2.1.1 SHOULD limit, without CRLF.
	softLineLen = 78
	// hardLineLen is the RFC 5322 2.1.1 MUST limit, without CRLF.
	hardLineLen = 998
	// ewLineLen is the RFC 2047 2 limit for a line holding an encoded-word.
	ewLineLen = 76
	// maxEncodedWord is the RFC 2047 2 limit for one encoded-word.
	maxEncodedWord = 75
	// minEncodedWord is enough room for one encoded-word holding a single
	// four-byte character in either encoding ("=?utf-8?q?=F0=9F=98=80?=").
	minEncodedWord = 24
)

// field builds one folded header field. Text is added as tokens; a token
// added with leading white space may be moved to the next line by folding
// (CRLF inserted before that white space, RFC 5322 2.2.3), so unfolding
// gives back exactly the text that was added.
type field struct {
	name   string
	b      strings.Builder
	line   int  // length of the current line
	hasEW  bool // the current line holds an encoded-word
	tokens int  // tokens on the current line, after the field name
	err    error
}

func newField(name string) *field {
	f := &field{name: name}
	f.b.WriteString(name)
	f.b.WriteByte(':')
	f.line = len(name) + 1
	return f
}

// fold breaks the line here.
func (f *field) fold() {
	f.b.WriteString("\r\n")
	f.line, f.hasEW, f.tokens = 0, false, 0
}

// token adds tok preceded by ws. When ws is not empty the field may be
// folded before it to keep the line within the soft limit (76 when an
// encoded-word is involved).
func (f *field) token(ws, tok string, ew bool) {
	limit := softLineLen
	if ew || f.hasEW {
		limit = ewLineLen
	}
	// Fold when the token does not fit, unless nothing but the field name
	// is on the line and the token would not fit a line of its own either.
	if ws != "" && f.line+len(ws)+len(tok) > limit && (f.tokens > 0 || len(ws)+len(tok) <= limit) {
		f.fold()
	}
	f.b.WriteString(ws)
	f.b.WriteString(tok)
	f.line += len(ws) + len(tok)
	f.tokens++
	f.hasEW = f.hasEW || ew
	if f.line > hardLineLen && f.err == nil {
		f.err = errors.New("cannot be folded to 998 characters")
	}
}

// glue adds s without any folding point before it (a comma after an address,
// a semicolon before a parameter).
func (f *field) glue(s string) {
	f.b.WriteString(s)
	f.line += len(s)
	if f.line > hardLineLen && f.err == nil {
		f.err = errors.New("cannot be folded to 998 characters")
	}
}

// encoded adds s as a run of encoded-words, the first preceded by ws and the
// others by a single space. phrase selects the stricter RFC 2047 5(3) rules
// for words inside a display name. Every word fits its line, so that no
// line holding encoded-words exceeds 76 characters, and no word splits a
// UTF-8 sequence.
func (f *field) encoded(ws, s string, phrase bool) {
	const reserve = 1 // room for a comma or semicolon glued after the word
	if f.line > 0 && ewLineLen-f.line-len(ws)-reserve < minEncodedWord {
		f.fold()
	}
	first := min(maxEncodedWord, ewLineLen-f.line-len(ws)-reserve)
	rest := min(maxEncodedWord, ewLineLen-1-reserve)
	for i, w := range encodeWords(s, phrase, first, rest) {
		if i == 0 {
			f.token(ws, w, true)
		} else {
			f.token(" ", w, true)
		}
	}
}

// String returns the folded field with its final CRLF.
func (f *field) String() string {
	return f.b.String() + "\r\n"
}

// result returns the folded field or the error naming it.
func (f *field) result() (string, error) {
	if f.err != nil {
		return "", fmt.Errorf("message: %s: %w", f.name, f.err)
	}
	return f.String(), nil
}

// encodeWords splits s into RFC 2047 encoded-words using the shorter of the
// Q and B encodings. The first word is at most first characters long and the
// others at most rest; words only break between runes.
func encodeWords(s string, phrase bool, first, rest int) []string {
	const overhead = len("=?utf-8?q?") + len("?=")
	useQ := qLen(s, phrase) <= (len(s)+2)/3*4
	prefix := "=?utf-8?b?"
	if useQ {
		prefix = "=?utf-8?q?"
	}
	var words []string
	limit := first - overhead
	var chunk []byte
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		var enc string
		if useQ {
			enc = qEncode(string(chunk), phrase)
		} else {
			enc = base64.StdEncoding.EncodeToString(chunk)
		}
		words = append(words, prefix+enc+"?=")
		chunk = chunk[:0]
		limit = rest - overhead
	}
	for _, r := range s {
		var rb [utf8.UTFMax]byte
		n := utf8.EncodeRune(rb[:], r)
		next := append(chunk, rb[:n]...)
		var l int
		if useQ {
			l = qLen(string(next), phrase)
		} else {
			l = (len(next) + 2) / 3 * 4
		}
		if l > limit && len(chunk) > 0 {
			flush()
			next = append(chunk, rb[:n]...)
		}
		chunk = next
	}
	flush()
	return words
}

// qLiteral reports whether b may appear as itself in Q-encoded text: RFC
// 2047 4.2, and in a phrase the stricter 5(3) set.
func qLiteral(b byte, phrase bool) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	case phrase:
		return b == '!' || b == '*' || b == '+' || b == '-' || b == '/'
	default:
		return b > ' ' && b < 0x7f && b != '=' && b != '?' && b != '_'
	}
}

func qLen(s string, phrase bool) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || qLiteral(s[i], phrase) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

func qEncode(s string, phrase bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case qLiteral(c, phrase):
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// checkText rejects header text that could break out of its field: line
// breaks and NUL, also when hidden in RFC 2047 encoded-words the caller
// supplied, and invalid UTF-8.
func checkText(name, s string) error {
	if err := checkRaw(s); err != nil {
		return fmt.Errorf("message: %s: %w", name, err)
	}
	if strings.Contains(s, "=?") {
		// Decode every charset as raw bytes: a CR or LF must not hide
		// behind a charset this package does not know either.
		dec := &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}
		if d, err := dec.DecodeHeader(s); err == nil {
			if err := checkRaw(d); err != nil {
				return fmt.Errorf("message: %s: encoded-word %w", name, err)
			}
		}
	}
	return nil
}

func checkRaw(s string) error {
	switch {
	case strings.ContainsAny(s, "\r\n"):
		return errors.New("contains a line break")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("contains a NUL byte")
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// isWSP reports RFC 5322 white space.
func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// plainText reports whether s can be written as is in unstructured text: only
// printable ASCII and white space, and, when strict, nothing a reader would
// take for an encoded-word.
func plainText(s string, strict bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\t' {
			return false
		}
	}
	return !strict || !strings.Contains(s, "=?")
}

// unstructured builds an unstructured field (RFC 5322 3.2.5) holding s, with
// leading and trailing white space removed. Plain ASCII text is folded at
// white space; other text is written as RFC 2047 encoded-words. When strict
// (the Subject), text holding "=?" or that would leave a line over 78
// characters is encoded too; custom fields keep printable ASCII as given,
// since their structure is unknown.
func unstructured(name, s string, strict bool) (string, error) {
	s = strings.Trim(s, " \t")
	if plainText(s, strict) {
		f := newField(name)
		for i, ws := 0, " "; i < len(s); {
			j := i
			for j < len(s) && !isWSP(s[j]) {
				j++
			}
			f.token(ws, s[i:j], false)
			k := j
			for k < len(s) && isWSP(s[k]) {
				k++
			}
			ws, i = s[j:k], k
		}
		if !strict || !hasLongLine(f.b.String(), softLineLen) {
			return f.result()
		}
	}
	f := newField(name)
	if s != "" {
		f.encoded(" ", s, false)
	}
	return f.result()
}

// hasLongLine reports whether any CRLF-separated line of s is longer than n.
func hasLongLine(s string, n int) bool {
	for line := range strings.SplitSeq(s, "\r\n") {
		if len(line) > n {
			return true
		}
	}
	return false
}

// reservedField reports whether a header field is set by Message itself
// and so cannot be given as a custom field: the RFC 5322 originator,
// destination, identification and origination-date fields, MIME-Version and
// every Content-* field, DKIM-Signature and Return-Path.
func reservedField(name string) bool {
	lower := strings.ToLower(name)
	switch lower {
	case "date", "from", "sender", "reply-to", "to", "cc", "bcc", "subject",
		"message-id", "in-reply-to", "references", "mime-version",
		"dkim-signature", "return-path":
		return true
	}
	return strings.HasPrefix(lower, "content-")
}

// checkFieldName validates a custom header field name (RFC 5322 3.6.8).
func checkFieldName(name string) error {
	if name == "" {
		return errors.New("message: header field name is empty")
	}
	if len(name) > 76 {
		return fmt.Errorf("message: header field name %.20q...: longer than 76 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < '!' || c > '~' || c == ':' {
			return fmt.Errorf("message: header field name %q: invalid character %q", name, c)
		}
	}
	if reservedField(name) {
		return fmt.Errorf("message: header field %s: set by the message itself, not as a custom field", name)
	}
	return nil
}
