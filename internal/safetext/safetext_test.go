package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLineBlockFileName: every unsafe class is escaped by Line; Block keeps
// line breaks only; FileName gives a name without unsafe characters or
// backslashes. Safe text (accents, emoji, CJK, tab) is kept.
func TestLineBlockFileName(t *testing.T) {
	tests := []struct {
		name, in, line, block, file string
	}{
		{"safe", "Grüße 😀 漢字\tok", "Grüße 😀 漢字\tok", "Grüße 😀 漢字\tok", "Grüße 😀 漢字\tok"},
		{"rlo", "invoice\u202efdp.exe", `invoice\u202efdp.exe`, `invoice\u202efdp.exe`, "invoice[U+202E]fdp.exe"},
		{"embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`, `\u202a\u202b\u202c\u202d`, "[U+202A][U+202B][U+202C][U+202D]"},
		{"isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`, `\u2066\u2067\u2068\u2069`, "[U+2066][U+2067][U+2068][U+2069]"},
		{"marks", "a\u200eb\u200fc\u061cd", `a\u200eb\u200fc\u061cd`, `a\u200eb\u200fc\u061cd`, "a[U+200E]b[U+200F]c[U+061C]d"},
		{"c0", "nul\x00esc\x1b[2Jbel\x07del\x7f", `nul\x00esc\x1b[2Jbel\x07del\x7f`, `nul\x00esc\x1b[2Jbel\x07del\x7f`, "nul[0x00]esc[0x1B][2Jbel[0x07]del[0x7F]"},
		{"c1", "a\u0085b\u009bc", `a\u0085b\u009bc`, `a\u0085b\u009bc`, "a[U+0085]b[U+009B]c"},
		{"invalid", "bad\xff\xfeend", `bad\xff\xfeend`, `bad\xff\xfeend`, "bad[0xFF][0xFE]end"},
		{"lines", "one\r\ntwo\rthree\nfour", `one\x0d\x0atwo\x0dthree\x0afour`, "one\ntwo\nthree\nfour", "one[0x0D][0x0A]two[0x0D]three[0x0A]four"},
		{"backslash", `a\b`, `a\b`, `a\b`, "a_b"},
		{"empty", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Line(tt.in); got != tt.line {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.line)
			}
			if got := Block(tt.in); got != tt.block {
				t.Errorf("Block(%q) = %q, want %q", tt.in, got, tt.block)
			}
			if got := FileName(tt.in); got != tt.file {
				t.Errorf("FileName(%q) = %q, want %q", tt.in, got, tt.file)
			}
		})
	}
}

// TestNothingUnsafeSurvives: for every rune up to U+FFFF and every byte,
// the output of Line and FileName is valid UTF-8 without an unsafe rune,
// and Block's has no unsafe rune but line feed.
func TestNothingUnsafeSurvives(t *testing.T) {
	var in strings.Builder
	for r := rune(0); r < 0x10000; r++ {
		if r < 0xd800 || r > 0xdfff {
			in.WriteRune(r)
		}
	}
	for b := 0x80; b < 0x100; b++ {
		in.WriteByte(byte(b))
	}
	s := in.String()
	check := func(name, out string, allowLF bool) {
		if !utf8.ValidString(out) {
			t.Errorf("%s: invalid UTF-8 out", name)
		}
		for _, r := range out {
			if Unsafe(r) && !(allowLF && r == '\n') {
				t.Errorf("%s: unsafe %U survived", name, r)
			}
		}
	}
	check("Line", Line(s), false)
	check("Block", Block(s), true)
	check("FileName", FileName(s), false)
	if strings.Contains(FileName(s), `\`) {
		t.Error("FileName kept a backslash")
	}
}

// TestSegments: escapes come as their own segments, safe runs whole.
func TestSegments(t *testing.T) {
	got := Segments("a\u202eb\nc", false)
	want := []Segment{{"a", false}, {`\u202e`, true}, {"b", false}, {`\x0a`, true}, {"c", false}}
	if len(got) != len(want) {
		t.Fatalf("Segments = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("segment %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := Segments("x\r\ny", true); len(got) != 1 || got[0].Text != "x\ny" {
		t.Errorf("Segments multiline = %+v", got)
	}
}

// TestEscapeBytes: invalid bytes and backslashes are escaped, the result
// is valid UTF-8, and UnescapeBytes gives back the very bytes.
func TestEscapeBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain Grüße \u202e\x1b", "plain Grüße \u202e\x1b"},
		{"bad\xff\xfe", `bad\xff\xfe`},
		{`C:\dir`, `C:\\dir`},
		{`lit\xff` + "\xff", `lit\\xff\xff`},
		{"\xe2\x82", `\xe2\x82`}, // a truncated sequence
		{"", ""},
	}
	for _, tt := range tests {
		got := EscapeBytes(tt.in)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("EscapeBytes(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := UnescapeBytes(got)
		if err != nil || back != tt.in {
			t.Errorf("UnescapeBytes(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
	}
	for _, bad := range []string{`a\`, `\q`, `\x4`, `\xzz`} {
		if _, err := UnescapeBytes(bad); err == nil {
			t.Errorf("UnescapeBytes(%q) took a bad escape", bad)
		}
	}
}
