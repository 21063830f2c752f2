package handlers_test

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"sockmail/smtp"
)

// TestCancelBrowser drives Chromium through a cancel: a send to a server
// that stalls at MAIL FROM streams live, the Cancel button stops it, and
// the page that follows shows it aborted with the transcript up to where
// it stopped; the live stream is over and no Cancel button is left.
func TestCancelBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	addr, _ := stallingServer(t)
	host, port, _ := net.SplitHostPort(addr)
	// The app first, so that its cleanup runs after the browser's.
	a := newApp(t, appOptions{})
	ctx := browser(t)
	signUpInBrowser(t, ctx, a)
	run(t, ctx, "send to the stalling server",
		chromedp.SetValue(tid("input-server"), "adhoc"),
		chromedp.SetValue(tid("input-host"), host),
		chromedp.SetValue(tid("input-port"), port),
		chromedp.SetValue(tid("input-tls"), "none"),
		chromedp.Click(tid("send")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="true"]`)),
		chromedp.WaitVisible(tid("cancel")),
	)
	// Wait for the live stream to show MAIL FROM: the send now waits.
	run(t, ctx, "watch it stall",
		chromedp.Poll[chromedp.Void](`Array.from(document.querySelectorAll('[data-testid="event-line"]')).some(e => e.textContent.startsWith("MAIL FROM"))`),
	)
	screenshot(t, ctx, "result-running-cancel.png")
	run(t, ctx, "cancel",
		chromedp.Click(tid("cancel")),
		chromedp.WaitVisible(tid("flash")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)),
	)
	if got := strings.TrimSpace(value(t, ctx, chromedp.Text(tid("status")))); got != string(smtp.StatusAborted) {
		t.Errorf("status %q, want aborted", got)
	}
	if got := value(t, ctx, chromedp.Text(tid("flash"))); !strings.Contains(got, "was cancelled") {
		t.Errorf("flash %q", got)
	}
	tr := value(t, ctx, chromedp.Text(tid("transcript")))
	for _, want := range []string{"MAIL FROM", "cancelled by " + adminEmail} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
	if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="cancel"]').length`)); n != 0 {
		t.Errorf("%d cancel buttons on the ended send", n)
	}
	screenshot(t, ctx, "result-cancelled.png")
}
