package handlers_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"sockmail/internal/testenv"
)

// gatedServer is an SMTP server whose greeting waits for the test: it
// accepts one connection, sends 220 once gate is closed, then answers
// EHLO (no STARTTLS) and QUIT.
func gatedServer(t *testing.T, gate <-chan struct{}) string {
	t.Helper()
	return gatedServerAs(t, gate, "gate.test")
}

// gatedServerAs is gatedServer greeting as name.
func gatedServerAs(t *testing.T, gate <-chan struct{}, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		<-gate
		r := bufio.NewReader(conn)
		_, _ = io.WriteString(conn, "220 "+name+" ESMTP\r\n")
		if _, err := r.ReadString('\n'); err != nil { // EHLO
			return
		}
		_, _ = io.WriteString(conn, "250-gate.test\r\n250 SIZE 1000000\r\n")
		if _, err := r.ReadString('\n'); err != nil { // QUIT
			return
		}
		_, _ = io.WriteString(conn, "221 gate.test bye\r\n")
	}()
	return ln.Addr().String()
}

// TestCheckLiveBrowser drives Chromium through a check whose server
// holds its greeting until the test says: the page shows the partial
// report (the host and its reverse DNS, no SMTP finding yet) streamed
// live, then, once the greeting is let through, the finished report.
func TestCheckLiveBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	d := testenv.DNS(t)
	gate := make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	addr := gatedServer(t, gate)
	a := newApp(t, appOptions{checkResolver: d.Resolver})
	ctx := browser(t)
	signUpInBrowser(t, ctx, a)
	run(t, ctx, "start the check",
		chromedp.Navigate(a.srv.URL+"/checks"),
		chromedp.WaitVisible(tid("check-form")),
		chromedp.SendKeys(tid("input-target"), addr),
		chromedp.Click(tid("check-submit")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="check-status"][data-running="true"]`)),
		// The reverse DNS of 127.0.0.1 comes in before the greeting.
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="check-live"] [data-testid="finding"][data-id="addr.ptr"], [data-testid="check-live"] [data-testid="finding"][data-id="addr.fcrdns"]`)),
	)
	screenshot(t, ctx, "check-running.png")
	partial := value(t, ctx, chromedp.Text(tid("check-live")))
	if !strings.Contains(partial, "127.0.0.1") || strings.Contains(partial, "answered in") {
		t.Errorf("partial report: want the host and no SMTP finding yet:\n%s", partial)
	}
	if n := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="finding"][data-id="smtp.connect"]').length`)); n != 0 {
		t.Errorf("%d smtp.connect findings before the greeting", n)
	}
	release()
	run(t, ctx, "the finished report",
		chromedp.WaitVisible(tid("check-outcome")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="finding"][data-id="smtp.connect"][data-status="pass"]`)),
	)
	screenshot(t, ctx, "check-done.png")
	if got := value(t, ctx, chromedp.Text(tid("check-outcome"))); got != "fail" {
		t.Errorf("outcome %q, want fail (no STARTTLS)", got)
	}
	if got := value(t, ctx, chromedp.Text(`[data-testid="finding"][data-id="tls.starttls"]`)); !strings.Contains(got, "does not offer STARTTLS") {
		t.Errorf("tls.starttls finding %q", got)
	}
	if got := value(t, ctx, chromedp.Text(tid("suggested-profile"))); !strings.Contains(got, "TLS none") {
		t.Errorf("suggested profile %q, want TLS none", got)
	}
}
