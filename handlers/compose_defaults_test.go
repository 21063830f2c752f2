package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestComposeDefaultsForgottenAtSignOut: the compose form is remembered
// between sends (server, recipients) but never the SMTP user or the
// password, for no longer than a sign-in lasts, and sign-out clears it.
func TestComposeDefaultsForgottenAtSignOut(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	form.Set("cc", "remembered@example.test")
	form.Set("username", "smtp-user@example.test")
	r := c.postMultipart("/compose", form)
	if r.status != http.StatusSeeOther {
		t.Fatalf("compose: %d\n%s", r.status, r.body)
	}
	var saved *http.Cookie
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == "sockmail_compose" {
			saved = ck
		}
	}
	if saved == nil || saved.MaxAge <= 0 || saved.MaxAge > 12*3600 {
		t.Fatalf("compose defaults cookie %+v: want one that lasts at most the 12 h of a sign-in", saved)
	}
	c.waitDone(r.header.Get("Location"))

	page := c.get("/compose")
	if v, _ := page.testid(t, "input-cc").Attr("value"); v != "remembered@example.test" {
		t.Errorf("cc not remembered: %q", v)
	}
	if strings.Contains(page.body, "smtp-user@example.test") {
		t.Error("the SMTP user was remembered")
	}

	out := c.post("/signout", url.Values{"_csrf": {c.csrf("/compose")}})
	cleared := false
	for _, ck := range (&http.Response{Header: out.header}).Cookies() {
		if ck.Name == "sockmail_compose" && ck.MaxAge < 0 {
			cleared = true
		}
	}
	if out.status != http.StatusSeeOther || !cleared {
		t.Errorf("sign-out: %d, compose defaults cleared %v", out.status, cleared)
	}
	if r := c.signIn(adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", r.status)
	}
	if v, _ := c.get("/compose").testid(t, "input-cc").Attr("value"); v != "" {
		t.Errorf("cc remembered across sign-out: %q", v)
	}
}
