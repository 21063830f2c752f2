package smtp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// script builds events from lines: "C MAIL FROM:<a>" is a command, "A x"
// an AUTH command or response, "B x" a
// message line (no reply asked), "S 250 ok" a server line, "I text" an
// information line, "T 5 dns text" an information line ending a 5 ms span.
// Each line is 1 ms after the one before.
func script(t *testing.T, lines ...string) []Event {
	t.Helper()
	var evs []Event
	for i, l := range lines {
		kind, rest, _ := strings.Cut(l, " ")
		ev := Event{Offset: time.Duration(i+1) * time.Millisecond, Line: rest, Phase: PhaseMail}
		switch kind {
		case "C":
			ev.Dir, ev.Cmd = DirClient, true
		case "A":
			ev.Dir, ev.Cmd, ev.Phase = DirClient, true, PhaseAuth
		case "B":
			ev.Dir, ev.Phase = DirClient, PhaseBody
		case "S":
			ev.Dir = DirServer
		case "I":
			ev.Dir = DirInfo
		case "T":
			var ms int
			var span string
			if _, err := fmt.Sscan(rest, &ms, &span); err != nil {
				t.Fatalf("bad span line %q: %v", l, err)
			}
			ev.Dir, ev.Span, ev.Took = DirInfo, Span(span), time.Duration(ms)*time.Millisecond
		default:
			t.Fatalf("bad script line %q", l)
		}
		evs = append(evs, ev)
	}
	return evs
}

// pairs renders each exchange as "command => code" (or "- => code" for a
// reply nobody asked for, "command => none"), with its body line count.
func pairs(cv Conversation) []string {
	var out []string
	for _, x := range cv.Exchanges {
		cmd := "-"
		if x.Command >= 0 {
			cmd = cv.Events[x.Command].Line
		}
		s := cmd + " => "
		switch {
		case !x.HasReply():
			s += "none"
		case x.Partial:
			s += fmt.Sprintf("%d (partial)", x.Code)
		default:
			s += fmt.Sprint(x.Code)
		}
		if len(x.Body) > 0 {
			s += fmt.Sprintf(" [%d body lines]", len(x.Body))
		}
		out = append(out, s)
	}
	return out
}

func TestConversePairsRepliesWithPipelinedCommands(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		want    []string
		flights string // one letter per flight: c client, s server
	}{{
		name: "partly refused recipients, then DATA refused with 554",
		lines: []string{
			"S 220 mx ESMTP",
			"C EHLO me", "S 250-mx", "S 250-PIPELINING", "S 250 8BITMIME",
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C RCPT TO:<c@y>", "C RCPT TO:<d@y>", "C DATA",
			"S 250 2.1.0 ok", "S 250 2.1.5 ok", "S 550 5.1.1 no such user", "S 250 2.1.5 ok", "S 554 5.5.1 no valid recipients",
			"C QUIT", "S 221 bye",
		},
		want: []string{
			"- => 220", "EHLO me => 250",
			"MAIL FROM:<a@x> => 250", "RCPT TO:<b@y> => 250", "RCPT TO:<c@y> => 550", "RCPT TO:<d@y> => 250", "DATA => 554",
			"QUIT => 221",
		},
		flights: "scscscs",
	}, {
		name: "DATA accepted, message, end of data refused",
		lines: []string{
			"S 220 mx", "C EHLO me", "S 250 mx",
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C DATA", "S 250 ok", "S 250 ok", "S 354 go on",
			"B Subject: hi", "B ", "B hello", "C .", "S 554 5.7.1 spam",
			"C QUIT", "S 221 bye",
		},
		want: []string{
			"- => 220", "EHLO me => 250", "MAIL FROM:<a@x> => 250", "RCPT TO:<b@y> => 250", "DATA => 354",
			". => 554 [3 body lines]", "QUIT => 221",
		},
		flights: "scscscscs",
	}, {
		name: "CHUNKING: envelope and BDAT LAST in one flight",
		lines: []string{
			"S 220 mx", "C EHLO me", "S 250 mx",
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C BDAT 12 LAST", "B Subject: x", "B ", "B hi",
			"S 250 ok", "S 250 ok", "S 250 2.0.0 queued as X",
			"C QUIT", "S 221 bye",
		},
		want: []string{
			"- => 220", "EHLO me => 250", "MAIL FROM:<a@x> => 250", "RCPT TO:<b@y> => 250",
			"BDAT 12 LAST => 250 [3 body lines]", "QUIT => 221",
		},
		flights: "scscscs",
	}, {
		name:    "a stray reply nobody asked for",
		lines:   []string{"S 220 mx", "C NOOP", "S 250 ok", "S 250 surprise"},
		want:    []string{"- => 220", "NOOP => 250", "- => 250"},
		flights: "scs",
	}, {
		name:    "send cut off mid-reply and mid-message",
		lines:   []string{"S 220 mx", "C EHLO me", "S 250-mx", "S 250-SIZE"},
		want:    []string{"- => 220", "EHLO me => 250 (partial)"},
		flights: "scs",
	}, {
		name:    "message lines without their end",
		lines:   []string{"S 220 mx", "C DATA", "S 354 go", "B line 1", "B line 2"},
		want:    []string{"- => 220", "DATA => 354", "- => none [2 body lines]"},
		flights: "scsc",
	}, {
		name:    "no reply to the last command",
		lines:   []string{"S 220 mx", "C EHLO me", "I timed out waiting for the server"},
		want:    []string{"- => 220", "EHLO me => none"},
		flights: "sc",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cv := Converse(script(t, tt.lines...))
			if got := pairs(cv); !slices.Equal(got, tt.want) {
				t.Errorf("exchanges:\n got  %q\n want %q", got, tt.want)
			}
			var fl strings.Builder
			for _, f := range cv.Flights {
				fl.WriteByte(map[Direction]byte{DirClient: 'c', DirServer: 's'}[f.From])
			}
			if fl.String() != tt.flights {
				t.Errorf("flights %q, want %q", fl.String(), tt.flights)
			}
			checkConversationLinks(t, cv)
		})
	}
}

// checkConversationLinks checks that flights and exchanges name each
// other consistently and every wire line belongs to exactly one flight.
func checkConversationLinks(t *testing.T, cv Conversation) {
	t.Helper()
	seen := map[int]bool{}
	for fi, f := range cv.Flights {
		for _, l := range f.Lines {
			if seen[l] {
				t.Errorf("line %d in two flights", l)
			}
			seen[l] = true
			if cv.Events[l].Dir != f.From {
				t.Errorf("flight %d (%s) holds a %s line", fi, f.From, cv.Events[l].Dir)
			}
		}
		for _, x := range f.Exchanges {
			ex := cv.Exchanges[x]
			if ex.Flight != fi && ex.ReplyFlight != fi {
				t.Errorf("flight %d lists exchange %d, which names flights %d and %d", fi, x, ex.Flight, ex.ReplyFlight)
			}
		}
	}
	for i, ev := range cv.Events {
		if ev.Dir != DirInfo && !seen[i] {
			t.Errorf("line %d (%q) is in no flight", i, ev.Line)
		}
	}
}

func TestConverseWaitIsTheRoundTrip(t *testing.T) {
	// Pipelined: MAIL at 2 ms, RCPT at 3 ms, replies at 4 and 5 ms.
	cv := Converse(script(t, "S 220 mx", "C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "S 250 ok", "S 250 ok"))
	want := []time.Duration{0, 2 * time.Millisecond, 2 * time.Millisecond}
	for i, x := range cv.Exchanges {
		if x.Wait() != want[i] {
			t.Errorf("exchange %d waited %v, want %v", i, x.Wait(), want[i])
		}
	}
}

func TestConverseSpans(t *testing.T) {
	cv := Converse(script(t, "T 1 dns DNS mx A: 192.0.2.1", "I connecting to 192.0.2.1:25", "T 2 connect connected", "S 220 mx",
		"C STARTTLS", "S 220 go", "T 1 tls TLS handshake done"))
	want := []SpanTime{
		{Kind: SpanDNS, Start: 0, End: time.Millisecond, Event: 0},
		{Kind: SpanConnect, Start: time.Millisecond, End: 3 * time.Millisecond, Event: 2},
		{Kind: SpanTLS, Start: 6 * time.Millisecond, End: 7 * time.Millisecond, Event: 6},
	}
	if !slices.Equal(cv.Spans, want) {
		t.Errorf("spans %+v, want %+v", cv.Spans, want)
	}
}

func TestConverseLegacyTranscripts(t *testing.T) {
	// Stored before Cmd existed: commands told apart by phase.
	evs := []Event{
		{Dir: DirServer, Phase: PhaseGreeting, Line: "220 mx"},
		{Dir: DirClient, Phase: PhaseData, Line: "DATA"},
		{Dir: DirServer, Phase: PhaseData, Line: "354 go"},
		{Dir: DirClient, Phase: PhaseBody, Line: "Subject: x"},
		{Dir: DirClient, Phase: PhaseBody, Line: "."},
		{Dir: DirServer, Phase: PhaseBody, Line: "250 ok"},
		{Dir: DirClient, Phase: PhaseBody, Line: "BDAT 3 LAST"},
		{Dir: DirClient, Phase: PhaseBody, Line: "abc"},
		{Dir: DirServer, Phase: PhaseBody, Line: "250 ok"},
	}
	got := pairs(Converse(evs))
	want := []string{"- => 220", "DATA => 354", ". => 250 [1 body lines]", "BDAT 3 LAST => 250 [1 body lines]"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestConverseRealClient runs the client against a scripted server and
// checks that what it recorded reads back as the exchanges it made and as
// the writes it did: the client marks its commands (Cmd), so a message
// line "." is never taken for the end of the data.
func TestConverseRealClient(t *testing.T) {
	f := newFaker(ehloPipelining + "250 2.1.0 ok\n250 2.1.5 ok\n550 5.1.1 unknown\n250 2.1.5 ok\n354 go on\n250 2.0.0 queued as Q1\n221 bye\n")
	cfg := fakeConfig(f)
	env := Envelope{From: "a@example.org", To: []string{"b@example.org", "c@example.org", "d@example.org"}}
	cfg.ShowBody = true
	res, err := SendMail(context.Background(), cfg, env, strings.NewReader("Subject: dots\n\n.\n..\nend\n"), SendOptions{})
	if err != nil || res.QueueID != "Q1" {
		t.Fatalf("send: %v (queue id %q)", err, res.QueueID)
	}
	cv := Converse(cfg.Transcript.Events())
	want := []string{
		"- => 220", "EHLO client.test => 250",
		"MAIL FROM:<a@example.org> => 250", "RCPT TO:<b@example.org> => 250", "RCPT TO:<c@example.org> => 550",
		"RCPT TO:<d@example.org> => 250", "DATA => 354", ". => 250 [5 body lines]", "QUIT => 221",
	}
	if got := pairs(cv); !slices.Equal(got, want) {
		t.Errorf("exchanges:\n got  %q\n want %q", got, want)
	}
	clientFlights := 0
	for _, fl := range cv.Flights {
		if fl.From == DirClient {
			clientFlights++
		}
	}
	if writes := strings.Count(f.client(), "|") + 1; clientFlights != writes {
		t.Errorf("%d client flights, but the client wrote %d times: %q", clientFlights, writes, f.client())
	}
	if len(cv.Spans) != 1 || cv.Spans[0].Kind != SpanConnect {
		t.Errorf("spans %+v, want the connect", cv.Spans)
	}
	checkConversationLinks(t, cv)
}

// roundsText renders rounds as one string each: "wait: item, item", an
// exchange as "command=>code" (its notes as "+note"), an information line
// as "i:text".
func roundsText(cv Conversation, rounds []Round) []string {
	var out []string
	for _, r := range rounds {
		var items []string
		for _, it := range r.Items {
			if it.Info >= 0 {
				items = append(items, "i:"+cv.Events[it.Info].Line)
				continue
			}
			x := cv.Exchanges[it.Exchange]
			s := "-"
			if x.Command >= 0 {
				s = cv.Events[x.Command].Line
			}
			s += fmt.Sprintf("=>%d", x.Code)
			for _, n := range it.Notes {
				s += "+" + cv.Events[n].Line
			}
			items = append(items, s)
		}
		out = append(out, fmt.Sprintf("%v %d: %s", r.Wait, r.Commands, strings.Join(items, ", ")))
	}
	return out
}

func TestConversationRounds(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{{
		name: "pipelined, a recipient refused, DATA refused with 554",
		lines: []string{
			"I connecting", "T 1 connect connected", "S 220 mx",
			"C EHLO me", "S 250 mx",
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C RCPT TO:<c@y>", "C DATA",
			"S 250 ok", "S 550 no such user", "S 250 ok", "S 554 no valid recipients",
			"I the server refused the message", "C QUIT", "S 221 bye",
		},
		want: []string{
			"1ms 0: i:connecting, i:1 connect connected, -=>220",
			"1ms 1: EHLO me=>250",
			"4ms 4: MAIL FROM:<a@x>=>250, RCPT TO:<b@y>=>550, RCPT TO:<c@y>=>250, DATA=>554, i:the server refused the message",
			"1ms 1: QUIT=>221",
		},
	}, {
		name: "message with its summary, end of data and QUIT in one write",
		lines: []string{
			"S 220 mx", "C DATA", "S 354 go",
			"B Subject: x", "B ", "I message: 20 bytes", "C .", "C QUIT", "S 250 queued", "I queue id: Q", "S 221 bye",
		},
		want: []string{
			"1ms 0: -=>220",
			"1ms 1: DATA=>354",
			"3ms 2: .=>250+message: 20 bytes, QUIT=>221, i:queue id: Q",
		},
	}, {
		name:  "a stray reply sits where it arrived",
		lines: []string{"S 220 mx", "C NOOP", "S 250 ok", "I note", "S 250 surprise"},
		want:  []string{"1ms 0: -=>220", "1ms 1: NOOP=>250, i:note, -=>250"},
	}, {
		name:  "no greeting yet",
		lines: []string{"T 2 dns DNS mx", "I connecting"},
		want:  []string{"0s 0: i:2 dns DNS mx, i:connecting"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := script(t, tt.lines...)
			cv := Converse(evs)
			rounds, roundOf := cv.Rounds()
			if got := roundsText(cv, rounds); !slices.Equal(got, tt.want) {
				t.Errorf("rounds:\n got  %q\n want %q", got, tt.want)
			}
			// Every event is shown exactly once, in the round roundOf names.
			shown := map[int]int{}
			for ri, r := range rounds {
				for _, it := range r.Items {
					lines := []int{it.Info}
					if it.Exchange >= 0 {
						x := cv.Exchanges[it.Exchange]
						lines = append(it.ClientLines(x), x.Reply...)
					}
					for _, l := range lines {
						shown[l]++
						if roundOf[l] != ri {
							t.Errorf("event %d shown in round %d, roundOf says %d", l, ri, roundOf[l])
						}
					}
				}
			}
			for i := range evs {
				if shown[i] != 1 {
					t.Errorf("event %d (%q) shown %d times", i, evs[i].Line, shown[i])
				}
			}
		})
	}
}

// TestRoundsGrowOnlyWhereNewEventsGo checks what the live view relies on:
// adding an event changes no round before the one it goes to, so the page
// can redraw from that round on and end up as the finished page.
func TestRoundsGrowOnlyWhereNewEventsGo(t *testing.T) {
	full := script(t,
		"T 1 dns DNS", "I connecting", "T 1 connect connected", "S 220-mx", "S 220 mx",
		"C EHLO me", "S 250-mx", "S 250 PIPELINING",
		"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C RCPT TO:<c@y>", "C DATA", "S 250 ok", "I between replies", "S 550 no", "S 250 ok", "S 354 go",
		"B Subject: x", "B ", "I message: 3 lines", "C .", "C QUIT", "S 250 queued", "I queue id", "S 221 bye", "I closed")
	for n := 0; n < len(full); n++ {
		before := Converse(full[:n])
		after := Converse(full[:n+1])
		rb, _ := before.Rounds()
		ra, roundOf := after.Rounds()
		from := roundOf[n]
		tb, ta := roundsText(before, rb), roundsText(after, ra)
		if len(tb) < from || len(ta) < from || !slices.Equal(tb[:from], ta[:from]) {
			t.Fatalf("adding event %d (%q, round %d) changed an earlier round:\n before %q\n after  %q", n, full[n].Line, from, tb, ta)
		}
	}
}

func TestConversationTimings(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name  string
		lines []string
		want  Timings
	}{{
		// Each line is 1 ms after the one before; the comments give the
		// offsets.
		name: "STARTTLS, AUTH, pipelined envelope, DATA",
		lines: []string{
			"T 1 dns DNS", "I connecting", "T 1 connect connected", // 1, 2, 3: DNS 0-1, connect 2-3
			"S 220 mx",              // 4: greeting 3-4
			"C EHLO me", "S 250 mx", // 5, 6
			"C STARTTLS", "S 220 go", "T 1 tls handshake done", // 7, 8, 9: TLS 1+1
			"C EHLO me", "S 250 mx", // 10, 11: hello 1+1
			"A AUTH PLAIN ****", "S 235 ok", // 12, 13
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C RCPT TO:<c@y>", "C DATA", // 14-17
			"S 250 ok", "S 250 ok", "S 550 no", "S 354 go", // 18-21: envelope 14-20
			"B Subject: x", "I message", "C .", "C QUIT", // 22-25: data 20-24
			"S 250 queued", "S 221 bye", // 26, 27: final reply 24-26, quit 26-27 (after the final reply)
		},
		want: Timings{DNS: ms(1), Connect: ms(1), Greeting: ms(1), Hello: ms(2), TLS: ms(2), Auth: ms(1),
			Envelope: ms(6), Data: ms(4), FinalReply: ms(2), Quit: ms(1), Other: ms(6), Total: ms(27)},
	}, {
		name: "CHUNKING: the message goes with the envelope",
		lines: []string{
			"S 220 mx", "C EHLO me", "S 250 mx", // 1-3
			"C MAIL FROM:<a@x>", "C RCPT TO:<b@y>", "C BDAT 3 LAST", "B abc", // 4-7
			"S 250 ok", "S 250 ok", "S 250 queued", "C QUIT", "S 221 bye", // 8-12: envelope 4-9, final reply 9-10
		},
		want: Timings{Greeting: ms(1), Hello: ms(1), Envelope: ms(5), FinalReply: ms(1), Quit: ms(1), Other: ms(3), Total: ms(12)},
	}, {
		name:  "refused at the greeting",
		lines: []string{"I connecting", "T 1 connect connected", "S 554 go away", "C QUIT", "S 221 bye"},
		want:  Timings{Connect: ms(1), Greeting: ms(1), Quit: ms(1), Other: ms(2), Total: ms(5)},
	}, {
		name:  "nothing yet",
		lines: nil,
		want:  Timings{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Converse(script(t, tt.lines...)).Timings()
			if got != tt.want {
				t.Errorf("timings\n got  %+v\n want %+v", got, tt.want)
			}
			// The stretches do not overlap: without Other they fit in the
			// total, with it they fill it.
			var sum time.Duration
			for _, p := range got.Parts() {
				if p.Key != "other" {
					sum += p.Duration
				}
			}
			if sum > got.Total || sum+got.Other != got.Total {
				t.Errorf("the stretches sum to %v and other is %v, for a total of %v", sum, got.Other, got.Total)
			}
		})
	}
}

// FuzzRounds reads any sequence of lines (a byte a line: a command, a
// message line, a final or continued reply line, an information line, a
// span's end) as rounds and checks that every event is shown exactly
// once, in the round Rounds says, that a new event changes no earlier
// round, and that the timings' stretches never overlap.
func FuzzRounds(f *testing.F) {
	for _, seed := range []string{"sCsCCCCssssBBICCss", "CBsIsTCCsss", "TTsIC", "BBBCs", "sssCCC", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 200 {
			b = b[:200]
		}
		var evs []Event
		for i, c := range b {
			ev := Event{Offset: time.Duration(i+1) * time.Millisecond, Phase: PhaseMail}
			switch c % 6 {
			case 0:
				ev.Dir, ev.Cmd, ev.Line = DirClient, true, "RCPT TO:<x@y>"
			case 1:
				ev.Dir, ev.Phase, ev.Line = DirClient, PhaseBody, "line"
			case 2:
				ev.Dir, ev.Line = DirServer, "250 ok"
			case 3:
				ev.Dir, ev.Line = DirServer, "250-more"
			case 4:
				ev.Dir, ev.Line = DirInfo, "note"
			case 5:
				ev.Dir, ev.Line, ev.Span, ev.Took = DirInfo, "span", SpanConnect, time.Millisecond/2
			}
			evs = append(evs, ev)
		}
		var prev []string
		for n := 0; n <= len(evs); n++ {
			cv := Converse(evs[:n])
			rounds, roundOf := cv.Rounds()
			shown := make([]int, n)
			for ri, r := range rounds {
				for _, it := range r.Items {
					lines := []int{it.Info}
					if it.Exchange >= 0 {
						x := cv.Exchanges[it.Exchange]
						lines = append(it.ClientLines(x), x.Reply...)
					}
					for _, l := range lines {
						shown[l]++
						if roundOf[l] != ri {
							t.Fatalf("%q: event %d in round %d, roundOf %d", b[:n], l, ri, roundOf[l])
						}
					}
				}
			}
			for i, c := range shown {
				if c != 1 {
					t.Fatalf("%q: event %d shown %d times", b[:n], i, c)
				}
			}
			text := roundsText(cv, rounds)
			if n > 0 {
				from := roundOf[n-1]
				if len(prev) < from || !slices.Equal(prev[:from], text[:from]) {
					t.Fatalf("%q: event %d (round %d) changed an earlier round:\n before %q\n after  %q", b[:n], n-1, from, prev, text)
				}
			}
			prev = text
			tm := cv.Timings()
			var sum time.Duration
			for _, p := range tm.Parts() {
				if p.Key != "other" {
					sum += p.Duration
				}
			}
			if sum > tm.Total {
				t.Fatalf("%q: stretches sum to %v, over the total %v: %+v", b[:n], sum, tm.Total, tm)
			}
		}
	})
}
