package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"sockmail/internal/api"
	"sockmail/internal/testenv"
)

// TestAPICaptured: with the captured scope a script lists the mail the
// real capture server received (with the page's search), reads a
// message's source and deletes it; other scopes get 403; a deleted or
// unknown message is a 404 problem; a search too long is a 422 problem.
func TestAPICaptured(t *testing.T) {
	a := newApp(t, appOptions{})
	tok, _ := addToken(t, a.store, "cap", []string{api.ScopeCaptured}, nil)
	read, _ := addToken(t, a.store, "read", []string{api.ScopeRead}, nil)
	c := a.client()
	unique := testenv.UniqueToken()
	captureRaw(t, a, "From: a@example.test\nTo: b@example.test\nSubject: cap "+unique+"\n\nbody "+unique+"\n")
	captureRaw(t, a, "From: a@example.test\nTo: b@example.test\nSubject: other\n\nother\n")

	r := c.apiGet(tok, "/api/v1/captured?q="+unique)
	var l struct {
		Messages []struct {
			ID      int64  `json:"id"`
			Subject string `json:"subject"`
			Raw     string `json:"raw_url"`
		} `json:"messages"`
		Total int `json:"total"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &l) != nil || len(l.Messages) != 1 || l.Total != 1 ||
		l.Messages[0].Subject != "cap "+unique {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	if r := c.apiGet(tok, "/api/v1/captured"); !strings.Contains(r.body, `"total": 2`) && !strings.Contains(r.body, `"total":2`) {
		t.Errorf("list all: %s", r.body)
	}
	raw := c.apiGet(tok, l.Messages[0].Raw)
	if raw.status != http.StatusOK || raw.header.Get("Content-Type") != "message/rfc822" || !strings.Contains(raw.body, "body "+unique) {
		t.Errorf("raw: %d %q %s", raw.status, raw.header.Get("Content-Type"), raw.body)
	}
	wantProblem(t, "read scope", c.apiGet(read, "/api/v1/captured"), http.StatusForbidden, "forbidden", `"captured" scope`)
	del := func(token string) *response {
		req, _ := http.NewRequest(http.MethodDelete, a.srv.URL+"/api/v1/captured/"+strings.TrimSuffix(strings.TrimPrefix(l.Messages[0].Raw, "/api/v1/captured/"), "/raw"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return c.do(req)
	}
	wantProblem(t, "delete with the read scope", del(read), http.StatusForbidden, "forbidden", "")
	if r := del(tok); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantProblem(t, "delete again", del(tok), http.StatusNotFound, "not-found", "no such message")
	wantProblem(t, "raw of the deleted", c.apiGet(tok, l.Messages[0].Raw), http.StatusNotFound, "not-found", "no such message")
	wantProblem(t, "long search", c.apiGet(tok, "/api/v1/captured?q="+strings.Repeat("x", 501)), http.StatusUnprocessableEntity, "invalid-search", "q:")
}
