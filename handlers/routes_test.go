package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// routePath fills a route's parameters with values that exist or not:
// what matters here is the middleware in front of the handler.
func routePath(p string) string {
	r := strings.NewReplacer(":slug", "nosuchform", ":id", "1", ":n", "0", "*", "style.css")
	return r.Replace(p)
}

// TestRouteGroups walks every registered route and checks that its group's
// middleware applies: cookie routes refuse a POST without the CSRF token,
// public routes set no cookie and need no token, every page is no-store.
func TestRouteGroups(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	var posts, public, api int
	for _, rt := range a.h.Routes().Routes() {
		if rt.Method == "echo_route_not_found" || rt.Path == "/*" || strings.HasSuffix(rt.Path, "/*") && rt.Path != "/static/*" {
			continue
		}
		path := routePath(rt.Path)
		isPublic := strings.HasPrefix(rt.Path, "/f/") || rt.Path == "/healthz" || rt.Path == "/static/*" || rt.Path == "/favicon.ico"
		switch {
		case strings.HasPrefix(rt.Path, "/api/") && rt.Path != "/api/v1/openapi.json": // the description is public
			// Bearer tokens only: the signed-in browser's cookie opens
			// nothing here, and no CSRF token is asked for.
			api++
			req, _ := http.NewRequest(rt.Method, a.srv.URL+path, nil)
			r := c.head(req)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s %s with a session cookie and no token: %d %q, want 401 problem details", rt.Method, rt.Path, r.status, r.header.Get("Content-Type"))
			}
			if ck := r.header.Get("Set-Cookie"); ck != "" {
				t.Errorf("%s %s: an API route set a cookie: %q", rt.Method, rt.Path, ck)
			}
			continue
		case isPublic:
			public++
			req, _ := http.NewRequest(rt.Method, a.srv.URL+path, nil)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			r := c.do(req)
			if r.status == http.StatusForbidden {
				t.Errorf("%s %s: 403 on a public route", rt.Method, rt.Path)
			}
			if ck := r.header.Get("Set-Cookie"); ck != "" {
				t.Errorf("%s %s: a public route set a cookie: %q", rt.Method, rt.Path, ck)
			}
		case rt.Method == http.MethodPost:
			posts++
			r := c.post(path, url.Values{"x": {"1"}})
			if r.status != http.StatusForbidden {
				t.Errorf("POST %s without a CSRF token: %d, want 403", rt.Path, r.status)
			}
		}
		if rt.Path == "/static/*" || rt.Path == "/favicon.ico" {
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+path, nil)
		if r := c.head(req); rt.Method == http.MethodGet && r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", rt.Path, r.header.Get("Cache-Control"))
		}
	}
	if posts < 15 || public < 6 || api < 5 {
		t.Errorf("walked %d cookie POST routes, %d public routes and %d API routes: the route table was not read", posts, public, api)
	}
}

// TestBodyLimitsByGroup: the compose group takes attachments and long
// bodies, the other cookie routes take small forms only.
func TestBodyLimitsByGroup(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tok := c.csrf("/compose")
	big := strings.Repeat("x", 300<<10) // over the 256 KiB of small forms, under the 1 MiB upload limit
	tests := []struct {
		path string
		want int
	}{
		{"/profiles", http.StatusRequestEntityTooLarge},
		{"/signin", http.StatusRequestEntityTooLarge},
		{"/history/retention", http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		if r := c.post(tt.path, url.Values{"_csrf": {tok}, "pad": {big}}); r.status != tt.want {
			t.Errorf("POST %s with 300 KiB: %d, want %d", tt.path, r.status, tt.want)
		}
	}
	form := composeForm(tok)
	form.Set("text", big)
	if r := c.post("/compose", form); r.status == http.StatusRequestEntityTooLarge {
		t.Errorf("compose with a 300 KiB body: 413, want it accepted (upload limit 1 MiB)")
	}
	// The text fields have their own limit, apart from the attachments':
	// a 3 MiB text body (4 MiB allowed) goes with a 1 MiB upload limit.
	form.Set("text", strings.Repeat("x", 3<<20))
	if r := c.post("/compose", form); r.status != http.StatusSeeOther {
		t.Errorf("compose with a 3 MiB text body: %d, want 303 (sent)", r.status)
	}
	form.Set("text", strings.Repeat("x", 11<<20))
	if r := c.post("/compose", form); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("compose with 11 MiB of text fields: %d, want 413", r.status)
	}
}

// TestQuietRoutesLogAtDebug: health checks and static files are logged at
// debug level, pages at info.
func TestQuietRoutesLogAtDebug(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.get("/healthz")
	c.get("/static/style.css")
	c.get("/signin")
	logs := a.logs.String()
	for _, tt := range []struct{ path, level string }{
		{"/healthz", "DEBUG"}, {"/static/style.css", "DEBUG"}, {"/signin", "INFO"},
	} {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `msg="http request"`) && strings.Contains(line, "path="+tt.path+" ") {
				found = true
				if !strings.Contains(line, "level="+tt.level) {
					t.Errorf("%s logged as %q, want level %s", tt.path, line, tt.level)
				}
			}
		}
		if !found {
			t.Errorf("no request line for %s in:\n%s", tt.path, logs)
		}
	}
}
