package message

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRawNormalises(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"LF", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n"},
		{"CRLF kept", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n"},
		{"bare CR", "A: b\r\rbody\r", "A: b\r\n\r\nbody\r\n"},
		{"CR CR LF", "A: b\r\r\nbody", "A: b\r\n\r\nbody\r\n"},
		{"LF CR", "A: b\n\rbody", "A: b\r\n\r\nbody\r\n"},
		{"no final line break", "A: b\n\nbody", "A: b\r\n\r\nbody\r\n"},
		{"header only", "A: b", "A: b\r\n"},
		{"dot line kept", "A: b\n\n.\n", "A: b\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time too, so line breaks straddle reads.
			for _, oneByte := range []bool{false, true} {
				data := []byte(tt.in)
				r, err := NewRaw("a@example.com", []string{"b@example.net"}, func() (io.ReadCloser, error) {
					var rd io.Reader = bytes.NewReader(data)
					if oneByte {
						rd = iotest.OneByteReader(rd)
					}
					return io.NopCloser(rd), nil
				})
				if err != nil {
					t.Fatal(err)
				}
				got := write(t, r)
				if string(got) != tt.want {
					t.Errorf("oneByte=%v: got %q, want %q", oneByte, got, tt.want)
				}
				if size, _ := r.Size(); size != int64(len(got)) {
					t.Errorf("Size() = %d, wrote %d", size, len(got))
				}
			}
		})
	}
}

func TestRawRejects(t *testing.T) {
	tests := []struct {
		name, from string
		to         []string
		in, errHas string
	}{
		{"NUL", "a@example.com", []string{"b@example.net"}, "A: b\n\nx\x00y\n", "message: raw: line 3 holds a NUL byte"},
		{"long line", "a@example.com", []string{"b@example.net"}, "A: b\n\n" + strings.Repeat("x", 999) + "\n", "line 3 is longer than 998 octets"},
		{"no header", "a@example.com", []string{"b@example.net"}, "just a body\n", "does not start with a header field"},
		{"empty", "a@example.com", []string{"b@example.net"}, "", "message: raw: empty message"},
		{"no recipient", "a@example.com", nil, "A: b\n", "message: raw: no recipient"},
		{"bad sender", "a@b\r\n", []string{"b@example.net"}, "A: b\n", "message: raw: envelope sender"},
		{"bad recipient", "a@example.com", []string{"<b@example.net>"}, "A: b\n", "message: raw: recipient"},
		{"recipient with space", "a@example.com", []string{"b c@example.net"}, "A: b\n", "message: raw: recipient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RawBytes(tt.from, tt.to, []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %v, want %q", err, tt.errHas)
			}
		})
	}
	// 998 octets is fine.
	if _, err := RawBytes("", []string{"b@example.net"}, []byte("A: b\n\n"+strings.Repeat("x", 998)+"\n")); err != nil {
		t.Fatal(err)
	}
}

func TestRawFlagsAndEnvelope(t *testing.T) {
	r, err := RawBytes("", []string{"b@example.net", "B@EXAMPLE.NET", "b@example.net", "c@bücher.example"},
		[]byte("Subject: plain\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.EnvelopeFrom() != "" || r.NeedsSMTPUTF8() || r.Needs8BitMIME() {
		t.Errorf("from %q utf8 %v 8bit %v", r.EnvelopeFrom(), r.NeedsSMTPUTF8(), r.Needs8BitMIME())
	}
	if got := strings.Join(r.Recipients(), ","); got != "b@example.net,B@EXAMPLE.NET,c@xn--bcher-kva.example" {
		t.Errorf("Recipients() = %s", got)
	}
	r, _ = RawBytes("a@example.com", []string{"b@example.net"}, []byte("Subject: Grüße\n\nbody\n"))
	if !r.NeedsSMTPUTF8() || r.Needs8BitMIME() {
		t.Errorf("UTF-8 header: utf8 %v 8bit %v", r.NeedsSMTPUTF8(), r.Needs8BitMIME())
	}
	r, _ = RawBytes("a@example.com", []string{"b@example.net"}, []byte("Subject: x\n\nGrüße\n"))
	if r.NeedsSMTPUTF8() || !r.Needs8BitMIME() {
		t.Errorf("8-bit body: utf8 %v 8bit %v", r.NeedsSMTPUTF8(), r.Needs8BitMIME())
	}
	r, _ = RawBytes("ü@example.com", []string{"b@example.net"}, []byte("Subject: x\n\nx\n"))
	if !r.NeedsSMTPUTF8() {
		t.Error("UTF-8 envelope sender needs SMTPUTF8")
	}
}

func TestRawFileChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(p, []byte("Subject: x\n\nbody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := RawFile("a@example.com", []string{"b@example.net"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := write(t, r); string(got) != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("got %q", got)
	}
	if err := os.WriteFile(p, []byte("Subject: x\n\nbody changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "source changed") {
		t.Fatalf("changed source: %v", err)
	}
	if _, err := RawFile("a@example.com", []string{"b@example.net"}, filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing file accepted")
	}
}
