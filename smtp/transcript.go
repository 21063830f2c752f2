package smtp

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"sockmail/internal/safetext"
)

// Phase names the part of the SMTP conversation an event belongs to.
type Phase string

// The phases of a send, in the order they normally happen.
const (
	PhaseConnect  Phase = "connect"
	PhaseGreeting Phase = "greeting"
	PhaseEHLO     Phase = "ehlo"
	PhaseStartTLS Phase = "starttls"
	PhaseAuth     Phase = "auth"
	PhaseMail     Phase = "mail"
	PhaseRcpt     Phase = "rcpt"
	PhaseData     Phase = "data"
	PhaseBody     Phase = "body"
	PhaseReset    Phase = "rset"
	PhaseQuit     Phase = "quit"
)

// Direction tells who said a transcript line.
type Direction string

// The three directions of a transcript event.
const (
	// DirClient is a line sockmail wrote to the server.
	DirClient Direction = "client"
	// DirServer is a line the server wrote to sockmail.
	DirServer Direction = "server"
	// DirInfo is something that is not on the wire but matters: DNS
	// answers, connect time, TLS details, capability changes.
	DirInfo Direction = "info"
)

// Event is one line of a transcript.
type Event struct {
	// Offset is the time since the transcript started.
	Offset time.Duration `json:"-"`
	// Dir says who wrote the line.
	Dir Direction `json:"dir"`
	// Phase is the protocol phase the line belongs to.
	Phase Phase `json:"phase"`
	// Line is the exact line without its CRLF. For a secret event it is
	// already redacted: the clear text is never kept.
	Line string `json:"line"`
	// Secret marks a line whose payload (an AUTH exchange) was redacted.
	Secret bool `json:"secret,omitempty"`
	// Cmd marks a client line that asks for a reply: a command, an AUTH
	// response, a BDAT chunk or the "." that ends DATA. Lines of the
	// message itself are not commands. Conversation pairs each command
	// with the reply that answered it.
	Cmd bool `json:"cmd,omitempty"`
	// Span, on an information event, names what the event ends: a DNS
	// lookup, the TCP connect or the TLS handshake, which took Took and so
	// began at Offset-Took.
	Span Span `json:"span,omitempty"`
	// Took is how long the span that this event ends took.
	Took time.Duration `json:"-"`
}

// Span names a stretch of time in a conversation that is not a command
// and its reply: a DNS lookup, the TCP connect or the TLS handshake.
type Span string

// The spans a transcript records.
const (
	SpanDNS     Span = "dns"
	SpanConnect Span = "connect"
	SpanTLS     Span = "tls"
)

// MarshalJSON encodes the event with its offset (and a span's duration)
// in milliseconds (sub-millisecond precision).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	var took *float64 // only on a span's end, and there even when 0
	if e.Span != "" {
		ms := Millis(e.Took)
		took = &ms
	}
	return json.Marshal(struct {
		MS     float64  `json:"ms"`
		TookMS *float64 `json:"took_ms,omitempty"`
		plain
	}{MS: Millis(e.Offset), TookMS: took, plain: plain(e)})
}

// Millis is d in milliseconds with microsecond precision, the unit of
// every time in a transcript's JSON.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// UnmarshalJSON decodes what MarshalJSON wrote.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var v struct {
		MS     float64 `json:"ms"`
		TookMS float64 `json:"took_ms"`
		plain
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("smtp: decode event: %w", err)
	}
	*e = Event(v.plain)
	e.Offset = time.Duration(v.MS * float64(time.Millisecond))
	e.Took = time.Duration(v.TookMS * float64(time.Millisecond))
	return nil
}

// maxTranscriptEvents bounds a transcript so that a hostile server cannot
// make it grow without limit; later events are counted, not kept.
const maxTranscriptEvents = 20000

// Transcript records one send's conversation. It is safe for concurrent
// use: a web handler may read it or subscribe to it while the send runs.
type Transcript struct {
	mu      sync.Mutex
	start   time.Time
	events  []Event
	dropped int
	subs    []subscriber
	nextSub int
	now     func() time.Time
	// discard: events go to the subscribers only and are not kept.
	discard bool
}

// NewTranscript returns an empty transcript whose clock starts now.
func NewTranscript() *Transcript {
	return &Transcript{start: time.Now(), now: time.Now}
}

// NewDiscardTranscript returns a transcript that keeps no events: they
// go to its subscribers, if any, and are then forgotten, so Events is
// always empty. It is for a caller that needs only the results (the CLI's
// --quiet over thousands of messages); the client then also skips
// composing the lines nobody would see.
func NewDiscardTranscript() *Transcript {
	t := NewTranscript()
	t.discard = true
	return t
}

// idle reports whether an event added now would go nowhere: a discarding
// transcript without subscribers.
func (t *Transcript) idle() bool {
	if !t.discard {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs) == 0
}

// Start returns the wall-clock time the transcript started.
func (t *Transcript) Start() time.Time { return t.start }

// Subscribe registers fn to be called, in order and synchronously, with
// every event added from now on. It returns the events recorded so far, so
// that a subscriber sees each event exactly once, and a function that
// ends the subscription (a web client that went away). fn runs with the
// transcript locked: it must be quick and must not call back into it.
func (t *Transcript) Subscribe(fn func(Event)) (past []Event, cancel func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextSub++
	id := t.nextSub
	t.subs = append(t.subs, subscriber{id: id, fn: fn})
	cancel = func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.subs = slices.DeleteFunc(t.subs, func(s subscriber) bool { return s.id == id })
	}
	return append([]Event(nil), t.events...), cancel
}

// subscriber is one registered Subscribe callback.
type subscriber struct {
	id int
	fn func(Event)
}

// Subscribers reports how many subscriptions are active.
func (t *Transcript) Subscribers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// Events returns a copy of the recorded events.
func (t *Transcript) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.events...)
}

// Dropped reports how many events were not kept because the transcript
// reached its size limit.
func (t *Transcript) Dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// add records one event. Lines longer than maxLineLength are cut and
// marked, so a transcript never holds an unbounded line.
func (t *Transcript) add(dir Direction, phase Phase, line string, secret bool) {
	t.addEvent(Event{Dir: dir, Phase: phase, Line: line, Secret: secret})
}

// addEvent records ev, its offset taken now.
func (t *Transcript) addEvent(ev Event) {
	if line := ev.Line; len(line) > maxLineLength {
		ev.Line = line[:maxLineLength] + " [... " + strconv.Itoa(len(line)-maxLineLength) + " more bytes]"
	}
	t.mu.Lock()
	if t.discard && len(t.subs) == 0 {
		t.mu.Unlock()
		return
	}
	if len(t.events) >= maxTranscriptEvents {
		t.dropped++
		t.mu.Unlock()
		return
	}
	ev.Offset = t.now().Sub(t.start)
	if !t.discard {
		t.events = append(t.events, ev)
	}
	subs := t.subs
	// Subscribers are called with the lock held so that they see events in
	// order; they must not call back into the transcript.
	for _, sub := range subs {
		sub.fn(ev)
	}
	t.mu.Unlock()
}

// Info records an event that is not on the wire.
func (t *Transcript) Info(phase Phase, format string, args ...any) {
	t.add(DirInfo, phase, fmt.Sprintf(format, args...), false)
}

// spanEnd records an information event that ends a span of kind, which
// began took ago (a DNS lookup, the TCP connect, the TLS handshake).
func (t *Transcript) spanEnd(kind Span, took time.Duration, phase Phase, format string, args ...any) {
	t.addEvent(Event{Dir: DirInfo, Phase: phase, Line: fmt.Sprintf(format, args...), Span: kind, Took: took})
}

// WriteText writes the transcript as swaks-like text: "->" for client
// lines, "<-" for server lines, "==" for information, each with its time
// offset in milliseconds.
func (t *Transcript) WriteText(w io.Writer) error {
	for _, ev := range t.Events() {
		if _, err := io.WriteString(w, FormatEvent(ev)+"\n"); err != nil {
			return fmt.Errorf("smtp: write transcript: %w", err)
		}
	}
	if n := t.Dropped(); n > 0 {
		if _, err := fmt.Fprintf(w, "== %d further events not kept (transcript limit)\n", n); err != nil {
			return fmt.Errorf("smtp: write transcript: %w", err)
		}
	}
	return nil
}

// WriteRounds writes events as swaks-like text (FormatEvent lines) in
// the order of the conversation's rounds (Conversation.Rounds): a header
// line per round saying how many commands its write carried and how long
// the client then waited, and under it each command followed by the
// reply that answered it, so that a pipelined MAIL, RCPT and DATA each
// show their own reply. Every event is written once; a reply's offset can
// therefore be later than the next command's.
func WriteRounds(w io.Writer, events []Event) error {
	cv := Converse(events)
	rounds, _ := cv.Rounds()
	var b []byte
	line := func(i int) {
		b = append(b, FormatEvent(events[i])...)
		b = append(b, '\n')
	}
	for ri, r := range rounds {
		b = append(b, RoundTitle(ri, r)...)
		b = append(b, '\n')
		for _, it := range r.Items {
			if it.Info >= 0 {
				line(it.Info)
				continue
			}
			x := cv.Exchanges[it.Exchange]
			for _, l := range it.ClientLines(x) {
				line(l)
			}
			for _, l := range x.Reply {
				line(l)
			}
		}
		if len(b) > 64<<10 || ri == len(rounds)-1 {
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("smtp: write transcript: %w", err)
			}
			b = b[:0]
		}
	}
	return nil
}

// RoundTitle is the header of round ri (counted from 0, shown from 1):
// what its write carried and how long the client then waited.
func RoundTitle(ri int, r Round) string {
	var what string
	switch {
	case r.Flight < 0:
		what = "before the first command"
	case r.Commands == 0:
		what = "message lines"
	case r.Commands == 1:
		what = "1 command"
	default:
		what = strconv.Itoa(r.Commands) + " commands in one write"
	}
	s := fmt.Sprintf("== round %d: %s", ri+1, what)
	if r.Wait > 0 {
		s += fmt.Sprintf(", waited %.3f ms", Millis(r.Wait))
		if r.Flight < 0 {
			s += " for the greeting"
		}
	}
	return s
}

// FormatEvent renders one event as a text transcript line, for example
// "[   12.345ms] -> EHLO example.org". Control characters are shown escaped
// so that a hostile server cannot move a terminal's cursor.
func FormatEvent(ev Event) string {
	marker := "=="
	switch ev.Dir {
	case DirClient:
		marker = "->"
	case DirServer:
		marker = "<-"
	}
	return fmt.Sprintf("[%10.3fms] %s %s", float64(ev.Offset.Microseconds())/1000, marker, SafeText(ev.Line))
}

// SafeText makes a line harmless to print: control characters (other than
// tab), invalid UTF-8 and bidirectional controls are shown as escapes
// (\x1b, \xff, \u202e), so a hostile server cannot move a terminal's
// cursor or reorder what a reader sees. It is safetext.Line, the one
// escaping helper.
func SafeText(s string) string { return safetext.Line(s) }

// MarshalJSON encodes the transcript as {"start": ..., "events": [...]}.
func (t *Transcript) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Start   time.Time `json:"start"`
		Events  []Event   `json:"events"`
		Dropped int       `json:"dropped,omitempty"`
	}{t.start, t.Events(), t.Dropped()})
}

// PhaseTiming is how long one phase of the conversation took.
type PhaseTiming struct {
	Phase    Phase
	Duration time.Duration
}

// PhaseTimings derives, from the events, the time spent in each run of
// events of one phase, in order. A run's time goes from its first event to
// the first event of the next run. A phase can have several runs: with
// PIPELINING the MAIL and RCPT commands are written before their replies
// are read (views.Groups relies on one entry per run).
func PhaseTimings(events []Event) []PhaseTiming {
	var out []PhaseTiming
	for i, ev := range events {
		if i == 0 || ev.Phase != events[i-1].Phase {
			out = append(out, PhaseTiming{Phase: ev.Phase})
		}
		last := &out[len(out)-1]
		end := ev.Offset
		if i+1 < len(events) {
			end = events[i+1].Offset
		}
		last.Duration += end - ev.Offset
	}
	return out
}
