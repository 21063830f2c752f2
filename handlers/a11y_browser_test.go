package handlers_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// The accessibility walk (issue 13): Chromium visits every page of the
// app, with stored data behind it, and axe-core checks each one in the
// light and the dark colour scheme. A violation of impact "serious" or
// "critical" fails the test with the rule, the elements and axe's help.
//
// The walk is driven by the router: every GET route is either a page in
// a11yVisits or a non-page in a11yNonPages, so a new page fails this
// test until it is added to the walk (with the fixture it needs).

// a11yNonPages returns the GET routes that are not HTML pages, and why.
func a11yNonPages() map[string]string {
	return map[string]string{
		"/healthz":                      "health check: plain text for load balancers",
		"/metrics":                      "Prometheus exposition for API tokens with the metrics scope",
		"/static/*":                     "style sheet, script and images",
		"/favicon.ico":                  "the icon browsers ask for",
		"/":                             "redirects to /compose",
		"/f/:slug/token":                "JSON for a contact form's script",
		"/sends/:id/events":             "server-sent events of a running send",
		"/checks/:id/events":            "server-sent events of a running check (its page, visited, has them)",
		"/sends/:id/diagram":            "an SVG fragment app.js swaps into a send's page (the page, visited, has it)",
		"/sends/:id/transcript.txt":     "download: the transcript as text",
		"/sends/:id/transcript.json":    "download: the transcript as JSON",
		"/sends/:id/message.eml":        "download: the message sent",
		"/captured/events":              "server-sent events of newly captured mail",
		"/captured/:id/raw":             "download: a captured message's source",
		"/captured/:id/parts/:n":        "download: one part of a captured message",
		"/api/v1/openapi.json":          "the HTTP API's OpenAPI document (JSON)",
		"/api/v1/sends":                 "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/sends/:id":             "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/sends/:id/events":      "HTTP API: server-sent events, Bearer token only",
		"/api/v1/sends/:id/transcript":  "HTTP API: JSON or text, Bearer token only",
		"/api/v1/sends/:id/message.eml": "HTTP API: the message sent, Bearer token only",
		"/api/v1/captured":              "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/captured/:id/raw":      "HTTP API: a captured message's source, Bearer token only",
		"/api/v1/captured/:id":          "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/captured/:id/parts/:n": "HTTP API: a captured message's part, Bearer token only",
		"/api/v1/outbox":                "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/checks":                "HTTP API: JSON for scripts, Bearer token only",
		"/api/v1/checks/:id":            "HTTP API: JSON for scripts, Bearer token only",
	}
}

// a11yStage is when a visit happens: the pages of a visitor who is not
// signed in come before the admin signs in in the browser.
type a11yStage int

const (
	// stageFirstRun: no account exists yet.
	stageFirstRun a11yStage = iota
	// stageSignedOut: the admin account exists, the browser is not signed in.
	stageSignedOut
	// stageSignedIn: the browser is signed in as the admin.
	stageSignedIn
)

// a11yFixture is what the pages show: things stored before the walk.
type a11yFixture struct {
	// base is the app's URL; rebound is the same server under a host
	// name it does not answer (421).
	base, rebound string
	// sent went to the capture server (HTML body, attachment); failed was
	// refused at connect (the explanation box).
	sent, failed int64
	captured     int64
	profile      int64
	form         *store.Form
	submission   int64
	// checkA and checkB are two checks of the test Postfix (Check page).
	checkA, checkB int64
	// monitor is a quit-after monitor of the test Postfix, run once;
	// server is that Postfix's host:port (its charts page).
	monitor int64
	server  string
}

// a11yVisit is one page state the walk checks.
type a11yVisit struct {
	// name names the screenshots and the failures.
	name string
	// route is the registered GET route this visit covers, or "" for a
	// page that answers a POST or an error.
	route string
	stage a11yStage
	// path is the page to open (a path on the app, or an absolute URL).
	// With submit set, it is the page the script runs on, not checked.
	path func(fx *a11yFixture) string
	// submit is a script that posts a form from the page at path; the
	// page it leads to is the one checked.
	submit func(fx *a11yFixture) string
	// status is the HTTP status the checked page must have.
	status int
	// shows, if set, is the data-testid of an element the checked page
	// must have: the page a post leads to is the one meant.
	shows string
}

// at is a path function for a fixed path.
func at(p string) func(*a11yFixture) string { return func(*a11yFixture) string { return p } }

// postScript returns a script that builds a form posting fields to
// action and submits it, as a page's own form would.
func postScript(action string, fields url.Values) string {
	var b strings.Builder
	fmt.Fprintf(&b, `(() => { const f = document.createElement("form"); f.method = "post"; f.action = %q;`, action)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range fields[k] {
			fmt.Fprintf(&b, ` { const i = document.createElement("input"); i.type = "hidden"; i.name = %q; i.value = %q; f.append(i); }`, k, v)
		}
	}
	b.WriteString(` document.body.append(f); f.submit(); })()`)
	return b.String()
}

// a11yVisits is the walk, in order. To check a new page, add a visit
// (and what it needs to a11yFixture).
func a11yVisits() []a11yVisit {
	id := func(n int64) string { return fmt.Sprint(n) }
	return []a11yVisit{
		{name: "signup-setup", route: "/signup", stage: stageFirstRun, path: at("/signup"), status: 200},

		{name: "signin", route: "/signin", stage: stageSignedOut, path: at("/signin"), status: 200},
		{name: "contact-thanks", route: "/f/:slug/thanks", stage: stageSignedOut, status: 200,
			path: func(fx *a11yFixture) string {
				return "/f/" + fx.form.Slug + "/thanks?origin=" + url.QueryEscape("https://site.example")
			}},
		{name: "contact-confirm", stage: stageSignedOut, path: at("/signin"), status: 200, shows: "contact-confirm",
			submit: func(fx *a11yFixture) string {
				return postScript("/f/"+fx.form.Slug, url.Values{"name": {"Ada Lovelace"}, "email": {"ada@visitor.test"},
					"message": {"Hello,\nI would like to know more."}})
			}},
		{name: "contact-error", stage: stageSignedOut, path: at("/signin"), status: 404, shows: "contact-error",
			submit: func(*a11yFixture) string {
				return postScript("/f/no-such-form", url.Values{"name": {"Ada"}, "message": {"Hello"}})
			}},
		{name: "error-421", stage: stageSignedOut, status: 421,
			path: func(fx *a11yFixture) string { return fx.rebound + "/signin" }},

		{name: "compose", route: "/compose", stage: stageSignedIn, path: at("/compose"), status: 200},
		{name: "compose-errors", stage: stageSignedIn, path: at("/compose"), status: 422, shows: "error-summary",
			submit: at(`(() => { document.querySelector('[data-testid="input-to"]').value = "not an address";
				document.querySelector('[data-testid="input-from"]').value = "";
				document.querySelector('[data-testid="send"]').click(); })()`)},
		{name: "result-sent", route: "/sends/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/sends/" + id(fx.sent) }},
		{name: "result-failed", route: "/sends/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/sends/" + id(fx.failed) }},
		{name: "profiles", route: "/profiles", stage: stageSignedIn, path: at("/profiles"), status: 200},
		{name: "profile-new", route: "/profiles/new", stage: stageSignedIn, path: at("/profiles/new"), status: 200},
		{name: "profile-errors", stage: stageSignedIn, path: at("/profiles/new"), status: 422, shows: "error-summary",
			submit: at(`document.querySelector('form[action="/profiles"] button[type="submit"]').click()`)},
		{name: "profile-edit", route: "/profiles/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/profiles/" + id(fx.profile) }},
		{name: "captured", route: "/captured", stage: stageSignedIn, path: at("/captured"), status: 200},
		{name: "captured-search", route: "/captured", stage: stageSignedIn, path: at("/captured?q=subject%3Aa11y"), status: 200},
		{name: "captured-search-error", stage: stageSignedIn, path: at("/captured?q=" + strings.Repeat("x", 501)), status: 422,
			shows: "error-q"},
		{name: "captured-message", route: "/captured/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/captured/" + id(fx.captured) }},
		{name: "captured-message-text", route: "/captured/:id", stage: stageSignedIn, status: 200, shows: "text-body",
			path: func(fx *a11yFixture) string { return "/captured/" + id(fx.captured) + "?tab=text" }},
		{name: "captured-message-headers", route: "/captured/:id", stage: stageSignedIn, status: 200, shows: "headers",
			path: func(fx *a11yFixture) string { return "/captured/" + id(fx.captured) + "?tab=headers" }},
		{name: "captured-message-raw", route: "/captured/:id", stage: stageSignedIn, status: 200, shows: "raw",
			path: func(fx *a11yFixture) string { return "/captured/" + id(fx.captured) + "?tab=raw" }},
		{name: "captured-release-errors", stage: stageSignedIn, status: 422, shows: "error-rcpts",
			path: func(fx *a11yFixture) string { return "/captured/" + id(fx.captured) },
			submit: at(`(() => { document.querySelector('[data-testid="input-rcpts"]').value = "not an address";
				document.querySelector('[data-testid="release"]').click(); })()`)},
		{name: "history", route: "/history", stage: stageSignedIn, path: at("/history"), status: 200},
		{name: "history-detail", route: "/history/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/history/" + id(fx.sent) }},
		{name: "history-compare", route: "/history/compare", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/history/compare?a=" + id(fx.sent) + "&b=" + id(fx.failed) }},
		{name: "forms", route: "/forms", stage: stageSignedIn, path: at("/forms"), status: 200},
		{name: "form-new", route: "/forms/new", stage: stageSignedIn, path: at("/forms/new"), status: 200},
		{name: "form", route: "/forms/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/forms/" + id(fx.form.ID) }},
		{name: "form-edit", route: "/forms/:id/edit", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/forms/" + id(fx.form.ID) + "/edit" }},
		{name: "form-submissions", route: "/forms/:id/submissions", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/forms/" + id(fx.form.ID) + "/submissions" }},
		{name: "submission", route: "/submissions/:id", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/submissions/" + id(fx.submission) }},
		{name: "outbox", route: "/outbox", stage: stageSignedIn, path: at("/outbox"), status: 200},
		{name: "checks", route: "/checks", stage: stageSignedIn, path: at("/checks"), status: 200},
		{name: "tokens", route: "/tokens", stage: stageSignedIn, path: at("/tokens"), status: 200},
		{name: "tokens-errors", stage: stageSignedIn, path: at("/tokens"), status: 422, shows: "error-summary",
			submit: at(`(() => { document.querySelectorAll('input[name="scopes"]').forEach(i => { i.checked = false; });
				document.querySelector('[data-testid="token-create"]').click(); })()`)},
		{name: "token-made", stage: stageSignedIn, path: at("/tokens"), status: 201, shows: "new-token",
			submit: at(`(() => { document.querySelector('[data-testid="input-name"]').value = "a11y";
				document.querySelector('[data-testid="token-create"]').click(); })()`)},
		{name: "check-errors", stage: stageSignedIn, path: at("/checks"), status: 422, shows: "error-summary",
			submit: at(`(() => { document.querySelector('[data-testid="input-target"]').value = "https://example.org";
				document.querySelector('[data-testid="check-submit"]').click(); })()`)},
		{name: "check-send-errors", stage: stageSignedIn, path: at("/checks"), status: 422, shows: "error-send_to",
			submit: at(`(() => { document.querySelector('[data-testid="input-target"]').value = "example.org";
				document.querySelector('[data-testid="input-ip"]').value = "192.0.2.1";
				document.querySelector('[data-testid="input-send_to"]').value = "nobody";
				document.querySelector('[data-testid="check-submit"]').click(); })()`)},
		{name: "check-report", route: "/checks/:id", stage: stageSignedIn, status: 200, shows: "suggested-profile",
			path: func(fx *a11yFixture) string { return "/checks/" + id(fx.checkB) }},
		{name: "check-compare", route: "/checks/compare", stage: stageSignedIn, status: 200,
			path: func(fx *a11yFixture) string { return "/checks/compare?a=" + id(fx.checkA) + "&b=" + id(fx.checkB) }},
		{name: "monitors", route: "/monitors", stage: stageSignedIn, path: at("/monitors"), status: 200, shows: "monitor-state"},
		{name: "monitor-new", route: "/monitors/new", stage: stageSignedIn, path: at("/monitors/new"), status: 200},
		{name: "monitor-errors", stage: stageSignedIn, path: at("/monitors/new"), status: 422, shows: "error-summary",
			submit: at(`(() => { document.querySelector('[data-testid="input-interval"]').value = "0";
				document.querySelector('[data-testid="monitor-save"]').click(); })()`)},
		{name: "monitor", route: "/monitors/:id", stage: stageSignedIn, status: 200, shows: "run-row",
			path: func(fx *a11yFixture) string { return "/monitors/" + id(fx.monitor) }},
		{name: "monitor-charts-30d", route: "/monitors/:id", stage: stageSignedIn, status: 200, shows: "chart-plot",
			path: func(fx *a11yFixture) string { return "/monitors/" + id(fx.monitor) + "?range=30d" }},
		{name: "servers", route: "/history/servers", stage: stageSignedIn, path: at("/history/servers"), status: 200, shows: "server-row"},
		{name: "server", route: "/history/server", stage: stageSignedIn, status: 200, shows: "chart-strip",
			path: func(fx *a11yFixture) string { return "/history/server?addr=" + url.QueryEscape(fx.server) }},
		{name: "monitor-edit", route: "/monitors/:id/edit", stage: stageSignedIn, status: 200, shows: "monitor-form",
			path: func(fx *a11yFixture) string { return "/monitors/" + id(fx.monitor) + "/edit" }},
		{name: "error-403", stage: stageSignedIn, path: at("/profiles"), status: 403, shows: "error-code",
			submit: at(postScript("/profiles", url.Values{"name": {"no CSRF token"}}))},
		// Signed out, an unknown path leads to the sign-in page.
		{name: "error-404", stage: stageSignedIn, path: at("/no-such-page"), status: 404},
		{name: "error-404-record", stage: stageSignedIn, path: at("/history/999999"), status: 404},
	}
}

// TestA11yVisitsCoverEveryPage: every GET route of the router is a page
// the walk visits or a listed non-page, and every route the walk names
// exists. It needs no browser, so a new page is caught by a quick run.
func TestA11yVisitsCoverEveryPage(t *testing.T) {
	a := newApp(t, appOptions{})
	if missing := a11yUncovered(a, a11yVisits(), a11yNonPages()); len(missing) > 0 {
		t.Error(strings.Join(missing, "\n"))
	}
	// And the check sees what is missing.
	visits := a11yVisits()
	without := func(route string) []a11yVisit {
		var out []a11yVisit
		for _, v := range visits {
			if v.route != route {
				out = append(out, v)
			}
		}
		return out
	}
	nonPages := func(edit func(m map[string]string)) map[string]string {
		m := a11yNonPages()
		edit(m)
		return m
	}
	tests := []struct {
		name     string
		visits   []a11yVisit
		nonPages map[string]string
		want     string
	}{
		{"a page not visited", without("/outbox"), a11yNonPages(),
			"GET /outbox is neither visited by a11yVisits nor listed in a11yNonPages"},
		{"a visit of no route", append(slices.Clone(visits), a11yVisit{name: "gone", route: "/gone"}), a11yNonPages(),
			`visit "gone" names route /gone, which is not registered`},
		{"a non-page not listed", visits, nonPages(func(m map[string]string) { delete(m, "/sends/:id/events") }),
			"GET /sends/:id/events is neither visited"},
		{"a non-page of no route", visits, nonPages(func(m map[string]string) { m["/old.zip"] = "gone" }),
			"a11yNonPages names route /old.zip, which is not registered"},
		{"a page listed as a non-page", visits, nonPages(func(m map[string]string) { m["/outbox"] = "oops" }),
			"route /outbox is both visited and listed as a non-page"},
	}
	for _, tt := range tests {
		got := a11yUncovered(a, tt.visits, tt.nonPages)
		if len(got) != 1 || !strings.Contains(got[0], tt.want) {
			t.Errorf("%s: a11yUncovered = %q, want one message containing %q", tt.name, got, tt.want)
		}
	}
}

// a11yUncovered lists, as messages, the GET routes that the visits and
// nonPages leave out and the routes they name that do not exist.
func a11yUncovered(a *app, visits []a11yVisit, nonPages map[string]string) []string {
	registered := map[string]bool{}
	for _, rt := range a.h.Routes().Routes() {
		if rt.Method == "GET" {
			registered[rt.Path] = true
		}
	}
	visited := map[string]bool{}
	var out []string
	for _, v := range visits {
		if v.route == "" {
			continue
		}
		visited[v.route] = true
		if !registered[v.route] {
			out = append(out, fmt.Sprintf("visit %q names route %s, which is not registered", v.name, v.route))
		}
	}
	for r := range nonPages {
		if !registered[r] {
			out = append(out, fmt.Sprintf("a11yNonPages names route %s, which is not registered", r))
		}
		if visited[r] {
			out = append(out, fmt.Sprintf("route %s is both visited and listed as a non-page", r))
		}
	}
	for r := range registered {
		if !visited[r] && nonPages[r] == "" {
			out = append(out, fmt.Sprintf("GET %s is neither visited by a11yVisits nor listed in a11yNonPages: add a visit with the data it needs, or say why it is not a page", r))
		}
	}
	sort.Strings(out)
	return out
}

// axeViolation is one failed axe rule on a page, as the script returns it.
type axeViolation struct {
	ID      string    `json:"id"`
	Impact  string    `json:"impact"`
	Help    string    `json:"help"`
	HelpURL string    `json:"helpUrl"`
	Nodes   []axeNode `json:"nodes"`
}

// String is the rule, its impact and help, and each element with what to
// fix, for a test failure.
func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s (%s)", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s\n      %s", n.Target, strings.ReplaceAll(n.Summary, "\n", "\n      "))
	}
	return b.String()
}

// axeNode is an element that fails a rule.
type axeNode struct {
	Target  string `json:"target"`
	Summary string `json:"summary"`
}

// axeReport is what axeRun returns.
type axeReport struct {
	Version    string         `json:"version"`
	Dark       bool           `json:"dark"`
	Violations []axeViolation `json:"violations"`
	// Incomplete are the checks axe could not decide (a colour over an
	// image, say): logged for a person to look at, not failed.
	Incomplete []axeViolation `json:"incomplete"`
}

// axeRun checks the document. iframes: false leaves out the inside of
// frames (and the frame-tested rule that would then ask for it): the only
// one is a captured message's HTML, the sender's markup in a sandbox
// where no script runs; the <iframe> element itself, its title included,
// is checked.
const axeRun = `(async () => {
	const r = await axe.run(document, {
		iframes: false, rules: {"frame-tested": {enabled: false}}, resultTypes: ["violations", "incomplete"],
	});
	const rules = list => list.map(v => ({
		id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({
			target: n.target.map(s => typeof s === "string" ? s : JSON.stringify(s)).join(" "),
			summary: n.failureSummary || "",
		})),
	}));
	return {
		version: axe.version,
		dark: matchMedia("(prefers-color-scheme: dark)").matches,
		violations: rules(r.violations),
		incomplete: rules(r.incomplete),
	};
})()`

// failsA11y reports whether a violation's impact fails the test.
func failsA11y(impact string) bool { return impact == "serious" || impact == "critical" }

// colorScheme emulates prefers-color-scheme: "light" or "dark".
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

func TestBrowserAccessibility(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	axe := testenv.AxeScript(t)
	// rebind.test leads to the app: a host name it does not answer (421).
	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"))
	a := newContactApp(t, contactOptions{captureServer: true})
	if missing := a11yUncovered(a.app, a11yVisits(), a11yNonPages()); len(missing) > 0 {
		t.Fatalf("the walk does not cover the router:\n%s", strings.Join(missing, "\n"))
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.srv.URL, "http://"))
	fx := &a11yFixture{base: a.srv.URL, rebound: "http://rebind.test:" + port}

	w := &a11yWalk{t: t, ctx: ctx, axe: axe, fx: fx}
	w.stage(stageFirstRun)
	a11yFill(t, a, fx)
	w.stage(stageSignedOut)
	run(t, ctx, "sign in",
		chromedp.Navigate(fx.base+"/signin"),
		chromedp.WaitVisible(tid("signin-form")),
		chromedp.SendKeys(tid("input-email"), adminEmail),
		chromedp.SendKeys(tid("input-password"), adminPassword),
		chromedp.Click(tid("signin-submit")),
		chromedp.WaitVisible(tid("compose-form")),
	)
	w.stage(stageSignedIn)
	if w.checked != 2*len(a11yVisits()) {
		t.Errorf("checked %d page states, want %d (each visit in two colour schemes)", w.checked, 2*len(a11yVisits()))
	}
}

// a11yFill signs up and stores what the pages show: two sends (one
// delivered to the capture server with an HTML body and an attachment,
// one refused at connect), a server profile, a contact form with a
// submission queued in the outbox.
func a11yFill(t *testing.T, a *contactApp, fx *a11yFixture) {
	t.Helper()
	c := a.client()
	c.signUp()

	form := composeForm(c.csrf("/compose"))
	form.Set("html", "<h1>Hello</h1><p>An <b>HTML</b> body.</p>")
	form.Set("to", "a11y@example.test")
	// Long enough to scroll in its box: a scrolling region must take focus.
	form.Set("text", strings.Repeat("A line of a long text body.\n", 120))
	fx.sent = sendID(t, c.waitDone(c.send(form, file{"notes.txt", "attached text\n"})))

	host, port, _ := net.SplitHostPort(testenv.ClosedPort(t))
	form = composeForm(c.csrf("/compose"))
	form.Set("server", "adhoc")
	form.Set("host", host)
	form.Set("port", port)
	form.Set("tls", "none")
	fx.failed = sendID(t, c.waitDone(c.send(form)))

	list, err := a.store.ListCaptured(context.Background(), 10, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("captured messages: %d, %v; want the one send", len(list), err)
	}
	fx.captured = list[0].ID

	c.saveProfile("/profiles", profileValues(c.csrf("/profiles/new"), "Test Postfix", "127.0.0.1:2587", "tester@example.test", "s3cret"))
	fx.profile = a.profileByName("Test Postfix").ID

	fx.form = a.addForm(t, func(f *store.Form) { f.Name = "Homepage contact" })
	wantAnswer(t, a.postJSON(t, fx.form, validPost(a.token(t, fx.form))), 200, "")
	subs := a.submissions(t, fx.form)
	if len(subs) != 1 || len(a.outbox(t, fx.form)) != 1 {
		t.Fatalf("%d submissions and %d outbox items, want one each", len(subs), len(a.outbox(t, fx.form)))
	}
	fx.submission = subs[0].ID

	pf := testenv.Postfix(t)
	fx.checkA = checkID(t, c.waitCheckPath(c.startCheck(url.Values{"target": {pf.SMTPAddr}})))
	fx.checkB = checkID(t, c.waitCheckPath(c.startCheck(url.Values{"target": {pf.SMTPAddr}})))

	host, port, _ = net.SplitHostPort(pf.SMTPAddr)
	portN, _ := strconv.Atoi(port)
	m := &store.Monitor{Name: "Test Postfix", Kind: store.MonitorQuitAfter, Target: host, Rcpt: "a11y@example.test",
		Options: store.MonitorOptions{Port: portN}, Interval: 5, Enabled: true, SlowMS: 2000, CertDays: 14}
	if err := a.store.CreateMonitor(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	fx.monitor, fx.server = m.ID, pf.SMTPAddr
	page := "/monitors/" + strconv.FormatInt(m.ID, 10)
	if r := c.post(page+"/run", url.Values{"_csrf": {c.csrf(page)}}); r.status != http.StatusSeeOther {
		t.Fatalf("run monitor: %d\n%s", r.status, r.body)
	}
}

// sendID reads the send's number from its finished result page.
func sendID(t *testing.T, r *response) int64 {
	t.Helper()
	v, ok := r.testid(t, "transcript").Attr("data-send-id")
	var id int64
	if _, err := fmt.Sscan(v, &id); !ok || err != nil || id <= 0 {
		t.Fatalf("no send id on the result page (%q)", v)
	}
	return id
}

// a11yWalk visits pages in one tab and checks them with axe-core.
type a11yWalk struct {
	t       *testing.T
	ctx     context.Context
	axe     string
	fx      *a11yFixture
	checked int
}

// stage visits the pages of one stage, in the table's order.
func (w *a11yWalk) stage(s a11yStage) {
	for _, v := range a11yVisits() {
		if v.stage == s {
			w.visit(v)
		}
	}
}

// visit opens one page state, then checks it in the light and the dark
// colour scheme (the scheme changes in place: a page that answers a POST
// is not posted twice), with a screenshot of each.
func (w *a11yWalk) visit(v a11yVisit) {
	t := w.t
	t.Helper()
	target := v.path(w.fx)
	if !strings.HasPrefix(target, "http") {
		target = w.fx.base + target
	}
	run(t, w.ctx, v.name+": light colour scheme", colorScheme("light"))
	if v.submit != nil {
		run(t, w.ctx, v.name+": open "+target, chromedp.Navigate(target))
	}
	sctx, cancel := context.WithTimeout(w.ctx, testenv.StallLimit)
	var resp *network.Response
	var err error
	if v.submit == nil {
		resp, err = chromedp.Run(sctx, chromedp.NavigateResponse(target))
	} else {
		// The page that the script's post leads to.
		resp, err = chromedp.RunResponse(sctx, chromedp.Evaluate[chromedp.Void](v.submit(w.fx)))
	}
	cancel()
	if err != nil || resp == nil {
		t.Fatalf("%s: open %s: no page (%v)", v.name, target, err)
	}
	if int(resp.Status) != v.status {
		t.Errorf("%s: %s answered %d, want %d", v.name, resp.URL, resp.Status, v.status)
	}
	if v.submit == nil && resp.URL != target {
		t.Errorf("%s: opened %s, landed on %s", v.name, target, resp.URL)
	}
	if v.shows != "" {
		if n := value(t, w.ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="`+v.shows+`"]').length`)); n == 0 {
			t.Errorf("%s: %s has no %s", v.name, resp.URL, v.shows)
		}
	}
	// Inject axe-core into the page (the page's CSP does not apply to
	// the DevTools protocol's evaluation).
	run(t, w.ctx, v.name+": inject axe-core", chromedp.Evaluate[chromedp.Void](w.axe))
	for _, scheme := range []string{"light", "dark"} {
		run(t, w.ctx, v.name+": "+scheme+" colour scheme", colorScheme(scheme))
		rep := value(t, w.ctx, chromedp.Evaluate[axeReport](axeRun, chromedp.EvalAwaitPromise))
		w.checked++
		if rep.Dark != (scheme == "dark") {
			t.Fatalf("%s: prefers-color-scheme: dark is %v in the %s run", v.name, rep.Dark, scheme)
		}
		where := fmt.Sprintf("%s (%s, %s): axe %s", v.name, resp.URL, scheme, rep.Version)
		for _, vi := range rep.Violations {
			if failsA11y(vi.Impact) {
				t.Error(where + " rule " + vi.String())
			} else {
				t.Log(where + " rule " + vi.String())
			}
		}
		for _, vi := range rep.Incomplete {
			t.Log(where + " could not decide rule " + vi.String())
		}
		screenshot(t, w.ctx, "a11y-"+v.name+"-"+scheme+".png")
	}
}

// TestFavicon: pages link the SVG icon, and /favicon.ico, which browsers
// ask for by themselves, answers it too (a 404 there is an error in the
// console: Lighthouse's best practices).
func TestFavicon(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	icon := c.get("/static/favicon.svg")
	if icon.status != http.StatusOK || !strings.HasPrefix(icon.body, "<svg ") {
		t.Fatalf("/static/favicon.svg: %d %.40q", icon.status, icon.body)
	}
	tests := []struct{ path, wantType string }{
		{"/static/favicon.svg", "image/svg+xml"},
		{"/favicon.ico", "image/svg+xml"},
	}
	for _, tt := range tests {
		r := c.get(tt.path)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != tt.wantType || r.body != icon.body {
			t.Errorf("GET %s: %d %q, %d bytes; want %d %q and the icon", tt.path, r.status, r.header.Get("Content-Type"),
				len(r.body), http.StatusOK, tt.wantType)
		}
	}
	href, _ := c.get("/signup").doc(t).Find(`link[rel="icon"]`).Attr("href")
	if href != "/static/favicon.svg" {
		t.Errorf("the sign-up page links the icon %q, want /static/favicon.svg", href)
	}
}
