package message

import (
	"bytes"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var ewRE = regexp.MustCompile(`^=\?utf-8\?([qb])\?([^?]*)\?=$`)

// TestEncodeWords: every encoded-word fits its budget (75 at most), holds
// whole UTF-8 characters only, and the words decode back to the input.
func TestEncodeWords(t *testing.T) {
	inputs := []string{
		"", "a", "héllo wörld", strings.Repeat("é", 100), strings.Repeat("😀", 50),
		strings.Repeat("日本語", 40), "mixed ASCII and ü " + strings.Repeat("x", 200),
		"specials \"(),.:;<>@[]\\ =?_", "\x01\x7f\t tab",
	}
	dec := new(mime.WordDecoder)
	for _, s := range inputs {
		for _, phrase := range []bool{false, true} {
			for _, first := range []int{24, 40, 66, 75} {
				words := encodeWords(s, phrase, first, 74)
				var got strings.Builder
				for i, w := range words {
					limit := 74
					if i == 0 {
						limit = first
					}
					if len(w) > limit {
						t.Errorf("%q: word %d %q longer than %d", s, i, w, limit)
					}
					m := ewRE.FindStringSubmatch(w)
					if m == nil {
						t.Fatalf("%q: %q is not an encoded-word", s, w)
					}
					if phrase && m[1] == "q" && strings.ContainsAny(m[2], `"(),.:;<>@[]\`) {
						t.Errorf("%q: phrase word %q holds a special", s, w)
					}
					d, err := dec.Decode(w)
					if err != nil {
						t.Fatalf("%q: %v", w, err)
					}
					if !utf8.ValidString(d) {
						t.Errorf("%q: word %q splits a UTF-8 sequence", s, w)
					}
					got.WriteString(d)
				}
				if got.String() != s {
					t.Errorf("decoded %q, want %q", got.String(), s)
				}
			}
		}
	}
}

func TestUnstructured(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello", "Subject: hello\r\n"},
		{"  padded\t", "Subject: padded\r\n"},
		{"tab\tinside", "Subject: tab\tinside\r\n"},
		{strings.Repeat("word ", 20), "Subject: word word word word word word word word word word word word word word\r\n" +
			" word word word word word word\r\n"}, // first line exactly 78
		{"two  spaces " + strings.Repeat("x", 60) + "  y", "Subject: two  spaces\r\n " + strings.Repeat("x", 60) + "  y\r\n"},
		{"Grüße", "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"},                               // B is shorter here
		{"Café au lait ce matin", "Subject: =?utf-8?q?Caf=C3=A9_au_lait_ce_matin?=\r\n"}, // Q is shorter here
		{strings.Repeat("x", 80), "Subject: =?utf-8?q?" + strings.Repeat("x", 54) + "?=\r\n =?utf-8?q?" + strings.Repeat("x", 26) + "?=\r\n"},
		{"=?iso-8859-1?q?x?=", "Subject: =?utf-8?b?PT9pc28tODg1OS0xP3E/eD89?=\r\n"},
	}
	for _, tt := range tests {
		got, err := unstructured("Subject", tt.in, true)
		if err != nil || got != tt.want {
			t.Errorf("unstructured(%q) = %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
	// A custom field keeps long ASCII as is, up to the hard limit.
	long := strings.Repeat("k", 900)
	if got, err := unstructured("X-Long", long, false); err != nil || got != "X-Long: "+long+"\r\n" {
		t.Errorf("custom long value: %q, %v", got, err)
	}
	if _, err := unstructured("X-Long", strings.Repeat("k", 1000), false); err == nil ||
		!strings.Contains(err.Error(), "message: X-Long: cannot be folded") {
		t.Errorf("unfoldable custom value: %v", err)
	}
}

func TestAddressField(t *testing.T) {
	tests := []struct {
		in   []*mail.Address
		want string
	}{
		{[]*mail.Address{maddr("", "a@example.com")}, "To: a@example.com\r\n"},
		{[]*mail.Address{maddr("John Q Public", "a@example.com")}, "To: John Q Public <a@example.com>\r\n"},
		{[]*mail.Address{maddr("John Q. Public", "a@example.com")}, "To: \"John Q. Public\" <a@example.com>\r\n"},
		{[]*mail.Address{maddr(`a "b" \c`, "a@example.com")}, "To: \"a \\\"b\\\" \\\\c\" <a@example.com>\r\n"},
		{[]*mail.Address{maddr("Zoë", "a@example.com")}, "To: =?utf-8?q?Zo=C3=AB?= <a@example.com>\r\n"},
		{[]*mail.Address{maddr("Zoë, Ann", "a@example.com")}, "To: =?utf-8?b?Wm/DqywgQW5u?= <a@example.com>\r\n"},
		{[]*mail.Address{maddr("Zoë Ann Smith", "a@example.com")}, "To: =?utf-8?q?Zo=C3=AB_Ann_Smith?= <a@example.com>\r\n"},
		{[]*mail.Address{maddr("", "jöran@bücher.example")}, "To: jöran@xn--bcher-kva.example\r\n"},
		{[]*mail.Address{maddr("", "a@[192.0.2.1]")}, "To: a@[192.0.2.1]\r\n"},
	}
	for _, tt := range tests {
		var list []addr
		for _, a := range tt.in {
			c, err := checkAddr("To", a)
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, c)
		}
		got, err := addressField("To", list)
		if err != nil || got != tt.want {
			t.Errorf("addressField(%v) = %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseAddressList(t *testing.T) {
	list, err := ParseAddressList("To", `Bob <bob@example.net>, =?utf-8?q?Zo=C3=AB?= <zoe@example.org>, carol@bücher.example`)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[1].Name != "Zoë" || list[2].Address != "carol@bücher.example" {
		t.Errorf("got %v", list)
	}
	for _, tt := range []struct{ in, errHas string }{
		{"", "message: To: no address"},
		{"bob@example.net\r\nBcc: eve@example.org", "message: To: contains a line break"},
		{"bob@example.net\nBcc: eve@example.org", "message: To: contains a line break"},
		{"Bob <bob@example.net", "message: To: mail: "},
		{`"a b"@example.net`, "only dot-atom local parts"},
		{"=?utf-8?q?x=0D=0AY?= <a@b.example>", "message: To: display name: contains a line break"},
	} {
		if _, err := ParseAddressList("To", tt.in); err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseAddressList(%q) = %v, want %q", tt.in, err, tt.errHas)
		}
	}
	if _, err := ParseAddress("From", "a@example.com, b@example.com"); err == nil {
		t.Error("ParseAddress accepted two addresses")
	}
	if a, err := ParseAddress("From", "Alice <alice@example.com>"); err != nil || a.Name != "Alice" {
		t.Errorf("ParseAddress = %v, %v", a, err)
	}
}

// unfold undoes RFC 5322 folding exactly: it removes every CRLF that is
// followed by white space (textproto instead collapses the white space).
func unfold(s string) string { return strings.ReplaceAll(s, "\r\n", "") }

// headerFields splits a header section into unfolded fields by name, after
// checking the folding: continuation lines start with white space and are
// not white space only, no line is over 998 octets, no bare CR or LF.
func headerFields(t *testing.T, header string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	var name string
	for i, line := range strings.Split(header, "\r\n") {
		if strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("line %d holds CR, LF or NUL: %q", i, line)
		}
		if len(line) > hardLineLen {
			t.Fatalf("line %d has %d octets", i, len(line))
		}
		if line != "" && isWSP(line[0]) {
			if strings.Trim(line, " \t") == "" {
				t.Fatalf("line %d is white space only", i)
			}
			fields[name] += "\r\n" + line
			continue
		}
		n, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("line %d is not a field: %q", i, line)
		}
		if _, dup := fields[n]; dup {
			t.Fatalf("field %s twice: a value broke out of its field", n)
		}
		name, fields[n] = n, v
	}
	for n, v := range fields {
		fields[n] = unfold(v)
	}
	return fields
}

// FuzzHeaderEncoding writes messages with arbitrary Subject, display name
// and custom field value. Each is refused with a clear error or written so
// that: no CR or LF appears in a header value except CRLF + white space
// folding, no line exceeds 998 octets, Subject and From lines stay within
// 78 characters, no new field appears, and every value reads back as given.
func FuzzHeaderEncoding(f *testing.F) {
	f.Add("hello", "Alice", "v")
	f.Add("Grüße 😀 "+strings.Repeat("x", 100), "山田 太郎", "naïve")
	f.Add("a\r\nBcc: x@y", "a\nb", "c\rd")
	f.Add("=?utf-8?q?a=0D=0Ab?=", `"quoted" \back`, "=?x?=")
	f.Add(strings.Repeat("word ", 500), strings.Repeat("n", 300), strings.Repeat("v", 2000))
	f.Add("\t lead", " ", "\x01")
	f.Fuzz(func(t *testing.T, subject, name, value string) {
		m := base()
		m.Subject, m.From.Name = subject, name
		m.Headers = []Field{{Name: "X-Fuzz", Value: value}}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			msg := err.Error()
			ok := strings.HasPrefix(msg, "message: ") && (strings.Contains(msg, "line break") ||
				strings.Contains(msg, "NUL") || strings.Contains(msg, "UTF-8") ||
				strings.Contains(msg, "longer than") || strings.Contains(msg, "cannot be folded"))
			if !ok {
				t.Fatalf("unexpected error: %v", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes before failing", buf.Len())
			}
			return
		}
		out := buf.String()
		header, _, ok := strings.Cut(out, "\r\n\r\n")
		if !ok {
			t.Fatal("no end of header")
		}
		for _, line := range strings.Split(header, "\r\n") {
			if (strings.HasPrefix(line, "Subject:") || strings.HasPrefix(line, "From:")) && len(line) > softLineLen {
				t.Errorf("line of %d characters: %q", len(line), line)
			}
		}
		fields := headerFields(t, header)
		want := []string{"From", "To", "Date", "Message-ID", "X-Fuzz", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
		if strings.Trim(subject, " \t") != "" {
			want = append(want, "Subject")
		}
		if len(fields) != len(want) {
			t.Fatalf("fields %v, want %v", fields, want)
		}
		dec := new(mime.WordDecoder)
		if s, ok := fields["Subject"]; ok {
			got, err := dec.DecodeHeader(strings.TrimPrefix(s, " "))
			if err != nil || got != strings.Trim(subject, " \t") {
				t.Errorf("Subject reads back %q, %v; want %q", got, err, subject)
			}
		}
		from, err := (&mail.AddressParser{WordDecoder: dec}).Parse(fields["From"])
		if err != nil {
			t.Fatalf("From %q: %v", fields["From"], err)
		}
		if from.Name != name || from.Address != "alice@example.com" {
			t.Errorf("From reads back %q <%s>, want %q", from.Name, from.Address, name)
		}
		if !strings.Contains(value, "=?") {
			got, err := dec.DecodeHeader(strings.TrimPrefix(fields["X-Fuzz"], " "))
			if err != nil || got != strings.Trim(value, " \t") {
				t.Errorf("X-Fuzz reads back %q, %v; want %q", got, err, value)
			}
		}
	})
}
