package handlers_test

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"sockmail/smtp"
)

// captureRaw sends raw as it is to the app's capture server and returns
// the captured message's page path.
func captureRaw(t *testing.T, a *app, raw string) string {
	t.Helper()
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	// 8-bit content must be declared (RFC 6152 3): the client refuses it otherwise.
	eightBit := strings.ContainsFunc(raw, func(r rune) bool { return r >= 0x80 })
	env := smtp.Envelope{From: "a@example.test", To: []string{"b@example.test"}, EightBit: eightBit}
	if _, err := smtp.SendMail(context.Background(), smtp.Config{Addr: a.capture.Addr(), TLS: smtp.TLSNone},
		env, bytes.NewReader([]byte(raw)), smtp.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := a.store.ListCaptured(context.Background(), 1, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("captured: %d, %v", len(list), err)
	}
	return "/captured/" + strconv.FormatInt(list[0].ID, 10)
}

// TestCapturedAttachmentNames: attachments captured with RFC 2231 names in
// windows-1252 and RFC 2047 names are listed and downloaded under their
// decoded names, with their media type, nosniff and a sandboxing CSP; a
// part that does not exist is a 404.
func TestCapturedAttachmentNames(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	path := captureRaw(t, a, `From: a@example.test
To: b@example.test
Subject: files
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

see attached
--b
Content-Type: text/plain; charset=windows-1252
Content-Disposition: attachment; filename*0*=windows-1252''caf%E9; filename*1*=%20%80.txt

one
--b
Content-Type: application/pdf; name="=?ISO-8859-1?Q?r=E9sum=E9.pdf?="
Content-Transfer-Encoding: base64

JVBERi0=
--b--
`)
	view := c.get(path)
	if view.status != http.StatusOK {
		t.Fatalf("view: %d", view.status)
	}
	if got := strings.TrimSpace(view.testid(t, "text-body").Text()); got != "see attached" {
		t.Errorf("text body %q", got)
	}
	tests := []struct {
		n        int
		name     string
		ctype    string
		download string
	}{
		{0, "café €.txt", "text/plain", "one"},
		{1, "résumé.pdf", "application/pdf", "%PDF-"},
	}
	items := view.testid(t, "attachment")
	if items.Length() != len(tests) {
		t.Fatalf("%d attachments listed", items.Length())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(strings.Fields(items.Eq(tt.n).Text()), " "); !strings.HasPrefix(got, tt.name+" "+tt.ctype+",") {
				t.Errorf("listed as %q", got)
			}
			r := c.get(path + "/parts/" + strconv.Itoa(tt.n))
			// The part's own type, but a download the browser may not
			// sniff nor run.
			if r.status != http.StatusOK || r.body != tt.download || r.header.Get("Content-Type") != tt.ctype {
				t.Fatalf("download: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("download headers: nosniff %q, CSP %q", r.header.Get("X-Content-Type-Options"), r.header.Get("Content-Security-Policy"))
			}
			_, params, err := mime.ParseMediaType(r.header.Get("Content-Disposition"))
			if err != nil || params["filename"] != tt.name {
				t.Errorf("Content-Disposition %q: %v", r.header.Get("Content-Disposition"), err)
			}
		})
	}
	for _, n := range []string{"2", "-1", "x"} {
		if r := c.get(path + "/parts/" + n); r.status != http.StatusNotFound {
			t.Errorf("part %s: %d", n, r.status)
		}
	}
}

// TestCapturedHostileStructure: a message nested past the limit still
// shows, with what was read and the reason the rest was not.
func TestCapturedHostileStructure(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	var b strings.Builder
	b.WriteString("Subject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n")
	for i := 1; i <= 100; i++ {
		b.WriteString("--b" + strconv.Itoa(i-1) + "\nContent-Type: multipart/mixed; boundary=b" + strconv.Itoa(i) + "\n\n")
	}
	b.WriteString("--b100\nContent-Type: text/plain\n\nhidden\n")
	view := c.get(captureRaw(t, a, b.String()))
	if view.status != http.StatusOK {
		t.Fatalf("view: %d", view.status)
	}
	if got := view.testid(t, "parse-error").Text(); !strings.Contains(got, "too deeply nested") {
		t.Errorf("parse error %q", got)
	}
	if view.testid(t, "text-body").Length() != 0 || strings.TrimSpace(view.testid(t, "captured-title").Text()) != "deep" {
		t.Errorf("deep message shown as %q / %q", view.testid(t, "captured-title").Text(), view.testid(t, "text-body").Text())
	}
}
