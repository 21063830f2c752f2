package handlers_test

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"sockmail/internal/store"
)

// The headers a contact message has; anything else is an injection.
var contactHeaders = []string{"Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id", "Mime-Version",
	"Reply-To", "Subject", "To", "X-Sockmail-Form"}

// checkHeaders fails unless the message's envelope and headers are the
// form's, whatever the visitor sent.
func checkHeaders(t *testing.T, a *contactApp, f *store.Form, what string) (string, map[string][]string) {
	t.Helper()
	item, m, body := a.onlyMessage(t, f)
	var names []string
	for k := range m.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, n := range names {
		if !slices.Contains(contactHeaders, n) {
			t.Errorf("%s: unexpected header %s: %q", what, n, m.Header[n])
		}
		if len(m.Header[n]) != 1 {
			t.Errorf("%s: header %s %d times", what, n, len(m.Header[n]))
		}
		for _, v := range m.Header[n] {
			dec, err := decodeHeader(v)
			if err != nil {
				t.Errorf("%s: header %s: %v", what, n, err)
			}
			// The Subject and Reply-To's display name may hold the
			// visitor's text, on one line.
			if n != "Subject" && n != "Reply-To" && strings.Contains(strings.ToLower(dec), "injected") || strings.ContainsAny(dec, "\r\n\x00") {
				t.Errorf("%s: header %s carries the injection: %q", what, n, v)
			}
		}
	}
	if rt := m.Header.Get("Reply-To"); rt != "" {
		list, err := m.Header.AddressList("Reply-To")
		if err != nil || len(list) != 1 || !strings.HasSuffix(list[0].Address, "@visitor.test") {
			t.Errorf("%s: Reply-To %q: %v", what, rt, err)
		}
	}
	if got := m.Header.Get("From"); got != "Example site <forms@example.test>" {
		t.Errorf("%s: From %q", what, got)
	}
	if got := m.Header.Get("To"); got != "owner@example.test, second@example.test" {
		t.Errorf("%s: To %q", what, got)
	}
	if item.MailFrom != "forms@example.test" || strings.Join(item.Rcpts, ",") != "owner@example.test,second@example.test" {
		t.Errorf("%s: envelope %s -> %v", what, item.MailFrom, item.Rcpts)
	}
	text, _ := textOf(t, m, body)
	return text, m.Header
}

func TestContactCRLFInEveryFieldStaysInTheBody(t *testing.T) {
	const inj = "x\r\nBcc: injected@evil.test\r\nX-Injected: yes\r\n\r\ninjected body"
	fields := []string{"name", "email", "message", "subject", "to", "from", "cc", "bcc", "reply-to", "website"}
	for _, field := range fields {
		for _, enc := range []string{"json", "urlencoded", "multipart"} {
			t.Run(field+"/"+enc, func(t *testing.T) {
				a := newContactApp(t, contactOptions{})
				f := a.addForm(t, func(f *store.Form) {
					f.SubjectTemplate = "{{subject}} {{name}} {{" + field + "}} {{_form}}"
					f.FromName = "Example site"
				})
				vals := url.Values{"_token": {a.token(t, f)}, "name": {"Ann"}, "email": {"ann@visitor.test"}, "message": {"hello"}}
				vals.Set(field, inj)
				var r *response
				switch enc {
				case "json":
					m := map[string]any{}
					for k := range vals {
						m[k] = vals.Get(k)
					}
					r = a.postJSON(t, f, m)
				case "urlencoded":
					r = a.postForm(t, f, vals, "Accept", "application/json")
				case "multipart":
					r = a.postMultipart(t, f, vals, nil)
				}
				if field == "email" {
					// A line break makes it no address: refused, nothing queued.
					wantAnswer(t, r, http.StatusUnprocessableEntity, "invalid_email")
					if n := len(a.outbox(t, f)); n != 0 {
						t.Fatalf("%d queued", n)
					}
					return
				}
				wantAnswer(t, r, http.StatusOK, "")
				text, h := checkHeaders(t, a, f, field)
				if !strings.Contains(text, field+":") || !strings.Contains(text, "    Bcc: injected@evil.test\n    X-Injected: yes\n") {
					t.Errorf("the value is not in the body as text:\n%s", text)
				}
				if s, _ := decodeHeader(h["Subject"][0]); !strings.Contains(s, "x Bcc: injected@evil.test X-Injected: yes injected body") {
					t.Errorf("subject %q: the value should be there, on one line", s)
				}
				if field == "name" {
					if got := h["Reply-To"][0]; strings.ContainsAny(got, "\r\n") || !strings.HasSuffix(got, "<ann@visitor.test>") {
						t.Errorf("Reply-To %q", got)
					}
				}
			})
		}
	}
}

func TestContactCRLFInFieldNamesStaysInTheBody(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	p := validPost(a.token(t, f))
	p["x\r\nBcc: injected@evil.test\r\nX-Injected"] = "yes"
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	text, _ := checkHeaders(t, a, f, "field name")
	if !strings.Contains(text, "x  Bcc: injected@evil.test  X-Injected: yes") {
		t.Errorf("field name not in the body as one line:\n%s", text)
	}
}

func TestContactSubjectTemplateStaysOneLine(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) { f.SubjectTemplate = "From {{name}}: {{ topic }} ({{_form}}) {{missing}}" })
	p := validPost(a.token(t, f))
	p["name"] = "Zoë\r\n\tEve =?utf-8?q?=0D=0ABcc:_injected@evil.test?="
	p["topic"] = strings.Repeat("long ", 100)
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	_, h := checkHeaders(t, a, f, "subject")
	// net/mail leaves the encoded-words; decode them to check the text.
	subj := h["Subject"][0]
	dec, err := decodeHeader(subj)
	if err != nil {
		t.Fatalf("subject %q: %v", subj, err)
	}
	if strings.ContainsAny(dec, "\r\n\t") || !strings.HasPrefix(dec, "From Zoë Eve = ?utf-8?q?=0D=0ABcc:_injected@evil.test?=: long long") ||
		!strings.Contains(dec, "… (Contact page)") || len([]rune(dec)) > 200 {
		t.Errorf("subject %q", dec)
	}
}

func TestContactForgedAddressFieldsChangeNothing(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	p := validPost(a.token(t, f))
	forged := map[string]string{
		"to": "victim@elsewhere.test", "cc": "victim2@elsewhere.test", "bcc": "victim3@elsewhere.test",
		"from": "ceo@example.test", "subject": "URGENT: wire money", "reply-to": "phish@evil.test",
		"recipients": "victim4@elsewhere.test", "sender": "x@evil.test", "_to": "victim5@elsewhere.test",
		" _token": "victim6@elsewhere.test", "\t_gotcha": "victim7@elsewhere.test",
	}
	for k, v := range forged {
		p[k] = v
	}
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	text, h := checkHeaders(t, a, f, "forged")
	if h["Subject"][0] != "Contact from Ada Lovelace" || h["Reply-To"][0] != "Ada Lovelace <ada@visitor.test>" {
		t.Errorf("Subject %q Reply-To %q", h["Subject"], h["Reply-To"])
	}
	for k, v := range forged {
		if strings.HasPrefix(strings.TrimSpace(k), "_") {
			if strings.Contains(text, v) {
				t.Errorf("a meta field reached the body: %s", k)
			}
			continue
		}
		if !strings.Contains(text, k+":") || !strings.Contains(text, v) {
			t.Errorf("forged field %s is not in the body as text:\n%s", k, text)
		}
	}
}

// decodeHeader decodes RFC 2047 encoded-words.
func decodeHeader(s string) (string, error) {
	return new(mime.WordDecoder).DecodeHeader(s)
}
