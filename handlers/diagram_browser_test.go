package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestDiagramBrowser drives Chromium through the sequence diagram with
// sends to the test Postfix on port 2525 (PIPELINING and CHUNKING
// offered): a CHUNKING send held at its start and at its end, whose
// diagram grows in the open page and is then drawn finished; a send with
// CHUNKING turned off (DATA, pipelined); a recipient Postfix refuses; an
// arrow focused with the keyboard showing its lines; and the compare page
// with the two diagrams on one time scale. Screenshots go to
// $SOCKMAIL_ARTIFACTS.
func TestDiagramBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	pf := testenv.Postfix(t)
	var (
		gate     atomic.Pointer[liveGate]
		noChunks atomic.Bool
		held     atomic.Pointer[smtp.Transcript]
	)
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		cfg.DisableChunking = noChunks.Load()
		if g := gate.Load(); g != nil {
			held.Store(cfg.Transcript)
			return g.send(ctx, cfg, env, msg, opts)
		}
		return smtp.SendMail(ctx, cfg, env, msg, opts)
	}
	// The app first, so that its cleanup runs after the browser's.
	a := newApp(t, appOptions{send: send})
	hold := newLiveGate()
	t.Cleanup(hold.release)
	ctx := browser(t)
	signUpInBrowser(t, ctx, a)

	compose := func(to, subject string) string {
		t.Helper()
		run(t, ctx, "compose to "+pf.SMTPAddr,
			chromedp.Navigate(a.srv.URL+"/compose"),
			chromedp.WaitVisible(tid("compose-form")),
			chromedp.SetValue(tid("input-server"), "adhoc"),
			chromedp.SetValue(tid("input-host"), strings.Split(pf.SMTPAddr, ":")[0]),
			chromedp.SetValue(tid("input-port"), strings.Split(pf.SMTPAddr, ":")[1]),
			chromedp.SetValue(tid("input-tls"), "none"),
			chromedp.SetValue(tid("input-auth_mech"), ""),
			chromedp.SetValue(tid("input-from"), "sender@"+pf.Domain),
			chromedp.SetValue(tid("input-to"), to),
			chromedp.SetValue(tid("input-subject"), subject),
			chromedp.Click(tid("send")),
			chromedp.WaitVisible(`#diagram-box svg[data-testid="diagram"]`),
		)
		return value(t, ctx, chromedp.Location())
	}
	finished := func(what string) {
		t.Helper()
		run(t, ctx, what, chromedp.WaitVisible(`#diagram-box svg[data-testid="diagram"][data-running="false"]`))
	}
	labels := func(from smtp.Direction) []string {
		t.Helper()
		return value(t, ctx, chromedp.Evaluate[[]string](fmt.Sprintf(
			`Array.from(document.querySelectorAll('#diagram-box [data-testid="diagram-arrow"][data-from="%s"]')).map(a => a.getAttribute("data-label"))`, from)))
	}
	checkLabels := func(what string, client, server []string) {
		t.Helper()
		if got := labels(smtp.DirClient); strings.Join(got, "|") != strings.Join(client, "|") {
			t.Errorf("%s: client arrows %q, want %q", what, got, client)
		}
		if got := labels(smtp.DirServer); strings.Join(got, "|") != strings.Join(server, "|") {
			t.Errorf("%s: server arrows %q, want %q", what, got, server)
		}
	}

	// 1. Live, with CHUNKING: held before connecting, the page shows an
	// empty diagram; held after the last line, the diagram app.js fetched
	// shows every flight while the send still runs; then finished.
	gate.Store(hold)
	chunked := compose("rcpt@"+pf.Domain, "diagram live "+testenv.UniqueToken())
	// The page is marked: the grown diagram must come into this page
	// (app.js), not with a reload.
	run(t, ctx, "held: an empty running diagram",
		chromedp.WaitVisible(`#diagram-box svg[data-running="true"][data-flights="0"]`),
		chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`))
	if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="diagram-arrow"]').length`)); n != 0 {
		t.Errorf("held before connecting: %d arrows", n)
	}
	screenshot(t, ctx, "diagram-live-held.png")
	hold.releaseStart()
	select {
	case <-hold.lines:
	case <-time.After(testenv.StallLimit):
		t.Fatal("the send did not end")
	}
	flights := len(smtp.Converse(held.Load().Events()).Flights)
	run(t, ctx, "live: the diagram grows to every flight while the send runs",
		chromedp.WaitVisible(fmt.Sprintf(`body[data-old] #diagram-box svg[data-running="true"][data-flights="%d"]`, flights)),
		chromedp.WaitVisible(`#diagram-box [data-testid="diagram-waiting"], #diagram-box [data-testid="diagram-arrow"]`),
	)
	screenshot(t, ctx, "diagram-live.png")
	gate.Store(nil)
	hold.releaseFinish()
	finished("the held send ends")
	checkLabels("CHUNKING", []string{"EHLO", "MAIL, RCPT, BDAT LAST, QUIT"}, []string{"220", "250", "250 250 250 221"})
	if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#diagram-box [data-testid="diagram-arrow"]').length`)); n != flights {
		t.Errorf("finished: %d arrows for %d flights", n, flights)
	}
	screenshot(t, ctx, "diagram-chunking.png")

	// 2. PIPELINING without CHUNKING: the envelope and DATA in one flight,
	// the message, "." and QUIT in the next.
	noChunks.Store(true)
	pipelined := compose("rcpt@"+pf.Domain+", other@"+pf.Domain, "diagram pipelined "+testenv.UniqueToken())
	finished("the pipelined send ends")
	checkLabels("PIPELINING", []string{"EHLO", "MAIL, RCPT ×2, DATA", `message, ".", QUIT`}, []string{"220", "250", "250 250 250 354", "250 221"})
	screenshot(t, ctx, "diagram-pipelined.png")

	// 3. A recipient Postfix refuses: the failure is marked at its reply.
	compose(testenv.RejectRecipient550, "diagram refused "+testenv.UniqueToken())
	finished("the refused send ends")
	checkLabels("refused", []string{"EHLO", "MAIL, RCPT, DATA", "QUIT"}, []string{"220", "250", "250 550 554", "221"})
	fail := value(t, ctx, chromedp.Evaluate[string](`(function () {
		var f = document.querySelector('#diagram-box [data-testid="diagram-failure"]');
		return f ? f.getAttribute("data-code") + " " + f.textContent : "";
	})()`))
	if !strings.HasPrefix(fail, "550 ") || !strings.Contains(fail, "5.1.1") {
		t.Errorf("failure mark %q", fail)
	}
	screenshot(t, ctx, "diagram-refused.png")

	// 4. Keyboard: focus the first arrow, see its lines; Tab moves on to
	// the next arrow and its lines.
	popup := `(function () {
		var a = document.activeElement;
		if (!a || a.getAttribute("data-testid") !== "diagram-arrow") { return "not on an arrow"; }
		var p = a.querySelector('[data-testid="diagram-lines"]');
		var others = Array.from(document.querySelectorAll('#diagram-box [data-testid="diagram-lines"]')).filter(q => q !== p && getComputedStyle(q).display !== "none");
		return a.getAttribute("data-flight") + "|" + getComputedStyle(p).display + "|" + others.length + "|" + p.textContent;
	})()`
	run(t, ctx, "focus the first arrow",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#diagram-box [data-testid="diagram-arrow"]').focus()`))
	first := value(t, ctx, chromedp.Evaluate[string](popup))
	if f := strings.SplitN(first, "|", 4); len(f) != 4 || f[0] != "0" || f[1] == "none" || f[2] != "0" || !strings.Contains(f[3], "220 ") {
		t.Errorf("focused first arrow: %q", first)
	}
	screenshot(t, ctx, "diagram-focus.png")
	run(t, ctx, "Tab to the next arrow", chromedp.KeyEvent(kb.Tab))
	second := value(t, ctx, chromedp.Evaluate[string](popup))
	if f := strings.SplitN(second, "|", 4); len(f) != 4 || f[0] != "1" || f[1] == "none" || !strings.Contains(f[3], "EHLO") {
		t.Errorf("after Tab: %q", second)
	}
	// Without focus or hover, no lines are shown.
	run(t, ctx, "blur", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	if n := value(t, ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll('[data-testid="diagram-lines"]')).filter(q => getComputedStyle(q).display !== "none").length`)); n != 0 {
		t.Errorf("%d arrows show their lines without focus", n)
	}

	// The mouse over an arrow shows its lines too.
	at := value(t, ctx, chromedp.Evaluate[[]float64](`(function () {
		var a = document.querySelectorAll('#diagram-box [data-testid="diagram-arrow"][data-from="client"]')[1];
		a.scrollIntoView({block: "center"});
		var r = a.querySelector(".dg-line").getBoundingClientRect();
		return [r.x + r.width / 2, r.y + r.height / 2];
	})()`))
	run(t, ctx, "hover over the envelope's arrow", chromedp.MouseEvent(chromedp.MouseMoved, at[0], at[1]))
	hovered := value(t, ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#diagram-box [data-testid="diagram-lines"]')).filter(q => getComputedStyle(q).display !== "none").map(q => q.textContent).join("|")`))
	if !strings.Contains(hovered, "MAIL FROM:<sender@") || strings.Contains(hovered, "|") {
		t.Errorf("hovering over the MAIL arrow shows %q", hovered)
	}
	screenshot(t, ctx, "diagram-hover.png")

	// 5. The compare page: both diagrams on one time scale, drawn at the
	// same size on the screen.
	id := func(loc string) string { return loc[strings.LastIndex(loc, "/")+1:] }
	run(t, ctx, "compare",
		chromedp.Navigate(a.srv.URL+"/history/compare?a="+id(chunked)+"&b="+id(pipelined)),
		chromedp.WaitVisible(`[data-testid="compare-diagrams"] svg[data-testid="diagram"]`),
	)
	scales := value(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[data-testid="compare-diagrams"] svg')).map(s => s.getAttribute("data-px-per-ms") + "@" + (s.getBoundingClientRect().width / s.viewBox.baseVal.width).toFixed(4))`))
	if len(scales) != 2 || scales[0] != scales[1] || strings.HasPrefix(scales[0], "0@") {
		t.Errorf("compare: scales (px per ms @ screen px per unit) %q", scales)
	}
	screenshot(t, ctx, "diagram-compare.png")
}
