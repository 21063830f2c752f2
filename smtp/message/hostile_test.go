package message

import (
	"bytes"
	"errors"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base returns a valid message for hostile-input tests to spoil.
func base() *Message {
	return fixed(&Message{
		From:    maddr("Alice", "alice@example.com"),
		To:      []*mail.Address{maddr("Bob", "bob@example.net")},
		Subject: "hello",
		Text:    "hi\n",
	})
}

// TestHostileRejected: every field that reaches a header refuses CR, LF and
// NUL, including when hidden in an encoded-word, with an error naming the
// field; other invalid input is refused clearly too.
func TestHostileRejected(t *testing.T) {
	inj := "x\r\nBcc: victim@example.org"
	tests := []struct {
		name   string
		spoil  func(m *Message)
		errHas string
	}{
		{"subject CRLF", func(m *Message) { m.Subject = inj }, "message: Subject: contains a line break"},
		{"subject LF", func(m *Message) { m.Subject = "a\nb" }, "message: Subject: contains a line break"},
		{"subject CR", func(m *Message) { m.Subject = "a\rb" }, "message: Subject: contains a line break"},
		{"subject NUL", func(m *Message) { m.Subject = "a\x00b" }, "message: Subject: contains a NUL byte"},
		{"subject bad UTF-8", func(m *Message) { m.Subject = "a\xffb" }, "message: Subject: is not valid UTF-8"},
		{"subject encoded CRLF", func(m *Message) { m.Subject = "=?utf-8?q?a=0D=0ABcc:_x@y?=" }, "message: Subject: encoded-word contains a line break"},
		{"subject encoded NUL", func(m *Message) { m.Subject = "=?utf-8?b?YQBi?=" }, "message: Subject: encoded-word contains a NUL byte"},
		{"subject too long", func(m *Message) { m.Subject = strings.Repeat("a", maxHeaderText+1) }, "message: Subject: longer than"},
		{"from name CRLF", func(m *Message) { m.From.Name = inj }, "message: From: display name: contains a line break"},
		{"from name encoded LF", func(m *Message) { m.From.Name = "=?utf-8?q?Alice=0ABcc=3A_x?=" }, "message: From: display name: encoded-word contains a line break"},
		{"to name NUL", func(m *Message) { m.To[0].Name = "B\x00b" }, "message: To: display name: contains a NUL byte"},
		{"cc address CRLF", func(m *Message) { m.Cc = []*mail.Address{maddr("", "c@example.org"+inj)} }, "message: Cc: address"},
		{"bcc address LF", func(m *Message) { m.Bcc = []*mail.Address{maddr("", "c@exa\nmple.org")} }, "contains a line break"},
		{"reply-to space", func(m *Message) { m.ReplyTo = []*mail.Address{maddr("", "a b@example.org")} }, "message: Reply-To: address \"a b@example.org\""},
		{"sender angle", func(m *Message) { m.Sender = maddr("", "a>@example.org") }, "message: Sender: address"},
		{"address no at", func(m *Message) { m.To[0].Address = "bob" }, "missing @"},
		{"address two recipients", func(m *Message) { m.To[0].Address = "bob@example.net>, <eve@example.org" }, "message: To: address"},
		{"address empty domain label", func(m *Message) { m.To[0].Address = "bob@example..net" }, "empty label"},
		{"address dot local", func(m *Message) { m.To[0].Address = ".bob@example.net" }, "empty dot-separated part"},
		{"local part too long", func(m *Message) { m.To[0].Address = strings.Repeat("a", 65) + "@example.net" }, "local part longer than 64"},
		{"no from", func(m *Message) { m.From = nil }, "message: From: required"},
		{"no recipient", func(m *Message) { m.To = nil }, "message: no recipient"},
		{"nil recipient", func(m *Message) { m.To = []*mail.Address{nil} }, "message: To: nil address"},
		{"header name CRLF", func(m *Message) { m.Headers = []Field{{Name: "X-A\r\nBcc", Value: "v"}} }, "invalid character"},
		{"header name colon", func(m *Message) { m.Headers = []Field{{Name: "X-A:", Value: "v"}} }, "invalid character"},
		{"header name empty", func(m *Message) { m.Headers = []Field{{Name: "", Value: "v"}} }, "name is empty"},
		{"header value CRLF", func(m *Message) { m.Headers = []Field{{Name: "X-Note", Value: inj}} }, "message: X-Note: contains a line break"},
		{"header value NUL", func(m *Message) { m.Headers = []Field{{Name: "X-Note", Value: "\x00"}} }, "message: X-Note: contains a NUL byte"},
		{"header reserved Bcc", func(m *Message) { m.Headers = []Field{{Name: "bcc", Value: "x@y"}} }, "message: header field bcc: set by the message itself"},
		{"header reserved Content-Type", func(m *Message) { m.Headers = []Field{{Name: "Content-Type", Value: "text/html"}} }, "set by the message itself"},
		{"header reserved MIME-Version", func(m *Message) { m.Headers = []Field{{Name: "MIME-Version", Value: "2"}} }, "set by the message itself"},
		{"header reserved From", func(m *Message) { m.Headers = []Field{{Name: "FROM", Value: "x@y"}} }, "set by the message itself"},
		{"message-id CRLF", func(m *Message) { m.MessageID = "a@b\r\nX: y" }, "message: Message-ID: contains a line break"},
		{"message-id space", func(m *Message) { m.MessageID = "<a@b> <c@d>" }, "message: Message-ID:"},
		{"message-id no at", func(m *Message) { m.MessageID = "abc" }, "not of the form id-left@id-right"},
		{"in-reply-to angle", func(m *Message) { m.InReplyTo = "a>b@c" }, "message: In-Reply-To:"},
		{"references LF", func(m *Message) { m.References = []string{"a@b\n"} }, "message: References: contains a line break"},
		{"text bad UTF-8", func(m *Message) { m.Text = "\xc3\x28" }, "message: Text: is not valid UTF-8"},
		{"html bad UTF-8", func(m *Message) { m.HTML = "\xff" }, "message: HTML: is not valid UTF-8"},
		{"filename CRLF", func(m *Message) {
			m.Attachments = []*Attachment{BytesAttachment("a\r\nContent-Type: text/html\r\n.txt", nil)}
		}, "filename contains a line break"},
		{"filename LF", func(m *Message) { m.Attachments = []*Attachment{BytesAttachment("a\nb", nil)} }, "filename contains a line break"},
		{"filename NUL", func(m *Message) { m.Attachments = []*Attachment{BytesAttachment("a\x00b", nil)} }, "filename contains a NUL byte"},
		{"filename tab", func(m *Message) { m.Attachments = []*Attachment{BytesAttachment("a\tb", nil)} }, "filename contains control character"},
		{"filename too long", func(m *Message) { m.Attachments = []*Attachment{BytesAttachment(strings.Repeat("a", 256), nil)} }, "filename longer than 255"},
		{"content type CRLF", func(m *Message) {
			a := BytesAttachment("a.bin", nil)
			a.ContentType = "text/plain\r\nBcc: x@y"
			m.Attachments = []*Attachment{a}
		}, "content type contains a line break"},
		{"content type invalid", func(m *Message) {
			a := BytesAttachment("a.bin", nil)
			a.ContentType = "not a type"
			m.Attachments = []*Attachment{a}
		}, "content type"},
		{"content type message/rfc822", func(m *Message) {
			a := BytesAttachment("a.eml", nil)
			a.ContentType = "message/rfc822"
			m.Attachments = []*Attachment{a}
		}, "cannot be sent base64-encoded"},
		{"attachment no source", func(m *Message) { m.Attachments = []*Attachment{{Filename: "x"}} }, "no source"},
		{"attachment negative size", func(m *Message) {
			a := BytesAttachment("a.bin", nil)
			a.Size = -1
			m.Attachments = []*Attachment{a}
		}, "negative size"},
		{"inline without HTML", func(m *Message) {
			a := BytesAttachment("a.png", pngBytes)
			a.ContentID = "a@b"
			m.Inline = []*Attachment{a}
		}, "message: inline parts need an HTML body"},
		{"inline without Content-ID", func(m *Message) {
			m.HTML = "<p>x</p>"
			m.Inline = []*Attachment{BytesAttachment("a.png", pngBytes)}
		}, "Content-ID \"\": empty"},
		{"inline Content-ID CRLF", func(m *Message) {
			m.HTML = "<p>x</p>"
			a := BytesAttachment("a.png", pngBytes)
			a.ContentID = "a@b>\r\nX: y"
			m.Inline = []*Attachment{a}
		}, "contains a line break"},
		{"inline duplicate Content-ID", func(m *Message) {
			m.HTML = "<p>x</p>"
			a := BytesAttachment("a.png", pngBytes)
			a.ContentID = "a@b"
			b := BytesAttachment("b.png", pngBytes)
			b.ContentID = "<A@b>"
			m.Inline = []*Attachment{a, b}
		}, "duplicate Content-ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.spoil(m)
			err := m.Validate()
			if err == nil {
				t.Fatalf("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "message: ") {
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.errHas)
			}
			// WriteTo and Size refuse it too, before writing anything.
			var buf bytes.Buffer
			if _, err := m.WriteTo(&buf); err == nil || buf.Len() != 0 {
				t.Fatalf("WriteTo wrote %d bytes, err %v", buf.Len(), err)
			}
			if _, err := m.Size(); err == nil {
				t.Fatal("Size accepted it")
			}
		})
	}
}

// TestHostileEncoded: input that is legal but awkward is encoded safely.
func TestHostileEncoded(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(m *Message)
		check func(t *testing.T, out string)
	}{
		{"5000-char line goes quoted-printable", func(m *Message) { m.Text = strings.Repeat("y", 5000) }, func(t *testing.T, out string) {
			if !strings.Contains(out, "Content-Transfer-Encoding: quoted-printable") {
				t.Error("not quoted-printable")
			}
		}},
		{"2000-char subject is folded", func(m *Message) { m.Subject = strings.Repeat("word ", 400) }, func(t *testing.T, out string) {
			if n := strings.Count(headerOf(out), "\r\n "); n < 20 {
				t.Errorf("subject folded %d times", n)
			}
		}},
		{"2000-char subject without spaces is encoded", func(m *Message) { m.Subject = strings.Repeat("z", 2000) }, func(t *testing.T, out string) {
			if !strings.Contains(out, "Subject: =?utf-8?q?zzz") {
				t.Error("not encoded")
			}
		}},
		{"empty body", func(m *Message) { m.Text = "" }, func(t *testing.T, out string) {
			if !strings.HasSuffix(out, "Content-Transfer-Encoding: 7bit\r\n\r\n") {
				t.Errorf("does not end after the header: %q", out[len(out)-40:])
			}
		}},
		{"body is a dot", func(m *Message) { m.Text = "." }, func(t *testing.T, out string) {
			// Dot-stuffing is the SMTP client's job; the message holds the
			// dot line as is.
			if !strings.HasSuffix(out, "\r\n\r\n.\r\n") {
				t.Errorf("ends %q", out[len(out)-10:])
			}
		}},
		{"NUL in body is escaped", func(m *Message) { m.Text = "a line with a NUL \x00 inside\n" }, func(t *testing.T, out string) {
			if strings.IndexByte(out, 0) >= 0 || !strings.Contains(out, "NUL =00 inside") {
				t.Error("NUL not quoted-printable encoded")
			}
		}},
		{"binary-looking text goes base64", func(m *Message) { m.Text = strings.Repeat("\x01\x02\x03\x04", 100) }, func(t *testing.T, out string) {
			if !strings.Contains(out, "Content-Transfer-Encoding: base64") {
				t.Error("not base64")
			}
		}},
		{"boundary-like text is not 7bit", func(m *Message) {
			m.Text = "--=_AAAA\n"
			m.Attachments = []*Attachment{BytesAttachment("a.pdf", []byte("%PDF"))}
		}, func(t *testing.T, out string) {
			if strings.Contains(out, "\r\n--=_AAAA") {
				t.Error("boundary-like line written as is")
			}
		}},
		{"filename with quotes, backslashes and slashes", func(m *Message) {
			m.Attachments = []*Attachment{BytesAttachment(`a"b\c/../d.pdf`, []byte("%PDF"))}
		}, func(t *testing.T, out string) {
			if !strings.Contains(out, `filename="a_b_c_.._d.pdf"`) || !strings.Contains(out, `filename*=utf-8''a%22b%5Cc%2F..%2Fd.pdf`) {
				t.Errorf("filename not made safe:\n%s", out)
			}
		}},
		{"display name with specials is quoted", func(m *Message) { m.From.Name = `Eve <eve@evil.example>, "x"` }, func(t *testing.T, out string) {
			if !strings.Contains(out, `From: "Eve <eve@evil.example>, \"x\"" <alice@example.com>`) {
				t.Errorf("name not quoted:\n%s", headerOf(out))
			}
		}},
		{"custom header with non-ASCII value", func(m *Message) { m.Headers = []Field{{Name: "X-Note", Value: "naïve"}} }, func(t *testing.T, out string) {
			if !strings.Contains(out, "X-Note: =?utf-8?b?bmHDr3Zl?=") {
				t.Errorf("not encoded:\n%s", headerOf(out))
			}
		}},
		{"subject that looks encoded reads back literally", func(m *Message) { m.Subject = "=?utf-8?q?hi?=" }, func(t *testing.T, out string) {
			if strings.Contains(out, "Subject: =?utf-8?q?hi?=\r\n") {
				t.Error("written as is, readers would decode it")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.spoil(m)
			out := write(t, m)
			checkWellFormed(t, tt.name, out, true)
			size, err := m.Size()
			if err != nil || size != int64(len(out)) {
				t.Errorf("Size() = %d, %v; wrote %d", size, err, len(out))
			}
			tt.check(t, string(out))
			// Whatever was encoded reads back as given.
			msg, err := mail.ReadMessage(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			got := goLeaves(t, textprotoHeader(msg.Header), msg.Body)
			if want := expectedLeaves(t, m); len(got) != len(want) || got[0] != want[0] {
				t.Errorf("body reads back as %+v, want %+v", got, want)
			}
		})
	}
}

func headerOf(out string) string {
	h, _, _ := strings.Cut(out, "\r\n\r\n")
	return h
}

// TestAttachmentSizeMismatch: a source that yields another size than
// declared fails WriteTo (the SMTP client then drops the transaction).
func TestAttachmentSizeMismatch(t *testing.T) {
	for _, tt := range []struct {
		name   string
		size   int64
		data   string
		errHas string
	}{
		{"shorter", 10, "12345", "source has 5 bytes, Size says 10"},
		{"longer", 3, "12345", "source has more than 3 bytes, Size says 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			m.Attachments = []*Attachment{{Filename: "a.bin", ContentType: "application/octet-stream", Size: tt.size,
				Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.data)), nil }}}
			if _, err := m.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("WriteTo error %v, want %q", err, tt.errHas)
			}
		})
	}
	t.Run("open fails", func(t *testing.T) {
		m := base()
		boom := errors.New("boom")
		m.Attachments = []*Attachment{{Filename: "a.bin", ContentType: "application/octet-stream",
			Open: func() (io.ReadCloser, error) { return nil, boom }}}
		if _, err := m.WriteTo(io.Discard); !errors.Is(err, boom) {
			t.Fatalf("WriteTo error %v, want it to wrap %v", err, boom)
		}
	})
}

func TestFileAttachment(t *testing.T) {
	dir := t.TempDir()
	if _, err := FileAttachment(filepath.Join(dir, "missing.pdf")); err == nil ||
		!errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.pdf") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := FileAttachment(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	tests := []struct{ name, data, want string }{
		{"doc.pdf", "%PDF-1.4", "application/pdf"},
		{"pic.png", string(pngBytes), "image/png"},
		{"noext", string(pngBytes), "image/png"},               // sniffed
		{"noext2", "just text\n", "text/plain; charset=utf-8"}, // sniffed
		{"forward.eml", "From: x\n", ""},                       // never message/rfc822
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, []byte(tt.data), 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := FileAttachment(p)
		if err != nil {
			t.Fatal(err)
		}
		if a.Filename != tt.name || a.Size != int64(len(tt.data)) {
			t.Errorf("%s: name %q size %d", tt.name, a.Filename, a.Size)
		}
		if tt.want != "" && a.ContentType != tt.want {
			t.Errorf("%s: type %q, want %q", tt.name, a.ContentType, tt.want)
		}
		if strings.HasPrefix(a.ContentType, "message/") {
			t.Errorf("%s: type %q cannot be base64-encoded", tt.name, a.ContentType)
		}
		m := base()
		m.Attachments = []*Attachment{a}
		out := write(t, m)
		msg, err := mail.ReadMessage(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		got := goLeaves(t, textprotoHeader(msg.Header), msg.Body)
		if got[1].SHA256 != sum([]byte(tt.data)) {
			t.Errorf("%s: content differs", tt.name)
		}
	}
}

// TestPrepareStable: Prepare fixes the Message-ID, Date and boundaries once,
// so writing twice gives the same bytes even with a real random source.
func TestPrepareStable(t *testing.T) {
	m := &Message{
		From: maddr("", "alice@bücher.example"), To: []*mail.Address{maddr("", "bob@example.net")},
		Text: "x", Attachments: []*Attachment{BytesAttachment("a.pdf", []byte("%PDF"))},
	}
	a, b := write(t, m), write(t, m)
	if !bytes.Equal(a, b) {
		t.Fatal("two writes differ")
	}
	if !strings.HasSuffix(m.MessageID, "@xn--bcher-kva.example") || m.Date.IsZero() {
		t.Errorf("MessageID %q, Date %v", m.MessageID, m.Date)
	}
	other := &Message{From: m.From, To: m.To, Text: "x"}
	if err := other.Prepare(); err != nil {
		t.Fatal(err)
	}
	if other.MessageID == m.MessageID {
		t.Error("two messages got the same Message-ID")
	}
	given := base()
	given.MessageID = "<given@example.com>"
	if out := write(t, given); !bytes.Contains(out, []byte("Message-ID: <given@example.com>\r\n")) {
		t.Error("given Message-ID not kept")
	}
}

func TestEnvelope(t *testing.T) {
	m := base()
	m.To = append(m.To, maddr("Dup", "bob@EXAMPLE.net"), maddr("", "Bob@example.net"))
	m.Cc = []*mail.Address{maddr("", "carol@bücher.example")}
	m.Bcc = []*mail.Address{maddr("", "bob@example.net"), maddr("", "dave@example.org")}
	want := []string{"bob@example.net", "Bob@example.net", "carol@xn--bcher-kva.example", "dave@example.org"}
	if got := m.Recipients(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Recipients() = %v, want %v", got, want)
	}
	if got := m.EnvelopeFrom(); got != "alice@example.com" {
		t.Errorf("EnvelopeFrom() = %q", got)
	}
	m.Sender = maddr("", "bounces@example.com")
	if got := m.EnvelopeFrom(); got != "bounces@example.com" {
		t.Errorf("EnvelopeFrom() with Sender = %q", got)
	}
	if m.NeedsSMTPUTF8() {
		t.Error("IDN domain alone needs no SMTPUTF8: it has an A-label")
	}
	m.Bcc = append(m.Bcc, maddr("", "δοκιμή@example.gr"))
	if !m.NeedsSMTPUTF8() {
		t.Error("UTF-8 local part (even in Bcc) needs SMTPUTF8")
	}
	if m.Needs8BitMIME() {
		t.Error("a Message never needs 8BITMIME")
	}
}

// TestBoundaryNeverInContent backs the argument in write.go: in every golden
// shape, "=_" (with which every boundary starts) only appears in delimiter
// lines and in boundary parameters, never in content, so no content line
// can be taken for a delimiter.
func TestBoundaryNeverInContent(t *testing.T) {
	for _, s := range shapes() {
		m := fixed(s.msg())
		out := write(t, m)
		for i, line := range lines(out) {
			if !strings.Contains(line, "=_") {
				continue
			}
			ok := false
			for _, b := range m.boundaries {
				ok = ok || line == "--"+b || line == "--"+b+"--" || strings.Contains(line, `boundary="`+b+`"`)
			}
			if !ok {
				t.Errorf("%s: line %d holds \"=_\" outside a delimiter: %q", s.name, i+1, line)
			}
		}
	}
	// Hostile text trying to close the parts early is encoded instead.
	m := base()
	if err := m.Prepare(); err != nil {
		t.Fatal(err)
	}
	m.Text = "--" + m.boundaries[0] + "--\n--" + m.boundaries[1] + "\n"
	m.HTML = m.Text
	m.Attachments = []*Attachment{BytesAttachment("x.pdf", []byte(m.Text))}
	out := string(write(t, m))
	// mixed(alternative(plain, html), attachment): each boundary opens,
	// separates and closes: three delimiters, no more.
	for _, b := range m.boundaries[:2] {
		if n := strings.Count(out, "\r\n--"+b+"\r\n") + strings.Count(out, "\r\n--"+b+"--"); n != 3 {
			t.Errorf("boundary %s appears %d times as a delimiter", b, n)
		}
	}
}

func TestBccOnly(t *testing.T) {
	m := base()
	m.To, m.Bcc = nil, []*mail.Address{maddr("Hidden", "hidden@example.org")}
	out := write(t, m)
	if !bytes.Contains(out, []byte("\r\nTo: undisclosed-recipients:;\r\n")) || bytes.Contains(out, []byte("hidden")) {
		t.Errorf("header:\n%s", headerOf(string(out)))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := msg.Header.AddressList("To"); err != nil || len(list) != 0 {
		t.Errorf("To parses as %v, %v", list, err)
	}
	if got := m.Recipients(); len(got) != 1 || got[0] != "hidden@example.org" {
		t.Errorf("Recipients() = %v", got)
	}
}
