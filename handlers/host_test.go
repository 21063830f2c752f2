package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// withHost sends req with the Host header host, as a browser does after
// a DNS rebinding (the attacker's name, sockmail's address).
func (c *client) withHost(method, path, host string, form url.Values, hdr ...string) *response {
	c.a.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, c.a.srv.URL+path, body)
	req.Host = host
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// TestForeignHostRefused: a request whose Host is not sockmail's own is
// answered 421 on every route but /healthz, whatever the path, so that
// a page on another domain rebound to sockmail's address reaches nothing
// (issue 11, item 1). Sockmail's own addresses are answered.
func TestForeignHostRefused(t *testing.T) {
	a := newApp(t, appOptions{})
	port := mustURL(a.srv.URL).Port()
	c := a.client()
	foreign := []string{
		"evil.example", "evil.example:" + port, "EVIL.example:" + port, "127.0.0.1.evil.example:" + port,
		"localhost.evil.example:" + port, "127.0.0.1:1", "localhost:1", "10.0.0.1:" + port, "[2001:db8::1]:" + port,
		"127.0.0.1", "localhost", "evil.example:" + port + ":" + port, "x" + strings.Repeat("y", 300),
	}
	paths := []string{"/", "/signup", "/signin", "/compose", "/history", "/static/style.css", "/f/some-form", "/f/some-form/token", "/no-such-page"}
	for _, host := range foreign {
		for _, path := range paths {
			r := c.withHost(http.MethodGet, path, host, nil)
			if r.status != http.StatusMisdirectedRequest {
				t.Errorf("GET %s with Host %q: %d, want 421", path, host, r.status)
				continue
			}
			if !strings.Contains(r.body, "SOCKMAIL_BASE_URL") {
				t.Errorf("GET %s with Host %q: the page does not name SOCKMAIL_BASE_URL:\n%s", path, host, r.body)
			}
		}
	}
	// The health check answers any Host, and says nothing but "ok".
	for _, host := range []string{"evil.example", "10.0.0.1:" + port} {
		if r := c.withHost(http.MethodGet, "/healthz", host, nil); r.status != http.StatusOK || r.body != "ok\n" {
			t.Errorf("healthz with Host %q: %d %q", host, r.status, r.body)
		}
	}
	// Its own addresses: the one it listens on, and loopback names for a
	// loopback listener, with its port; names compare without case or a
	// trailing dot.
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LocalHost:" + port, "localhost.:" + port, "[::1]:" + port, "127.0.0.2:" + port} {
		if r := c.withHost(http.MethodGet, "/signup", host, nil); r.status != http.StatusOK {
			t.Errorf("GET /signup with Host %q: %d, want 200", host, r.status)
		}
	}
	if !strings.Contains(a.logs.String(), "request for another host name refused") {
		t.Error("refusals are not logged")
	}
}

// TestRebindingSignUpRefused: the DNS rebinding attack of issue 11. A
// script on http://evil.example:PORT, rebound to 127.0.0.1, posts the
// sign-up form same-origin (Origin and Host agree, the CSRF cookie and
// token are its own): sockmail answers 421 and creates no account.
func TestRebindingSignUpRefused(t *testing.T) {
	a := newApp(t, appOptions{})
	port := mustURL(a.srv.URL).Port()
	evil := "evil.example:" + port
	c := a.client()
	tok := c.csrf("/signup") // even a valid token and cookie do not help
	form := url.Values{"_csrf": {tok}, "email": {"attacker@evil.example"}, "password": {"attacker-password"}, "confirm": {"attacker-password"},
		"setup_code": {setupCode(t, a)}}
	r := c.withHost(http.MethodPost, "/signup", evil, form, "Origin", "http://"+evil, "Sec-Fetch-Site", "same-origin")
	if r.status != http.StatusMisdirectedRequest {
		t.Fatalf("rebound POST /signup: %d, want 421\n%s", r.status, r.body)
	}
	if n, err := a.store.CountUsers(context.Background()); err != nil || n != 0 {
		t.Fatalf("accounts after the rebound sign-up: %d, %v", n, err)
	}
	// The same post to sockmail's own address goes through.
	r = c.post("/signup", form)
	if r.status != http.StatusSeeOther {
		t.Fatalf("POST /signup at 127.0.0.1: %d\n%s", r.status, r.body)
	}
	// Signed in now, a rebound page still reads nothing.
	if r := c.withHost(http.MethodGet, "/compose", evil, nil); r.status != http.StatusMisdirectedRequest {
		t.Errorf("rebound GET /compose when signed in: %d", r.status)
	}
}

// TestBaseURLHostAnswered: with SOCKMAIL_BASE_URL set, its host (and
// port, the scheme's default when it has none) is answered too, as a
// reverse proxy passing the browser's Host sends it; other ports and
// names are not.
func TestBaseURLHostAnswered(t *testing.T) {
	a := newApp(t, appOptions{baseURL: "https://Sockmail.Example.org"})
	c := a.client()
	for host, want := range map[string]int{
		"sockmail.example.org":       http.StatusOK,
		"sockmail.example.org:443":   http.StatusOK,
		"SOCKMAIL.example.org.":      http.StatusOK,
		"sockmail.example.org:80":    http.StatusMisdirectedRequest,
		"sockmail.example.org:8443":  http.StatusMisdirectedRequest,
		"evil.sockmail.example.org":  http.StatusMisdirectedRequest,
		"sockmail.example.org.evil":  http.StatusMisdirectedRequest,
		mustURL(a.srv.URL).Host:      http.StatusOK,
		"other.example.org":          http.StatusMisdirectedRequest,
		"sockmail.example.org:65536": http.StatusMisdirectedRequest,
	} {
		if r := c.withHost(http.MethodGet, "/signup", host, nil); r.status != want {
			t.Errorf("GET /signup with Host %q: %d, want %d", host, r.status, want)
		}
	}
}
