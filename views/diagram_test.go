package views_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/smtp"
	"sockmail/views"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// transcript builds events from lines "MS KIND PHASE TEXT": KIND is C (a
// command), B (a message line), S (a server line), I (information) or T
// (information ending the span named by PHASE: TEXT is "TOOK_MS LINE").
func transcript(t *testing.T, lines ...string) []smtp.Event {
	t.Helper()
	var evs []smtp.Event
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			t.Fatalf("bad line %q", l)
		}
		off, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("bad offset in %q", l)
		}
		text := ""
		if len(f) == 4 {
			text = f[3]
		}
		ev := smtp.Event{Offset: time.Duration(off * float64(time.Millisecond)), Phase: smtp.Phase(f[2]), Line: text}
		switch f[1] {
		case "C":
			ev.Dir, ev.Cmd = smtp.DirClient, true
		case "B":
			ev.Dir = smtp.DirClient
		case "S":
			ev.Dir = smtp.DirServer
		case "I":
			ev.Dir = smtp.DirInfo
		case "T":
			span := f[2]
			took, line, _ := strings.Cut(text, " ")
			ms, err := strconv.ParseFloat(took, 64)
			if err != nil {
				t.Fatalf("bad span in %q", l)
			}
			ev.Dir, ev.Span, ev.Took, ev.Line = smtp.DirInfo, smtp.Span(span), time.Duration(ms*float64(time.Millisecond)), line
		default:
			t.Fatalf("bad kind in %q", l)
		}
		evs = append(evs, ev)
	}
	return evs
}

// connect is the start every fixture shares: the TCP connect and the
// greeting.
var connect = []string{
	"0.15 I connect connecting to 127.0.0.1:2525",
	"4.24 T connect 4.02 connected to 127.0.0.1:2525 from 127.0.0.1:56874 in 4.015ms",
	"4.33 S greeting 220 localhost ESMTP test",
	"7.87 C ehlo EHLO [127.0.0.1]",
	"10.16 S ehlo 250-localhost",
	"10.26 S ehlo 250-PIPELINING",
	"10.30 S ehlo 250 CHUNKING",
}

// diagramCase is a fixed transcript and what its diagram must show.
type diagramCase struct {
	name    string
	in      views.DiagramInput
	client  []string // labels of the client arrows
	server  []string // labels of the server arrows
	spans   []string // kinds of the spans
	breaks  int
	trips   int
	failure int // code at the failure mark; -1: no mark
}

func diagramCases(t *testing.T) []diagramCase {
	lines := func(more ...string) []smtp.Event { return transcript(t, append(slices.Clone(connect), more...)...) }
	return []diagramCase{{
		name: "pipelined",
		in: views.DiagramInput{Server: "127.0.0.1:2525", Events: lines(
			"10.40 C mail MAIL FROM:<a@example.test>",
			"10.42 C rcpt RCPT TO:<b@example.test>",
			"10.43 C rcpt RCPT TO:<c@example.test>",
			"10.44 C rcpt RCPT TO:<d@example.test>",
			"10.45 C data DATA",
			"51.30 S mail 250 2.1.0 Ok",
			"51.32 S rcpt 250 2.1.5 Ok",
			"51.33 S rcpt 250 2.1.5 Ok",
			"51.34 S rcpt 250 2.1.5 Ok",
			"51.36 S data 354 End data with <CR><LF>.<CR><LF>",
			"51.50 B body Subject: hi",
			"51.52 B body ",
			"51.53 I body message: 120 bytes in 3 lines; the body is not shown",
			"51.70 C body .",
			"51.72 C quit QUIT",
			"60.10 S body 250 2.0.0 Ok: queued as 8C3239893EF",
			"60.20 S quit 221 2.0.0 Bye",
		)},
		client: []string{"EHLO", "MAIL, RCPT ×3, DATA", `message, ".", QUIT`},
		server: []string{"220", "250", "250 250 250 250 354", "250 221"},
		spans:  []string{"connect"}, trips: 4, failure: -1,
	}, {
		name: "chunking",
		in: views.DiagramInput{Server: "127.0.0.1:2525", Events: lines(
			"10.40 C mail MAIL FROM:<a@example.test> SIZE=308",
			"10.42 C rcpt RCPT TO:<b@example.test>",
			"10.43 C rcpt RCPT TO:<reject550@example.test>",
			"10.45 C body BDAT 308 LAST",
			"10.46 B body From: a@example.test",
			"10.47 B body Subject: hi",
			"10.50 C quit QUIT",
			"52.30 S mail 250 2.1.0 Ok",
			"52.32 S rcpt 250 2.1.5 Ok",
			"52.33 S rcpt 550 5.1.1 <reject550@example.test>: Recipient address rejected: User unknown",
			"52.40 S body 250 2.0.0 Ok: 308 bytes queued as 8C3239893EF",
			"52.45 S quit 221 2.0.0 Bye",
		)},
		client: []string{"EHLO", "MAIL, RCPT ×2, BDAT LAST, QUIT"},
		server: []string{"220", "250", "250 250 550 250 221"},
		spans:  []string{"connect"}, trips: 3, failure: -1,
	}, {
		name: "refused-at-rcpt",
		in: views.DiagramInput{
			Server: "127.0.0.1:2525",
			Events: lines(
				"10.40 C mail MAIL FROM:<a@example.test>",
				"10.42 C rcpt RCPT TO:<reject550@example.test>",
				"10.45 C data DATA",
				"48.30 S mail 250 2.1.0 Ok",
				"48.33 S rcpt 550 5.1.1 <reject550@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
				"48.36 S data 554 5.5.1 Error: no valid recipients",
				"48.50 C quit QUIT",
				"49.10 S quit 221 2.0.0 Bye",
			),
			Failure: smtp.Failure{Phase: smtp.PhaseRcpt, Code: 550, EnhancedCode: "5.1.1", Kind: smtp.KindMailboxUnknown},
			Error:   "rcpt: 550 5.1.1 <reject550@example.test>: Recipient address rejected",
		},
		client: []string{"EHLO", "MAIL, RCPT, DATA", "QUIT"},
		server: []string{"220", "250", "250 550 554", "221"},
		spans:  []string{"connect"}, trips: 4, failure: 550,
	}, {
		name: "long-wait",
		in: views.DiagramInput{Server: "slow.example.test:25", Events: transcript(t,
			"0.10 I connect connecting to 192.0.2.7:25",
			"3.10 T dns 3.00 DNS slow.example.test A/AAAA: 192.0.2.7 (3.00 ms)",
			"25.40 T connect 22.10 connected to 192.0.2.7:25 from 192.0.2.1:40000 in 22.1ms",
			"1225.40 S greeting 220 slow.example.test ESMTP (a greeting delay)",
			"1225.60 C ehlo EHLO client.test",
			"1248.00 S ehlo 250-slow.example.test",
			"1248.10 S ehlo 250 PIPELINING",
			"1248.30 C mail MAIL FROM:<a@example.test>",
			"1248.31 C rcpt RCPT TO:<b@example.test>",
			"1248.32 C data DATA",
			"1270.00 S mail 250 ok",
			"1270.10 S rcpt 250 ok",
			"1270.20 S data 354 go ahead",
			"1270.40 B body Subject: slow",
			"1270.50 C body .",
			"31270.60 I body no reply within 30s: timed out",
		),
			Failure: smtp.Failure{Phase: smtp.PhaseBody, Kind: smtp.KindReplyTimeout},
			Error:   "body: read reply: i/o timeout after 30s",
		},
		client: []string{"EHLO", "MAIL, RCPT, DATA", `message, "."`},
		server: []string{"220", "250", "250 250 354"},
		spans:  []string{"dns", "connect"}, breaks: 2, trips: 3, failure: 0,
	}, {
		name: "tls",
		in: views.DiagramInput{Server: "localhost:2587", Events: transcript(t,
			"0.15 I connect connecting to 127.0.0.1:2587",
			"1.24 T connect 1.02 connected to 127.0.0.1:2587 from 127.0.0.1:50000 in 1.02ms",
			"1.33 S greeting 220 localhost ESMTP",
			"1.50 C ehlo EHLO [127.0.0.1]",
			"2.10 S ehlo 250-localhost",
			"2.20 S ehlo 250 STARTTLS",
			"2.30 C starttls STARTTLS",
			"3.00 S starttls 220 2.0.0 Ready to start TLS",
			"6.60 T tls 3.55 TLS handshake done in 3.55ms: TLS 1.3, TLS_AES_128_GCM_SHA256",
			"6.70 I tls certificate verified for localhost",
			"6.80 C ehlo EHLO [127.0.0.1]",
			"50.00 S ehlo 250-localhost",
			"50.10 S ehlo 250 AUTH PLAIN LOGIN",
			"50.30 C auth AUTH PLAIN ********",
			"62.00 S auth 235 2.7.0 Authentication successful",
			"62.10 C mail MAIL FROM:<tester@example.test>",
			"62.11 C rcpt RCPT TO:<b@example.test>",
			"62.12 C body BDAT 10 LAST",
			"62.13 C quit QUIT",
			"70.00 S mail 250 ok",
			"70.10 S rcpt 250 ok",
			"70.20 S body 250 ok: queued as X",
			"70.30 S quit 221 bye",
		)},
		client: []string{"EHLO", "STARTTLS", "EHLO", "AUTH PLAIN", "MAIL, RCPT, BDAT LAST, QUIT"},
		server: []string{"220", "250", "220", "250", "235", "250 250 250 221"},
		spans:  []string{"connect", "tls"}, trips: 6, failure: -1,
	}, {
		name: "connection-refused",
		in: views.DiagramInput{
			Server: "127.0.0.1:1",
			Events: transcript(t,
				"0.10 I connect connecting to 127.0.0.1:1",
				"0.35 T connect 0.25 connect to 127.0.0.1:1 failed after 0.25ms: dial tcp 127.0.0.1:1: connect: connection refused",
			),
			Failure: smtp.Failure{Phase: smtp.PhaseConnect, Kind: smtp.KindConnRefused},
			Error:   "connect: dial tcp 127.0.0.1:1: connect: connection refused",
		},
		spans: []string{"connect"}, failure: 0,
	}}
}

// renderSVG renders a diagram.
func renderSVG(t *testing.T, d views.Diagram) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := views.DiagramSVG(d).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// TestDiagramGolden renders the diagrams of fixed transcripts and
// compares them byte for byte with testdata/diagram-*.svg (go test
// -run TestDiagramGolden -update rewrites them), then checks their
// structure: one arrow per flight with its label, the spans, breaks,
// round trips and the failure mark.
func TestDiagramGolden(t *testing.T) {
	for _, tt := range diagramCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.ID = "diagram"
			d := views.NewDiagram(tt.in)
			got := renderSVG(t, d)
			path := filepath.Join("testdata", "diagram-"+tt.name+".svg")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if bytes.Contains(want, []byte("\r")) {
				t.Errorf("%s has CR bytes: a checkout converted its line ends", path)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what is drawn now; run with -update and look at the diff:\n%s", path, got)
			}
			checkDiagram(t, tt, got)
		})
	}
}

// checkDiagram checks a rendered diagram's structure against tt.
func checkDiagram(t *testing.T, tt diagramCase, svg []byte) {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(svg))
	if err != nil {
		t.Fatal(err)
	}
	flights := smtp.Converse(tt.in.Events).Flights
	arrows := doc.Find(`[data-testid="diagram-arrow"]`)
	if arrows.Length() != len(flights) {
		t.Errorf("%d arrows for %d flights", arrows.Length(), len(flights))
	}
	var client, server []string
	arrows.Each(func(i int, s *goquery.Selection) {
		label, _ := s.Attr("data-label")
		from, _ := s.Attr("data-from")
		if want := string(flights[min(i, len(flights)-1)].From); from != want {
			t.Errorf("arrow %d from %s, flight from %s", i, from, want)
		}
		if text := strings.TrimSpace(s.Find(".dg-label").Text()); text != label {
			t.Errorf("arrow %d shows %q, labelled %q", i, text, label)
		}
		if from == "client" {
			client = append(client, label)
		} else {
			server = append(server, label)
		}
		if tab, _ := s.Attr("tabindex"); tab != "0" {
			t.Errorf("arrow %d is not focusable", i)
		}
		aria, _ := s.Attr("aria-label")
		first := smtp.SafeText(tt.in.Events[flights[min(i, len(flights)-1)].Lines[0]].Line)
		if !strings.Contains(aria, first) || !strings.Contains(s.Find(".dg-popup").Text(), first[:min(len(first), 20)]) {
			t.Errorf("arrow %d: its lines (aria %q) lack its first line %q", i, aria, first)
		}
	})
	if !slices.Equal(client, tt.client) {
		t.Errorf("client arrows %q, want %q", client, tt.client)
	}
	if !slices.Equal(server, tt.server) {
		t.Errorf("server arrows %q, want %q", server, tt.server)
	}
	var spans []string
	doc.Find(`[data-testid="diagram-span"]`).Each(func(_ int, s *goquery.Selection) {
		k, _ := s.Attr("data-kind")
		spans = append(spans, k)
	})
	if !slices.Equal(spans, tt.spans) {
		t.Errorf("spans %q, want %q", spans, tt.spans)
	}
	if n := doc.Find(`[data-testid="diagram-break"]`).Length(); n != tt.breaks {
		t.Errorf("%d breaks, want %d", n, tt.breaks)
	}
	if n := doc.Find(`[data-testid="diagram-trip"]`).Length(); n != tt.trips {
		t.Errorf("%d round trips, want %d", n, tt.trips)
	}
	fail := doc.Find(`[data-testid="diagram-failure"]`)
	switch {
	case tt.failure < 0 && fail.Length() != 0:
		t.Errorf("a failure mark on a send that did not fail: %q", fail.Text())
	case tt.failure >= 0 && fail.Length() != 1:
		t.Errorf("%d failure marks, want 1", fail.Length())
	case tt.failure >= 0:
		if code, _ := fail.Attr("data-code"); code != strconv.Itoa(tt.failure) {
			t.Errorf("failure marked at code %s, want %d", code, tt.failure)
		}
	}
	if doc.Find("svg > title").Length() != 1 || doc.Find("svg > desc").Length() != 1 {
		t.Error("the diagram has no title and desc")
	}
}

// TestDiagramScale checks the time scale: waits on the scale are drawn
// in proportion, a long wait is cut by a break labelled with its length,
// and labelled items never crowd each other.
func TestDiagramScale(t *testing.T) {
	var long views.DiagramInput
	for _, c := range diagramCases(t) {
		if c.name == "long-wait" {
			long = c.in
		}
	}
	d := views.NewDiagram(long)
	var labels []string
	for _, b := range d.Breaks {
		labels = append(labels, b.Label)
	}
	if want := []string{"… 1.20 s …", "… 30.0 s …"}; !slices.Equal(labels, want) {
		t.Errorf("breaks %q, want %q", labels, want)
	}
	// EHLO waited 22.4 ms and MAIL..DATA 21.7 ms: the same on the page to
	// within the arrows' own slant.
	var trips []float64
	for _, tr := range d.Trips {
		trips = append(trips, tr.Y2-tr.Y1)
	}
	if len(trips) != 3 {
		t.Fatalf("round trips %v", trips)
	}
	for _, h := range trips[1:] {
		if want := 22.0 * d.PxPerMs; h < want*0.9 || h > want*1.1 {
			t.Errorf("a round trip of about 22 ms is %.1f px at %.3f px/ms", h, d.PxPerMs)
		}
	}
	if d.Height > 900 {
		t.Errorf("a diagram with a 30 s wait is %.0f px high: the wait was not cut", d.Height)
	}
	for i := 1; i < len(d.Arrows); i++ {
		if gap := d.Arrows[i].Y1 - d.Arrows[i-1].Y1; gap < 31.9 {
			t.Errorf("arrows %d and %d are %.1f px apart", i-1, i, gap)
		}
	}
}

// TestDiagramsOnOneScale checks that two compared sends share px per ms,
// so that a server 300 ms slower is drawn longer by 300 ms of the scale.
func TestDiagramsOnOneScale(t *testing.T) {
	send := func(wait float64) views.DiagramInput {
		return views.DiagramInput{Server: "mx:25", Events: transcript(t,
			"1.00 T connect 1.00 connected to 192.0.2.1:25 from 192.0.2.2:1000 in 1ms",
			"2.00 S greeting 220 mx",
			"3.00 C ehlo EHLO me",
			fmt.Sprintf("%.2f S ehlo 250 mx", 3+wait),
			fmt.Sprintf("%.2f C quit QUIT", 4+wait),
			fmt.Sprintf("%.2f S quit 221 bye", 14+wait),
		)}
	}
	a, b := views.DiagramsOnOneScale(send(50), send(350))
	if a.PxPerMs != b.PxPerMs || a.PxPerMs <= 0 {
		t.Fatalf("scales %v and %v px/ms", a.PxPerMs, b.PxPerMs)
	}
	ehlo := func(d views.Diagram) float64 { return d.Trips[1].Y2 - d.Trips[1].Y1 }
	if diff, want := ehlo(b)-ehlo(a), 300*a.PxPerMs; diff < want-1 || diff > want+1 {
		t.Errorf("EHLO 300 ms slower is %.1f px longer, want %.1f", diff, want)
	}
	if len(a.Breaks)+len(b.Breaks) != 0 {
		t.Errorf("a 350 ms wait among 20 ms of others was cut: %v %v", a.Breaks, b.Breaks)
	}
	alone := views.NewDiagram(send(50))
	if alone.PxPerMs <= a.PxPerMs {
		t.Errorf("alone, the faster send's scale %.3f is not larger than the shared %.3f", alone.PxPerMs, a.PxPerMs)
	}
}

// TestDiagramLive checks a running send's diagram: the partial reply and
// the command still waiting, no failure mark.
func TestDiagramLive(t *testing.T) {
	evs := transcript(t, append(slices.Clone(connect), "10.40 C mail MAIL FROM:<a@example.test>")...)
	d := views.NewDiagram(views.DiagramInput{Server: "127.0.0.1:2525", Events: evs[:5], Running: true})
	if len(d.Arrows) != 3 || d.Arrows[2].Label != "250…" {
		t.Errorf("mid-reply: arrows %+v", d.Arrows)
	}
	d = views.NewDiagram(views.DiagramInput{Server: "127.0.0.1:2525", Events: evs, Running: true, Error: "would not be shown"})
	if d.Waiting <= 0 || d.Waiting != d.Arrows[len(d.Arrows)-1].Y2 || d.Failure != nil {
		t.Errorf("waiting at %.1f (last arrow at %.1f), failure %+v", d.Waiting, d.Arrows[len(d.Arrows)-1].Y1, d.Failure)
	}
	empty := views.NewDiagram(views.DiagramInput{Server: "x:25", Running: true})
	if len(empty.Arrows) != 0 || empty.Height <= 0 {
		t.Errorf("an empty diagram: %+v", empty)
	}
	if svg := renderSVG(t, empty); !bytes.Contains(svg, []byte(`data-flights="0"`)) {
		t.Errorf("empty diagram:\n%s", svg)
	}
}

// TestDiagramEscapes checks that server text is shown escaped and made
// safe: markup stays text, control and bidi characters are escaped.
func TestDiagramEscapes(t *testing.T) {
	in := views.DiagramInput{Server: "<b>mx</b>:25", Events: transcript(t,
		"1.00 S greeting 220 <script>alert(1)</script> \u202ehidden",
		"2.00 C ehlo EHLO me",
		"3.00 S ehlo 550 <img src=x onerror=alert(1)>",
	), Failure: smtp.Failure{Phase: smtp.PhaseEHLO, Code: 550}, Error: "ehlo: 550"}
	svg := string(renderSVG(t, views.NewDiagram(in)))
	for _, bad := range []string{"<script>", "<img", "<b>", "\u202e"} {
		if strings.Contains(svg, bad) {
			t.Errorf("diagram holds %q unescaped", bad)
		}
	}
	if !strings.Contains(svg, "&lt;script&gt;") {
		t.Error("the greeting's text is not shown")
	}
}

// TestDiagramBounded checks the limits: a conversation of thousands of
// flights (a stored CLI send of many messages over one connection) is
// drawn up to maxDiagramFlights with a note of how many more there are,
// and a long line is cut in an arrow's panel and accessible name.
func TestDiagramBounded(t *testing.T) {
	lines := []string{"1.00 S greeting 220 " + strings.Repeat("x", 990)}
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("%d.50 C rset RSET", i+2), fmt.Sprintf("%d.90 S rset 250 ok", i+2))
	}
	d := views.NewDiagram(views.DiagramInput{Server: "mx:25", Events: transcript(t, lines...),
		Failure: smtp.Failure{Phase: smtp.PhaseReset, Code: 250}, Error: "a failure after the flights drawn"})
	if len(d.Arrows) != 300 || d.Omitted != 1701 {
		t.Errorf("%d arrows drawn, %d omitted; want 300 and 1701", len(d.Arrows), d.Omitted)
	}
	if d.Failure != nil {
		t.Errorf("a failure after the flights drawn is marked at %+v", d.Failure)
	}
	svg := renderSVG(t, d)
	if len(svg) > 1<<20 || d.Height > 300*40 {
		t.Errorf("the diagram is %d bytes and %.0f px high", len(svg), d.Height)
	}
	if !bytes.Contains(svg, []byte("… 1701 more flights are not drawn")) {
		t.Error("no note of the flights not drawn")
	}
	greeting := d.Arrows[0]
	if n := len([]rune(greeting.Lines[0])); n > 60 {
		t.Errorf("a 1000-character line is %d characters in the panel", n)
	}
	if n := len([]rune(greeting.Aria)); n > 200 {
		t.Errorf("a 1000-character line makes an accessible name of %d characters", n)
	}
}
