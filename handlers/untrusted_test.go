package handlers_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/store"
)

// rlo is the bidi override an attacker uses to make "invoice‮fdp.exe"
// read as "invoiceexe.pdf"; rloEscaped is how every page must show it.
const (
	rlo        = "\u202e"
	rloEscaped = `\u202e`
)

// TestBidiShownEscapedOnEveryPage posts a contact submission whose
// fields and upload name carry bidi controls and other control
// characters, lets the real outbox worker deliver it to the built-in
// capture server, then reads every page that shows that text through
// the real router: none may carry a raw bidi or control character, each
// must show the escape. The composed mail must carry the upload under a
// safe name and the text escaped.
func TestBidiShownEscapedOnEveryPage(t *testing.T) {
	a := newContactApp(t, contactOptions{worker: true, realClock: true})
	f := a.addForm(t, func(f *store.Form) { f.AllowUploads = true })
	var tok string
	a.issueInPast(t, func() { tok = a.token(t, f) })
	form := url.Values{"_token": {tok}, "name": {"Mallory" + rlo + "yrollaM"}, "email": {"m@example.test"},
		"message": {"pay " + rlo + "this\nsecond line \u2066isolated\u2069 bell\x07"}}
	wantAnswer(t, a.postMultipart(t, f, form, []file{{"invoice" + rlo + "fdp.exe", "MZ not really"}}), http.StatusOK, "")

	items := a.outbox(t, f)
	if len(items) != 1 || items[0].SubmissionID == nil {
		t.Fatalf("outbox: %+v", items)
	}
	sends := waitAllSent(t, a.store, map[string]int64{"all": items[0].ID})
	sub := *items[0].SubmissionID
	list, err := a.store.ListCaptured(context.Background(), 10, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("captured: %d, %v", len(list), err)
	}
	capturedID := list[0].ID

	// The mail composed for the site owner.
	checkComposedMail(t, list[0].ID, a.store)
	// A message written to the capture server as it is, bidi and all.
	rawPath := captureRaw(t, a.app, rawBidiMessage)

	c := a.client()
	c.signUp()
	id := strconv.FormatInt
	// Pages that show raw text from outside show each escape in a span
	// (span true); the composed mail already carries the escapes as text.
	pages := []struct {
		path string
		want []string // escaped texts the page must show
		span bool
	}{
		{"/forms/" + id(f.ID, 10) + "/submissions", []string{"Mallory" + rloEscaped + "yrollaM"}, false},
		{"/submissions/" + id(sub, 10), []string{"Mallory" + rloEscaped + "yrollaM", "invoice" + rloEscaped + "fdp.exe", `\u2066isolated\u2069`, `bell\x07`}, true},
		{"/outbox", []string{"Contact from Mallory" + rloEscaped + "yrollaM"}, false},
		{"/captured", []string{"Contact from Mallory" + rloEscaped + "yrollaM", "bill" + rloEscaped + "fdp.exe"}, true},
		{"/captured/" + id(capturedID, 10), []string{"Contact from Mallory" + rloEscaped + "yrollaM", "invoice[U+202E]fdp.exe", "pay " + rloEscaped + "this"}, false},
		{rawPath, []string{"bill" + rloEscaped + "fdp.exe", "Eve" + rloEscaped, "invoice" + rloEscaped + "fdp.exe", "raw " + rloEscaped + " bidi"}, true},
		{"/history", []string{"Contact from Mallory" + rloEscaped + "yrollaM"}, false},
		{"/history/" + id(sends["all"], 10), []string{"Contact from Mallory" + rloEscaped + "yrollaM"}, false},
	}
	// The attachment is downloaded under the safe name.
	r := c.get(rawPath + "/parts/0")
	_, params, err := mime.ParseMediaType(r.header.Get("Content-Disposition"))
	if r.status != http.StatusOK || err != nil || params["filename"] != "invoice[U+202E]fdp.exe" {
		t.Errorf("attachment download: %d %q %v", r.status, r.header.Get("Content-Disposition"), err)
	}
	for _, p := range pages {
		t.Run(p.path, func(t *testing.T) {
			r := c.get(p.path)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			for _, bad := range []string{rlo, "\u2066", "\u2069", "\x07"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("page carries a raw %+q", bad)
				}
			}
			doc := r.doc(t)
			if p.span && doc.Find("span.esc").Length() == 0 {
				t.Error("no escape shown in its own span (class esc)")
			}
			text := doc.Text()
			for _, w := range p.want {
				if !strings.Contains(text, w) {
					t.Errorf("page does not show %q", w)
				}
			}
		})
	}
}

// rawBidiMessage is written to the capture server as it is: bidi
// overrides in the sender's name, the subject, the text and an
// attachment's name.
const rawBidiMessage = `From: =?utf-8?q?Eve=E2=80=AE?= <eve@example.test>
To: b@example.test
Subject: =?utf-8?q?bill=E2=80=AEfdp.exe?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

raw ` + rlo + ` bidi
--b
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe

MZ
--b--
`

// checkComposedMail reads the mail sockmail composed from the submission
// as the capture server received it: the upload's name is safe, the
// subject and body show the escapes, no raw bidi character is left.
func checkComposedMail(t *testing.T, capturedID int64, st *store.Store) {
	t.Helper()
	m, err := st.Captured(context.Background(), capturedID)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "Contact from Mallory"+rloEscaped+"yrollaM" {
		t.Errorf("subject %q, %v", subject, err)
	}
	replyTo, err := msg.Header.AddressList("Reply-To")
	if err != nil || len(replyTo) != 1 || strings.Contains(replyTo[0].Name, rlo) {
		t.Errorf("reply-to %+v, %v", replyTo, err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var text string
	var names []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := p.FileName(); name != "" {
			names = append(names, name)
			continue
		}
		b, _ := io.ReadAll(p)
		text += string(b)
	}
	if len(names) != 1 || names[0] != "invoice[U+202E]fdp.exe" {
		t.Errorf("attachment names %q, want the safe name", names)
	}
	for _, w := range []string{"pay " + rloEscaped + "this", `\u2066isolated\u2069`, `bell\x07`, "invoice[U+202E]fdp.exe"} {
		if !strings.Contains(text, w) {
			t.Errorf("text body lacks %q:\n%s", w, text)
		}
	}
	if strings.ContainsAny(text, rlo+"\u2066\u2069\x07") {
		t.Errorf("text body carries a raw bidi or control character:\n%q", text)
	}
}
