package handlers_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestHistoryBrowser drives Chromium through the history on each backend:
// a send from the compose form, found by a transcript search, its detail
// page, a re-send to the capture server watched live, the comparison of
// the two, and a delete.
func TestHistoryBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	onBothBackends(t, func(t *testing.T, backend string) {
		// The first send goes straight through; the re-send is held at its
		// start and at its end, so that the browser sees it running and
		// its lines arriving, whatever the machine's speed.
		var gate atomic.Pointer[liveGate]
		send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
			if g := gate.Load(); g != nil {
				return g.send(ctx, cfg, env, msg, opts)
			}
			return smtp.SendMail(ctx, cfg, env, msg, opts)
		}
		// The app first, so that its cleanup runs after the browser's.
		a := newHistoryApp(t, historyOptions{backend: backend, send: send})
		held := newLiveGate()
		t.Cleanup(held.release)
		ctx := browser(t)
		signUpInBrowser(t, ctx, a)
		token := testenv.UniqueToken()
		run(t, ctx, "send",
			chromedp.SetValue(tid("input-subject"), "history "+token),
			chromedp.Click(tid("send")),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)),
		)
		queue := strings.TrimSpace(value(t, ctx, chromedp.Text(tid("queue-id"))))

		run(t, ctx, "history",
			chromedp.Click(chromedp.CSS(`nav a[href="/history"]`)),
			chromedp.WaitVisible(tid("history-list")),
			// A transcript search: the queue id is in the server's last reply.
			chromedp.SetValue(tid("input-q"), queue),
			// The click starts a navigation: mark the old page so that the
			// wait is for the list of the new one.
			chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
			chromedp.Click(tid("filter")),
			chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) [data-testid="history-list"]`)),
		)
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="history-row"]').length`)); n != 1 {
			t.Fatalf("search for %q: %d rows", queue, n)
		}
		screenshot(t, ctx, "history-"+backend+".png")

		run(t, ctx, "detail",
			chromedp.Click(tid("history-link")),
			chromedp.WaitVisible(tid("resend-form")),
		)
		if got := value(t, ctx, chromedp.Text(tid("started-by"))); got != adminEmail {
			t.Errorf("started by %q", got)
		}
		screenshot(t, ctx, "history-detail-"+backend+".png")
		first := value(t, ctx, chromedp.Location())

		gate.Store(held)
		run(t, ctx, "re-send to the capture server, live",
			chromedp.SetValue(tid("input-server"), "builtin"),
			chromedp.Click(tid("resend")),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="true"]`)),
			step(held.releaseStart),
			chromedp.WaitVisible(chromedp.CSS(`li[data-live="true"][data-dir="server"]`)),
			step(held.releaseFinish),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)),
			chromedp.WaitVisible(tid("parent")),
		)
		if got := strings.TrimSpace(value(t, ctx, chromedp.Text(tid("status")))); got != "sent" {
			t.Errorf("re-send status %q", got)
		}
		run(t, ctx, "compare",
			chromedp.Click(tid("compare-parent")),
			chromedp.WaitVisible(tid("compare")),
		)
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="compare-row"]').length`)); n < 8 {
			t.Errorf("%d compared rows", n)
		}
		screenshot(t, ctx, "history-compare-"+backend+".png")

		run(t, ctx, "delete",
			chromedp.Navigate(first),
			chromedp.WaitVisible(tid("delete-form")),
			chromedp.Click(tid("delete")),
			chromedp.WaitVisible(tid("flash")),
		)
		if got := value(t, ctx, chromedp.Text(tid("flash"))); !strings.Contains(got, "were deleted") {
			t.Errorf("flash %q", got)
		}
		if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="history-row"]').length`)); n != 1 {
			t.Errorf("%d sends left, want the re-send", n)
		}
		if backend == store.BackendSQLite {
			screenshot(t, ctx, "history-after-delete.png")
		}
	})
}
