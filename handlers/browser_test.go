package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// The browser tests drive Debian's Chromium through chromedp against the
// real router: sign up, sign in, compose with an attachment, watch the
// transcript arrive live, find the message in captured mail; then the
// same against the test Postfix's submission port (STARTTLS + AUTH), and
// a wrong password that must show the 535 explanation.

// artifactsDir is where screenshots go: $SOCKMAIL_ARTIFACTS or a temp dir.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("SOCKMAIL_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browserStart bounds Chromium's start-up. A start that takes longer is
// killed and tried again once, so the test fails or goes on in a minute
// instead of hanging until the package's ten-minute limit (a hang in CI,
// traced to screenshots, left the start unbounded too).
const browserStart = 60 * time.Second

// browser starts a headless Chromium and returns a tab context. extra
// adds command-line options (a proxy, for the DNS rebinding test).
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	var lastErr error
	for attempt := 1; attempt <= 2; attempt++ {
		ctx, out, err := startBrowser(t, path, extra...)
		if err == nil {
			return ctx
		}
		lastErr = fmt.Errorf("attempt %d: %w; chromium said:\n%s", attempt, err, out.String())
		t.Logf("start chromium: %v", lastErr)
	}
	t.Fatalf("start chromium: %v", lastErr)
	return nil
}

// startBrowser starts one Chromium and opens a tab, or kills it when that
// takes longer than browserStart. out collects the browser's own output.
func startBrowser(t *testing.T, path string, extra ...chromedp.ExecAllocatorOption) (context.Context, *syncBuffer, error) {
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.WindowSize(1280, 1000), chromedp.CombinedOutput(out),
	}
	opts = append(opts, extra...)
	for _, a := range testenv.ChromiumArgs(t.TempDir()) {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	// The first run starts the browser; it cannot take a context with a
	// timeout, which would stop the browser with it, so a timer kills it.
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			cancelB()
			cancelA()
			return nil, out, err
		}
	case <-time.After(browserStart):
		cancelB()
		cancelA()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		return nil, out, fmt.Errorf("no tab after %v", browserStart)
	}
	t.Cleanup(func() { cancelB(); cancelA() })
	return ctx, out, nil
}

// screenshot saves the page as an artifact. Headless Chromium now and
// then never answers Page.captureScreenshot (here once in four runs of
// this package; reported for Chrome 147 and later), so each try has a time
// limit: the whole page first, then what the window shows. It fails the
// test, never hangs it, when no try works.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	var errs []error
	for _, shot := range []chromedp.Action[[]byte]{chromedp.FullScreenshot(100), chromedp.CaptureScreenshot()} {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		b, err := chromedp.Run(sctx, shot)
		cancel()
		if err == nil {
			png = b
			break
		}
		errs = append(errs, err)
		t.Logf("screenshot %s: try %d: %v", name, len(errs), err)
	}
	if png == nil {
		t.Errorf("screenshot %s: %v", name, errors.Join(errs...))
		return
	}
	p := filepath.Join(artifactsDir(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("screenshot: %s", p)
}

// signUpInBrowser makes the admin account on a fresh app, as a first
// visitor does with the setup code from the log, and waits for the
// compose page.
func signUpInBrowser(t *testing.T, ctx context.Context, a *app) {
	t.Helper()
	run(t, ctx, "sign up",
		chromedp.Navigate(a.srv.URL+"/"),
		chromedp.WaitVisible(tid("signup-form")),
		chromedp.SendKeys(tid("input-setup_code"), setupCode(t, a)),
		chromedp.SendKeys(tid("input-email"), adminEmail),
		chromedp.SendKeys(tid("input-password"), adminPassword),
		chromedp.SendKeys(tid("input-confirm"), adminPassword),
		chromedp.Click(tid("signup-submit")),
		chromedp.WaitVisible(tid("compose-form")),
	)
}

// run runs steps, bounded by the stall limit (steps that make no progress
// for that long are stuck, not slow), and fails the test with the page's
// location and text when one fails.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, testenv.StallLimit)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		defer lcancel()
		loc, _ := chromedp.Run(lctx, chromedp.Location())
		body, _ := chromedp.Run(lctx, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

// step is an action that calls f: a test's own move between browser steps.
func step(f func()) chromedp.Action[chromedp.Void] {
	return func(context.Context, *chromedp.Target) (chromedp.Void, error) {
		f()
		return chromedp.Void{}, nil
	}
}

// value runs one action that returns a value.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, testenv.StallLimit)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tid selects by data-testid.
func tid(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

// liveGate holds the first send of the browser test at its start until
// the test has seen the result page open and running, and at its end
// until the test has seen every line of the transcript streamed into the
// page: the moments the test checks come in order, whatever the speed of
// the machine. Once released, sends pass straight through.
type liveGate struct {
	start, finish chan struct{}
	lines         chan int // the number of transcript lines of the held send
	once          [2]sync.Once
}

func newLiveGate() *liveGate {
	return &liveGate{start: make(chan struct{}), finish: make(chan struct{}), lines: make(chan int, 1)}
}

// release lets every send through; a test registers it as a cleanup
// after the app's, so that it runs before the app shuts down.
func (g *liveGate) release() { g.releaseStart(); g.releaseFinish() }

func (g *liveGate) releaseStart()  { g.once[0].Do(func() { close(g.start) }) }
func (g *liveGate) releaseFinish() { g.once[1].Do(func() { close(g.finish) }) }

// send is the SendFunc: the real send between the two holds.
func (g *liveGate) send(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
	cfg.Transcript.Info(smtp.PhaseConnect, "test: holding the send until the browser shows it running")
	select {
	case <-g.start:
	case <-ctx.Done():
		return &smtp.Result{}, ctx.Err()
	}
	res, err := smtp.SendMail(ctx, cfg, env, msg, opts)
	select {
	case g.lines <- len(cfg.Transcript.Events()):
	default: // not the held send
	}
	select {
	case <-g.finish:
	case <-ctx.Done():
	}
	return res, err
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx := browser(t)
	gate := newLiveGate()
	a := newApp(t, appOptions{send: gate.send, rootCAs: postfixRoots(t)})
	t.Cleanup(gate.release)
	base := a.srv.URL

	// First visit: create the admin account.
	signUpInBrowser(t, ctx, a)
	// Sign out and in again.
	run(t, ctx, "sign out and in",
		chromedp.Click(tid("signout")),
		chromedp.WaitVisible(tid("signin-form")),
		chromedp.SendKeys(tid("input-email"), adminEmail),
		chromedp.SendKeys(tid("input-password"), adminPassword),
		chromedp.Click(tid("signin-submit")),
		chromedp.WaitVisible(tid("compose-form")),
	)

	// Compose to the built-in capture server with an attachment.
	att := filepath.Join(t.TempDir(), "report.txt")
	if err := os.WriteFile(att, []byte("attached from the browser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	subject := "browser test " + testenv.UniqueToken()
	run(t, ctx, "compose",
		chromedp.SetValue(tid("input-subject"), subject),
		chromedp.SetValue(tid("input-to"), "Someone <someone@example.test>"),
		chromedp.SetUploadFiles(tid("input-attachments"), []string{att}),
	)
	screenshot(t, ctx, "compose.png")
	run(t, ctx, "send: the result page opens while the send is held",
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
	run(t, ctx, "watch the transcript live",
		// Lines added by the event stream carry data-live; the server
		// reply lines can only have come that way while running.
		chromedp.WaitVisible(chromedp.CSS(`li[data-live="true"][data-dir="server"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll('li[data-testid="event"]').length >= %d`, lines),
			chromedp.WithPollingTimeout(0)),
	)
	streamed := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('li[data-live="true"]').length`))
	gate.releaseFinish()
	if streamed < 5 {
		t.Errorf("only %d lines streamed live", streamed)
	}
	run(t, ctx, "result", chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)))
	status := value(t, ctx, chromedp.Text(tid("status")))
	queue := value(t, ctx, chromedp.Text(tid("queue-id")))
	if strings.TrimSpace(status) != "sent" || !strings.HasPrefix(strings.TrimSpace(queue), "C") {
		t.Errorf("status %q queue %q", status, queue)
	}
	screenshot(t, ctx, "result.png")

	run(t, ctx, "captured mail",
		chromedp.Navigate(base+"/captured"),
		chromedp.WaitVisible(tid("captured-list")),
	)
	list := value(t, ctx, chromedp.Text(tid("captured-list")))
	run(t, ctx, "captured message",
		chromedp.Click(chromedp.Search(`//a[@data-testid="captured-subject"][normalize-space(.)="`+subject+`"]`)),
		chromedp.WaitVisible(tid("attachments")),
	)
	atts := value(t, ctx, chromedp.Text(tid("attachments")))
	if !strings.Contains(list, subject) || !strings.Contains(atts, "report.txt") {
		t.Errorf("captured list %q, attachments %q", list, atts)
	}
	screenshot(t, ctx, "captured.png")

	t.Run("postfix submission with STARTTLS and AUTH", func(t *testing.T) {
		pf := testenv.Postfix(t)
		host, port := splitHostPort(t, pf.SubmissionAddr)
		subject := "postfix browser test " + testenv.UniqueToken()
		composeAdhoc(t, ctx, base, host, port, pf.User, pf.Password, subject, "rcpt@"+pf.Domain)
		run(t, ctx, "postfix result", chromedp.WaitVisible(chromedp.CSS(`[data-testid="transcript"][data-running="false"]`)))
		if status := value(t, ctx, chromedp.Text(tid("status"))); strings.TrimSpace(status) != "sent" {
			t.Fatalf("status %q\n%s", status, value(t, ctx, chromedp.Text(tid("transcript"))))
		}
		screenshot(t, ctx, "result-postfix.png")
		testenv.WaitForMessage(t, pf.Maildir, subject, testenv.StallLimit)
	})

	t.Run("wrong password shows the 535 explanation", func(t *testing.T) {
		pf := testenv.Postfix(t)
		host, port := splitHostPort(t, pf.SubmissionAddr)
		composeAdhoc(t, ctx, base, host, port, pf.User, "not-the-password", "should not arrive", "rcpt@"+pf.Domain)
		run(t, ctx, "explanation", chromedp.WaitVisible(tid("explanation")))
		code := value(t, ctx, chromedp.Text(tid("explanation-code")))
		text := value(t, ctx, chromedp.Text(tid("explanation")))
		if !strings.HasPrefix(strings.TrimSpace(code), "535") || !strings.Contains(text, "bad credentials") {
			t.Errorf("explanation %q: %q", code, text)
		}
		screenshot(t, ctx, "result-535.png")
	})
}

// composeAdhoc fills the compose form for another server and sends.
func composeAdhoc(t *testing.T, ctx context.Context, base, host, port, user, password, subject, to string) {
	t.Helper()
	run(t, ctx, "compose ad hoc",
		chromedp.Navigate(base+"/compose"),
		chromedp.WaitVisible(tid("compose-form")),
		chromedp.SetValue(tid("input-server"), "adhoc"),
		chromedp.SetValue(tid("input-host"), host),
		chromedp.SetValue(tid("input-port"), port),
		chromedp.SetValue(tid("input-tls"), "starttls"),
		chromedp.SetValue(tid("input-auth_mech"), "PLAIN"),
		chromedp.SetValue(tid("input-username"), user),
		chromedp.SetValue(tid("input-password"), password),
		chromedp.SetValue(tid("input-from"), user),
		chromedp.SetValue(tid("input-to"), to),
		chromedp.SetValue(tid("input-subject"), subject),
		chromedp.Click(tid("send")),
		chromedp.WaitVisible(tid("transcript")),
	)
}
