package handlers

import (
	"strings"
	"testing"
)

func TestParseMail(t *testing.T) {
	raw := "From: =?utf-8?q?J=C3=B6rg?= <j@example.test>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=X\r\n\r\n" +
		"--X\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n" +
		"--Y\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n" +
		"--Y\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n--Y--\r\n" +
		"--X\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRi0x\r\n--X--\r\n"
	pm := parseMail([]byte(raw))
	if pm.err != nil {
		t.Fatal(pm.err)
	}
	if pm.headers[0].Name != "From" || pm.headers[0].Value != "Jörg <j@example.test>" {
		t.Errorf("headers %+v", pm.headers)
	}
	if pm.text != "Grüße" || !strings.Contains(pm.html, "<p>hi</p>") {
		t.Errorf("text %q html %q", pm.text, pm.html)
	}
	if len(pm.parts) != 1 || pm.parts[0].filename != "a.pdf" || string(pm.parts[0].data) != "%PDF-1" {
		t.Errorf("parts %+v", pm.parts)
	}
	if bad := parseMail([]byte("no header here")); bad.err == nil {
		t.Error("no error for a message without a header")
	}
}
