package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestFirstVisitSignUpThenSignIn(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()

	r := c.get("/")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
		t.Fatalf("GET / signed out: %d %q", r.status, r.header.Get("Location"))
	}
	r = c.get("/signin")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signup" {
		t.Fatalf("GET /signin without users: %d %q", r.status, r.header.Get("Location"))
	}
	r = c.get("/signup")
	if r.status != http.StatusOK || r.testid(t, "signup-form").Length() != 1 {
		t.Fatalf("GET /signup: %d", r.status)
	}

	// Validation errors are shown inline.
	tok := c.csrf("/signup")
	r = c.post("/signup", url.Values{"_csrf": {tok}, "email": {"not an address"}, "password": {"short"}, "confirm": {"short"}})
	if r.status != http.StatusUnprocessableEntity || r.testid(t, "error-email").Length() != 1 || r.testid(t, "error-password").Length() != 1 {
		t.Fatalf("bad sign-up: %d\n%s", r.status, r.body)
	}

	c.signUp()
	r = c.get("/compose")
	if r.status != http.StatusOK || r.testid(t, "compose-form").Length() != 1 {
		t.Fatalf("GET /compose after sign-up: %d", r.status)
	}
	if got := r.testid(t, "user").Text(); got != adminEmail {
		t.Errorf("user shown %q", got)
	}

	// A second sign-up is refused once an account exists.
	other := a.client()
	if r := other.get("/signup"); r.status != http.StatusSeeOther {
		t.Errorf("GET /signup with a user: %d", r.status)
	}
	tok = other.csrf("/signin")
	r = other.post("/signup", url.Values{"_csrf": {tok}, "email": {"evil@example.test"}, "password": {"0123456789ab"}, "confirm": {"0123456789ab"}})
	if r.status != http.StatusForbidden {
		t.Errorf("second sign-up: %d", r.status)
	}

	// Sign in from another browser.
	r = other.signIn(adminEmail, "wrong password!")
	if r.status != http.StatusUnauthorized || r.testid(t, "signin-error").Length() != 1 {
		t.Fatalf("wrong password: %d", r.status)
	}
	r = other.signIn(adminEmail, adminPassword)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/compose" {
		t.Fatalf("sign-in: %d %q", r.status, r.header.Get("Location"))
	}
	if r := other.get("/compose"); r.status != http.StatusOK {
		t.Fatalf("compose after sign-in: %d", r.status)
	}
}

// TestSignInRedirectsToNextOnThisSiteOnly: the sign-in "next" is kept
// when it is a path here, and replaced by /compose when it could lead a
// browser elsewhere (issue 11: "/%09/host" was answered "/\t/host").
func TestSignInRedirectsToNextOnThisSiteOnly(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tests := []struct{ next, want string }{
		{"/captured", "/captured"},
		{"/history?q=a%20b", "/history?q=a%20b"},
		{"//evil.example/x", "/compose"},
		{"https://evil.example", "/compose"},
		{"/%09/evil.example", "/compose"},
		{"/\t/evil.example", "/compose"},
		{"/\\evil.example", "/compose"},
		{"/%2F%2Fevil.example", "/compose"},
		{"/%5Cevil.example", "/compose"},
		{"javascript:alert(1)", "/compose"},
	}
	for _, tt := range tests {
		c2 := a.client()
		tok := c2.csrf("/signin?next=" + url.QueryEscape(tt.next))
		r := c2.post("/signin", url.Values{"_csrf": {tok}, "email": {adminEmail}, "password": {adminPassword}, "next": {tt.next}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != tt.want {
			t.Errorf("next %q: %d %q, want %q", tt.next, r.status, r.header.Get("Location"), tt.want)
		}
	}
}

func TestSessionRotatedAtSignIn(t *testing.T) {
	a := newApp(t, appOptions{})
	a.client().signUp()
	c := a.client()
	before := c.csrf("/signin")
	cookieBefore := c.jar.Cookies(mustURL(a.srv.URL))
	r := c.post("/signin", url.Values{"_csrf": {before}, "email": {adminEmail}, "password": {adminPassword}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", r.status)
	}
	after := c.csrf("/compose")
	if after == before {
		t.Error("CSRF token not rotated at sign-in")
	}
	if len(cookieBefore) == 1 && c.jar.Cookies(mustURL(a.srv.URL))[0].Value == cookieBefore[0].Value {
		t.Error("session cookie not changed at sign-in")
	}
	// The pre-sign-in cookie (a fixation attempt) is not signed in.
	fix := a.client()
	fix.jar.SetCookies(mustURL(a.srv.URL), cookieBefore)
	if r := fix.get("/compose"); r.status != http.StatusSeeOther {
		t.Errorf("pre-sign-in cookie reaches /compose: %d", r.status)
	}
}

func TestCookieReplayedAfterSignOutIsRefused(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	stolen := c.jar.Cookies(mustURL(a.srv.URL))
	tok := c.csrf("/compose")
	r := c.post("/signout", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("sign-out: %d %q", r.status, r.header.Get("Location"))
	}
	if r := c.get("/compose"); r.status != http.StatusSeeOther {
		t.Errorf("compose after sign-out: %d", r.status)
	}
	replay := a.client()
	replay.jar.SetCookies(mustURL(a.srv.URL), stolen)
	r = replay.get("/compose")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
		t.Errorf("replayed cookie: %d %q", r.status, r.header.Get("Location"))
	}
	if r := replay.post("/compose", composeForm(tok)); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
		t.Errorf("replayed cookie POST /compose: %d", r.status)
	}
}

func TestSignInThrottled(t *testing.T) {
	a := newApp(t, appOptions{})
	a.client().signUp()
	c := a.client()
	for i := 0; i < 5; i++ {
		if r := c.signIn(adminEmail, "wrong-password-"+string(rune('a'+i))); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	// Even the right password is refused while the account is throttled,
	// and from another address-less client too (per account).
	r := a.client().signIn(adminEmail, adminPassword)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled sign-in: %d", r.status)
	}
	if !strings.Contains(r.testid(t, "signin-error").Text(), "Too many") {
		t.Errorf("message: %q", r.testid(t, "signin-error").Text())
	}
	// Per address: many accounts from one address.
	for i := 0; i < 20; i++ {
		c.signIn("nobody"+string(rune('a'+i))+"@example.test", "whatever-password")
	}
	if r := c.signIn("someone@example.test", "whatever-password"); r.status != http.StatusTooManyRequests {
		t.Errorf("per-address throttle: %d", r.status)
	}
}

// TestSignInThrottledUnderBurst: thirty wrong passwords at once for one
// account get at most five tries at the password; a success gives the
// address its slot back.
func TestSignInThrottledUnderBurst(t *testing.T) {
	a := newApp(t, appOptions{})
	a.client().signUp()
	const tries = 30
	clients := make([]*client, tries)
	toks := make([]string, tries)
	for i := range clients {
		clients[i] = a.client()
		toks[i] = clients[i].csrf("/signin")
	}
	count := burst(tries, func(i int) int {
		return clients[i].post("/signin", url.Values{"_csrf": {toks[i]}, "email": {adminEmail}, "password": {"wrong-" + strconv.Itoa(i)}}).status
	})
	if count[http.StatusUnauthorized] != 5 || count[http.StatusTooManyRequests] != tries-5 {
		t.Errorf("answers %v: want 5 password checks (401) and %d refusals (429)", count, tries-5)
	}
}

func TestSignInSuccessDoesNotCountAgainstTheAddress(t *testing.T) {
	a := newApp(t, appOptions{})
	a.client().signUp()
	// More successful sign-ins from one address than its failure limit.
	for i := range 25 {
		if r := a.client().signIn(adminEmail, adminPassword); r.status != http.StatusSeeOther {
			t.Fatalf("sign-in %d: %d", i, r.status)
		}
	}
}

func TestCSRF(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tok := c.csrf("/compose")
	form := composeForm(tok)

	noToken := composeForm("")
	noToken.Del("_csrf")
	if r := c.post("/compose", noToken); r.status != http.StatusForbidden {
		t.Errorf("POST without token: %d", r.status)
	}
	if r := c.post("/compose", composeForm("forged-token")); r.status != http.StatusForbidden {
		t.Errorf("POST with a wrong token: %d", r.status)
	}
	if r := c.post("/signout", url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("sign-out without token: %d", r.status)
	}
	// Cross-site, even with the right token and cookie.
	if r := c.post("/compose", form, "Sec-Fetch-Site", "cross-site"); r.status != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", r.status)
	}
	if r := c.post("/profiles", url.Values{"_csrf": {tok}}, "Sec-Fetch-Site", "", "Origin", "http://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("POST from a foreign Origin: %d", r.status)
	}
	// Still signed in: nothing above signed us out.
	if r := c.get("/compose"); r.status != http.StatusOK {
		t.Errorf("compose: %d", r.status)
	}
	// The token of another session does not work.
	other := a.client()
	otherTok := other.csrf("/signin")
	if r := c.post("/compose", composeForm(otherTok)); r.status != http.StatusForbidden {
		t.Errorf("another session's token: %d", r.status)
	}
}

func TestNotSignedInIsRefused(t *testing.T) {
	a := newApp(t, appOptions{})
	a.client().signUp()
	c := a.client()
	for _, path := range []string{"/", "/compose", "/sends/1", "/profiles", "/profiles/new", "/captured", "/captured/1", "/sends/1/transcript.txt"} {
		r := c.get(path)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin?next=") {
			t.Errorf("GET %s: %d %q", path, r.status, r.header.Get("Location"))
		}
	}
	tok := c.csrf("/signin")
	for _, path := range []string{"/compose", "/profiles", "/profiles/1/delete"} {
		if r := c.post(path, composeForm(tok)); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s: %d", path, r.status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/sends/1/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	if r := c.do(req); r.status != http.StatusUnauthorized {
		t.Errorf("event stream: %d", r.status)
	}
}

func TestHealthz(t *testing.T) {
	a := newApp(t, appOptions{})
	r := a.client().get("/healthz")
	if r.status != http.StatusOK || r.body != "ok\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
}

func TestStaticAndSecurityHeaders(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	for _, p := range []string{"/static/style.css", "/static/app.js"} {
		if r := c.get(p); r.status != http.StatusOK || len(r.body) < 100 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	r := c.get("/signup")
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
		if r.header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	ck := r.header.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") || !strings.Contains(ck, "Max-Age=") {
		t.Errorf("session cookie attributes: %q", ck)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
