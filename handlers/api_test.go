package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/api"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// addToken stores a token with the scopes (and expiry, if not nil) and
// returns it.
func addToken(t *testing.T, st interface {
	CreateAPIToken(context.Context, *store.APIToken) error
}, name string, scopes []string, expires *time.Time) (string, *store.APIToken) {
	t.Helper()
	raw, hash, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tok := &store.APIToken{Name: name, Hash: hash, Scopes: scopes, ExpiresAt: expires, CreatedBy: "test"}
	if err := st.CreateAPIToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return raw, tok
}

// apiGet makes a GET to the API with the token (none if "").
func (c *client) apiGet(token, path string) *response {
	c.a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.a.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.do(req)
}

// wantProblem fails unless r is an RFC 9457 problem of the status whose
// type ends in kind and whose detail holds detail.
func wantProblem(t *testing.T, what string, r *response, status int, kind, detail string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != api.ContentTypeProblem {
		t.Errorf("%s: Content-Type %q, want %s", what, ct, api.ContentTypeProblem)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, cc)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("%s: body is not JSON: %v: %s", what, err, r.body)
	}
	if p["type"] != api.ProblemType+kind || p["status"] != float64(status) || p["title"] == "" ||
		!strings.Contains(fmt.Sprint(p["detail"]), detail) || !strings.HasPrefix(fmt.Sprint(p["instance"]), "/api/v1/") {
		t.Errorf("%s: problem %v, want type %s, status %d, detail with %q and the path as instance", what, p, kind, status, detail)
	}
}

// TestAPIAuth, on both backends: only a Bearer token that is known, not
// revoked and not expired is admitted, and only to routes of its scopes
// (admin holds all); a signed-in session cookie alone is refused; every
// refusal is a problem details object; a use is recorded as last use.
func TestAPIAuth(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		s := a.seedSend(store.Send{Subject: "api auth"})
		path := "/api/v1/sends/" + strconv.FormatInt(s.ID, 10)
		read, readTok := addToken(t, a.store, "read", []string{api.ScopeRead}, nil)
		admin, _ := addToken(t, a.store, "admin", []string{api.ScopeAdmin}, nil)
		sendOnly, _ := addToken(t, a.store, "send", []string{api.ScopeSend, api.ScopeCaptured}, nil)
		past := time.Now().Add(-time.Minute)
		expired, _ := addToken(t, a.store, "expired", []string{api.ScopeRead}, &past)
		revoked, revokedTok := addToken(t, a.store, "revoked", []string{api.ScopeRead}, nil)
		if err := a.store.RevokeAPIToken(context.Background(), revokedTok.ID, time.Now()); err != nil {
			t.Fatal(err)
		}

		c := a.client()
		c.signUp() // the client now holds a signed-in session cookie
		if r := c.get("/history"); r.status != http.StatusOK {
			t.Fatalf("the session does not work on the pages: %d", r.status)
		}
		tests := []struct {
			name, token  string
			status       int
			kind, detail string
		}{
			{"cookie only", "", http.StatusUnauthorized, "unauthorized", "cookies are not accepted"},
			{"unknown token", api.TokenPrefix + "nope", http.StatusUnauthorized, "unauthorized", "not known"},
			{"expired", expired, http.StatusUnauthorized, "unauthorized", "expired"},
			{"revoked", revoked, http.StatusUnauthorized, "unauthorized", "revoked"},
			{"wrong scope", sendOnly, http.StatusForbidden, "forbidden", `"read" scope`},
			{"read", read, http.StatusOK, "", ""},
			{"admin", admin, http.StatusOK, "", ""},
		}
		for _, tc := range tests {
			r := c.apiGet(tc.token, path)
			if tc.status != http.StatusOK {
				wantProblem(t, tc.name, r, tc.status, tc.kind, tc.detail)
				if tc.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q", tc.name, r.header.Get("WWW-Authenticate"))
				}
				continue
			}
			var got struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			}
			if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.ID != s.ID || got.Status != string(smtp.StatusSent) {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q", tc.name, cc)
			}
		}
		// An unknown path is a 404 problem, not a scope's 403.
		wantProblem(t, "unknown path", c.apiGet(read, "/api/v1/nope"), http.StatusNotFound, "not-found", "")
		wantProblem(t, "unknown path under a send", c.apiGet(read, path+"/nope"), http.StatusNotFound, "not-found", "")
		// A malformed header is refused like none.
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+path, nil)
		req.Header.Set("Authorization", "Basic "+read)
		wantProblem(t, "basic auth", c.do(req), http.StatusUnauthorized, "unauthorized", "Bearer")
		got, err := a.store.APITokenByHash(context.Background(), readTok.Hash)
		if err != nil || got.LastUsedAt == nil {
			t.Errorf("last use of the read token not recorded: %+v, %v", got, err)
		}
	})
}

// TestAPISendReads: a send as JSON, its transcript as JSON and text, its
// message, its event stream once it has ended; an unknown send and a bad
// format are problems.
func TestAPISendReads(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	s := a.seedSend(store.Send{Subject: "api reads", QueueID: "4XyzQ1"})
	tok, _ := addToken(t, a.store, "ci", []string{api.ScopeRead}, nil)
	c := a.client()
	base := "/api/v1/sends/" + strconv.FormatInt(s.ID, 10)
	tests := []struct {
		path, ctype, want string
	}{
		{base, "application/json", `queued as 4XyzQ1"`},
		{base + "/transcript", "application/json", `"mail_from"`},
		{base + "/transcript?format=json", "application/json", `"mail_from"`},
		{base + "/transcript?format=text", "text/plain", "RCPT TO:<rcpt@example.test>"},
		{base + "/message.eml", "message/rfc822", "Subject: api reads"},
		{base + "/events", "text/event-stream", "event: done"},
	}
	for _, tc := range tests {
		r := c.apiGet(tok, tc.path)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET %s: %d %q, want %s with %q; body %.300s", tc.path, r.status, r.header.Get("Content-Type"), tc.ctype, tc.want, r.body)
		}
	}
	wantProblem(t, "unknown send", c.apiGet(tok, "/api/v1/sends/999999"), http.StatusNotFound, "not-found", "no such send")
	wantProblem(t, "bad id", c.apiGet(tok, "/api/v1/sends/x"), http.StatusNotFound, "not-found", "no such send")
	wantProblem(t, "bad format", c.apiGet(tok, base+"/transcript?format=xml"), http.StatusBadRequest, "bad-request", `"json" or "text"`)
}

// TestAPIListSendsMatchesHistoryPage, on both backends: the API's list,
// page by page through its next links, holds the /history page's rows in
// the same order, with and without a filter; a bad filter is a 422
// problem naming the field.
func TestAPIListSendsMatchesHistoryPage(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		base := time.Now().Add(-48 * time.Hour)
		for i := range 70 {
			src := "web"
			if i%3 == 0 {
				src = "cli"
			}
			a.seedSend(store.Send{CreatedAt: base.Add(time.Duration(i) * time.Minute), Source: src, Subject: fmt.Sprintf("list %d", i),
				Events: []smtp.Event{ev(0, smtp.DirInfo, smtp.PhaseConnect, "x")}})
		}
		tok, _ := addToken(t, a.store, "ci", []string{api.ScopeRead}, nil)
		c := a.client()
		c.signUp()
		pageIDs := func(start string) []int64 {
			var ids []int64
			for next := start; next != ""; {
				r := c.get(next)
				ids = append(ids, rowIDs(t, r)...)
				next, _ = r.testid(t, "next-page").Attr("href")
			}
			return ids
		}
		apiIDs := func(start string) (ids []int64, total int) {
			for next := start; next != ""; {
				r := c.apiGet(tok, next)
				var l struct {
					Sends []struct {
						ID      int64  `json:"id"`
						Subject string `json:"subject"`
						URL     string `json:"url"`
					} `json:"sends"`
					Total int    `json:"total"`
					Next  string `json:"next"`
				}
				if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &l) != nil {
					t.Fatalf("GET %s: %d %s", next, r.status, r.body)
				}
				for _, s := range l.Sends {
					if s.URL != "/api/v1/sends/"+strconv.FormatInt(s.ID, 10) || !strings.HasPrefix(s.Subject, "list ") {
						t.Errorf("row %+v", s)
					}
					ids = append(ids, s.ID)
				}
				next, total = l.Next, l.Total
			}
			return ids, total
		}
		for _, q := range []string{"", "?source=cli", "?q=list+1"} {
			want := pageIDs("/history" + q)
			got, total := apiIDs("/api/v1/sends" + q)
			if len(want) == 0 || !slices.Equal(got, want) || total != len(want) {
				t.Errorf("filter %q: API %v (total %d), page %v", q, got, total, want)
			}
		}
		wantProblem(t, "bad status", c.apiGet(tok, "/api/v1/sends?status=lost"), http.StatusUnprocessableEntity, "invalid-filter", "status:")
		wantProblem(t, "bad date", c.apiGet(tok, "/api/v1/sends?since=yesterday"), http.StatusUnprocessableEntity, "invalid-filter", "since:")
	})
}

// TestAPIRateLimit: with the clock held still a token gets its burst and
// then 429 problems with Retry-After, while another token is served;
// moving the clock on refills the bucket. No sleeps.
func TestAPIRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newApp(t, appOptions{now: clock})
	one, _ := addToken(t, a.store, "one", []string{api.ScopeRead}, nil)
	two, _ := addToken(t, a.store, "two", []string{api.ScopeRead}, nil)
	c := a.client()
	const burst = 20
	for i := range burst {
		if r := c.apiGet(one, "/api/v1/sends"); r.status != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := c.apiGet(one, "/api/v1/sends")
	wantProblem(t, "over the limit", r, http.StatusTooManyRequests, "rate-limited", "try again")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	if r := c.apiGet(two, "/api/v1/sends"); r.status != http.StatusOK {
		t.Errorf("another token limited too: %d", r.status)
	}
	mu.Lock()
	now = now.Add(100 * time.Millisecond) // one request at 10 a second
	mu.Unlock()
	if r := c.apiGet(one, "/api/v1/sends"); r.status != http.StatusOK {
		t.Errorf("after the refill: %d %s", r.status, r.body)
	}
	wantProblem(t, "again over", c.apiGet(one, "/api/v1/sends"), http.StatusTooManyRequests, "rate-limited", "")
}
