package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
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

// TestHistoryCompareDiagrams checks the compare page's diagrams: both on
// one time scale (the same px per ms), so that the server 300 ms slower
// to answer EHLO has a round trip 300 ms of the scale longer, and the
// refused recipient of one marked.
func TestHistoryCompareDiagrams(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	conversation := func(ehloWait float64, rcpt string) []smtp.Event {
		return []smtp.Event{
			ev(1, smtp.DirServer, smtp.PhaseGreeting, "220 mx ESMTP"),
			ev(2, smtp.DirClient, smtp.PhaseEHLO, "EHLO c"),
			ev(2+ehloWait, smtp.DirServer, smtp.PhaseEHLO, "250 mx"),
			ev(3+ehloWait, smtp.DirClient, smtp.PhaseMail, "MAIL FROM:<sender@example.test>"),
			ev(4+ehloWait, smtp.DirServer, smtp.PhaseMail, "250 2.1.0 Ok"),
			ev(5+ehloWait, smtp.DirClient, smtp.PhaseRcpt, "RCPT TO:<rcpt@example.test>"),
			ev(6+ehloWait, smtp.DirServer, smtp.PhaseRcpt, rcpt),
			ev(7+ehloWait, smtp.DirClient, smtp.PhaseQuit, "QUIT"),
			ev(8+ehloWait, smtp.DirServer, smtp.PhaseQuit, "221 bye"),
		}
	}
	fast := a.seedSend(store.Send{Events: conversation(50, "250 2.1.5 Ok")})
	slow := a.seedSend(store.Send{Events: conversation(350, "550 5.1.1 unknown"), Status: smtp.StatusPermFail, Error: "rcpt: 550 5.1.1 unknown",
		Failure: smtp.Failure{Phase: smtp.PhaseRcpt, Code: 550, EnhancedCode: "5.1.1", Kind: smtp.KindMailboxUnknown}})
	r := c.get(fmt.Sprintf("/history/compare?a=%d&b=%d", fast.ID, slow.ID))
	if r.status != http.StatusOK {
		t.Fatalf("compare: %d", r.status)
	}
	svgs := r.testid(t, "compare-diagrams").Find(`svg[data-testid="diagram"]`)
	if svgs.Length() != 2 {
		t.Fatalf("%d diagrams", svgs.Length())
	}
	scale := func(i int) float64 {
		v, _ := svgs.Eq(i).Attr("data-px-per-ms")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("diagram %d: px per ms %q", i, v)
		}
		return f
	}
	if scale(0) != scale(1) {
		t.Errorf("scales %v and %v px per ms", scale(0), scale(1))
	}
	// The EHLO round trip is the first trip (no connect span here).
	trip := func(i int) float64 {
		d, _ := svgs.Eq(i).Find(`[data-testid="diagram-trip"] path`).First().Attr("d")
		// "M<x> <y1>h4V<y2>h-4"
		var x, y1, y2 float64
		if _, err := fmt.Sscanf(d, "M%f %fh4V%fh-4", &x, &y1, &y2); err != nil {
			t.Fatalf("trip path %q: %v", d, err)
		}
		return y2 - y1
	}
	if diff, want := trip(1)-trip(0), 300*scale(0); diff < want-1 || diff > want+1 {
		t.Errorf("the EHLO 300 ms slower is %.1f px longer, want %.1f", diff, want)
	}
	if svgs.Eq(0).Find(`[data-testid="diagram-failure"]`).Length() != 0 || svgs.Eq(1).Find(`[data-testid="diagram-failure"][data-code="550"]`).Length() != 1 {
		t.Error("the refused recipient is not marked on the failed send alone")
	}
	// Element ids stay unique with two diagrams in the page.
	seen := map[string]bool{}
	r.doc(t).Find("[id]").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if seen[id] {
			t.Errorf("id %q twice", id)
		}
		seen[id] = true
	})
}
