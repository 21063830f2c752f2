package handlers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sockmail/internal/testenv"
)

// TestLiveTranscriptMatchesFinished watches a send to the test Postfix
// live in Chromium, held once every line has been recorded and before its
// outcome is stored, and checks that the transcript streamed into the
// page reads, line for line, as the finished page's. Before the stream
// sent server-rendered rounds, app.js drew lines itself and timed a phase
// from its first line to its last (a connect of 1.5 ms) where the
// finished page timed it to the next phase (1,204 ms): the two disagreed.
func TestLiveTranscriptMatchesFinished(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	pf := testenv.Postfix(t)
	host, port := splitHostPort(t, pf.SMTPAddr)
	ctx := browser(t)
	gate := newLiveGate()
	a := newApp(t, appOptions{send: gate.send})
	t.Cleanup(gate.release)
	signUpInBrowser(t, ctx, a)
	run(t, ctx, "send to the test Postfix, pipelined",
		chromedp.SetValue(tid("input-server"), "adhoc"),
		chromedp.SetValue(tid("input-host"), host),
		chromedp.SetValue(tid("input-port"), port),
		chromedp.SetValue(tid("input-tls"), "none"),
		chromedp.SetValue(tid("input-from"), "sender@"+pf.Domain),
		chromedp.SetValue(tid("input-to"), "one@"+pf.Domain+", elsewhere@relay.invalid"),
		chromedp.SetValue(tid("input-subject"), "live "+testenv.UniqueToken()),
		chromedp.Click(tid("send")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="true"]`)),
	)
	gate.releaseStart()
	var lines int
	select {
	case lines = <-gate.lines:
	case <-time.After(testenv.StallLimit):
		t.Fatal("the send did not end")
	}
	run(t, ctx, "watch every line arrive live",
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll('li[data-testid="event"]').length >= %d`, lines),
			chromedp.WithPollingTimeout(0)),
	)
	streamed := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('li[data-live="true"][data-dir="server"]').length`))
	if streamed == 0 {
		t.Error("no server line came by the stream")
	}
	const text = `document.getElementById("transcript").innerText`
	live := value(t, ctx, chromedp.Evaluate[string](text))
	screenshot(t, ctx, "transcript-live.png")
	gate.releaseFinish()
	run(t, ctx, "the finished page", chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)))
	finished := value(t, ctx, chromedp.Evaluate[string](text))
	screenshot(t, ctx, "transcript-finished.png")

	ll, fl := strings.Split(live, "\n"), strings.Split(finished, "\n")
	for i := range max(len(ll), len(fl)) {
		var l, f string
		if i < len(ll) {
			l = ll[i]
		}
		if i < len(fl) {
			f = fl[i]
		}
		if l != f {
			t.Fatalf("line %d differs:\n live     %q\n finished %q\nlive:\n%s\nfinished:\n%s", i+1, l, f, live, finished)
		}
	}
	for _, want := range []string{"connect took", "waited", "RCPT TO:<elsewhere@relay.invalid>", "554 5.7.1", "BDAT"} {
		if !strings.Contains(finished, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, finished)
		}
	}
}
