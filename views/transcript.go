package views

import (
	"fmt"
	"math"
	"strings"
	"time"

	"sockmail/smtp"
)

// TranscriptRounds is a transcript as the result page shows it: round by
// round (smtp.Conversation.Rounds), each command with the reply that
// answered it. The finished page and the live stream render the same
// rounds with the same component, so they cannot disagree.
type TranscriptRounds struct {
	Rounds []RoundView
	// RoundOf is the round of each event (by index), for the live stream
	// to know which rounds new events change.
	RoundOf []int
	// Timings are the conversation's stretches (smtp.Conversation.Timings).
	Timings smtp.Timings
}

// RoundView is one round: a client write and what followed it.
type RoundView struct {
	// Index counts rounds from 0; the page shows Index+1.
	Index int
	// What says what the client's write carried.
	What string
	// Wait is what the client waited for replies in this round.
	Wait time.Duration
	// First marks the round before the client first wrote.
	First bool
	Items []RoundItemView
}

// RoundItemView is an information line or an exchange: exactly one is set.
type RoundItemView struct {
	Info     *IndexedEvent
	Exchange *ExchangeView
}

// ExchangeView is one command and the reply that answered it.
type ExchangeView struct {
	Phase smtp.Phase
	// Before are the client lines written before the command (the message
	// before DATA's "."), After those written after it (a BDAT chunk).
	// Information lines recorded meanwhile (the message summary) are among
	// them.
	Before, After []IndexedEvent
	// Command is the command line, nil for a reply nobody asked for.
	Command *IndexedEvent
	Reply   []IndexedEvent
	// Wait is the command's round trip (smtp.Exchange.Wait).
	Wait time.Duration
	// NoReply: a command that got no reply; Partial: a reply cut off.
	NoReply, Partial bool
	Code             int
}

// MessageLines counts the message lines among Before and After.
func (x *ExchangeView) MessageLines() int {
	n := 0
	for _, l := range append(append([]IndexedEvent(nil), x.Before...), x.After...) {
		if l.Dir == smtp.DirClient {
			n++
		}
	}
	return n
}

// Rounds reads events as the page's rounds.
func Rounds(events []smtp.Event) TranscriptRounds {
	cv := smtp.Converse(events)
	rounds, roundOf := cv.Rounds()
	out := TranscriptRounds{RoundOf: roundOf, Timings: cv.Timings()}
	ie := func(i int) IndexedEvent { return IndexedEvent{Index: i, Event: events[i]} }
	for ri, r := range rounds {
		rv := RoundView{Index: ri, Wait: r.Wait, First: r.Flight < 0, What: roundWhat(cv, r)}
		for _, it := range r.Items {
			if it.Info >= 0 {
				e := ie(it.Info)
				rv.Items = append(rv.Items, RoundItemView{Info: &e})
				continue
			}
			x := cv.Exchanges[it.Exchange]
			xv := &ExchangeView{Phase: x.Phase, Wait: x.Wait(), Partial: x.Partial, Code: x.Code,
				NoReply: x.Command >= 0 && !x.HasReply()}
			for _, l := range it.ClientLines(x) {
				switch {
				case l == x.Command:
					c := ie(l)
					xv.Command = &c
				case x.Command >= 0 && l > x.Command:
					xv.After = append(xv.After, ie(l))
				default:
					xv.Before = append(xv.Before, ie(l))
				}
			}
			for _, l := range x.Reply {
				xv.Reply = append(xv.Reply, ie(l))
			}
			rv.Items = append(rv.Items, RoundItemView{Exchange: xv})
		}
		out.Rounds = append(out.Rounds, rv)
	}
	return out
}

// roundWhat says what a round's write carried: "connect and greeting",
// "EHLO", "MAIL, 3 × RCPT, DATA in one write".
func roundWhat(cv smtp.Conversation, r smtp.Round) string {
	if r.Flight < 0 {
		return "connect and greeting"
	}
	var verbs []string
	count := map[string]int{}
	for _, it := range r.Items {
		if it.Exchange < 0 {
			continue
		}
		x := cv.Exchanges[it.Exchange]
		if x.Command < 0 {
			continue
		}
		v := cv.Verb(x)
		switch {
		case v == "" && x.Phase == smtp.PhaseAuth:
			v = "AUTH response"
		case v == ".":
			v = "end of data"
		}
		if count[v] == 0 {
			verbs = append(verbs, v)
		}
		count[v]++
	}
	if len(verbs) == 0 {
		return "message lines"
	}
	for i, v := range verbs {
		if n := count[v]; n > 1 {
			verbs[i] = fmt.Sprintf("%d × %s", n, v)
		}
	}
	s := strings.Join(verbs, ", ")
	if r.Commands > 1 {
		s += " in one write"
	}
	return s
}

// TimingSegment is one stretch of the timing bar.
type TimingSegment struct {
	smtp.TimingPart
	// Percent is its share of the bar's width.
	Percent float64
}

// TimingSegments lists the stretches of t that took time, with their
// share of the total (of their sum, when it is larger).
func TimingSegments(t smtp.Timings) []TimingSegment {
	var sum time.Duration
	for _, p := range t.Parts() {
		sum += p.Duration
	}
	total := max(sum, t.Total)
	var out []TimingSegment
	if total <= 0 {
		return nil
	}
	for _, p := range t.Parts() {
		if p.Duration <= 0 {
			continue
		}
		out = append(out, TimingSegment{TimingPart: p, Percent: math.Round(float64(p.Duration)/float64(total)*10000) / 100})
	}
	return out
}

// Percent formats a share for a CSS width.
func Percent(p float64) string { return fmt.Sprintf("%.2f%%", p) }

// MillisShort formats a duration for a legend: "1,204 ms" from one
// second, "12.3 ms" from 10 ms, "0.482 ms" below.
func MillisShort(d time.Duration) string {
	ms := smtp.Millis(d)
	switch {
	case ms >= 1000:
		s := fmt.Sprintf("%.0f", ms)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String() + " ms"
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.3f ms", ms)
}

// barRect is a segment placed on the 1000-unit bar.
type barRect struct {
	TimingSegment
	X, W string
}

// barRects places segments left to right.
func barRects(segs []TimingSegment) []barRect {
	var out []barRect
	x := 0.0
	for _, s := range segs {
		w := s.Percent * 10
		out = append(out, barRect{TimingSegment: s, X: fmt.Sprintf("%.1f", x), W: fmt.Sprintf("%.1f", w)})
		x += w
	}
	return out
}

// TimingLabel says what a timing bar shows: "where the time went:
// connect 1.500 ms, greeting wait 1,202 ms, ...".
func TimingLabel(segs []TimingSegment) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = s.Label + " " + MillisShort(s.Duration)
	}
	return "where the time went: " + strings.Join(parts, ", ")
}
