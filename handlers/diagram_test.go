package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// diagramOf fetches a send's diagram fragment and parses it.
func diagramOf(t *testing.T, c *client, path string) *goquery.Selection {
	t.Helper()
	r := c.get(path + "/diagram")
	if r.status != http.StatusOK {
		t.Fatalf("GET %s/diagram: %d\n%s", path, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content type %q", ct)
	}
	svg := r.doc(t).Find(`svg[data-testid="diagram"]`)
	if svg.Length() != 1 {
		t.Fatalf("no diagram in\n%s", r.body)
	}
	return svg
}

// arrowLabels lists the labels of a diagram's arrows from one side.
func arrowLabels(svg *goquery.Selection, from smtp.Direction) []string {
	var out []string
	svg.Find(`[data-testid="diagram-arrow"][data-from="` + string(from) + `"]`).Each(func(_ int, s *goquery.Selection) {
		l, _ := s.Attr("data-label")
		out = append(out, l)
	})
	return out
}

// adhocForm is the compose form for a send to 127.0.0.1:PORT without TLS
// or AUTH (the test Postfix's port 2525).
func adhocForm(tok, addr, to, subject string) url.Values {
	host, port, _ := strings.Cut(addr, ":")
	return url.Values{
		"_csrf": {tok}, "server": {"adhoc"}, "host": {host}, "port": {port}, "tls": {"none"},
		"from": {"sender@example.test"}, "to": {to}, "subject": {subject}, "text": {"Hello.\n"},
	}
}

// TestDiagramRoute draws a send to the test Postfix live and finished:
// while the send is held at its start the diagram has no arrow yet; held
// at its end (every line recorded, the send still running) it has one
// arrow per flight of the live transcript; finished, the same arrows from
// the stored transcript, and a refused recipient marked.
func TestDiagramRoute(t *testing.T) {
	pf := testenv.Postfix(t)
	gate := newLiveGate()
	var held atomic.Pointer[smtp.Transcript]
	send := func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		held.Store(cfg.Transcript)
		return gate.send(ctx, cfg, env, msg, opts)
	}
	a := newApp(t, appOptions{send: send})
	t.Cleanup(gate.release)
	c := a.client()
	c.signUp()
	path := c.send(adhocForm(c.csrf("/compose"), pf.SMTPAddr, "rcpt@"+pf.Domain+", "+testenv.RejectRecipient550, "diagram "+testenv.UniqueToken()))

	svg := diagramOf(t, c, path)
	if running, _ := svg.Attr("data-running"); running != "true" {
		t.Errorf("held send: data-running %q", running)
	}
	if n := svg.Find(`[data-testid="diagram-arrow"]`).Length(); n != 0 {
		t.Errorf("held before connecting: %d arrows", n)
	}

	gate.releaseStart()
	select {
	case <-gate.lines:
	case <-time.After(testenv.StallLimit):
		t.Fatal("the send did not end")
	}
	flights := smtp.Converse(held.Load().Events()).Flights
	live := diagramOf(t, c, path)
	if running, _ := live.Attr("data-running"); running != "true" {
		t.Errorf("live: data-running %q", running)
	}
	if n := live.Find(`[data-testid="diagram-arrow"]`).Length(); n != len(flights) || n < 4 {
		t.Errorf("live: %d arrows for %d flights", n, len(flights))
	}
	// Postfix on 2525 offers PIPELINING and CHUNKING: the whole envelope,
	// the message and QUIT go in one flight, answered in one.
	wantClient := []string{"EHLO", "MAIL, RCPT ×2, BDAT LAST, QUIT"}
	wantServer := []string{"220", "250", "250 250 550 250 221"}
	if got := arrowLabels(live, smtp.DirClient); strings.Join(got, "|") != strings.Join(wantClient, "|") {
		t.Errorf("live client arrows %q, want %q", got, wantClient)
	}
	if live.Find(`[data-testid="diagram-failure"]`).Length() != 0 {
		t.Error("a failure marked while the send runs")
	}

	gate.releaseFinish()
	c.waitDone(path)
	done := diagramOf(t, c, path)
	if running, _ := done.Attr("data-running"); running != "false" {
		t.Errorf("finished: data-running %q", running)
	}
	if got := arrowLabels(done, smtp.DirServer); strings.Join(got, "|") != strings.Join(wantServer, "|") {
		t.Errorf("finished server arrows %q, want %q", got, wantServer)
	}
	if n := done.Find(`[data-testid="diagram-arrow"]`).Length(); n != len(flights) {
		t.Errorf("finished: %d arrows for %d flights", n, len(flights))
	}
	if done.Find(`[data-testid="diagram-span"][data-kind="connect"]`).Length() != 1 {
		t.Error("no TCP connect span")
	}
	if refused := done.Find(`.dg-refused`).Text(); refused != " 550" {
		t.Errorf("refused codes shown %q", refused)
	}

	// The result page carries the same diagram.
	page := c.get(path).doc(t)
	if n := page.Find(`#diagram svg [data-testid="diagram-arrow"]`).Length(); n != len(flights) {
		t.Errorf("result page: %d arrows", n)
	}
}

// TestDiagramRouteRefusals checks what the route refuses: a send that
// does not exist, and a visitor who is not signed in.
func TestDiagramRouteRefusals(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	path := c.send(composeForm(c.csrf("/compose")))
	c.waitDone(path)
	for _, p := range []string{"/sends/999999/diagram", "/sends/x/diagram", "/sends/0/diagram"} {
		if r := c.get(p); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.status)
		}
	}
	anon := a.client()
	if r := anon.get(path + "/diagram"); r.status == http.StatusOK || strings.Contains(r.body, "<svg") {
		t.Errorf("signed out: %d\n%s", r.status, r.body)
	}
	// The capture server's send: the STARTTLS handshake is a span of its own.
	svg := diagramOf(t, c, path)
	if svg.Find(`[data-testid="diagram-span"][data-kind="tls"]`).Length() != 1 {
		t.Errorf("no TLS span in %s", strconv.Quote(svg.Text()))
	}
}
