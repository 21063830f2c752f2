package views_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/smtp"
	"sockmail/views"
)

// pipelinedSend is a send to a server that took 1.5 ms to connect to and
// 1,202.5 ms more to greet, with MAIL, two RCPT (one refused) and DATA
// pipelined, then the message, "." and QUIT in one write.
func pipelinedSend() []smtp.Event {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	c := func(at float64, phase smtp.Phase, line string) smtp.Event {
		return smtp.Event{Offset: ms(at), Dir: smtp.DirClient, Phase: phase, Line: line, Cmd: phase != smtp.PhaseBody || line == "."}
	}
	s := func(at float64, phase smtp.Phase, line string) smtp.Event {
		return smtp.Event{Offset: ms(at), Dir: smtp.DirServer, Phase: phase, Line: line}
	}
	i := func(at float64, phase smtp.Phase, line string) smtp.Event {
		return smtp.Event{Offset: ms(at), Dir: smtp.DirInfo, Phase: phase, Line: line}
	}
	return []smtp.Event{
		i(0.1, smtp.PhaseConnect, "connecting to 127.0.0.1:2525"),
		{Offset: ms(1.6), Dir: smtp.DirInfo, Phase: smtp.PhaseConnect, Line: "connected in 1.500ms", Span: smtp.SpanConnect, Took: ms(1.5)},
		s(1204.1, smtp.PhaseGreeting, "220 mx ESMTP"),
		c(1204.2, smtp.PhaseEHLO, "EHLO me"),
		s(1204.5, smtp.PhaseEHLO, "250-mx"), s(1204.6, smtp.PhaseEHLO, "250 PIPELINING"),
		c(1205, smtp.PhaseMail, "MAIL FROM:<a@x>"), c(1205.1, smtp.PhaseRcpt, "RCPT TO:<b@y>"),
		c(1205.2, smtp.PhaseRcpt, "RCPT TO:<c@y>"), c(1205.3, smtp.PhaseData, "DATA"),
		s(1206, smtp.PhaseMail, "250 2.1.0 Ok"), s(1206.1, smtp.PhaseRcpt, "550 5.1.1 unknown"),
		s(1206.2, smtp.PhaseRcpt, "250 2.1.5 Ok"), s(1206.3, smtp.PhaseData, "354 go on"),
		c(1206.5, smtp.PhaseBody, "Subject: x"), c(1206.6, smtp.PhaseBody, ""),
		i(1206.7, smtp.PhaseBody, "message: 20 bytes in 3 lines"),
		c(1206.8, smtp.PhaseBody, "."), c(1206.9, smtp.PhaseQuit, "QUIT"),
		s(1210, smtp.PhaseBody, "250 2.0.0 Ok: queued as Q"), s(1210.5, smtp.PhaseQuit, "221 Bye"),
	}
}

// TestTranscriptPairsAndMeasuresRealWaits: every command shows once,
// with its own reply beside it and its own round trip; the connect shows
// what the connect took (1.5 ms), not the time until the greeting (the
// old per-phase listing said 1,204 ms for it, the live view 1.5 ms).
func TestTranscriptPairsAndMeasuresRealWaits(t *testing.T) {
	r := views.Result{ID: 3, Status: "sent", StatusClass: "ok", Events: pipelinedSend()}
	code, d := get(t, views.ResultBody(r))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	type pair struct{ cmd, reply, wait string }
	var got []pair
	byID(d, "exchange").Each(func(_ int, x *goquery.Selection) {
		got = append(got, pair{
			strings.Join(x.Find(`.x-client > ol [data-testid="event-line"]`).Map(func(_ int, s *goquery.Selection) string { return s.Text() }), "|"),
			strings.Join(x.Find(`.x-server [data-testid="event-line"]`).Map(func(_ int, s *goquery.Selection) string { return s.Text() }), "|"),
			x.Find(`[data-testid="exchange-wait"]`).Text(),
		})
	})
	want := []pair{
		{"", "220 mx ESMTP", ""},
		{"EHLO me", "250-mx|250 PIPELINING", "round trip 0.400 ms"},
		{"MAIL FROM:<a@x>", "250 2.1.0 Ok", "round trip 1.000 ms"},
		{"RCPT TO:<b@y>", "550 5.1.1 unknown", "round trip 1.000 ms"},
		{"RCPT TO:<c@y>", "250 2.1.5 Ok", "round trip 1.000 ms"},
		{"DATA", "354 go on", "round trip 1.000 ms"},
		{".", "250 2.0.0 Ok: queued as Q", "round trip 3.200 ms"},
		{"QUIT", "221 Bye", "round trip 3.600 ms"},
	}
	if len(got) != len(want) {
		t.Fatalf("exchanges %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("exchange %d: %q, want %q", i, got[i], want[i])
		}
	}
	if n := byID(d, "event").Length(); n != len(r.Events) {
		t.Errorf("%d lines shown, the transcript has %d: each once", n, len(r.Events))
	}
	// The message lines fold under the "." with the summary.
	if m := byID(d, "message"); m.Length() != 1 || !strings.Contains(m.Text(), "message: 20 bytes") {
		t.Errorf("message block %q", m.Text())
	}
	waits := byID(d, "round-wait").Map(func(_ int, s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") })
	wantWaits := []string{"waited 1,202 ms for the greeting", "waited 0.400 ms", "waited 1.000 ms", "waited 3.600 ms"}
	if strings.Join(waits, "; ") != strings.Join(wantWaits, "; ") {
		t.Errorf("round waits %q, want %q", waits, wantWaits)
	}
	if got := byID(d, "span-took").Text(); got != "connect took 1.500 ms" {
		t.Errorf("connect shown as %q", got)
	}
	timing := map[string]string{}
	byID(d, "timing-part").Each(func(_ int, s *goquery.Selection) {
		k, _ := s.Attr("data-key")
		timing[k] = s.Find(`[data-testid="timing-ms"]`).Text()
	})
	for k, v := range map[string]string{"connect": "1.500 ms", "greeting": "1,202 ms", "hello": "0.400 ms",
		"envelope": "1.200 ms", "data": "0.600 ms", "final_reply": "3.200 ms", "quit": "0.500 ms"} {
		if timing[k] != v {
			t.Errorf("timing %s = %q, want %q (all: %v)", k, timing[k], v, timing)
		}
	}
	if got := byID(d, "timing-total").Text(); got != "1,210 ms" {
		t.Errorf("total %q", got)
	}
	if d.Find(`svg.tbar rect`).Length() != len(timing) {
		t.Errorf("%d bar segments for %d stretches", d.Find(`svg.tbar rect`).Length(), len(timing))
	}
}

// TestHistoryRowTimingBar: a row with timings gets a small bar whose
// accessible name gives the figures; a row stored before timings were
// kept gets none.
func TestHistoryRowTimingBar(t *testing.T) {
	tm := smtp.Converse(pipelinedSend()).Timings()
	rows := []views.HistoryRow{{ID: 2, Status: "sent", Timings: &tm}, {ID: 1, Status: "sent"}}
	code, d := get(t, views.HistoryTable(rows))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	trs := byID(d, "history-row")
	bar := trs.Eq(0).Find(`[data-testid="timing-mini"]`)
	label, _ := bar.Attr("aria-label")
	if bar.Length() != 1 || !strings.Contains(label, "greeting wait 1,202 ms") || !strings.Contains(label, "connect 1.500 ms") {
		t.Errorf("bar %d, label %q", bar.Length(), label)
	}
	if n := bar.Find("rect").Length(); n != len(views.TimingSegments(tm)) {
		t.Errorf("%d segments, want %d", n, len(views.TimingSegments(tm)))
	}
	if trs.Eq(1).Find(`[data-testid="timing-mini"]`).Length() != 0 {
		t.Error("a bar on a row without timings")
	}
}
