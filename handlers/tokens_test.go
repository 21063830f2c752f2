package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/api"
)

// TestTokensPage, on both backends: an admin makes a token on /tokens;
// it is shown in that answer only, stored as its SHA-256 with the scopes
// and expiry chosen; it works on the API, its last use is listed; once
// revoked it is refused. Bad input is a 422 naming the field; only a
// signed-in admin sees the page.
func TestTokensPage(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		anon := a.client()
		if r := anon.get("/tokens"); r.status != http.StatusSeeOther {
			t.Fatalf("signed out: GET /tokens %d", r.status)
		}
		c := a.client()
		c.signUp()
		r := c.get("/tokens")
		if r.status != http.StatusOK || r.testid(t, "no-tokens").Length() != 1 {
			t.Fatalf("GET /tokens: %d", r.status)
		}
		form := url.Values{"_csrf": {c.csrf("/tokens")}, "name": {"ci"}, "scopes": {"read", "send"}, "expires": {"30"}}
		before := time.Now()
		r = c.post("/tokens", form)
		if r.status != http.StatusCreated {
			t.Fatalf("POST /tokens: %d\n%.500s", r.status, r.body)
		}
		tok := strings.TrimSpace(r.testid(t, "new-token").Text())
		if !strings.HasPrefix(tok, api.TokenPrefix) {
			t.Fatalf("token shown %q", tok)
		}
		stored, err := a.store.APITokenByHash(context.Background(), api.HashToken(tok))
		if err != nil {
			t.Fatalf("the shown token's hash is not stored: %v", err)
		}
		if stored.Name != "ci" || strings.Join(stored.Scopes, ",") != "send,read" || stored.ExpiresAt == nil ||
			stored.ExpiresAt.Before(before.Add(30*24*time.Hour-time.Second)) || stored.CreatedBy == "" {
			t.Errorf("stored %+v", stored)
		}
		if stored.Hash != api.HashToken(tok) || strings.Contains(stored.Hash+stored.Name+stored.CreatedBy+strings.Join(stored.Scopes, ""), tok[len(api.TokenPrefix):]) {
			t.Errorf("the token itself is stored: %+v", stored)
		}
		r = c.get("/tokens")
		if strings.Contains(r.body, tok) || r.testid(t, "new-token").Length() != 0 {
			t.Error("the token is shown again")
		}
		if r.testid(t, "token-last-used").Text() != "never" || r.testid(t, "token-state").Text() != "active" {
			t.Errorf("before use: last used %q, state %q", r.testid(t, "token-last-used").Text(), r.testid(t, "token-state").Text())
		}
		if r := c.apiGet(tok, "/api/v1/sends"); r.status != http.StatusOK {
			t.Fatalf("the new token on the API: %d %s", r.status, r.body)
		}
		r = c.get("/tokens")
		if r.testid(t, "token-last-used").Text() == "never" {
			t.Error("last use not shown")
		}

		tests := []struct {
			name  string
			form  url.Values
			field string
		}{
			{"no name", url.Values{"scopes": {"read"}}, "name"},
			{"long name", url.Values{"name": {strings.Repeat("x", 65)}, "scopes": {"read"}}, "name"},
			{"same name", url.Values{"name": {"ci"}, "scopes": {"read"}}, "name"},
			{"no scope", url.Values{"name": {"x"}}, "scopes"},
			{"unknown scope", url.Values{"name": {"x"}, "scopes": {"write"}}, "scopes"},
			{"bad expiry", url.Values{"name": {"x"}, "scopes": {"read"}, "expires": {"soon"}}, "expires"},
			{"zero expiry", url.Values{"name": {"x"}, "scopes": {"read"}, "expires": {"0"}}, "expires"},
		}
		for _, tc := range tests {
			tc.form.Set("_csrf", c.csrf("/tokens"))
			r := c.post("/tokens", tc.form)
			if r.status != http.StatusUnprocessableEntity || r.testid(t, "summary-"+tc.field).Length() != 1 || r.testid(t, "new-token").Length() != 0 {
				t.Errorf("%s: %d, want 422 naming %s", tc.name, r.status, tc.field)
			}
		}

		r = c.post("/tokens/"+strconv.FormatInt(stored.ID, 10)+"/revoke", url.Values{"_csrf": {c.csrf("/tokens")}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("revoke: %d", r.status)
		}
		if r := c.get("/tokens"); r.testid(t, "token-state").Text() != "revoked" || r.testid(t, "token-revoke").Length() != 0 {
			t.Errorf("after revoking: state %q", r.testid(t, "token-state").Text())
		}
		wantProblem(t, "revoked token", c.apiGet(tok, "/api/v1/sends"), http.StatusUnauthorized, "unauthorized", "revoked")
		if r := c.post("/tokens/999999/revoke", url.Values{"_csrf": {c.csrf("/tokens")}}); r.status != http.StatusNotFound {
			t.Errorf("revoking an unknown token: %d", r.status)
		}
		if r := c.post("/tokens", url.Values{"name": {"no-csrf"}, "scopes": {"read"}}); r.status != http.StatusForbidden {
			t.Errorf("without a CSRF token: %d", r.status)
		}
	})
}
