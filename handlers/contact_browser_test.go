package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// The contact form in a real browser: a static page on another origin
// (http://localhost:<port> while sockmail is http://127.0.0.1:<port>)
// embeds the snippet copied from the form's admin page; Chromium submits
// it, goes through the confirmation page to the thank-you page, and the
// outbox worker delivers the message to the capture server, where the
// test reads it back. Then the same with the fetch() snippet (CORS, JSON)
// and with a success URL on the site (a cross-origin redirect after the
// confirmation page, which its CSP must allow).

// staticSite serves pages at http://localhost:<port>/, another origin
// than sockmail's 127.0.0.1.
func staticSite(t *testing.T, pages map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	return "http://localhost:" + port
}

// createFormInAdmin creates a form through the admin pages and returns it
// with its two snippets as the form page shows them.
func createFormInAdmin(t *testing.T, a *contactApp, c *client, slug, origin, successURL string) (*store.Form, string, string) {
	t.Helper()
	vals := newFormValues(c.csrf("/forms/new"))
	vals.Set("slug", slug)
	vals.Set("allowed_origins", origin)
	vals.Set("success_url", successURL)
	vals.Set("captcha_provider", "")
	vals.Del("allow_uploads")
	r := c.post("/forms", vals)
	if r.status != http.StatusSeeOther {
		t.Fatalf("create form: %d\n%s", r.status, r.body)
	}
	page := c.get(r.header.Get("Location"))
	f, err := a.store.FormBySlug(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return f, page.testid(t, "snippet-plain").Text(), page.testid(t, "snippet-fetch").Text()
}

// waitCaptured waits for a captured message whose subject is subject.
func waitCaptured(t *testing.T, a *contactApp, subject string) *mail.Message {
	t.Helper()
	var found *store.Captured
	// The state is the outbox: while its items move, the worker is at it.
	waitProgress(t, "captured message "+subject, time.Minute, func() (bool, string) {
		list, err := a.store.ListCaptured(context.Background(), 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range list {
			if list[i].Subject == subject {
				found = &list[i]
				return true, ""
			}
		}
		items, err := a.store.ListOutbox(context.Background(), store.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return false, fmt.Sprintf("%d captured, outbox %v", len(list), outboxStates(items))
	})
	full, err := a.store.Captured(context.Background(), found.ID)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(full.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(full.Rcpts, ",") != "owner@example.test,boss@example.test" || full.MailFrom != "web@example.test" {
		t.Errorf("envelope %s -> %v", full.MailFrom, full.Rcpts)
	}
	return msg
}

// outboxStates sums up the outbox: each item's status and attempts.
func outboxStates(items []store.OutboxItem) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%d:%s/%d ", it.ID, it.Status, it.Attempts)
	}
	return b.String()
}

func TestContactFormInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx := browser(t)
	// The real clock: the items are due when the worker looks.
	a := newContactApp(t, contactOptions{worker: true, realClock: true})
	admin := a.client()
	admin.signUp()

	pages := map[string]string{}
	site := staticSite(t, pages)
	f, plain, fetch := createFormInAdmin(t, a, admin, "homepage", site, "")
	if !strings.Contains(plain, `action="`+a.srv.URL+`/f/homepage"`) {
		t.Fatalf("snippet endpoint:\n%s", plain)
	}
	const head = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example site</title></head><body><h1>Contact us</h1>\n"
	pages["/"] = head + plain + "</body></html>"
	pages["/fetch.html"] = head + fetch + "</body></html>"
	pages["/thanks.html"] = head + "<p id=\"site-thanks\">Thanks from the site itself.</p></body></html>"

	t.Run("plain snippet, no JavaScript needed", func(t *testing.T) {
		who := "Ada " + testenv.UniqueToken()
		run(t, ctx, "fill the site's form",
			chromedp.Navigate(site+"/"),
			chromedp.WaitVisible(`textarea[name="message"]`),
			chromedp.SendKeys(`input[name="name"]`, who),
			chromedp.SendKeys(`input[name="email"]`, "ada@visitor.test"),
			chromedp.SendKeys(`textarea[name="message"]`, "Hello from another origin.\nSecond line."),
		)
		// The visitor reads the confirmation page for a moment (the time
		// trap wants 3 s): its token is issued in the past.
		a.issueInPast(t, func() {
			run(t, ctx, "submit", chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible(tid("contact-confirm")))
		})
		screenshot(t, ctx, "contact-confirm.png")
		if loc := value(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, a.srv.URL+"/f/homepage") {
			t.Fatalf("confirmation at %s", loc)
		}
		run(t, ctx, "confirm",
			chromedp.Click(tid("contact-send")),
			chromedp.WaitVisible(tid("contact-thanks")),
		)
		screenshot(t, ctx, "contact-thanks.png")
		back := value(t, ctx, chromedp.AttributeValue(tid("contact-back"), "href")).Value
		if back != site+"/" {
			t.Errorf("back link %q", back)
		}
		m := waitCaptured(t, a, "Contact from "+who)
		if rt := m.Header.Get("Reply-To"); rt != who+" <ada@visitor.test>" {
			t.Errorf("Reply-To %q", rt)
		}
		if from := m.Header.Get("From"); from != "Homepage <web@example.test>" {
			t.Errorf("From %q", from)
		}
		// The worker records the outcome just after the server's answer,
		// which may come after the message is read back.
		var subs []store.Submission
		waitProgress(t, "submission sent", time.Minute, func() (bool, string) {
			subs = a.submissions(t, f)
			return len(subs) == 1 && subs[0].Status == store.SubmissionSent, fmt.Sprintf("%+v", subs)
		})
		if len(subs) != 1 || subs[0].Origin != site {
			t.Errorf("submission %+v", subs)
		}
	})

	t.Run("fetch snippet, JSON across origins", func(t *testing.T) {
		who := "Bob " + testenv.UniqueToken()
		// The token is fetched when the page loads, issued in the past so
		// that it is old enough when the visitor sends.
		a.issueInPast(t, func() {
			run(t, ctx, "load the fetch form",
				chromedp.Navigate(site+"/fetch.html"),
				chromedp.WaitVisible(`#contact-form textarea[name="message"]`),
				chromedp.Poll[chromedp.Void](`performance.getEntriesByType("resource").some(function (e) { return e.name.indexOf("/token") > 0; })`),
			)
		})
		run(t, ctx, "fill the fetch form",
			chromedp.SendKeys(`input[name="name"]`, who),
			chromedp.SendKeys(`input[name="email"]`, "bob@visitor.test"),
			chromedp.SendKeys(`textarea[name="message"]`, "Sent with fetch()."),
		)
		run(t, ctx, "send",
			chromedp.Click(`#contact-form button[type="submit"]`),
			chromedp.Poll[chromedp.Void](`document.querySelector(".contact-status").textContent.indexOf("Thank you") === 0`),
		)
		screenshot(t, ctx, "contact-fetch.png")
		if loc := value(t, ctx, chromedp.Location()); loc != site+"/fetch.html" {
			t.Errorf("the page left for %s", loc)
		}
		m := waitCaptured(t, a, "Contact from "+who)
		if rt := m.Header.Get("Reply-To"); rt != who+" <bob@visitor.test>" {
			t.Errorf("Reply-To %q", rt)
		}
	})

	t.Run("success URL on the site", func(t *testing.T) {
		f2, plain2, _ := createFormInAdmin(t, a, admin, "homepage-2", site, site+"/thanks.html")
		pages["/two.html"] = head + plain2 + "</body></html>"
		who := "Cy " + testenv.UniqueToken()
		run(t, ctx, "fill",
			chromedp.Navigate(site+"/two.html"),
			chromedp.WaitVisible(`textarea[name="message"]`),
			chromedp.SendKeys(`input[name="name"]`, who),
			chromedp.SendKeys(`input[name="email"]`, "cy@visitor.test"),
			chromedp.SendKeys(`textarea[name="message"]`, "Back to the site afterwards."),
		)
		a.issueInPast(t, func() {
			run(t, ctx, "submit", chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible(tid("contact-confirm")))
		})
		run(t, ctx, "confirm and land on the site",
			chromedp.Click(tid("contact-send")),
			chromedp.WaitVisible(`#site-thanks`),
		)
		waitCaptured(t, a, "Contact from "+who)
		if n := len(a.submissions(t, f2)); n != 1 {
			t.Errorf("%d submissions", n)
		}
	})

	// The admin sees the delivered messages in the outbox, with a link
	// to each attempt's transcript (once the worker has recorded the last
	// outcome, just after the server's answer).
	waitProgress(t, "three items sent", time.Minute, func() (bool, string) {
		n := admin.get("/outbox?status=sent").testid(t, "outbox-row").Length()
		return n == 3, fmt.Sprint(n, " sent rows")
	})
	r := admin.get("/outbox?status=sent")
	if r.testid(t, "outbox-row").Length() != 3 || r.testid(t, "outbox-send").Length() != 3 {
		t.Errorf("outbox: %d sent rows, %d transcript links\n%s", r.testid(t, "outbox-row").Length(), r.testid(t, "outbox-send").Length(), r.body)
	}
	href, _ := r.testid(t, "outbox-send").First().Attr("href")
	if send := admin.get(href); send.status != http.StatusOK {
		t.Errorf("transcript %s: %d", href, send.status)
	}
}
