package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// TestStorageFull: with the data folder on a disk that fills up,
// /healthz answers 503 with the reason while writes fail and 200 after;
// an admin saving a profile or composing a message meanwhile gets the
// form again, with what they typed and a message that says the database
// cannot take writes because the disk is full (not a generic 500).
func TestStorageFull(t *testing.T) {
	disk := testenv.NewSmallDisk(t, 8<<20)
	a := newApp(t, appOptions{dir: disk.Dir})
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	a.store.SetWriteHealthClock(func() time.Time { return time.Unix(0, now.Load()) }, 10*time.Second)
	c := a.client()
	c.signUp()

	health := func() *response { return a.client().get("/healthz") }
	if r := health(); r.status != http.StatusOK || r.body != "ok\n" {
		t.Fatalf("healthz before: %d %q", r.status, r.body)
	}

	profileTok, composeTok := c.csrf("/profiles/new"), c.csrf("/compose")
	disk.Fill(t)
	const want = "The database cannot take writes right now: disk full."
	tests := []struct {
		name, path string
		form       url.Values
		typed      map[string]string // input name -> the value typed, shown again
	}{
		{"profile", "/profiles", profileValues(profileTok, "typed while full", "smtp.example.test:587", "user@example.test", "secret"),
			map[string]string{"name": "typed while full", "host": "smtp.example.test", "username": "user@example.test"}},
		{"compose", "/compose", composeForm(composeTok), map[string]string{"subject": "hello from the test", "to": "rcpt@example.test"}},
	}
	for _, tt := range tests {
		r := c.post(tt.path, tt.form)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s on a full disk: %d, Retry-After %q:\n%s", tt.name, r.status, r.header.Get("Retry-After"), r.body)
			continue
		}
		if msg := r.testid(t, "form-error").Text(); !strings.HasPrefix(msg, want) {
			t.Errorf("%s on a full disk: form error %q, want %q...", tt.name, msg, want)
		}
		doc := r.doc(t)
		for name, v := range tt.typed {
			sel := doc.Find(`[name="` + name + `"]`)
			got, _ := sel.Attr("value")
			if sel.Is("textarea") {
				got = sel.Text()
			}
			if got != v {
				t.Errorf("%s on a full disk: %s shown again as %q, want %q", tt.name, name, got, v)
			}
		}
	}
	if r := health(); r.status != http.StatusServiceUnavailable || r.body != "database cannot take writes: disk full\n" {
		t.Errorf("healthz while the disk is full: %d %q", r.status, r.body)
	}

	// Sign-out and sign-in keep working: the old session is revoked and
	// the new one kept in memory (store.SignInFallback).
	stale := a.client()
	stale.jar.SetCookies(mustURL(a.srv.URL), c.jar.Cookies(mustURL(a.srv.URL)))
	if r := c.post("/signout", url.Values{"_csrf": {c.csrf("/compose")}}); r.status != http.StatusSeeOther {
		t.Fatalf("sign-out on a full disk: %d\n%s", r.status, r.body)
	}
	if r := stale.get("/compose"); r.status != http.StatusSeeOther {
		t.Errorf("a copy of the signed-out cookie on a full disk: %d, want a redirect to sign in", r.status)
	}
	if r := c.signIn(adminEmail, "wrong password"); r.status != http.StatusUnauthorized {
		t.Errorf("a wrong password on a full disk: %d, want 401", r.status)
	}
	if r := c.signIn(adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in on a full disk: %d\n%s", r.status, r.body)
	}
	if r := c.get("/compose"); r.status != http.StatusOK {
		t.Errorf("compose after signing in on a full disk: %d", r.status)
	}

	disk.Free(t)
	now.Add(int64(11 * time.Second)) // the failure is older than the window
	if r := health(); r.status != http.StatusOK {
		t.Errorf("healthz after space came back: %d %q", r.status, r.body)
	}
	if r := stale.get("/compose"); r.status != http.StatusSeeOther {
		t.Errorf("the signed-out cookie after space came back: %d, want a redirect to sign in", r.status)
	}
	r := c.post("/profiles", profileValues(c.csrf("/profiles/new"), "typed again", "smtp.example.test:587", "user@example.test", "secret"))
	if r.status != http.StatusSeeOther {
		t.Errorf("saving a profile after space came back: %d %s", r.status, r.body)
	}
}
