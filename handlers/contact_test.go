package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
)

// textOf returns the decoded text/plain part of a message and the
// attachments' names and contents.
func textOf(t testing.TB, m *mail.Message, body string) (string, map[string]string) {
	t.Helper()
	files := map[string]string{}
	var text string
	var walk func(h textHeader, b []byte)
	walk = func(h textHeader, b []byte) {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			mt = "text/plain"
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("multipart: %v", err)
				}
				pb, _ := io.ReadAll(p)
				walk(p.Header, pb)
			}
			return
		}
		var dec []byte
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			dec, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		case "base64":
			dec, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n"), nil))))
		default:
			dec = b
		}
		if err != nil {
			t.Fatalf("decode part: %v", err)
		}
		_, dp, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
		if name := dp["filename"]; name != "" {
			files[name] = string(dec)
			return
		}
		if mt == "text/plain" && text == "" {
			text = strings.ReplaceAll(string(dec), "\r\n", "\n")
		}
	}
	walk(m.Header, []byte(body))
	return text, files
}

type textHeader interface{ Get(string) string }

// validPost is a JSON submission with every expected field.
func validPost(token string) map[string]any {
	return map[string]any{"_token": token, "name": "Ada Lovelace", "email": "ada@visitor.test", "message": "Hello,\nI would like to know more.\n"}
}

func TestContactJSONSubmissionIsQueuedBeforeTheAnswer(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	r := a.postJSON(t, f, validPost(a.token(t, f)))
	wantAnswer(t, r, http.StatusOK, "")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://site.example" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if a.kick.n.Load() != 1 {
		t.Errorf("worker kicked %d times, want 1", a.kick.n.Load())
	}
	item, m, body := a.onlyMessage(t, f)
	if item.Status != store.OutboxQueued || item.MailFrom != "forms@example.test" ||
		strings.Join(item.Rcpts, ",") != "owner@example.test,second@example.test" || item.ProfileID != 0 {
		t.Errorf("outbox item %+v", item)
	}
	if id := m.Header.Get("Message-Id"); id != "<"+item.MessageID+">" || item.MessageID == "" {
		t.Errorf("Message-ID %q, item %q", id, item.MessageID)
	}
	for name, want := range map[string]string{
		"From": `Example site <forms@example.test>`, "To": "owner@example.test, second@example.test",
		"Reply-To": `Ada Lovelace <ada@visitor.test>`, "Subject": "Contact from Ada Lovelace", "X-Sockmail-Form": f.Slug,
	} {
		if got := m.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	text, _ := textOf(t, m, body)
	for _, want := range []string{"name:    Ada Lovelace\n", "email:   ada@visitor.test\n", "message:\n    Hello,\n    I would like to know more.\n", "on https://site.example"} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
	subs := a.submissions(t, f)
	if len(subs) != 1 || subs[0].Status != store.SubmissionQueued || subs[0].ReplyTo != "ada@visitor.test" ||
		subs[0].Origin != "https://site.example" || subs[0].ClientAddr != "127.0.0.1" || len(subs[0].Fields) != 3 {
		t.Errorf("submissions %+v", subs)
	}
}

// confirmValues reads the confirmation page's form: its action and the
// values a browser would post.
func confirmValues(t *testing.T, r *response) (string, url.Values) {
	t.Helper()
	form := r.testid(t, "contact-confirm")
	if form.Length() != 1 {
		t.Fatalf("no confirmation form (%d):\n%s", r.status, r.body)
	}
	action, _ := form.Attr("action")
	vals := url.Values{}
	for _, n := range form.Find("input").Nodes {
		var name, value string
		for _, at := range n.Attr {
			switch at.Key {
			case "name":
				name = at.Val
			case "value":
				value = at.Val
			}
		}
		if name != "" {
			vals.Add(name, value)
		}
	}
	return action, vals
}

func TestContactPlainFormWithoutJavaScript(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	// The snippet's form posts without a token: sockmail answers with its
	// confirmation page, which carries the message and a fresh token.
	r := a.postForm(t, f, url.Values{"name": {"Bob"}, "email": {"bob@visitor.test"}, "message": {"Line one\r\nLine two"}})
	if r.status != http.StatusOK {
		t.Fatalf("first post: %d\n%s", r.status, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("confirmation page CSP %q", csp)
	}
	action, vals := confirmValues(t, r)
	if action != "/f/"+f.Slug || vals.Get("_token") == "" || vals.Get("message") != "Line one\nLine two" ||
		vals.Get("_origin") != "https://site.example" || vals.Get("email") != "bob@visitor.test" {
		t.Fatalf("confirmation form %s %v", action, vals)
	}
	if n := len(a.outbox(t, f)); n != 0 {
		t.Fatalf("%d items queued before the confirmation", n)
	}

	// Pressing Send at once is too fast: the same page, the same token.
	self := []string{"Origin", a.srv.URL}
	r2 := a.postForm(t, f, vals, self...)
	_, vals2 := confirmValues(t, r2)
	if r2.status != http.StatusOK || vals2.Get("_token") != vals.Get("_token") || r2.testid(t, "contact-notice").Length() != 1 {
		t.Fatalf("too fast: %d, token kept %v\n%s", r2.status, vals2.Get("_token") == vals.Get("_token"), r2.body)
	}

	a.clock.Advance(4 * time.Second)
	r3 := a.postForm(t, f, vals, self...)
	if r3.status != http.StatusSeeOther || r3.header.Get("Location") != "/f/"+f.Slug+"/thanks?origin=https%3A%2F%2Fsite.example" {
		t.Fatalf("confirmed: %d %q\n%s", r3.status, r3.header.Get("Location"), r3.body)
	}
	thanks := a.visit(t, http.MethodGet, r3.header.Get("Location"), "", nil, "Accept", "text/html")
	if thanks.status != http.StatusOK || thanks.testid(t, "contact-thanks").Length() != 1 {
		t.Fatalf("thanks page: %d", thanks.status)
	}
	if href, _ := thanks.testid(t, "contact-back").Attr("href"); href != "https://site.example/" {
		t.Errorf("back link %q", href)
	}
	_, m, body := a.onlyMessage(t, f)
	text, _ := textOf(t, m, body)
	if !strings.Contains(text, "message:\n    Line one\n    Line two\n") || m.Header.Get("Reply-To") != `Bob <bob@visitor.test>` {
		t.Errorf("message %q\n%s", m.Header.Get("Reply-To"), text)
	}
	if subs := a.submissions(t, f); len(subs) != 1 || subs[0].Origin != "https://site.example" {
		t.Errorf("submission origin: %+v", subs)
	}

	// A form with a success URL redirects there.
	f2 := a.addForm(t, func(f *store.Form) { f.SuccessURL = "https://site.example/thanks.html" })
	r = a.postForm(t, f2, url.Values{"name": {"Bob"}, "message": {"hi"}})
	_, vals = confirmValues(t, r)
	a.clock.Advance(4 * time.Second)
	r = a.postForm(t, f2, vals, self...)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "https://site.example/thanks.html" {
		t.Fatalf("success URL: %d %q", r.status, r.header.Get("Location"))
	}
	if csp := r.header.Get("Content-Security-Policy"); csp == "" {
		t.Error("no CSP")
	}
}

func TestContactConfirmationPageAllowsTheRedirectTargets(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) {
		f.SuccessURL, f.ErrorURL = "https://site.example/ok", "https://errors.example:8443/oops"
	})
	r := a.postForm(t, f, url.Values{"message": {"hi"}})
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' https://site.example https://errors.example:8443;") {
		t.Errorf("CSP %q", csp)
	}
}

func TestContactTimeTrap(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	other := a.addForm(t, func(f *store.Form) { f.Name = "Other" })

	fresh := func() string {
		r := a.visit(t, http.MethodGet, "/f/"+f.Slug+"/token", "", nil)
		return strings.Split(strings.Split(r.body, `"token":"`)[1], `"`)[0]
	}
	t.Run("too fast", func(t *testing.T) {
		wantAnswer(t, a.postJSON(t, f, validPost(fresh())), http.StatusUnprocessableEntity, "too_fast")
	})
	t.Run("too old", func(t *testing.T) {
		tok := fresh()
		a.clock.Advance(2*time.Hour + time.Minute)
		wantAnswer(t, a.postJSON(t, f, validPost(tok)), http.StatusUnprocessableEntity, "expired")
		// A plain form gets the confirmation page with a new token.
		vals := url.Values{"_token": {tok}, "message": {"hi"}}
		r := a.postForm(t, f, vals)
		_, got := confirmValues(t, r)
		if got.Get("_token") == tok || got.Get("_token") == "" {
			t.Errorf("expired token not replaced")
		}
	})
	t.Run("missing", func(t *testing.T) {
		p := validPost("")
		delete(p, "_token")
		wantAnswer(t, a.postJSON(t, f, p), http.StatusUnprocessableEntity, "token_missing")
	})
	if n := len(a.outbox(t, f)); n != 0 {
		t.Fatalf("%d items queued by refused posts", n)
	}
	if n := len(a.submissions(t, f)); n != 0 {
		t.Fatalf("%d submissions kept for refused posts", n)
	}

	// Forged tokens look accepted, and are kept as blocked.
	good := a.token(t, other) // valid, for another form
	tok := fresh()
	a.clock.Advance(5 * time.Second)
	id := strconv.FormatInt(f.ID, 10)
	for name, tok := range map[string]string{
		"another form's": good,
		"bad seal":       tok[:len(tok)-4] + "AAAA",
		"v1 older claimed": "v1." + id + "." + strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10) +
			".AAAAAAAAAAAAAAAAAAAAAA",
		"garbage":   "hello",
		"very long": strings.Repeat("v1.", 100),
	} {
		r := a.postJSON(t, f, validPost(tok))
		if ans := decodeAnswer(t, r); r.status != http.StatusOK || !ans.OK {
			t.Errorf("%s token: %d %+v", name, r.status, ans)
		}
	}
	subs := a.submissions(t, f)
	items := a.outbox(t, f)
	if len(subs) != 5 || len(items) != 5 {
		t.Fatalf("%d submissions, %d items, want 5 each", len(subs), len(items))
	}
	for i := range subs {
		if subs[i].Status != store.SubmissionBlocked || subs[i].BlockReason != "forged token" || items[i].Status != store.OutboxHeld {
			t.Errorf("forged: submission %s %q, item %s", subs[i].Status, subs[i].BlockReason, items[i].Status)
		}
	}
	if a.kick.n.Load() != 0 {
		t.Errorf("worker kicked for blocked submissions")
	}
}

func TestContactHoneypotIsBlockedQuietlyAndCanBeReleased(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	p := validPost(a.token(t, f))
	p["_gotcha"] = "http://spam.example"
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	// A plain form filled in by a robot, without token: also looks sent.
	r := a.postForm(t, f, url.Values{"name": {"x"}, "message": {"buy"}, "_gotcha": {"x"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/f/"+f.Slug+"/thanks") {
		t.Fatalf("plain honeypot: %d %q", r.status, r.header.Get("Location"))
	}
	subs := a.submissions(t, f)
	if len(subs) != 2 || subs[0].BlockReason != "honeypot" || subs[1].BlockReason != "honeypot" || subs[1].Status != store.SubmissionBlocked {
		t.Fatalf("submissions %+v", subs)
	}
	for _, it := range a.outbox(t, f) {
		if it.Status != store.OutboxHeld {
			t.Errorf("item %d is %s, want held", it.ID, it.Status)
		}
	}

	// An admin releases one from its page.
	c := a.client()
	c.signUp()
	page := c.get("/submissions/" + strconv.FormatInt(subs[1].ID, 10))
	if page.status != http.StatusOK || page.testid(t, "block-reason").Text() != "honeypot" {
		t.Fatalf("submission page: %d", page.status)
	}
	tok := c.csrf("/submissions/" + strconv.FormatInt(subs[1].ID, 10))
	r = c.post("/submissions/"+strconv.FormatInt(subs[1].ID, 10)+"/release", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("release: %d\n%s", r.status, r.body)
	}
	got, err := a.store.Submission(context.Background(), subs[1].ID)
	if err != nil || got.Status != store.SubmissionReleased {
		t.Fatalf("released submission: %+v %v", got, err)
	}
	queued := 0
	for _, it := range a.outbox(t, f) {
		if it.Status == store.OutboxQueued {
			queued++
		}
	}
	if queued != 1 || a.kick.n.Load() != 1 {
		t.Errorf("%d queued after release, %d kicks", queued, a.kick.n.Load())
	}
	// Releasing it again is refused politely.
	r = c.post("/submissions/"+strconv.FormatInt(subs[1].ID, 10)+"/release", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("second release: %d", r.status)
	}
	if page := c.get(r.header.Get("Location")); !strings.Contains(page.testid(t, "flash").Text(), "not blocked") {
		t.Errorf("flash %q", page.testid(t, "flash").Text())
	}
}

func TestContactUnknownAndDisabledForms(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	off := a.addForm(t, func(f *store.Form) { f.Enabled = false })
	r := a.visit(t, http.MethodPost, "/f/nosuchform", "application/json", strings.NewReader(`{}`), "Accept", "application/json")
	wantAnswer(t, r, http.StatusNotFound, "not_found")
	r = a.visit(t, http.MethodPost, "/f/nosuchform", "application/x-www-form-urlencoded", strings.NewReader(`a=b`), "Accept", "text/html")
	if r.status != http.StatusNotFound || r.testid(t, "contact-error").Length() != 1 {
		t.Errorf("unknown form, plain: %d", r.status)
	}
	wantAnswer(t, a.postJSON(t, off, validPost("")), http.StatusForbidden, "form_disabled")
	r = a.visit(t, http.MethodGet, "/f/"+off.Slug+"/token", "", nil)
	if r.status != http.StatusForbidden {
		t.Errorf("token of a disabled form: %d", r.status)
	}
}

func TestContactErrorURLRedirect(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) { f.ErrorURL = "https://site.example/error.html?lang=en"; f.MaxFieldBytes = 10 })
	r := a.postForm(t, f, url.Values{"message": {strings.Repeat("x", 11)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "https://site.example/error.html?error=field_too_large&lang=en" {
		t.Fatalf("error redirect: %d %q", r.status, r.header.Get("Location"))
	}
	// A script asking for JSON gets JSON, not the redirect.
	wantAnswer(t, a.postJSON(t, f, map[string]any{"message": strings.Repeat("x", 11)}), http.StatusRequestEntityTooLarge, "field_too_large")
}

func TestContactAnswerFollowsTheRequest(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	// url-encoded with Accept: application/json: JSON.
	r := a.postForm(t, f, url.Values{"_token": {a.token(t, f)}, "message": {"a"}}, "Accept", "application/json")
	wantAnswer(t, r, http.StatusOK, "")
	// multipart from a browser: redirect.
	r = a.postMultipart(t, f, url.Values{"_token": {a.token(t, f)}, "message": {"b"}}, nil, "Accept", "text/html,*/*")
	if r.status != http.StatusSeeOther {
		t.Errorf("multipart from a browser: %d", r.status)
	}
	// url-encoded from a browser, with a token (a page that fetched one
	// itself): redirect.
	r = a.postForm(t, f, url.Values{"_token": {a.token(t, f)}, "message": {"c"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/f/"+f.Slug+"/thanks") {
		t.Errorf("plain with token: %d %q", r.status, r.header.Get("Location"))
	}
	if n := len(a.outbox(t, f)); n != 3 {
		t.Errorf("%d queued, want 3", n)
	}
}

func TestContactOrigins(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	open := a.addForm(t, func(f *store.Form) { f.AllowedOrigins = nil })

	preflight := func(f *store.Form, path, origin, method string) *response {
		return a.visit(t, http.MethodOptions, path, "", nil, "Origin", origin,
			"Access-Control-Request-Method", method, "Access-Control-Request-Headers", "content-type")
	}
	r := preflight(f, "/f/"+f.Slug, "https://site.example", "POST")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://site.example" ||
		r.header.Get("Access-Control-Allow-Methods") != "POST" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("allowed preflight: %d %v", r.status, r.header)
	}
	r = preflight(f, "/f/"+f.Slug+"/token", "https://site.example", "GET")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("token preflight: %d %v", r.status, r.header)
	}
	for _, c := range []struct {
		form           *store.Form
		origin, method string
	}{
		{f, "https://evil.example", "POST"},
		{f, "https://site.example.evil.example", "POST"},
		{f, "http://site.example", "POST"},
		{f, "null", "POST"},
		{f, "https://site.example", "PUT"},
		{open, "https://site.example", "POST"}, // no listed origins: no CORS at all
	} {
		r := preflight(c.form, "/f/"+c.form.Slug, c.origin, c.method)
		if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight %s %s: %d %v", c.origin, c.method, r.status, r.header)
		}
	}

	// A post from another site is refused, without CORS headers.
	r = a.postJSON(t, f, validPost(a.token(t, f)), "Origin", "https://evil.example")
	wantAnswer(t, r, http.StatusForbidden, "origin_refused")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header for a refused origin")
	}
	r = a.visit(t, http.MethodGet, "/f/"+f.Slug+"/token", "", nil, "Origin", "https://evil.example")
	if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" || strings.Contains(r.body, `"token"`) {
		t.Errorf("token for another site: %d %v %s", r.status, r.header, r.body)
	}
	// A form listing no origins takes plain posts from anywhere but
	// never answers scripts of other sites.
	r = a.postJSON(t, open, validPost(a.token(t, open)), "Origin", "https://anywhere.example")
	wantAnswer(t, r, http.StatusOK, "")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header on a form without origins")
	}
	if !strings.Contains(r.header.Get("Vary"), "Origin") {
		t.Errorf("Vary %q", r.header.Get("Vary"))
	}
	if n := len(a.submissions(t, f)); n != 0 {
		t.Errorf("%d submissions from a refused origin", n)
	}
}
