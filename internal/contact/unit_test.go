package contact

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
)

// signTokenV1 makes a token of the earlier format, still accepted.
func signTokenV1(key []byte, formID int64, now time.Time) string {
	ms := now.UnixMilli()
	return "v1." + strconv.FormatInt(formID, 10) + "." + strconv.FormatInt(ms, 10) + "." + tokenMAC(key, formID, ms)
}

// flip changes one character of tok at i (from the end when negative).
func flip(tok string, i int) string {
	if i < 0 {
		i += len(tok)
	}
	b := []byte(tok)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestTimeTrapToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := signToken(key, 7, t0)
	v1 := signTokenV1(key, 7, t0)
	for _, c := range []struct {
		name  string
		key   []byte
		form  int64
		tok   string
		at    time.Time
		want  tokenVerdict
		atAge bool
	}{
		{"ok", key, 7, tok, t0.Add(3 * time.Second), tokenOK, true},
		{"ok near the end", key, 7, tok, t0.Add(2 * time.Hour), tokenOK, true},
		{"too fast", key, 7, tok, t0.Add(2999 * time.Millisecond), tokenTooFast, true},
		{"from the future", key, 7, tok, t0.Add(-time.Minute), tokenTooFast, true},
		{"too old", key, 7, tok, t0.Add(2*time.Hour + time.Millisecond), tokenExpired, true},
		{"missing", key, 7, "", t0, tokenMissing, false},
		{"other form", key, 8, tok, t0.Add(time.Minute), tokenForged, false},
		{"other key", other, 7, tok, t0.Add(time.Minute), tokenForged, false},
		{"changed nonce", key, 7, flip(tok, 4), t0.Add(time.Minute), tokenForged, false},
		{"changed sealed time", key, 7, flip(tok, 20), t0.Add(time.Minute), tokenForged, false},
		{"changed tag", key, 7, flip(tok, -2), t0.Add(time.Minute), tokenForged, false},
		{"truncated", key, 7, tok[:len(tok)-1], t0.Add(time.Minute), tokenForged, false},
		{"other version", key, 7, "v3" + tok[2:], t0.Add(time.Minute), tokenForged, false},
		{"not base64", key, 7, "v2.!!!", t0.Add(time.Minute), tokenForged, false},
		{"too long", key, 7, tok + strings.Repeat("A", 200), t0.Add(time.Minute), tokenForged, false},
		{"v1 ok", key, 7, v1, t0.Add(time.Minute), tokenOK, true},
		{"v1 other form", key, 7, strings.Replace(v1, "v1.7.", "v1.8.", 1), t0.Add(time.Minute), tokenForged, false},
		{"v1 too many parts", key, 7, v1 + ".x", t0.Add(time.Minute), tokenForged, false},
		{"v1 not numbers", key, 7, "v1.a.b.c", t0.Add(time.Minute), tokenForged, false},
	} {
		got, issued := checkToken(c.key, c.form, c.tok, c.at)
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if c.atAge && !issued.Equal(t0) {
			t.Errorf("%s: issued %v", c.name, issued)
		}
	}
}

// TestTokenOpaqueAndUnique: two tokens issued in the same millisecond
// for the same form differ, and neither shows the form's id or the
// issue time.
func TestTokenOpaqueAndUnique(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := signToken(key, 424242, t0), signToken(key, 424242, t0)
	if a == b || tokenDigest(a) == tokenDigest(b) {
		t.Errorf("same-millisecond tokens collide: %q", a)
	}
	for _, leak := range []string{"424242", strconv.FormatInt(t0.UnixMilli(), 10), strconv.FormatInt(t0.Unix(), 10)} {
		if strings.Contains(a, leak) {
			t.Errorf("token %q shows %q", a, leak)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Example.ORG":      "https://example.org",
		"https://example.org:443/": "https://example.org",
		"http://example.org:80":    "http://example.org",
		"http://localhost:8080":    "http://localhost:8080",
		"https://[::1]:8443":       "https://[::1]:8443",
		"ftp://example.org":        "",
		"example.org":              "",
		"https://user@example.org": "",
		"https://":                 "",
	} {
		got, err := NormalizeOrigin(in)
		if want == "" && err == nil || want != "" && got != want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb":                 "a b",
		"  a \t\t b  ":           "a b",
		"a\x00b\x7fc\u0085d":     "a b c d",
		"a\u2028b\u2029c":        "a b c",
		"=?utf-8?q?x?=":          "= ?utf-8?q?x?=",
		"bad \xff utf8":          "bad \uFFFD utf8",
		strings.Repeat("é", 150): strings.Repeat("é", 99) + "…",
	} {
		if got := OneLine(in, 100); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjectFor(t *testing.T) {
	f := &store.Form{Name: "Site", SubjectTemplate: "{{name}} wrote via {{ _form }}: {{topic}}{{missing}} {x} {{a b}}"}
	in := &values{fields: []store.FieldValue{{Name: "name", Value: "Ann\r\nBcc: x@y"}, {Name: "topic", Value: "hi"}}}
	if got := subjectFor(f, in); got != "Ann Bcc: x@y wrote via Site: hi {x} {{a b}}" {
		t.Errorf("subject %q", got)
	}
	f.SubjectTemplate = ""
	if got := subjectFor(f, in); got != "Message from the Site form" {
		t.Errorf("default subject %q", got)
	}
	f.SubjectTemplate = "{{nothing}}"
	if got := subjectFor(f, in); got != "Site" {
		t.Errorf("empty subject falls back to %q", got)
	}
}

func TestRateKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                 "contact:addr:192.0.2.7",
		"2001:db8:1:2:3:4:5:6":      "contact:addr:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":      "contact:addr:2001:db8:1:2::/64",
		"::ffff:192.0.2.7":          "contact:addr:192.0.2.7",
		"not-an-ip":                 "contact:addr:not-an-ip",
		"2001:db8:1:3:3:4:5:6":      "contact:addr:2001:db8:1:3::/64",
		"fe80::1":                   "contact:addr:fe80::/64",
		"2001:0db8:0001:0002::0001": "contact:addr:2001:db8:1:2::/64",
	} {
		if got := rateKey(in); got != want {
			t.Errorf("rateKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanFileName(t *testing.T) {
	for in, want := range map[string]string{
		"../../etc/passwd":      "passwd",
		`C:\Users\x\report.pdf`: "report.pdf",
		"a\r\nb\".txt":          "ab.txt",
		"":                      "attachment",
		"..":                    "attachment",
		" name.txt ":            "name.txt",
	} {
		if got := cleanFileName(in); got != want {
			t.Errorf("cleanFileName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cleanContentType("message/rfc822"); got != "application/octet-stream" {
		t.Errorf("message/rfc822 -> %q", got)
	}
	if got := cleanContentType("text/plain\r\nX: y"); got != "" {
		t.Errorf("bad type -> %q", got)
	}
}
