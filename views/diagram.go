package views

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sockmail/smtp"
)

// A sequence diagram of a send: two lanes (client and server), time
// flowing down on a real scale, an arrow per flight (smtp.Conversation),
// the DNS, connect and TLS spans as bands, each round trip's duration
// beside the client lane, long waits cut by a labelled break, and the
// failure marked. This file lays it out; diagram.templ draws it as SVG.

// DiagramInput is what a diagram is drawn from.
type DiagramInput struct {
	// ID prefixes the element ids of the diagram, unique in the page.
	ID string
	// Events is the transcript, finished or so far.
	Events []smtp.Event
	// Server names the server as it was asked for (host:port).
	Server string
	// Running marks a send still running: its diagram is partial.
	Running bool
	// Failure and Error say where and why the send failed, if it did.
	Failure smtp.Failure
	Error   string
	// Narrow lays the diagram out for half a page (the compare page).
	Narrow bool
}

// DiagramFor is the diagram input of a send's result view.
func DiagramFor(r Result) DiagramInput {
	return DiagramInput{ID: "diagram", Events: r.Events, Server: r.Server, Running: r.Running, Failure: r.Failure, Error: r.Error}
}

// Diagram is a laid-out sequence diagram: every coordinate in px.
type Diagram struct {
	ID            string
	Width, Height float64
	// PxPerMs is the time scale, the same for the diagrams of one page
	// that are compared (DiagramsOnOneScale).
	PxPerMs float64
	// BreakOver is the shortest wait cut by a break (0: none are).
	BreakOver time.Duration
	Running   bool
	// Title and Desc describe the diagram for assistive technology.
	Title, Desc string
	Client      DiagramLane
	Server      DiagramLane
	// Top and Bottom are where the lifelines begin and end.
	Top, Bottom float64
	Spans       []DiagramSpan
	Breaks      []DiagramBreak
	Trips       []DiagramTrip
	Arrows      []DiagramArrow
	Failure     *DiagramFailure
	// Waiting, when positive, is the y of a command still waiting for its
	// reply (a running send).
	Waiting float64
	// PopupX and PopupW place the panel that shows an arrow's lines.
	PopupX, PopupW float64
	// Omitted is how many flights are not drawn (maxDiagramFlights), and
	// OmittedY where the diagram says so.
	Omitted  int
	OmittedY float64
}

// DiagramLane is one side of the conversation.
type DiagramLane struct {
	X          float64
	Name, Addr string
}

// DiagramSpan is a DNS lookup, a TCP connect or a TLS handshake.
type DiagramSpan struct {
	Kind   smtp.Span
	X, W   float64
	Y1, Y2 float64
	Label  string
	// Line is the information line that reported it.
	Line string
}

// DiagramBreak is a long wait drawn shorter than its scale.
type DiagramBreak struct {
	Y1, Y2 float64
	Label  string
}

// DiagramTrip is a round trip: from the end of a client flight to the end
// of the server flight that answered it.
type DiagramTrip struct {
	X, Y1, Y2 float64
	Label     string
}

// DiagramCode is one reply code of a server flight's label.
type DiagramCode struct {
	// Sep is what comes before the code: a space but for the first.
	Sep     string
	Text    string
	Refused bool
}

// DiagramArrow is one flight.
type DiagramArrow struct {
	// Index is the flight's index in the conversation.
	Index int
	From  smtp.Direction
	// X1,Y1 is where the first line left; X2,Y2 where the last arrived.
	X1, Y1, X2, Y2 float64
	// Head is the arrowhead's polygon points.
	Head string
	// Label names the commands (client) or holds the reply codes (Codes,
	// server).
	Label          string
	Codes          []DiagramCode
	LabelX, LabelY float64
	// At is the flight's start offset, written at AtY in the time column.
	At  string
	AtY float64
	// Lines are the flight's lines as shown on hover or focus; More is how
	// many more there are.
	Lines []string
	More  int
	// Aria is the accessible name: direction, time and lines.
	Aria string
	// PopupY and PopupH place the panel of lines.
	PopupY, PopupH float64
}

// DiagramFailure marks where the send failed.
type DiagramFailure struct {
	X, Y float64
	Code int
	// Text is the reply or the error, cut into lines for the panel.
	Text []string
	// TextY is the y of the first line of Text.
	TextY float64
	Title string
}

// dgGeometry is the horizontal layout of a diagram.
type dgGeometry struct {
	width, clientX, serverX, popupX, popupW float64
	labelChars, popupChars                  int
}

// dgGeometryFor is the layout for a whole page, or for half a page
// (narrow: the compare page).
func dgGeometryFor(narrow bool) dgGeometry {
	if narrow {
		return dgGeometry{width: 620, clientX: 150, serverX: 370, popupX: 384, popupW: 230, labelChars: 32, popupChars: 33}
	}
	return dgGeometry{width: 880, clientX: 180, serverX: 480, popupX: 500, popupW: 372, labelChars: 44, popupChars: 54}
}

// Vertical layout, in px.
const (
	diagramTop      = 72.0  // the first instant
	dgLifelineTop   = 52.0  // where the lifelines begin
	dgTimeHeight    = 440.0 // the height the time scale aims to fill
	dgMinSeparation = 32.0  // between the starts of two labelled items
	dgBreakHeight   = 60.0  // a break: the wait's label between the labels around it
	dgBottomPad     = 36.0
	dgPopupLine     = 14.0 // a line of an arrow's panel
	dgMaxPopupLines = 18
	dgMaxAriaLines  = 24
	dgMaxLineChars  = 160
	// dgMaxPxPerMs keeps sub-millisecond jitter on a loopback send from
	// looking like a wait.
	dgMaxPxPerMs = 20.0
	// dgBreakMin is the shortest wait ever cut by a break; a wait is cut
	// when it is also more than four times all shorter waits together.
	dgBreakMin = time.Second
)

// diagramScale is a time scale: px per ms and the shortest wait cut.
type diagramScale struct {
	pxPerMs   float64
	breakOver time.Duration
}

// NewDiagram lays out one diagram on a scale that fits it.
func NewDiagram(in DiagramInput) Diagram {
	cv := dgConverse(in.Events)
	keys := diagramKeys(cv, in)
	return layoutDiagram(in, cv, keys, dgChooseScale(dgGaps(keys)))
}

// DiagramsOnOneScale lays out two diagrams on one time scale (the same px
// per ms and the same breaks), so that a longer wait in one is longer on
// the page.
func DiagramsOnOneScale(a, b DiagramInput) (Diagram, Diagram) {
	cva, cvb := dgConverse(a.Events), dgConverse(b.Events)
	ka, kb := diagramKeys(cva, a), diagramKeys(cvb, b)
	ga, gb := dgGaps(ka), dgGaps(kb)
	sc := dgChooseScale(append(append([]time.Duration(nil), ga...), gb...))
	// Fit the longer of the two.
	sa, sb := dgChooseScaleOver(ga, sc.breakOver), dgChooseScaleOver(gb, sc.breakOver)
	sc.pxPerMs = min(sa, sb)
	return layoutDiagram(a, cva, ka, sc), layoutDiagram(b, cvb, kb, sc)
}

// maxDiagramFlights bounds a diagram: a conversation of more flights (a
// stored CLI send of many messages over one connection) is drawn up to
// there, and the diagram says how many more there are.
const maxDiagramFlights = 300

// diagramConversation is a conversation cut to maxDiagramFlights.
type diagramConversation struct {
	smtp.Conversation
	// Omitted is how many flights were cut.
	Omitted int
}

// dgConverse reads events as a conversation of at most maxDiagramFlights
// flights, with the spans that ended before the first flight cut.
func dgConverse(events []smtp.Event) diagramConversation {
	cv := diagramConversation{Conversation: smtp.Converse(events)}
	if n := len(cv.Flights); n > maxDiagramFlights {
		cut := cv.Flights[maxDiagramFlights].Start
		cv.Flights = cv.Flights[:maxDiagramFlights]
		cv.Omitted = n - maxDiagramFlights
		var spans []smtp.SpanTime
		for _, sp := range cv.Spans {
			if sp.End < cut {
				spans = append(spans, sp)
			}
		}
		cv.Spans = spans
	}
	return cv
}

// diagramKeys are the instants a diagram places: the start and end of
// every flight and span, and the failure.
func diagramKeys(cv diagramConversation, in DiagramInput) []time.Duration {
	var keys []time.Duration
	for _, f := range cv.Flights {
		keys = append(keys, f.Start, f.End)
	}
	for _, s := range cv.Spans {
		keys = append(keys, max(s.Start, 0), s.End)
	}
	if t, _, ok := dgFailurePoint(cv, in); ok {
		keys = append(keys, t)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// dgGaps are the waits between successive keys.
func dgGaps(keys []time.Duration) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(keys); i++ {
		out = append(out, keys[i]-keys[i-1])
	}
	return out
}

// dgChooseScale picks which waits are cut by a break (the longest ones, each
// over dgBreakMin and more than four times all shorter waits together: a
// wait only a few times longer than the rest is better drawn to scale, as
// on the compare page) and the px
// per ms that fits the rest into dgTimeHeight.
func dgChooseScale(g []time.Duration) diagramScale {
	sorted := slices.Clone(g)
	slices.Sort(sorted)
	var rest time.Duration
	for _, d := range sorted {
		rest += d
	}
	var over time.Duration
	for i := len(sorted) - 1; i >= 0; i-- {
		d := sorted[i]
		rest -= d
		if d < dgBreakMin || d <= 4*rest {
			break
		}
		over = d
	}
	return diagramScale{pxPerMs: dgChooseScaleOver(g, over), breakOver: over}
}

// dgChooseScaleOver is the px per ms that fits the waits shorter than over
// (all of them when over is 0) into dgTimeHeight.
func dgChooseScaleOver(g []time.Duration, over time.Duration) float64 {
	var total time.Duration
	for _, d := range g {
		if over == 0 || d < over {
			total += d
		}
	}
	if total <= 0 {
		return dgMaxPxPerMs
	}
	return min(dgMaxPxPerMs, dgTimeHeight/dgMillis(total))
}

func dgMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// dgTimeline maps instants to y.
type dgTimeline struct {
	keys []time.Duration
	ys   []float64
}

// y is the position of t, interpolated between the keys around it.
func (tl dgTimeline) y(t time.Duration) float64 {
	if len(tl.keys) == 0 {
		return diagramTop
	}
	i, found := slices.BinarySearch(tl.keys, t)
	switch {
	case found:
		return tl.ys[i]
	case i == 0:
		return tl.ys[0]
	case i == len(tl.keys):
		return tl.ys[len(tl.ys)-1]
	}
	k0, k1 := tl.keys[i-1], tl.keys[i]
	return tl.ys[i-1] + (tl.ys[i]-tl.ys[i-1])*float64(t-k0)/float64(k1-k0)
}

// layoutDiagram places everything on the scale.
func layoutDiagram(in DiagramInput, cv diagramConversation, keys []time.Duration, sc diagramScale) Diagram {
	g := dgGeometryFor(in.Narrow)
	d := Diagram{
		ID: in.ID, Width: g.width, PxPerMs: sc.pxPerMs, BreakOver: sc.breakOver, Running: in.Running,
		Top: dgLifelineTop, PopupX: g.popupX, PopupW: g.popupW,
		Client: DiagramLane{X: g.clientX, Name: "sockmail"},
		Server: DiagramLane{X: g.serverX, Name: dgClip(smtp.SafeText(in.Server), 40)},
	}
	for _, s := range cv.Spans {
		if s.Kind != smtp.SpanConnect {
			continue
		}
		if remote, local, ok := dgConnectedAddrs(cv.Events[s.Event].Line); ok {
			d.Client.Addr, d.Server.Addr = dgClip(smtp.SafeText(local), 40), dgClip(smtp.SafeText(remote), 40)
		}
	}
	if d.Server.Addr == d.Server.Name {
		d.Server.Addr = ""
	}

	// Labelled items start at least dgMinSeparation apart; a break replaces
	// a wait of breakOver or more.
	labelled := map[time.Duration]bool{}
	for _, f := range cv.Flights {
		labelled[f.Start] = true
	}
	for _, s := range cv.Spans {
		labelled[max(s.Start, 0)] = true
	}
	tl := dgTimeline{keys: keys, ys: make([]float64, len(keys))}
	lastLabel := math.Inf(-1)
	for i, k := range keys {
		y := diagramTop
		if i > 0 {
			gap := k - keys[i-1]
			if sc.breakOver > 0 && gap >= sc.breakOver {
				d.Breaks = append(d.Breaks, DiagramBreak{Y1: tl.ys[i-1], Y2: tl.ys[i-1] + dgBreakHeight, Label: "… " + dgDuration(gap) + " …"})
				y = tl.ys[i-1] + dgBreakHeight
			} else {
				y = tl.ys[i-1] + dgMillis(gap)*sc.pxPerMs
			}
		}
		if labelled[k] {
			y = max(y, lastLabel+dgMinSeparation)
			lastLabel = y
		}
		tl.ys[i] = y
	}
	end := diagramTop
	if len(tl.ys) > 0 {
		end = tl.ys[len(tl.ys)-1]
	}

	for _, s := range cv.Spans {
		y1, y2 := tl.y(max(s.Start, 0)), tl.y(s.End)
		d.Spans = append(d.Spans, DiagramSpan{
			Kind: s.Kind, X: g.clientX, W: g.serverX - g.clientX, Y1: y1, Y2: max(y2, y1+2),
			Label: dgSpanName(s.Kind) + " " + dgDuration(s.End-s.Start), Line: dgClip(smtp.SafeText(cv.Events[s.Event].Line), dgMaxLineChars),
		})
	}

	for fi, f := range cv.Flights {
		a := DiagramArrow{Index: fi, From: f.From, Y1: tl.y(f.Start), Y2: tl.y(f.End), At: dgOffset(f.Start)}
		a.X1, a.X2 = g.clientX, g.serverX
		if f.From == smtp.DirServer {
			a.X1, a.X2 = g.serverX, g.clientX
			a.Codes = dgReplyCodes(cv, f)
			a.Label = dgCodesText(a.Codes)
		} else {
			a.Label = dgClip(dgCommandsLabel(cv, f), g.labelChars)
		}
		a.Head = dgArrowHead(a.X1, a.Y1, a.X2, a.Y2)
		a.LabelX, a.LabelY = (g.clientX+g.serverX)/2, min(a.Y1, a.Y2)-6
		a.AtY = a.Y1 + 4
		dir := "client to server"
		if f.From == smtp.DirServer {
			dir = "server to client"
		}
		var aria []string
		for n, l := range f.Lines {
			ev := cv.Events[l]
			text := Marker(ev.Dir) + " " + smtp.SafeText(ev.Line)
			if n < dgMaxPopupLines {
				a.Lines = append(a.Lines, dgClip(text, g.popupChars))
			}
			if n < dgMaxAriaLines {
				aria = append(aria, dgClip(text, dgMaxLineChars))
			}
		}
		a.More = len(f.Lines) - len(a.Lines)
		a.Aria = dir + " at " + a.At + " ms: " + strings.Join(aria, "; ")
		if n := len(f.Lines) - len(aria); n > 0 {
			a.Aria += fmt.Sprintf("; and %d more lines", n)
		}
		lines := len(a.Lines) + 1
		if a.More > 0 {
			lines++
		}
		a.PopupH = float64(lines)*dgPopupLine + 8
		a.PopupY = max(dgLifelineTop, a.Y1-12)
		d.Arrows = append(d.Arrows, a)
	}

	// Round trips: a client flight to the end of the server flight after
	// it; the greeting wait from the connect to the greeting.
	for fi, f := range cv.Flights {
		if f.From != smtp.DirClient || fi+1 >= len(cv.Flights) {
			continue
		}
		next := cv.Flights[fi+1]
		d.Trips = append(d.Trips, DiagramTrip{X: g.clientX - 12, Y1: tl.y(f.End), Y2: tl.y(next.End), Label: dgDuration(next.End - f.End)})
	}
	if len(cv.Flights) > 0 && cv.Flights[0].From == smtp.DirServer {
		for _, s := range cv.Spans {
			if s.Kind == smtp.SpanConnect && s.End <= cv.Flights[0].Start {
				first := cv.Flights[0]
				d.Trips = append([]DiagramTrip{{X: g.clientX - 12, Y1: tl.y(s.End), Y2: tl.y(first.End), Label: dgDuration(first.End - s.End)}}, d.Trips...)
				break
			}
		}
	}

	if in.Running && len(cv.Flights) > 0 {
		if last := cv.Flights[len(cv.Flights)-1]; last.From == smtp.DirClient {
			d.Waiting = tl.y(last.End)
			end = max(end, d.Waiting+dgMinSeparation)
		}
	}

	if t, x, ok := dgFailurePoint(cv, in); ok {
		fl := &DiagramFailure{Y: tl.y(t), X: g.clientX}
		text := in.Error
		if x >= 0 {
			ex := cv.Exchanges[x]
			fl.Code = ex.Code
			text = cv.Events[ex.Reply[0]].Line
			if ex.ReplyFlight >= 0 {
				// On the reply's arrow, near the client.
				a := d.Arrows[ex.ReplyFlight]
				fl.X = g.clientX + 24
				fl.Y = a.Y2 + (a.Y1-a.Y2)*24/(g.serverX-g.clientX)
			}
		}
		text = smtp.SafeText(text)
		fl.Title = "failed here: " + dgClip(text, dgMaxLineChars)
		fl.Text = dgWrap(dgClip("✗ "+text, 3*g.popupChars), g.popupChars)
		fl.TextY = fl.Y + 4
		d.Failure = fl
		end = max(end, fl.TextY+float64(len(fl.Text))*dgPopupLine)
	}

	if cv.Omitted > 0 {
		d.Omitted, d.OmittedY = cv.Omitted, end+dgMinSeparation
		end = d.OmittedY
	}
	d.Bottom = end + dgBottomPad/2
	d.Height = d.Bottom + dgBottomPad/2
	for _, a := range d.Arrows {
		d.Height = max(d.Height, a.PopupY+a.PopupH+8)
	}
	d.Bottom = d.Height - dgBottomPad/2
	d.Title, d.Desc = diagramText(in, cv, d)
	return d
}

// dgFailurePoint is when the send failed and the exchange whose reply said
// so (-1 when no reply did: a timeout, a refused connection). A send that
// stopped where it was asked to has none.
func dgFailurePoint(cv diagramConversation, in DiagramInput) (time.Duration, int, bool) {
	f := in.Failure
	if in.Running || (f.IsZero() && in.Error == "") || f.Kind == smtp.KindStopped || len(cv.Events) == 0 {
		return 0, -1, false
	}
	if f.Code != 0 {
		found := -1
		for i := len(cv.Exchanges) - 1; i >= 0 && found < 0; i-- {
			if x := cv.Exchanges[i]; x.Code == f.Code && x.HasReply() && (f.Phase == "" || x.Phase == f.Phase) {
				found = i
			}
		}
		for i := len(cv.Exchanges) - 1; i >= 0 && found < 0; i-- {
			if x := cv.Exchanges[i]; x.Code == f.Code && x.HasReply() {
				found = i
			}
		}
		if found >= 0 && cv.Exchanges[found].ReplyFlight < len(cv.Flights) {
			return cv.Exchanges[found].Answered, found, true
		}
	}
	if cv.Omitted > 0 { // after the flights drawn
		return 0, -1, false
	}
	return cv.Events[len(cv.Events)-1].Offset, -1, true
}

// dgConnectedAddrs reads the peer and local address from the connect
// span's line ("connected to R from L in 1.2ms").
func dgConnectedAddrs(line string) (remote, local string, ok bool) {
	rest, ok := strings.CutPrefix(line, "connected to ")
	if !ok {
		return "", "", false
	}
	remote, rest, ok = strings.Cut(rest, " from ")
	if !ok {
		return "", "", false
	}
	local, _, ok = strings.Cut(rest, " in ")
	return remote, local, ok
}

// dgSpanName names a span for its band.
func dgSpanName(k smtp.Span) string {
	switch k {
	case smtp.SpanDNS:
		return "DNS lookup"
	case smtp.SpanConnect:
		return "TCP connect"
	case smtp.SpanTLS:
		return "TLS handshake"
	}
	return string(k)
}

// dgCommandsLabel names a client flight's commands, runs of one verb
// counted: "MAIL, RCPT ×3, DATA".
func dgCommandsLabel(cv diagramConversation, f smtp.Flight) string {
	var words []string
	for _, x := range f.Exchanges {
		ex := cv.Exchanges[x]
		if ex.Command < 0 {
			words = append(words, "message (cut off)")
			continue
		}
		ev := cv.Events[ex.Command]
		if len(ex.Body) > 0 && ev.Line == "." {
			words = append(words, "message")
		}
		words = append(words, dgCommandWord(ev))
	}
	if len(words) == 0 { // only message lines so far
		words = append(words, "message")
	}
	var out []string
	for i := 0; i < len(words); {
		j := i
		for j < len(words) && words[j] == words[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, words[i]+" ×"+strconv.Itoa(j-i))
		} else {
			out = append(out, words[i])
		}
		i = j
	}
	return strings.Join(out, ", ")
}

// dgCommandWord is the verb of a command line, or what an AUTH response is.
func dgCommandWord(ev smtp.Event) string {
	if ev.Line == "." {
		return `"."`
	}
	verb, rest, _ := strings.Cut(ev.Line, " ")
	verb = strings.ToUpper(verb)
	switch verb {
	case "AUTH":
		mech, _, _ := strings.Cut(rest, " ")
		return dgClip("AUTH "+strings.ToUpper(smtp.SafeText(mech)), 20)
	case "BDAT":
		if strings.HasSuffix(strings.ToUpper(ev.Line), " LAST") {
			return "BDAT LAST"
		}
		return "BDAT"
	}
	if ev.Secret || ev.Phase == smtp.PhaseAuth {
		return "AUTH response"
	}
	return dgClip(smtp.SafeText(verb), 12)
}

// dgReplyCodes are the codes of the replies a server flight carried, runs
// of six or more of one code counted ("250 ×10").
func dgReplyCodes(cv diagramConversation, f smtp.Flight) []DiagramCode {
	type code struct {
		text    string
		refused bool
	}
	var codes []code
	for _, x := range f.Exchanges {
		ex := cv.Exchanges[x]
		t := strconv.Itoa(ex.Code)
		if ex.Code == 0 {
			t = "???"
		}
		if ex.Partial {
			t += "…"
		}
		codes = append(codes, code{t, ex.Code >= 400})
	}
	var out []DiagramCode
	for i := 0; i < len(codes); {
		j := i
		for j < len(codes) && codes[j] == codes[i] {
			j++
		}
		if j-i >= 6 {
			out = append(out, DiagramCode{Text: codes[i].text + " ×" + strconv.Itoa(j-i), Refused: codes[i].refused})
		} else {
			for k := i; k < j; k++ {
				out = append(out, DiagramCode{Text: codes[k].text, Refused: codes[k].refused})
			}
		}
		i = j
		if len(out) >= 12 && i < len(codes) {
			out = append(out, DiagramCode{Text: fmt.Sprintf("… %d more", len(codes)-i)})
			break
		}
	}
	for i := 1; i < len(out); i++ {
		out[i].Sep = " "
	}
	return out
}

// dgCodesText is a server flight's label as plain text.
func dgCodesText(codes []DiagramCode) string {
	var s []string
	for _, c := range codes {
		s = append(s, c.Text)
	}
	return strings.Join(s, " ")
}

// dgArrowHead is the triangle at the end of a line from (x1,y1) to (x2,y2).
func dgArrowHead(x1, y1, x2, y2 float64) string {
	const length, half = 9.0, 4.5
	dx, dy := x2-x1, y2-y1
	n := math.Hypot(dx, dy)
	if n == 0 {
		return ""
	}
	ux, uy := dx/n, dy/n
	bx, by := x2-ux*length, y2-uy*length
	return dgPx(x2) + "," + dgPx(y2) + " " + dgPx(bx-uy*half) + "," + dgPx(by+ux*half) + " " + dgPx(bx+uy*half) + "," + dgPx(by-ux*half)
}

// diagramText is the title and description of a diagram.
func diagramText(in DiagramInput, cv diagramConversation, d Diagram) (string, string) {
	title := "Sequence diagram of the conversation with " + d.Server.Name
	var waits int
	for _, f := range cv.Flights {
		if f.From == smtp.DirClient {
			waits++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Time flows down. %d flights, %d of them from the client", len(cv.Flights)+cv.Omitted, waits)
	if len(cv.Events) > 0 {
		fmt.Fprintf(&b, ", over %s", dgDuration(cv.Events[len(cv.Events)-1].Offset))
	}
	b.WriteString(".")
	for _, br := range d.Breaks {
		fmt.Fprintf(&b, " A wait of %s is drawn shortened.", strings.Trim(br.Label, "… "))
	}
	if d.Omitted > 0 {
		fmt.Fprintf(&b, " The first %d flights are drawn, %d more are not.", len(cv.Flights), d.Omitted)
	}
	if in.Running {
		b.WriteString(" The send is still running.")
	}
	if d.Failure != nil {
		b.WriteString(" The send failed: " + strings.TrimPrefix(d.Failure.Title, "failed here: ") + ".")
	}
	return title, b.String()
}

// dgDuration formats a wait for a diagram: "0.35 ms", "41.3 ms", "1.20 s".
func dgDuration(d time.Duration) string {
	m := dgMillis(d)
	switch {
	case m < 10:
		return strconv.FormatFloat(m, 'f', 2, 64) + " ms"
	case m < 1000:
		return strconv.FormatFloat(m, 'f', 1, 64) + " ms"
	case m < 10000:
		return strconv.FormatFloat(m/1000, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(m/1000, 'f', 1, 64) + " s"
}

// dgOffset formats an instant for the diagram's time column, in ms.
func dgOffset(d time.Duration) string {
	m := dgMillis(d)
	switch {
	case m < 100:
		return strconv.FormatFloat(m, 'f', 2, 64)
	case m < 10000:
		return strconv.FormatFloat(m, 'f', 1, 64)
	}
	return strconv.FormatFloat(m, 'f', 0, 64)
}

// dgPx formats a coordinate.
func dgPx(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// dgClip cuts s to n characters, marking the cut with "…".
func dgClip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// dgWrap cuts s into lines of at most n characters, at spaces when it can.
func dgWrap(s string, n int) []string {
	var out []string
	r := []rune(s)
	for len(r) > n {
		cut := n
		for i := n; i > n/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimSpace(string(r[:cut])))
		r = r[cut:]
	}
	return append(out, strings.TrimSpace(string(r)))
}

// dgLines says how many lines: "1 line", "12 lines".
func dgLines(n int) string {
	if n == 1 {
		return "1 line"
	}
	return strconv.Itoa(n) + " lines"
}
