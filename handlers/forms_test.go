package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/store"
)

// newFormValues is a valid admin form for a new contact form.
func newFormValues(tok string) url.Values {
	return url.Values{
		"_csrf": {tok}, "name": {"Homepage"}, "slug": {"homepage-contact"}, "enabled": {"on"},
		"fields": {"name, email, message"}, "subject_template": {"Contact from {{name}}"},
		"recipients": {"owner@example.test\nboss@example.test"}, "profile": {"0"},
		"from_addr": {"web@example.test"}, "from_name": {"Homepage"},
		"allowed_origins": {"https://WWW.Example.org:443/\nhttp://localhost:8080"},
		"success_url":     {"https://www.example.org/thanks"}, "error_url": {""},
		"max_field_kib": {"16"}, "rate_per_addr": {"5"}, "rate_per_form": {"100"},
		"allow_uploads": {"on"}, "max_upload_kib": {"512"},
		"captcha_provider": {"turnstile"}, "captcha_secret": {"0x4AAAA-very-secret"},
		"captcha_site_key": {"0x4AAAAAAA_public-key"},
	}
}

func TestFormsAdminCreateEditDelete(t *testing.T) {
	a := newContactApp(t, contactOptions{baseURL: "https://forms.example.net"})
	c := a.client()
	c.signUp()
	r := c.get("/forms")
	if r.status != http.StatusOK || r.testid(t, "no-forms").Length() != 1 {
		t.Fatalf("empty list: %d", r.status)
	}
	r = c.get("/forms/new")
	if r.status != http.StatusOK {
		t.Fatalf("new form page: %d", r.status)
	}
	if slug, _ := r.testid(t, "input-slug").Attr("value"); len(slug) != 24 {
		t.Errorf("suggested slug %q is not a random one", slug)
	}
	tok := c.csrf("/forms/new")
	formsRefuseBadValues(t, c, tok)
	loc, f := formsCreate(t, a, c, tok)
	formsCheckPage(t, c, loc)
	formsEdit(t, a, c, loc, f)
	formsRefuseDuplicates(t, c, tok)
	formsDelete(t, a, c, loc, f.ID, tok)
}

// formsRefuseBadValues: validation shows every problem inline.
func formsRefuseBadValues(t *testing.T, c *client, tok string) {

	bad := newFormValues(tok)
	bad.Set("recipients", "owner@example.test\nnot an address")
	bad.Set("from_addr", "Web <web@example.test>")
	bad.Set("allowed_origins", "https://www.example.org/contact")
	bad.Set("slug", "Bad Slug")
	bad.Set("fields", "name, _token")
	bad.Set("subject_template", "a\r\nBcc: x@y.test")
	bad.Set("max_upload_kib", "999999")
	bad.Set("rate_per_addr", "-1")
	bad.Set("success_url", "javascript:alert(1)")
	bad.Set("captcha_provider", "recaptcha")
	bad.Set("captcha_site_key", `key" onload="alert(1)`)
	r := c.post("/forms", bad)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %d", r.status)
	}
	for _, f := range []string{"recipients", "from_addr", "allowed_origins", "slug", "fields", "subject_template", "max_upload_kib", "rate_per_addr", "success_url", "captcha_provider", "captcha_site_key"} {
		if r.testid(t, "error-"+f).Length() != 1 {
			t.Errorf("no error shown for %s", f)
		}
	}
	if strings.Contains(r.body, "0x4AAAA-very-secret") {
		t.Error("the typed captcha secret is sent back")
	}

}

// formsCreate creates the form of newFormValues and checks what is stored.
func formsCreate(t *testing.T, a *contactApp, c *client, tok string) (string, *store.Form) {
	r := c.post("/forms", newFormValues(tok))
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	id, err := strconv.ParseInt(strings.TrimPrefix(loc, "/forms/"), 10, 64)
	if err != nil {
		t.Fatalf("redirect %q", loc)
	}
	f, err := a.store.Form(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if f.Slug != "homepage-contact" || strings.Join(f.Recipients, ",") != "owner@example.test,boss@example.test" ||
		strings.Join(f.AllowedOrigins, ",") != "https://www.example.org,http://localhost:8080" ||
		f.MaxFieldBytes != 16<<10 || f.MaxUploadBytes != 512<<10 || !f.AllowUploads || f.RatePerAddr != 5 || f.RatePerForm != 100 ||
		f.CaptchaProvider != "turnstile" || f.CaptchaSiteKey != "0x4AAAAAAA_public-key" || !f.Enabled || strings.Join(f.Fields, ",") != "name,email,message" {
		t.Errorf("stored form %+v", f)
	}
	// The captcha secret is sealed, not stored in clear.
	if bytes.Contains(f.CaptchaSecretEnc, []byte("very-secret")) {
		t.Error("captcha secret stored in clear")
	}
	if plain, err := a.box.Open(f.CaptchaSecretEnc); err != nil || string(plain) != "0x4AAAA-very-secret" {
		t.Errorf("sealed secret: %q %v", plain, err)
	}

	return loc, f
}

// formsCheckPage: the form's page shows its public address and both
// snippets, never the secret.
func formsCheckPage(t *testing.T, c *client, loc string) {
	page := c.get(loc)
	if page.status != http.StatusOK {
		t.Fatalf("form page: %d", page.status)
	}
	endpoint := "https://forms.example.net/f/homepage-contact"
	if got := page.testid(t, "form-endpoint").Text(); got != endpoint {
		t.Errorf("endpoint %q", got)
	}
	plain, fetch := page.testid(t, "snippet-plain").Text(), page.testid(t, "snippet-fetch").Text()
	for _, want := range []string{`<form action="` + endpoint + `" method="post" enctype="multipart/form-data"`, `name="_gotcha"`,
		`<textarea name="message"`, `type="email" name="email"`, `type="file" name="files"`,
		`<div class="cf-turnstile" data-sitekey="0x4AAAAAAA_public-key"></div>`} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain snippet lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "<script>") && !strings.Contains(plain, "turnstile/v0/api.js") {
		t.Errorf("plain snippet has a script:\n%s", plain)
	}
	for _, want := range []string{`fetch(form.action + "/token"`, `Accept: "application/json"`, `data.set("_token", token)`, `name="_gotcha"`,
		`data-sitekey="0x4AAAAAAA_public-key"`, "turnstile/v0/api.js"} {
		if !strings.Contains(fetch, want) {
			t.Errorf("fetch snippet lacks %q:\n%s", want, fetch)
		}
	}
	if strings.Contains(page.body, "very-secret") {
		t.Error("the form page shows the captcha secret")
	}
	if got := page.testid(t, "captcha-site-key").Text(); got != "0x4AAAAAAA_public-key" {
		t.Errorf("site key shown as %q", got)
	}

}

// formsEdit: an empty secret keeps the stored one; the page never holds
// it; a captcha needs its site key and secret.
func formsEdit(t *testing.T, a *contactApp, c *client, loc string, f *store.Form) {
	id := f.ID
	// Edit: an empty secret keeps the stored one; the page never holds it.
	edit := c.get(loc + "/edit")
	if edit.status != http.StatusOK || strings.Contains(edit.body, "very-secret") {
		t.Fatalf("edit page: %d", edit.status)
	}
	if v, _ := edit.testid(t, "input-captcha_secret").Attr("value"); v != "" {
		t.Errorf("secret input value %q", v)
	}
	if v, _ := edit.testid(t, "input-captcha_site_key").Attr("value"); v != "0x4AAAAAAA_public-key" {
		t.Errorf("site key input value %q", v)
	}
	vals := newFormValues(c.csrf(loc + "/edit"))
	vals.Set("captcha_secret", "")
	vals.Set("name", "Homepage (new)")
	vals.Del("enabled")
	r := c.post(loc, vals)
	if r.status != http.StatusSeeOther {
		t.Fatalf("update: %d\n%s", r.status, r.body)
	}
	g, _ := a.store.Form(context.Background(), id)
	if g.Name != "Homepage (new)" || g.Enabled || !bytes.Equal(g.CaptchaSecretEnc, f.CaptchaSecretEnc) {
		t.Errorf("updated form %+v", g)
	}
	// A captcha without its site key is refused: the snippet needs it.
	noKey := newFormValues(c.csrf(loc + "/edit"))
	noKey.Set("captcha_site_key", " ")
	if r := c.post(loc, noKey); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.testid(t, "error-captcha_site_key").Text(), "Enter the site key") {
		t.Errorf("captcha without a site key: %d", r.status)
	}
	// Removing the secret with a captcha still chosen is refused.
	vals.Set("clear_secret", "on")
	if r := c.post(loc, vals); r.status != http.StatusUnprocessableEntity || r.testid(t, "error-captcha_secret").Length() != 1 {
		t.Errorf("clear secret with captcha: %d", r.status)
	}
	vals.Set("captcha_provider", "")
	if r := c.post(loc, vals); r.status != http.StatusSeeOther {
		t.Errorf("no captcha: %d", r.status)
	}
	if g, _ := a.store.Form(context.Background(), id); g.CaptchaSecretEnc != nil || g.CaptchaProvider != "" || g.CaptchaSiteKey != "" {
		t.Errorf("secret or site key kept without captcha: %+v", g)
	}
	if page := c.get(loc); strings.Contains(page.testid(t, "snippet-plain").Text(), "captcha") {
		t.Errorf("snippet of a form without captcha:\n%s", page.testid(t, "snippet-plain").Text())
	}

}

// formsRefuseDuplicates: a second form may not take the same slug, nor a
// profile that does not exist.
func formsRefuseDuplicates(t *testing.T, c *client, tok string) {
	// A second form may not take the same slug.
	r := c.post("/forms", newFormValues(tok))
	if r.status != http.StatusUnprocessableEntity || r.testid(t, "error-slug").Length() != 1 {
		t.Errorf("duplicate slug: %d", r.status)
	}
	// A profile that does not exist is refused.
	vals := newFormValues(tok)
	vals.Set("slug", "other-form")
	vals.Set("profile", "999")
	if r := c.post("/forms", vals); r.status != http.StatusUnprocessableEntity || r.testid(t, "error-profile").Length() != 1 {
		t.Errorf("missing profile: %d", r.status)
	}

}

// formsDelete lists the one form and deletes it.
func formsDelete(t *testing.T, a *contactApp, c *client, loc string, id int64, tok string) {
	list := c.get("/forms")
	if list.testid(t, "form-row").Length() != 1 {
		t.Errorf("list has %d rows", list.testid(t, "form-row").Length())
	}
	r := c.post(loc+"/delete", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/forms" {
		t.Fatalf("delete: %d", r.status)
	}
	if _, err := a.store.Form(context.Background(), id); err == nil {
		t.Error("form still there")
	}
	if r := c.get(loc); r.status != http.StatusNotFound {
		t.Errorf("deleted form page: %d", r.status)
	}
}

func TestFormsAdminNeedsSignInAndCSRFPublicEndpointDoesNot(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	admin := a.client()
	admin.signUp()
	stranger := a.client()

	for _, path := range []string{"/forms", "/forms/new", "/forms/" + strconv.FormatInt(f.ID, 10), "/outbox",
		"/forms/" + strconv.FormatInt(f.ID, 10) + "/submissions", "/submissions/1"} {
		if r := stranger.get(path); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
			t.Errorf("GET %s signed out: %d %q", path, r.status, r.header.Get("Location"))
		}
	}
	// Signed-out POSTs fail on the CSRF token before anything else.
	posts := []string{"/forms", "/forms/" + strconv.FormatInt(f.ID, 10), "/forms/" + strconv.FormatInt(f.ID, 10) + "/delete",
		"/outbox/1/retry", "/outbox/1/cancel", "/submissions/1/release"}
	for _, path := range posts {
		if r := stranger.post(path, newFormValues("")); r.status != http.StatusForbidden {
			t.Errorf("POST %s signed out: %d", path, r.status)
		}
	}
	// Signed in, a POST without the token, with a wrong one, or from
	// another site is refused.
	tok := admin.csrf("/forms")
	for _, path := range posts {
		if r := admin.post(path, newFormValues("")); r.status != http.StatusForbidden {
			t.Errorf("POST %s without token: %d", path, r.status)
		}
		if r := admin.post(path, newFormValues("wrong")); r.status != http.StatusForbidden {
			t.Errorf("POST %s with a wrong token: %d", path, r.status)
		}
		if r := admin.post(path, newFormValues(tok), "Sec-Fetch-Site", "cross-site"); r.status != http.StatusForbidden {
			t.Errorf("POST %s cross-site: %d", path, r.status)
		}
	}
	// Paths that merely look like the public one reach no handler: the
	// public group has only its own routes (404), the others check the
	// token (403).
	for _, path := range []string{"/f/" + f.Slug + "/../../forms", "/f/../forms", "/f/" + f.Slug + "/token/x", "/f//forms", "/f/" + f.Slug + "/", "/forms/../f/" + f.Slug} {
		if r := admin.post(path, newFormValues("")); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
			t.Errorf("POST %s without token: %d, want 403 or 404", path, r.status)
		}
	}
	if n, _ := a.store.Forms(context.Background()); len(n) != 1 {
		t.Errorf("%d forms after refused posts", len(n))
	}
	// With the token it works.
	if r := admin.post("/forms", newFormValues(tok)); r.status != http.StatusSeeOther {
		t.Errorf("POST /forms with token: %d", r.status)
	}

	// The public endpoint takes a cross-site post with no cookie and no
	// CSRF token, and sets no cookie.
	r := a.postJSON(t, f, validPost(a.token(t, f)), "Sec-Fetch-Site", "cross-site")
	wantAnswer(t, r, http.StatusOK, "")
	// Even an admin's browser posting with its cookies gets no session
	// treatment there: no cookie is read or written.
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/f/"+f.Slug, strings.NewReader(url.Values{"message": {"hi"}, "_token": {a.token(t, f)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp := admin.do(req)
	if resp.status != http.StatusSeeOther || len(resp.header.Values("Set-Cookie")) != 0 {
		t.Errorf("public post with admin cookies: %d %v", resp.status, resp.header.Values("Set-Cookie"))
	}
}

func TestOutboxPageRetryCancel(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	for i := 0; i < 3; i++ {
		wantAnswer(t, a.postJSON(t, f, validPost(a.token(t, f))), http.StatusOK, "")
	}
	p := validPost(a.token(t, f))
	p["_gotcha"] = "x"
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")

	c := a.client()
	c.signUp()
	r := c.get("/outbox")
	if r.status != http.StatusOK {
		t.Fatalf("outbox: %d", r.status)
	}
	if got := r.testid(t, "count-queued").Text(); got != "3" {
		t.Errorf("queued count %q", got)
	}
	if got := r.testid(t, "count-held").Text(); got != "1" {
		t.Errorf("held count %q", got)
	}
	if got := r.testid(t, "count-all").Text(); got != "4" {
		t.Errorf("all count %q", got)
	}
	if n := r.testid(t, "outbox-row").Length(); n != 4 {
		t.Fatalf("%d rows", n)
	}
	if n := r.testid(t, "outbox-cancel").Length(); n != 4 {
		t.Errorf("%d cancel buttons, want 4", n)
	}
	items := a.outbox(t, f)
	id := strconv.FormatInt(items[1].ID, 10)
	tok := c.csrf("/outbox")
	r = c.post("/outbox/"+id+"/cancel", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/outbox" {
		t.Fatalf("cancel: %d %q", r.status, r.header.Get("Location"))
	}
	it, _ := a.store.OutboxItem(context.Background(), items[1].ID)
	if it.Status != store.OutboxCancelled {
		t.Fatalf("cancelled item is %s", it.Status)
	}
	page := c.get("/outbox?status=cancelled")
	if page.testid(t, "outbox-row").Length() != 1 || page.testid(t, "outbox-retry").Length() != 1 {
		t.Errorf("cancelled filter: %d rows", page.testid(t, "outbox-row").Length())
	}
	if !strings.Contains(page.testid(t, "flash").Text(), "cancelled") {
		t.Errorf("flash %q", page.testid(t, "flash").Text())
	}
	r = c.post("/outbox/"+id+"/retry", url.Values{"_csrf": {tok}, "back": {"/outbox?status=cancelled"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/outbox?status=cancelled" {
		t.Fatalf("retry: %d %q", r.status, r.header.Get("Location"))
	}
	if it, _ := a.store.OutboxItem(context.Background(), items[1].ID); it.Status != store.OutboxQueued {
		t.Fatalf("retried item is %s", it.Status)
	}
	// Retrying a queued item is refused with an explanation.
	r = c.post("/outbox/"+id+"/retry", url.Values{"_csrf": {tok}, "back": {"https://evil.example/"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/outbox" {
		t.Fatalf("retry queued: %d %q", r.status, r.header.Get("Location"))
	}
	if f := c.get("/outbox").testid(t, "flash").Text(); !strings.Contains(f, "cannot be retried") {
		t.Errorf("flash %q", f)
	}
	if r := c.post("/outbox/99999/retry", url.Values{"_csrf": {tok}}); r.status != http.StatusNotFound {
		t.Errorf("retry missing: %d", r.status)
	}

	checkSubmissionsPages(t, c, f)
}

// checkSubmissionsPages: the form's submissions, filtered and all.
func checkSubmissionsPages(t *testing.T, c *client, f *store.Form) {
	t.Helper()
	subs := c.get("/forms/" + strconv.FormatInt(f.ID, 10) + "/submissions?status=blocked")
	if subs.status != http.StatusOK || subs.testid(t, "submission-row").Length() != 1 || subs.testid(t, "release").Length() != 1 {
		t.Errorf("blocked submissions: %d %d", subs.status, subs.testid(t, "submission-row").Length())
	}
	all := c.get("/forms/" + strconv.FormatInt(f.ID, 10) + "/submissions")
	if all.testid(t, "submission-row").Length() != 4 {
		t.Errorf("all submissions: %d", all.testid(t, "submission-row").Length())
	}
	if !strings.Contains(all.body, "Hello, I would like to know more.") {
		t.Errorf("preview missing")
	}
}

func TestContactFormValuesEscapedInAdminPages(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) { f.Name = `<script>alert("form")</script>` })
	p := validPost(a.token(t, f))
	p["message"] = `<img src=x onerror=alert(1)>`
	p[`<b>field</b>`] = `<script>alert(2)</script>`
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	c := a.client()
	c.signUp()
	sub := a.submissions(t, f)[0]
	for _, path := range []string{"/forms", "/forms/" + strconv.FormatInt(f.ID, 10), "/forms/" + strconv.FormatInt(f.ID, 10) + "/submissions",
		"/submissions/" + strconv.FormatInt(sub.ID, 10), "/outbox"} {
		r := c.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.status)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<b>field"} {
			if strings.Contains(r.body, raw) {
				t.Errorf("%s holds %q unescaped", path, raw)
			}
		}
	}
}
