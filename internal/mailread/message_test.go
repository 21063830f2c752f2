package mailread

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// crlf turns the LF line ends of a test message into CRLF.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseTextCharsets(t *testing.T) {
	tests := []struct {
		name, ct, cte, body, want string
	}{
		{"windows-1252", "text/plain; charset=windows-1252", "8bit", "Caf\xe9 \x80 \x93ok\x94", "Café € \u201cok\u201d"},
		{"iso-8859-1 quoted-printable", "text/plain; charset=ISO-8859-1", "quoted-printable", "na=EFve=\n line", "naïve line"},
		{"shift_jis base64", "text/plain; charset=Shift_JIS", "base64", "k/qWe4zq\n", "日本語"},
		{"utf-8 base64 over lines", "text/plain; charset=utf-8", "base64", "w6ls\nw6h2ZQ==\n", "élève"},
		{"invalid utf-8 replaced", "text/plain; charset=utf-8", "8bit", "a\xffb", "a\uFFFDb"},
		{"unknown charset read as utf-8", "text/plain; charset=x-nonsense", "8bit", "ok \xff", "ok \uFFFD"},
		{"no content type", "", "", "plain", "plain"},
		{"html only", "text/html; charset=windows-1252", "", "<p>\x80</p>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := "From: a@example.test\n"
			if tt.ct != "" {
				head += "Content-Type: " + tt.ct + "\n"
			}
			if tt.cte != "" {
				head += "Content-Transfer-Encoding: " + tt.cte + "\n"
			}
			m := Parse(crlf(head + "\n" + tt.body))
			if m.Err != nil {
				t.Fatalf("Err = %v", m.Err)
			}
			if got := strings.TrimRight(m.Text, "\r\n"); got != tt.want {
				t.Errorf("Text = %q, want %q", got, tt.want)
			}
			if strings.HasPrefix(tt.ct, "text/html") && m.HTML != "<p>€</p>" {
				t.Errorf("HTML = %q", m.HTML)
			}
		})
	}
}

func TestParseHeaderFields(t *testing.T) {
	raw := crlf("Received: from a\n\tby b\n" +
		"Subject: =?windows-1252?Q?=93Caf=E9=94?=\n" +
		"From: =?ISO-8859-1?Q?Ren=E9?= <rene@example.test>\n" +
		"X-Japanese: =?Shift_JIS?B?k/qWe4zq?=\n" +
		"X-Unknown: =?x-nonsense?Q?abc?=\n" +
		"Received: second\n" +
		"\nbody\n")
	m := Parse(raw)
	want := []Field{
		{"Received", "from a\tby b"},
		{"Subject", "\u201cCafé\u201d"},
		{"From", "René <rene@example.test>"},
		{"X-Japanese", "日本語"},
		{"X-Unknown", "=?x-nonsense?Q?abc?="},
		{"Received", "second"},
	}
	if fmt.Sprint(m.Header) != fmt.Sprint(want) {
		t.Errorf("Header =\n%q\nwant\n%q", m.Header, want)
	}
	if got := m.Get("subject"); got != "\u201cCafé\u201d" {
		t.Errorf("Get(subject) = %q", got)
	}
	if got := HeaderText("Subject: =?ISO-8859-1?Q?na=EFve?=\r\nTo: b@example.test\r\n"); got != "Subject: naïve\nTo: b@example.test\n" {
		t.Errorf("HeaderText = %q", got)
	}
}

const nested = `From: a@example.test
Subject: nested
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=windows-1252

<p>Gr` + "\xfc\xdf" + `e <img src="cid:logo@x"></p>
--rel
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@x>
Content-Disposition: inline

iVBORw0KGgo=
--rel--
--alt--
--outer
Content-Type: application/pdf; name="=?UTF-8?B?UmVjaG51bmcgw6QucGRm?="
Content-Disposition: attachment
Content-Transfer-Encoding: base64

JVBERi0=
--outer
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename*=windows-1252''caf%E9%20%80.txt

second text
--outer--
`

func TestParseNestedMultipart(t *testing.T) {
	m := Parse(crlf(nested))
	if m.Err != nil {
		t.Fatal(m.Err)
	}
	if m.Text != "Grüße" {
		t.Errorf("Text = %q", m.Text)
	}
	if m.HTML != `<p>Grüße <img src="cid:logo@x"></p>` {
		t.Errorf("HTML = %q", m.HTML)
	}
	type row struct {
		Index                                   int
		Filename, ContentType, Disposition, CID string
		Size                                    int64
	}
	want := []row{
		{0, "", "image/png", "inline", "logo@x", 8},
		{1, "Rechnung ä.pdf", "application/pdf", "attachment", "", 5},
		{2, "café €.txt", "text/plain", "attachment", "", 11},
	}
	var got []row
	for _, p := range m.Parts {
		got = append(got, row{p.Index, p.Filename, p.ContentType, p.Disposition, p.ContentID, p.Size})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Parts =\n%+v\nwant\n%+v", got, want)
	}
	if p, ok := m.Part(1); !ok || string(p.Bytes()) != "%PDF-" {
		t.Errorf("Part(1) = %v %v", p, ok)
	}
	if _, ok := m.Part(3); ok {
		t.Error("Part(3) exists")
	}
	if _, ok := m.Part(-1); ok {
		t.Error("Part(-1) exists")
	}
}

func TestFileNames(t *testing.T) {
	tests := []struct{ name, disposition, ctype, want string }{
		{"plain", `attachment; filename="a.txt"`, "text/plain", "a.txt"},
		{"rfc 2231 utf-8", `attachment; filename*=UTF-8''na%C3%AFve.txt`, "text/plain", "naïve.txt"},
		{"rfc 2231 windows-1252", `attachment; filename*=windows-1252'fr'caf%E9.txt`, "text/plain", "café.txt"},
		{"rfc 2231 continuation in iso-8859-1", `attachment; filename*0*=iso-8859-1''%E9t%E9; filename*1=".pdf"`, "text/plain", "été.pdf"},
		{"rfc 2231 shift_jis", `attachment; filename*=Shift_JIS''%93%FA%96%7B%8C%EA.txt`, "text/plain", "日本語.txt"},
		{"rfc 2047 in filename", `attachment; filename="=?ISO-8859-1?Q?r=E9sum=E9.doc?="`, "text/plain", "résumé.doc"},
		{"name on content type", ``, `application/octet-stream; name*=iso-8859-1''%E0.bin`, "à.bin"},
		{"unknown charset dropped", `attachment; filename*=x-nonsense''abc`, "text/plain", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := "Content-Type: " + tt.ctype + "\n"
			if tt.disposition != "" {
				h += "Content-Disposition: " + tt.disposition + "\n"
			}
			m := Parse(crlf(h + "\nx"))
			if len(m.Parts) != 1 {
				t.Fatalf("%d parts, Err %v", len(m.Parts), m.Err)
			}
			if got := m.Parts[0].Filename; got != tt.want {
				t.Errorf("Filename = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	deep := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
		}
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n", n)
		for i := n; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\r\n", i)
		}
		return b.Bytes()
	}
	wide := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("Content-Type: multipart/mixed; boundary=w\r\n\r\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "--w\r\nContent-Type: application/octet-stream\r\n\r\n%d\r\n", i)
		}
		b.WriteString("--w--\r\n")
		return b.Bytes()
	}
	tests := []struct {
		name      string
		raw       []byte
		wantLimit bool
		wantText  string
		maxParts  int
	}{
		{"nesting at the limit", deep(MaxDepth - 1), false, "deep", 0},
		{"nesting past the limit", deep(1000), true, "", 0},
		{"parts at the limit", wide(MaxParts - 1), false, "", MaxParts - 1},
		{"parts past the limit", wide(10000), true, "", MaxParts},
		{"multipart without a boundary", []byte("Content-Type: multipart/mixed\r\n\r\nx"), false, "", 0},
		{"truncated multipart", []byte("Content-Type: multipart/mixed; boundary=t\r\n\r\n--t\r\nContent-Type: text/plain\r\n\r\ncut"), false, "cut", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse(tt.raw)
			if got := errors.Is(m.Err, ErrLimit); got != tt.wantLimit {
				t.Errorf("limit error = %v (%v), want %v", got, m.Err, tt.wantLimit)
			}
			if strings.TrimSpace(m.Text) != tt.wantText {
				t.Errorf("Text = %q, want %q", m.Text, tt.wantText)
			}
			if len(m.Parts) > tt.maxParts {
				t.Errorf("%d parts, want at most %d", len(m.Parts), tt.maxParts)
			}
		})
	}
}

func TestParseBrokenHeader(t *testing.T) {
	m := Parse([]byte("Subject: ok\r\nnot a header line\r\n\r\nbody"))
	if m.Err == nil {
		t.Error("no error for a malformed header")
	}
	if m.Get("Subject") != "ok" {
		t.Errorf("fields before the bad line: %q", m.Header)
	}
	if m := Parse([]byte("no header here")); m.Err == nil || len(m.Header) != 0 {
		t.Errorf("a message without a header: %v %q", m.Err, m.Header)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(crlf(nested))
	f.Add([]byte("Subject: =?Shift_JIS?B?k/qWe4zq?=\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment; filename*0*=iso-8859-1''%E9; filename*1*=%E9\r\n\r\n--x--"))
	f.Add([]byte("Content-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw)
		if len(m.Parts) > MaxParts {
			t.Fatalf("%d parts", len(m.Parts))
		}
		for i, p := range m.Parts {
			if p.Index != i || p.Size != int64(len(p.Bytes())) {
				t.Fatalf("part %d: index %d size %d of %d", i, p.Index, p.Size, len(p.Bytes()))
			}
		}
		_ = HeaderText(string(raw))
	})
}
