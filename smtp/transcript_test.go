package smtp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The transcript: renderings, JSON, escaping, the body summary, phase
// timings, subscribers, and transcripts of sends that failed.

func TestFormatEvent(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Offset: 12345 * time.Microsecond, Dir: DirClient, Phase: PhaseEHLO, Line: "EHLO client.test"}, "[    12.345ms] -> EHLO client.test"},
		{Event{Offset: 0, Dir: DirServer, Phase: PhaseGreeting, Line: "220 mx.test"}, "[     0.000ms] <- 220 mx.test"},
		{Event{Offset: 1500 * time.Millisecond, Dir: DirInfo, Phase: PhaseConnect, Line: "connected"}, "[  1500.000ms] == connected"},
		{Event{Offset: time.Millisecond, Dir: DirServer, Line: "250 \x1b[2Jgotcha"}, `[     1.000ms] <- 250 \x1b[2Jgotcha`},
		{Event{Dir: DirClient, Line: redacted, Secret: true}, "[     0.000ms] -> " + redacted},
	}
	for _, tt := range tests {
		if got := FormatEvent(tt.ev); got != tt.want {
			t.Errorf("FormatEvent = %q, want %q", got, tt.want)
		}
	}
}

func TestSafeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain ASCII", "plain ASCII"},
		{"tab\tkept", "tab\tkept"},
		{"ünïcödé and 日本語 kept", "ünïcödé and 日本語 kept"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"nul\x00", `nul\x00`},
		{"cr\rlf\n", `cr\x0dlf\x0a`},
		{"del\x7f", `del\x7f`},
		{"invalid \xff\xfe utf-8", `invalid \xff\xfe utf-8`},
		{"truncated \xe6\x97", `truncated \xe6\x97`},
		{"C1 \u0085 \u009b", `C1 \u0085 \u009b`},
		{"bidi \u202eevil\u202c", `bidi \u202eevil\u202c`},
		{"isolates \u2066\u2067\u2068\u2069", `isolates \u2066\u2067\u2068\u2069`},
		{"marks \u200e\u200f\u061c", `marks \u200e\u200f\u061c`},
		{"a real U+FFFD \ufffd stays", "a real U+FFFD \ufffd stays"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := SafeText(tt.in); got != tt.want {
			t.Errorf("SafeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestHostileServerLinesEscaped: what a server sends is kept exactly in
// the events and escaped in the text rendering.
func TestHostileServerLinesEscaped(t *testing.T) {
	f := &faker{r: strings.NewReader("220 mx.test \x1b]0;pwned\x07 \u202egnp.exe\r\n554 \xff bye\r\n")}
	cfg := fakeConfig(f)
	_, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x"), SendOptions{})
	if err == nil {
		t.Fatal("want an error")
	}
	ev := cfg.Transcript.Events()
	if !slices.Contains(eventLines(ev, DirServer), "220 mx.test \x1b]0;pwned\x07 \u202egnp.exe") {
		t.Errorf("events do not keep the exact line: %q", eventLines(ev, DirServer))
	}
	var text bytes.Buffer
	if err := cfg.Transcript.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\xff"} {
		if strings.Contains(text.String(), bad) {
			t.Errorf("text rendering holds %q:\n%s", bad, text.String())
		}
	}
	if !strings.Contains(text.String(), `\x1b]0;pwned\x07 \u202egnp.exe`) {
		t.Errorf("text rendering lacks the escaped line:\n%s", text.String())
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	events := []Event{
		{Offset: 0, Dir: DirInfo, Phase: PhaseConnect, Line: "connecting"},
		{Offset: 1234567 * time.Microsecond, Dir: DirServer, Phase: PhaseGreeting, Line: "220 mx.test \x00 \xff"},
		{Offset: 999 * time.Microsecond, Dir: DirClient, Phase: PhaseAuth, Line: "AUTH PLAIN " + redacted, Secret: true},
		{Offset: 3 * time.Minute, Dir: DirClient, Phase: PhaseBody, Line: ""},
	}
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := ev
		if !utf8Valid(ev.Line) {
			want.Line = strings.ToValidUTF8(ev.Line, "\ufffd") // JSON strings are UTF-8
		}
		if back != want {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", b, back, want)
		}
	}
	b, _ := json.Marshal(events[2])
	if got := string(b); got != `{"ms":0.999,"dir":"client","phase":"auth","line":"AUTH PLAIN `+redacted+`","secret":true}` {
		t.Errorf("JSON = %s", got)
	}
	b, _ = json.Marshal(events[0])
	if strings.Contains(string(b), "secret") {
		t.Errorf("secret:false should be left out: %s", b)
	}
	var bad Event
	if err := json.Unmarshal([]byte(`{"ms":"x"}`), &bad); err == nil || !strings.HasPrefix(err.Error(), "smtp: decode event") {
		t.Errorf("bad JSON: %v", err)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }

// TestTranscriptJSON: the whole transcript of a real send decodes back to
// the same events.
func TestTranscriptJSON(t *testing.T) {
	f := newFaker(ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as J1\n221 Bye\n")
	cfg := fakeConfig(f)
	if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("Subject: j\n\nbody\n"), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg.Transcript)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Start   time.Time `json:"start"`
		Events  []Event   `json:"events"`
		Dropped int       `json:"dropped"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Start.Equal(cfg.Transcript.Start()) {
		t.Errorf("start %v, want %v", back.Start, cfg.Transcript.Start())
	}
	want := cfg.Transcript.Events()
	if len(back.Events) != len(want) {
		t.Fatalf("%d events back, want %d", len(back.Events), len(want))
	}
	for i := range want {
		w := want[i]
		w.Offset = w.Offset.Truncate(time.Microsecond)
		if d := back.Events[i].Offset - w.Offset; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("event %d offset %v, want %v", i, back.Events[i].Offset, w.Offset)
		}
		back.Events[i].Offset = w.Offset
		if d := back.Events[i].Took - w.Took.Truncate(time.Microsecond); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("event %d took %v, want %v", i, back.Events[i].Took, w.Took)
		}
		back.Events[i].Took = w.Took
		if back.Events[i] != w {
			t.Errorf("event %d = %+v, want %+v", i, back.Events[i], w)
		}
	}
	if strings.Contains(string(b), "dropped") {
		t.Errorf("dropped:0 should be left out")
	}
}

func TestWriteText(t *testing.T) {
	tr := NewTranscript()
	tr.now = func() time.Time { return tr.start.Add(2500 * time.Microsecond) }
	tr.add(DirClient, PhaseEHLO, "EHLO a", false)
	tr.add(DirServer, PhaseEHLO, "250 b", false)
	tr.Info(PhaseEHLO, "note %d", 1)
	var b bytes.Buffer
	if err := tr.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "[     2.500ms] -> EHLO a\n[     2.500ms] <- 250 b\n[     2.500ms] == note 1\n"
	if b.String() != want {
		t.Errorf("text:\n%q\nwant\n%q", b.String(), want)
	}
	var failing failWriter
	if err := tr.WriteText(failing); err == nil || !strings.HasPrefix(err.Error(), "smtp: write transcript") {
		t.Errorf("write error = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestTranscriptLimits(t *testing.T) {
	tr := NewTranscript()
	tr.add(DirServer, PhaseGreeting, strings.Repeat("x", 5000), false)
	if l := tr.Events()[0].Line; len(l) > maxLineLength+40 || !strings.HasSuffix(l, "[... 904 more bytes]") {
		t.Errorf("long line kept as %d bytes ending %q", len(l), l[len(l)-30:])
	}
	for range maxTranscriptEvents + 10 {
		tr.Info(PhaseBody, "x")
	}
	if n := len(tr.Events()); n != maxTranscriptEvents {
		t.Errorf("%d events kept, want %d", n, maxTranscriptEvents)
	}
	if tr.Dropped() != 11 {
		t.Errorf("dropped %d, want 11", tr.Dropped())
	}
	var b bytes.Buffer
	_ = tr.WriteText(&b)
	if !strings.HasSuffix(b.String(), "== 11 further events not kept (transcript limit)\n") {
		t.Errorf("text does not end with the dropped count")
	}
}

// bodyEvents returns the client lines of the body phase.
func bodyEvents(ev []Event) []string {
	var out []string
	for _, e := range ev {
		if e.Phase == PhaseBody && e.Dir == DirClient {
			out = append(out, e.Line)
		}
	}
	return out
}

func TestBodySummary(t *testing.T) {
	msg := "From: a@example.org\nSubject: secret plans\n\nline one\nline two\n.dotted\n"
	tests := []struct {
		name     string
		showBody bool
		chunking bool
		lines    []string
		info     string
	}{
		{"summary", false, false, []string{"From: a@example.org", "Subject: secret plans", "", "."},
			"message: 76 bytes in 6 lines; 2 header lines shown, the body is not shown"},
		{"summary with BDAT", false, true, []string{"BDAT 75 LAST", "From: a@example.org", "Subject: secret plans", ""},
			"message: 75 bytes in 6 lines; 2 header lines shown, the body is not shown"},
		{"ShowBody", true, false, []string{"From: a@example.org", "Subject: secret plans", "", "line one", "line two", ".dotted", "."},
			"message: 76 bytes in 6 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ehlo := ehloPipelining
			if tt.chunking {
				ehlo = ehloFull
			}
			f := newFaker(ehlo + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
			if tt.chunking {
				f = newFaker(ehlo + "250 Ok\n250 Ok\n250 Ok\n221 Bye\n")
			}
			cfg := fakeConfig(f)
			cfg.ShowBody = tt.showBody
			if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader(msg), SendOptions{}); err != nil {
				t.Fatal(err)
			}
			ev := cfg.Transcript.Events()
			if got := bodyEvents(ev); !slices.Equal(got, tt.lines) {
				t.Errorf("body lines %q, want %q", got, tt.lines)
			}
			if !hasEvent(ev, DirInfo, tt.info) {
				t.Errorf("no %q:\n%s", tt.info, dumpTranscript(cfg.Transcript))
			}
			if !tt.showBody && hasEvent(ev, DirClient, "line one") {
				t.Errorf("body shown without ShowBody")
			}
		})
	}
}

// TestBodyCannotFloodTranscript: a message without a blank line (all
// "headers") or a huge body with ShowBody must not push the final reply
// out of the transcript.
func TestBodyCannotFloodTranscript(t *testing.T) {
	for _, show := range []bool{false, true} {
		t.Run(fmt.Sprintf("ShowBody=%v", show), func(t *testing.T) {
			msg := strings.Repeat("X-Header: value\n", maxTranscriptEvents+5000)
			f := newFaker(ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok: queued as FLOOD\n221 Bye\n")
			cfg := fakeConfig(f)
			cfg.ShowBody = show
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader(msg), SendOptions{})
			if err != nil || res.QueueID != "FLOOD" {
				t.Fatal(err)
			}
			tr := cfg.Transcript
			if tr.Dropped() != 0 {
				t.Errorf("%d events dropped: the body filled the transcript", tr.Dropped())
			}
			if !hasEvent(tr.Events(), DirServer, "250 Ok: queued as FLOOD") {
				t.Errorf("the final reply is not in the transcript")
			}
			if !hasEvent(tr.Events(), DirInfo, "not shown") {
				t.Errorf("no note that lines were left out")
			}
		})
	}
}

func TestPhaseTimings(t *testing.T) {
	ms := time.Millisecond
	ev := []Event{
		{Offset: 0, Phase: PhaseConnect},
		{Offset: 1 * ms, Phase: PhaseGreeting},
		{Offset: 2 * ms, Phase: PhaseMail}, // pipelined: MAIL, RCPT written, then both replies
		{Offset: 3 * ms, Phase: PhaseRcpt},
		{Offset: 5 * ms, Phase: PhaseMail},
		{Offset: 6 * ms, Phase: PhaseRcpt},
		{Offset: 10 * ms, Phase: PhaseQuit},
	}
	want := []PhaseTiming{{PhaseConnect, ms}, {PhaseGreeting, ms}, {PhaseMail, ms}, {PhaseRcpt, 2 * ms}, {PhaseMail, ms}, {PhaseRcpt, 4 * ms}, {PhaseQuit, 0}}
	if got := PhaseTimings(ev); !slices.Equal(got, want) {
		t.Errorf("PhaseTimings = %v, want %v", got, want)
	}
	if got := PhaseTimings(nil); len(got) != 0 {
		t.Errorf("no events: %v", got)
	}
	// The runs of a real send (one recipient, no pipelining) add up to
	// its length.
	f := newFaker(ehloPlain + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
	cfg := fakeConfig(f)
	if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	events := cfg.Transcript.Events()
	var sum time.Duration
	var phases []Phase
	for _, pt := range PhaseTimings(events) {
		sum += pt.Duration
		phases = append(phases, pt.Phase)
	}
	if span := events[len(events)-1].Offset - events[0].Offset; sum != span {
		t.Errorf("timings add up to %v, the events span %v", sum, span)
	}
	if want := []Phase{PhaseConnect, PhaseGreeting, PhaseEHLO, PhaseMail, PhaseRcpt, PhaseData, PhaseBody, PhaseQuit}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
}

// TestSubscribeMidSend: a subscriber that joins while the send runs sees
// every event exactly once, in order: the ones before from Subscribe's
// return value, the ones after through the callback.
func TestSubscribeMidSend(t *testing.T) {
	p := certs(t)
	ehloSent, proceed := make(chan struct{}), make(chan struct{})
	m := &miniServer{tls: p.serverTLS(), ext: []string{"PIPELINING", "STARTTLS"},
		afterEHLO: func() { close(ehloSent); <-proceed }}
	addr := serve(t, m.handle)
	tr := NewTranscript()
	done := make(chan error, 1)
	go func() {
		_, err := SendMail(context.Background(), Config{Addr: addr, TLS: TLSStartTLS, TLSConfig: p.clientTLS("localhost"), Transcript: tr},
			envelope1, strings.NewReader("Subject: s\n\nbody\n"), SendOptions{})
		done <- err
	}()
	<-ehloSent
	var mu sync.Mutex
	var live []Event
	before, _ := tr.Subscribe(func(ev Event) {
		mu.Lock()
		live = append(live, ev)
		mu.Unlock()
	})
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("send: %v", err)
	}
	mu.Lock()
	got := append(before, live...)
	mu.Unlock()
	all := tr.Events()
	if len(before) == 0 || len(live) == 0 {
		t.Errorf("subscribed at a useless moment: %d before, %d live", len(before), len(live))
	}
	if !slices.Equal(got, all) {
		t.Errorf("subscriber saw %d events, the transcript has %d", len(got), len(all))
	}
}

// TestSubscribeRace: subscribers joining at random moments of quick
// sends all see the whole transcript exactly once, in order.
func TestSubscribeRace(t *testing.T) {
	type sub struct {
		mu           sync.Mutex
		before, live []Event
	}
	for range 20 {
		f := newFaker(ehloPipelining + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
		cfg := fakeConfig(f)
		tr := cfg.Transcript
		subs := make([]*sub, 6)
		var wg sync.WaitGroup
		for i := range subs {
			s := &sub{}
			subs[i] = s
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.mu.Lock()
				defer s.mu.Unlock()
				s.before, _ = tr.Subscribe(func(ev Event) {
					s.mu.Lock() // waits until before is stored
					s.live = append(s.live, ev)
					s.mu.Unlock()
				})
			}()
		}
		if _, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		all := tr.Events()
		for i, s := range subs {
			s.mu.Lock()
			got := append(append([]Event(nil), s.before...), s.live...)
			s.mu.Unlock()
			if !slices.Equal(got, all) {
				t.Fatalf("subscriber %d saw %d events (%d before), the transcript has %d", i, len(got), len(s.before), len(all))
			}
		}
	}
}

// TestPartialTranscripts: a send that fails before SMTP starts or half
// way still has a transcript up to the failure.
func TestPartialTranscripts(t *testing.T) {
	t.Run("DNS failure", func(t *testing.T) {
		tr := NewTranscript()
		r := &fakeResolver{ipErr: map[string]error{"mail.nowhere.test": &net.DNSError{Err: "no such host", Name: "mail.nowhere.test", IsNotFound: true}}}
		_, err := SendMail(context.Background(), Config{Addr: "mail.nowhere.test:25", Resolver: r, Transcript: tr}, envelope1, strings.NewReader("x"), SendOptions{})
		var e *Error
		if !errors.As(err, &e) || e.Phase != PhaseConnect || e.Temporary() {
			t.Errorf("err = %v, want a permanent connect error", err)
		}
		if !hasEvent(tr.Events(), DirInfo, "DNS lookup of mail.nowhere.test failed") {
			t.Errorf("no DNS failure in:\n%s", dumpTranscript(tr))
		}
	})
	t.Run("dropped at RCPT", func(t *testing.T) {
		f := newFaker(ehloPlain + "250 Ok\n")
		cfg := fakeConfig(f)
		_, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x"), SendOptions{})
		if err == nil {
			t.Fatal("no error")
		}
		ev := cfg.Transcript.Events()
		for _, want := range []struct {
			dir  Direction
			line string
		}{
			{DirInfo, "connected to"}, {DirServer, "220 mx.test"}, {DirClient, "EHLO client.test"},
			{DirClient, "MAIL FROM:<a@example.org>"}, {DirClient, "RCPT TO:<b@example.net>"}, {DirInfo, "server closed the connection"},
		} {
			if !hasEvent(ev, want.dir, want.line) {
				t.Errorf("partial transcript lacks %s %q:\n%s", want.dir, want.line, dumpTranscript(cfg.Transcript))
			}
		}
	})
}

// TestSubscribeCancel: a cancelled subscriber hears nothing more.
func TestSubscribeCancel(t *testing.T) {
	tr := NewTranscript()
	var got []string
	_, cancel := tr.Subscribe(func(ev Event) { got = append(got, ev.Line) })
	_, cancel2 := tr.Subscribe(func(Event) {})
	tr.Info(PhaseConnect, "one")
	cancel()
	tr.Info(PhaseConnect, "two")
	if !slices.Equal(got, []string{"one"}) {
		t.Errorf("after cancel the subscriber saw %q", got)
	}
	if n := tr.Subscribers(); n != 1 {
		t.Errorf("%d subscribers after one cancel, want 1", n)
	}
	cancel2()
	cancel2() // twice is harmless
	if n := tr.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after both cancels, want 0", n)
	}
}
