package handlers_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// waitJS waits, without a time limit of its own (run bounds it by the
// stall limit), until a JavaScript expression is true in the page. A
// navigation under way (a form just submitted) ends a poll early: it is
// polled again in the new page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		for {
			v, err := poll(ctx, tg)
			if err == nil || ctx.Err() != nil || !navigating(err) {
				return v, err
			}
		}
	}
}

// navigating reports whether err is a page going away under a script.
func navigating(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "navigated or closed") || strings.Contains(msg, "context was destroyed") ||
		strings.Contains(msg, "Cannot find context")
}

// rowsJS counts the rows of the captured-mail list whose subject contains s.
func rowsJS(s string) string {
	return `Array.from(document.querySelectorAll('[data-testid="captured-subject"]')).filter(a => a.textContent.includes(` +
		strconv.Quote(s) + `)).length`
}

// TestCapturedBrowser drives captured mail in Chromium: a search narrows
// the list, a row's Delete removes that message, a message sent to the
// capture server while the list is open appears in it live, the message's
// tabs switch (click and arrow keys) and show the inline image, a
// release through a saved profile to the test Postfix opens its live
// result page, which ends "sent"; delete all from a message empties the
// list, which then shows a new message live.
func TestCapturedBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	pf := testenv.Postfix(t)
	ctx := browser(t)
	a := newApp(t, appOptions{rootCAs: postfixRoots(t)})
	signUpInBrowser(t, ctx, a)
	base := a.srv.URL
	token := testenv.UniqueToken()
	profile := saveProfile(t, a.store, "test postfix", pf.SMTPAddr, smtp.TLSStartTLS)
	captureRaw(t, a, "Subject: alpha "+token+"\n\nfirst\n")
	captureRaw(t, a, "Subject: beta "+token+"\n\nsecond\n")

	run(t, ctx, "search",
		chromedp.Navigate(base+"/captured"),
		chromedp.WaitVisible(tid("captured-list")),
		waitJS(rowsJS(token)+` === 2`),
		chromedp.SetValue(tid("input-q"), "subject:alpha"),
		chromedp.Click(tid("search")),
		waitJS(`location.search.includes("q=subject")`),
		waitJS(rowsJS(token)+` === 1 && `+rowsJS("alpha "+token)+` === 1`),
	)
	screenshot(t, ctx, "captured-search.png")

	run(t, ctx, "delete one",
		chromedp.Navigate(base+"/captured"),
		waitJS(rowsJS(token)+` === 2`),
		chromedp.Click(chromedp.Search(`//tr[.//a[contains(., "beta `+token+`")]]//button[@data-testid="row-delete"]`)),
		waitJS(`document.querySelector('[data-testid="flash"]') !== null`),
		waitJS(rowsJS(token)+` === 1 && `+rowsJS("beta "+token)+` === 0`),
	)

	// The list is open; a message arrives at the capture server.
	live := "live " + token
	run(t, ctx, "live update", step(func() {
		captureRaw(t, a, htmlWithImageSubject(live))
	}), waitJS(rowsJS(live)+` === 1`),
		waitJS(`document.querySelector('[data-testid="captured-live"]').textContent.includes(`+strconv.Quote(live)+`)`))
	screenshot(t, ctx, "captured-live.png")

	run(t, ctx, "message tabs",
		chromedp.Click(chromedp.Search(`//a[@data-testid="captured-subject"][contains(., "`+live+`")]`)),
		chromedp.WaitVisible(tid("captured-tabs")),
		waitJS(`document.getElementById("tab-html").getAttribute("aria-selected") === "true"`),
		// The inline image loads inside the sandboxed frame.
		waitJS(`(() => { const d = document.querySelector('[data-testid="html-body"]').contentDocument;
			return d && d.images.length > 0 && d.images[0].complete && d.images[0].naturalWidth === 1; })()`),
		chromedp.Click(tid("tab-text")),
		chromedp.WaitVisible(tid("text-body")),
		waitJS(`document.getElementById("panel-html").hidden && location.search.includes("tab=text")`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("tab-text").dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}))`),
		waitJS(`document.activeElement.id === "tab-headers" && document.getElementById("tab-headers").getAttribute("aria-selected") === "true"`),
		chromedp.WaitVisible(tid("headers")),
	)
	screenshot(t, ctx, "captured-tabs.png")

	rcpt := "browser-release-" + token + "@" + pf.Domain
	run(t, ctx, "release",
		chromedp.SetValue(tid("input-profile"), strconv.FormatInt(profile, 10)),
		chromedp.SetValue(tid("input-rcpts"), rcpt),
		chromedp.Click(tid("release")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)),
	)
	if status := strings.TrimSpace(value(t, ctx, chromedp.Text(tid("status")))); status != "sent" {
		t.Errorf("release status %q\n%s", status, value(t, ctx, chromedp.Text(tid("transcript"))))
	}
	screenshot(t, ctx, "captured-release.png")
	if got := string(testenv.WaitForMessage(t, pf.Maildir, "Subject: "+live, testenv.StallLimit)); !strings.Contains(got, "To: b@example.test") {
		t.Errorf("released message:\n%s", got)
	}

	// Delete all from a message, then the empty list shows a message
	// captured while it is open.
	again := "after delete all " + token
	run(t, ctx, "delete all, then a live row in the empty list",
		chromedp.Navigate(base+"/captured"),
		chromedp.Click(chromedp.Search(`//a[@data-testid="captured-subject"][contains(., "`+live+`")]`)),
		chromedp.WaitVisible(tid("delete-all-form")),
		chromedp.Click(tid("delete-all-confirm")),
		chromedp.Click(tid("delete-all")),
		chromedp.WaitVisible(tid("no-captured")),
		waitJS(`document.querySelector('[data-testid="captured-list"]').hidden`),
		step(func() { captureRaw(t, a, "Subject: "+again+"\n\nx\n") }),
		waitJS(rowsJS(again)+` === 1 && !document.querySelector('[data-testid="captured-list"]').hidden`),
		waitJS(`document.querySelector('[data-testid="no-captured"]').hidden`),
		waitJS(`document.querySelector('[data-testid="captured-total"]').textContent === "1 message captured."`),
	)
	screenshot(t, ctx, "captured-after-delete-all.png")
}

// htmlWithImageSubject is htmlWithImage with another subject.
func htmlWithImageSubject(subject string) string {
	return strings.Replace(htmlWithImage, "Subject: pictures", "Subject: "+subject, 1)
}
