// Package safetext renders text that came from outside (contact-form
// visitors, remote SMTP servers, captured mail) so that it cannot hide or
// reorder what a reader sees. It is the one escaping helper of sockmail:
// every page that shows such text and every mail composed from it uses it.
//
// Unsafe are: C0 controls (tab excepted; line feed too in a block), DEL,
// C1 controls, the bidirectional controls of Unicode (U+202A-U+202E
// embeddings and overrides, U+2066-U+2069 isolates, U+200E and U+200F
// marks, U+061C the Arabic letter mark) and invalid UTF-8. They are shown
// as escapes: \x1b for a byte below 0x80 or an invalid byte, \u202e for a
// character. Everything else, including every other non-ASCII character,
// is kept as it is. HTML escaping is the template's job, not this one.
package safetext

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r must be shown as an escape. Tab is safe; line
// feed is not (Block keeps line feeds itself).
func Unsafe(r rune) bool {
	switch {
	case r == '\t':
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// Segment is a run of text: either as it was (Escaped false) or the
// escape of one unsafe character or byte (Escaped true, Text like
// `\u202e`). Views show escaped segments in a distinct span.
type Segment struct {
	Text    string
	Escaped bool
}

// escape is the visible form of one unsafe rune, or of an invalid byte
// when invalid is true.
func escape(r rune, b byte, invalid bool) string {
	switch {
	case invalid:
		return fmt.Sprintf(`\x%02x`, b)
	case r < 0x80:
		return fmt.Sprintf(`\x%02x`, r)
	default:
		return fmt.Sprintf(`\u%04x`, r)
	}
}

// walk calls emit for each run of safe text and each escape in s. With
// multiline, "\n" is kept ("\r\n" and a lone "\r" become "\n").
func walk(s string, multiline bool, emit func(text string, escaped bool)) {
	if multiline {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		invalid := r == utf8.RuneError && size <= 1
		if !invalid && (!Unsafe(r) || (multiline && r == '\n')) {
			i += size
			continue
		}
		if start < i {
			emit(s[start:i], false)
		}
		emit(escape(r, s[i], invalid), true)
		i += size
		start = i
	}
	if start < len(s) {
		emit(s[start:], false)
	}
}

func join(s string, multiline bool) string {
	var b strings.Builder
	walk(s, multiline, func(t string, _ bool) { b.WriteString(t) })
	return b.String()
}

// Line makes one line safe to show: every unsafe character, line breaks
// included, becomes its escape. Line("invoice\u202efdp.exe") is
// `invoice\u202efdp.exe`.
func Line(s string) string { return join(s, false) }

// Block makes a multi-line text safe to show: line breaks are kept (CRLF
// and CR become LF) and every other unsafe character becomes its escape.
func Block(s string) string { return join(s, true) }

// Segments splits s as Line (or Block when multiline is true) would
// escape it, for views that show escapes in a distinct span.
func Segments(s string, multiline bool) []Segment {
	var out []Segment
	walk(s, multiline, func(t string, esc bool) { out = append(out, Segment{Text: t, Escaped: esc}) })
	return out
}

// FileName is the name under which a file from outside is passed on (an
// attachment of a mail sockmail composes): each unsafe character becomes
// "[U+202E]" (an invalid byte "[0xFF]"), so the name reads in the same
// order everywhere and shows what was there, and a backslash, which some
// systems take for a folder separator, becomes "_". An empty name stays
// empty.
func FileName(s string) string {
	var b strings.Builder
	walk(s, false, func(t string, esc bool) {
		if !esc {
			b.WriteString(strings.ReplaceAll(t, `\`, "_"))
			return
		}
		if strings.HasPrefix(t, `\u`) {
			b.WriteString("[U+" + strings.ToUpper(t[2:]) + "]")
		} else {
			b.WriteString("[0x" + strings.ToUpper(t[2:]) + "]")
		}
	})
	return b.String()
}

// EscapeBytes makes s valid UTF-8 reversibly, for formats that must be
// UTF-8 (JSON): a backslash becomes `\\` and each byte that is not part
// of valid UTF-8 becomes `\xHH`, the escape Line shows it with. Every
// other character, controls and bidi included, is kept (JSON escapes
// controls itself). UnescapeBytes gives s back.
func EscapeBytes(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// UnescapeBytes reverses EscapeBytes. A backslash followed by anything
// but a backslash or "x" and two hex digits is an error.
func UnescapeBytes(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x' && isHex(s[i+2]) && isHex(s[i+3]):
			b.WriteByte(unhex(s[i+2])<<4 | unhex(s[i+3]))
			i += 3
		default:
			return "", fmt.Errorf("safetext: bad escape at byte %d of %q", i, s)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
