package handlers_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sockmail/internal/store"
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

// lockoutApp is an app on backend whose clock the test moves and whose
// clients name their address in X-Forwarded-For (the test client itself
// connects from loopback, the one trusted proxy).
func lockoutApp(t *testing.T, backend string) (*app, *clock) {
	t.Helper()
	clk := &clock{t: time.Now()}
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	a := newApp(t, appOptions{backend: backend, now: clk.Now, trustedProxies: []*net.IPNet{loopback}})
	a.client().signUp()
	return a, clk
}

// signInFrom posts the sign-in form as a browser at address addr.
func (c *client) signInFrom(addr, email, password string) *response {
	c.a.t.Helper()
	tok := c.csrf("/signin")
	return c.post("/signin", url.Values{"_csrf": {tok}, "email": {email}, "password": {password}}, "X-Forwarded-For", addr)
}

// TestSignInLockoutCannotBeForcedFromAnotherAddress: an attacker
// hammering the admin account from one address is slowed down (429 with
// Retry-After, logged), yet the admin signs in from another address, and
// from a browser that signed in before even when guesses from many
// addresses have filled the account-wide limit (issue 11, item 2).
func TestSignInLockoutCannotBeForcedFromAnotherAddress(t *testing.T) {
	a, clk := lockoutApp(t, store.BackendSQLite)
	// The admin's usual browser signs in once: it now has a device cookie.
	laptop := a.client()
	if r := laptop.signInFrom("198.51.100.7", adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", r.status)
	}
	// One attacker address, a hundred wrong passwords a few seconds apart.
	attacker := a.client()
	counts := map[int]int{}
	for i := range 100 {
		r := attacker.signInFrom("203.0.113.9", adminEmail, "guess-"+strconv.Itoa(i))
		counts[r.status]++
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		clk.Advance(3 * time.Second)
	}
	if counts[http.StatusUnauthorized] > 8 || counts[http.StatusTooManyRequests] == 0 {
		t.Errorf("attacker's answers over five minutes: %v; want at most 8 password checks, the rest 429", counts)
	}
	if !strings.Contains(a.logs.String(), "sign-in throttled") || !strings.Contains(a.logs.String(), "limit=client") {
		t.Error("the throttling is not logged")
	}
	// Still throttled, the attacker's right password would be refused too
	// (it does not know it); the admin from another address is not.
	if r := a.client().signInFrom("192.0.2.44", adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Fatalf("admin from another address during the attack: %d", r.status)
	}
	// Now guesses from many addresses fill the account-wide limit.
	for i := range 40 {
		a.client().signInFrom("203.0.113."+strconv.Itoa(100+i), adminEmail, "spread-"+strconv.Itoa(i))
	}
	if r := a.client().signInFrom("192.0.2.45", adminEmail, adminPassword); r.status != http.StatusTooManyRequests {
		t.Errorf("a new browser while the account-wide limit is full: %d, want 429", r.status)
	}
	if !strings.Contains(a.logs.String(), "limit=account") {
		t.Error("the account-wide limit is not logged")
	}
	// The browser that signed in before gets in, from any address.
	laptop.post("/signout", url.Values{"_csrf": {laptop.csrf("/compose")}})
	for _, addr := range []string{"198.51.100.7", "203.0.113.9"} {
		if r := laptop.signInFrom(addr, adminEmail, adminPassword); r.status != http.StatusSeeOther {
			t.Fatalf("known browser from %s during the attack: %d", addr, r.status)
		}
		laptop.post("/signout", url.Values{"_csrf": {laptop.csrf("/compose")}})
	}
	// A forged or another account's device cookie does not count as known.
	forged := a.client()
	forged.jar.SetCookies(mustURL(a.srv.URL), []*http.Cookie{{Name: "sockmail_device", Value: "d1.1.AAAA.AAAA"}})
	if r := forged.signInFrom("192.0.2.46", adminEmail, adminPassword); r.status != http.StatusTooManyRequests {
		t.Errorf("forged device cookie: %d, want 429", r.status)
	}
	if _, err := a.store.CreateUser(context.Background(), "second@example.test", string(mustHash(t, "second-password"))); err != nil {
		t.Fatal(err)
	}
	shared := a.client()
	if r := shared.signInFrom("192.0.2.47", "second@example.test", "second-password"); r.status != http.StatusSeeOther {
		t.Fatalf("second account: %d", r.status)
	}
	shared.post("/signout", url.Values{"_csrf": {shared.csrf("/compose")}})
	if r := shared.signInFrom("192.0.2.47", adminEmail, adminPassword); r.status != http.StatusTooManyRequests {
		t.Errorf("a device cookie of another account: %d, want 429", r.status)
	}
}

// TestSignInGuessRate: a guesser at one address trying every second gets
// 5 password checks in the first minute and at most 11 in the first
// hour; a success would clear its delays.
func TestSignInGuessRate(t *testing.T) {
	a, clk := lockoutApp(t, store.BackendSQLite)
	c := a.client()
	tok := c.csrf("/signin")
	checked := 0
	var elapsed time.Duration
	for elapsed < time.Hour {
		r := c.post("/signin", url.Values{"_csrf": {tok}, "email": {adminEmail}, "password": {"guess"}}, "X-Forwarded-For", "203.0.113.9")
		switch r.status {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("at +%v: %d", elapsed, r.status)
		}
		step := time.Second
		if elapsed >= time.Minute {
			step = 10 * time.Second
		}
		elapsed += step
		clk.Advance(step)
		if elapsed == time.Minute && checked != 5 {
			t.Errorf("password checks in the first minute: %d, want 5", checked)
		}
	}
	if checked > 11 {
		t.Errorf("password checks in the first hour: %d, want at most 11", checked)
	}
}

// TestSignInFailuresFromOneAddressDoNotLockOthers: twenty failed
// sign-ins to twenty accounts from one address slow that address down
// (password spraying), and no one else: other accounts and the admin
// sign in from other addresses.
func TestSignInFailuresFromOneAddressDoNotLockOthers(t *testing.T) {
	a, _ := lockoutApp(t, store.BackendSQLite)
	if _, err := a.store.CreateUser(context.Background(), "second@example.test", string(mustHash(t, "second-password"))); err != nil {
		t.Fatal(err)
	}
	sprayer := a.client()
	for i := range 20 {
		if r := sprayer.signInFrom("203.0.113.9", "nobody"+strconv.Itoa(i)+"@example.test", "whatever-password"); r.status != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d", i, r.status)
		}
	}
	if r := sprayer.signInFrom("203.0.113.9", "someone@example.test", "whatever-password"); r.status != http.StatusTooManyRequests {
		t.Errorf("21st failure from the spraying address: %d, want 429", r.status)
	}
	if r := a.client().signInFrom("198.51.100.7", "second@example.test", "second-password"); r.status != http.StatusSeeOther {
		t.Errorf("another account from another address: %d", r.status)
	}
	if r := a.client().signInFrom("2001:db8:1::5", adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Errorf("the admin from another address: %d", r.status)
	}
}

func mustHash(t *testing.T, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSignInThrottledUnderBurst: thirty wrong passwords at once for one
// account from one browser get exactly three tries at the password, on
// both backends (the slots are taken in one transaction per try). The
// clock stands still, so that however slow the machine, the burst is at
// one instant.
func TestSignInThrottledUnderBurst(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		clk := &clock{t: time.Now()}
		a := newApp(t, appOptions{backend: backend, now: clk.Now})
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
		if count[http.StatusUnauthorized] != 3 || count[http.StatusTooManyRequests] != tries-3 {
			t.Errorf("answers %v: want 3 password checks (401) and %d refusals (429)", count, tries-3)
		}
	})
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

// TestSignUpNeedsSetupCode: the first sign-up needs the one-time code
// serve prints; wrong codes are refused and limited per client (5 in 15
// minutes); the code ends with the first account, and an account made by
// "sockmail user add" (the store) needs none.
func TestSignUpNeedsSetupCode(t *testing.T) {
	clk := &clock{t: time.Now()}
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	a := newApp(t, appOptions{now: clk.Now, trustedProxies: []*net.IPNet{loopback}})
	code := setupCode(t, a)
	if again := setupCode(t, a); again != code {
		t.Fatalf("the setup code changed: %q, then %q", code, again)
	}
	c := a.client()
	page := c.get("/signup")
	if page.testid(t, "input-setup_code").Length() != 1 || !strings.Contains(page.testid(t, "setup-code-hint").Text(), "setup code") {
		t.Fatalf("the sign-up page does not ask for the setup code:\n%s", page.body)
	}
	form := func(code string) url.Values {
		return url.Values{"_csrf": {c.csrf("/signup")}, "email": {adminEmail}, "password": {adminPassword}, "confirm": {adminPassword}, "setup_code": {code}}
	}
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
	tests := []struct {
		name, code, addr string
		status           int
	}{
		{"no code", "", "203.0.113.9", http.StatusUnprocessableEntity},
		{"too long", strings.Repeat("A", 65), "203.0.113.9", http.StatusUnprocessableEntity},
		{"wrong 1", "AAAA-BBBB-CCCC-DDDD-EEEE", "203.0.113.9", http.StatusForbidden},
		{"wrong 2", code[:len(code)-1], "203.0.113.9", http.StatusForbidden},
		{"wrong 3", code + "A", "203.0.113.9", http.StatusForbidden},
		{"wrong 4", "x", "203.0.113.9", http.StatusForbidden},
		{"wrong 5", "y", "203.0.113.9", http.StatusForbidden},
		{"right, but this client is over its limit", code, "203.0.113.9", http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		r := c.post("/signup", form(tt.code), from(tt.addr)...)
		if r.status != tt.status {
			t.Fatalf("%s: %d, want %d\n%s", tt.name, r.status, tt.status, r.body)
		}
		if r.testid(t, "error-setup_code").Length() != 1 {
			t.Errorf("%s: no message at the setup code field", tt.name)
		}
	}
	if n, _ := a.store.CountUsers(context.Background()); n != 0 {
		t.Fatalf("%d accounts after refused sign-ups", n)
	}
	if !strings.Contains(a.logs.String(), "setup code: too many wrong codes") {
		t.Error("the setup-code limit is not logged")
	}
	// Another client, the code typed in lower case with spaces: accepted.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	if r := c.post("/signup", form(typed), from("198.51.100.7")...); r.status != http.StatusSeeOther {
		t.Fatalf("right code: %d\n%s", r.status, r.body)
	}
	if _, needed, err := a.h.SetupCode(context.Background()); needed || err != nil {
		t.Errorf("setup code still needed after the first account (%v)", err)
	}
	if _, err := a.store.Setting(context.Background(), store.SettingSetupCode); err == nil {
		t.Error("the setup code is still stored")
	}

	// "sockmail user add" first: no code is made or asked for.
	b := newApp(t, appOptions{})
	if _, err := b.store.CreateUser(context.Background(), adminEmail, string(mustHash(t, adminPassword))); err != nil {
		t.Fatal(err)
	}
	if code, needed, err := b.h.SetupCode(context.Background()); needed || code != "" || err != nil {
		t.Errorf("setup code with an account made from the shell: %q %v %v", code, needed, err)
	}
	if r := b.client().signIn(adminEmail, adminPassword); r.status != http.StatusSeeOther {
		t.Errorf("sign-in with the account made from the shell: %d", r.status)
	}
}
