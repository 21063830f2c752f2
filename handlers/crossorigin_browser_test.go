package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
)

// attackPage is the page a hostile site serves. Opened with #post it
// submits the sign-up form to sockmail's real address (a cross-origin
// post); its attack() reads /signup and posts it back same-origin, which
// reaches sockmail only after a DNS rebinding, and returns the two
// statuses.
const attackPage = `<!doctype html>
<title>a page on another site</title>
<form id="f" method="post" action="%[1]s/signup">
<input name="email" value="attacker@evil.example">
<input name="password" value="attacker-password">
<input name="confirm" value="attacker-password">
<input name="setup_code" value="AAAA-BBBB-CCCC-DDDD-EEEE">
</form>
<script>
if (location.hash === "#post") document.getElementById("f").submit();
async function attack() {
	const page = await fetch("/signup");
	const html = await page.text();
	const m = html.match(/name="_csrf" value="([^"]+)"/);
	const body = new URLSearchParams({_csrf: m ? m[1] : "", email: "attacker@evil.example",
		password: "attacker-password", confirm: "attacker-password", setup_code: "AAAA-BBBB-CCCC-DDDD-EEEE"});
	const r = await fetch("/signup", {method: "POST", body});
	return page.status + " " + r.status;
}
</script>`

// rebindingProxy is the browser's HTTP proxy, standing in for DNS: every
// host name goes to the attacker's server until rebind() is called, then
// the name "rebind.test" goes to sockmail, as if its DNS answer had
// changed to 127.0.0.1. The Host header is the browser's, as after a
// real rebinding. (Chromium sends loopback addresses direct, not through
// the proxy.)
type rebindingProxy struct {
	attacker, sockmail *url.URL
	rebound            atomic.Bool
}

func (p *rebindingProxy) rebind() { p.rebound.Store(true) }

func (p *rebindingProxy) handler() http.Handler {
	return &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		target := p.attacker
		if p.rebound.Load() && strings.HasPrefix(pr.In.Host, "rebind.test:") {
			target = p.sockmail
		}
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
}

// TestBrowserCrossOriginRefused: in Chromium, a page from a second origin
// (another server, another host name) cannot make the admin account.
// First it posts the sign-up form to sockmail's address: a cross-site
// request, refused (403). Then the DNS rebinding of issue 11: the page's
// own name now leads to sockmail, so its script reads /signup and posts
// it same-origin, Origin matching Host: refused for the foreign Host
// (421). No account exists at the end.
func TestBrowserCrossOriginRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	a := newApp(t, appOptions{})
	sockmailURL := mustURL(a.srv.URL)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, a.srv.URL)
	}))
	t.Cleanup(attacker.Close)
	px := &rebindingProxy{attacker: mustURL(attacker.URL), sockmail: sockmailURL}
	proxy := httptest.NewServer(px.handler())
	t.Cleanup(proxy.Close)
	ctx := browser(t, chromedp.ProxyServer(proxy.URL))

	// A cross-origin form post to sockmail's real address.
	run(t, ctx, "cross-origin sign-up post",
		chromedp.Navigate("http://attacker.test:"+mustURL(attacker.URL).Port()+"/#post"),
		chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), "Cross-site request refused")]`)),
	)
	loc := value(t, ctx, chromedp.Location())
	if !strings.HasPrefix(loc, a.srv.URL+"/signup") {
		t.Errorf("the refusal came from %s, not sockmail", loc)
	}
	screenshot(t, ctx, "crossorigin-refused.png")

	// DNS rebinding: the attacker's page at rebind.test on sockmail's
	// port, then the name points at sockmail.
	run(t, ctx, "open the attacker's page",
		chromedp.Navigate("http://rebind.test:"+sockmailURL.Port()+"/"),
		chromedp.WaitReady(chromedp.CSS("#f")),
	)
	px.rebind()
	got := value(t, ctx, chromedp.Evaluate[string](`attack()`, chromedp.EvalAwaitPromise))
	if got != "421 421" {
		t.Errorf("rebound GET and POST /signup: %q, want \"421 421\"", got)
	}
	if n, err := a.store.CountUsers(context.Background()); err != nil || n != 0 {
		t.Errorf("accounts after the attacks: %d, %v", n, err)
	}
	// At its own address the sign-up page is there, asking for the code.
	run(t, ctx, "the sign-up page at sockmail's address",
		chromedp.Navigate(a.srv.URL+"/signup"),
		chromedp.WaitVisible(tid("input-setup_code")),
	)
	screenshot(t, ctx, "signup-setup-code.png")
	if !strings.Contains(a.logs.String(), "cross-origin request refused") || !strings.Contains(a.logs.String(), `host=rebind.test:`) {
		t.Errorf("the refusals are not in sockmail's log:\n%s", a.logs.String())
	}
}
