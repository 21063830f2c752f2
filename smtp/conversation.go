package smtp

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Conversation is a transcript read as what happened on the wire: the
// flights each side sent without waiting for the other, every command
// paired with the reply that answered it, and the spans (DNS lookups, the
// TCP connect, the TLS handshake) that are not commands at all. The
// result page's transcript, its sequence diagram and its timing summary
// are drawn from it, live and finished alike, so they cannot disagree.
type Conversation struct {
	// Events are the transcript's events, which the indexes below name.
	Events []Event
	// Flights are the runs of lines of one side, in order.
	Flights []Flight
	// Exchanges are the commands with their replies, in the order the
	// commands were written (a reply no command asked for, such as the
	// greeting, sits where it arrived).
	Exchanges []Exchange
	// Spans are the DNS lookups, connects and TLS handshakes, in order.
	Spans []SpanTime
}

// Flight is what one side said without waiting for the other: the lines
// the client wrote before it next read a reply, or the reply lines the
// server sent before the client next wrote. With PIPELINING one client
// flight carries several commands and one server flight their replies.
type Flight struct {
	// From is DirClient or DirServer.
	From Direction
	// Start and End are the offsets of the flight's first and last line.
	Start, End time.Duration
	// Lines are the indexes (into Conversation.Events) of its lines, the
	// message's own lines included.
	Lines []int
	// Exchanges are the indexes (into Conversation.Exchanges) of the
	// exchanges whose commands (client) or replies (server) it carried.
	Exchanges []int
}

// Exchange is one command and the reply that answered it. Replies are
// paired with commands in the order the commands were written, as RFC
// 2920 3.1 requires a server to answer them.
type Exchange struct {
	// Phase is the command's phase (the reply's, for a reply nobody
	// asked for).
	Phase Phase
	// Command is the index of the command line, or -1 for a reply no
	// command was waiting for (the greeting, or a stray reply) and for
	// message lines sent without an end (a send cut off mid-message, or
	// lines the server answered before the client wrote their end, which
	// then goes as an exchange of its own).
	Command int
	// Body holds the indexes of the message lines that went with the
	// command: the lines before DATA's final ".", or a BDAT chunk's lines.
	Body []int
	// Reply holds the indexes of the reply's lines; empty when no reply
	// came.
	Reply []int
	// Code is the reply's code, 0 when no reply came.
	Code int
	// Partial marks a reply whose last line has not arrived (a transcript
	// read while the send runs, or a server that stopped mid-reply).
	Partial bool
	// Sent is when the command was written; for a reply nobody asked for,
	// when its first line arrived.
	Sent time.Duration
	// Answered is when the reply's last line arrived (0 without a reply).
	Answered time.Duration
	// Flight and ReplyFlight index Conversation.Flights: the flight that
	// carried the command (-1 for a reply nobody asked for) and the one
	// that carried the reply (-1 when none came).
	Flight, ReplyFlight int
}

// HasReply reports whether a reply came.
func (x Exchange) HasReply() bool { return len(x.Reply) > 0 }

// Wait is the time from the command to the last line of its reply: the
// round trip the client waited for (0 without a reply or a command).
func (x Exchange) Wait() time.Duration {
	if !x.HasReply() || x.Command < 0 {
		return 0
	}
	return x.Answered - x.Sent
}

// SpanTime is one DNS lookup, connect or TLS handshake: when it began and
// ended, and the information event that reported it.
type SpanTime struct {
	Kind       Span
	Start, End time.Duration
	// Event is the index of the event that ended the span.
	Event int
}

// Converse reads events as a conversation. It accepts any prefix of a
// transcript (a send still running) and transcripts stored before events
// marked their commands, whose client lines are then told apart by phase:
// everything but the message's lines is a command, and in the message
// only "." and BDAT ask for a reply.
func Converse(events []Event) Conversation {
	cv := Conversation{Events: events}
	legacy := !markedCommands(events)
	var (
		pending   []int // exchanges waiting for a reply, oldest first
		reply     []int // lines of the reply being read
		loose     []int // message lines waiting for the "." they go with
		lastBDAT  = -1  // the BDAT exchange of the current client flight
		curFlight = -1
	)
	flightFor := func(from Direction, i int) int {
		if curFlight < 0 || cv.Flights[curFlight].From != from {
			cv.Flights = append(cv.Flights, Flight{From: from, Start: events[i].Offset})
			curFlight = len(cv.Flights) - 1
			if from == DirClient {
				lastBDAT = -1
			}
		}
		f := &cv.Flights[curFlight]
		f.Lines = append(f.Lines, i)
		f.End = events[i].Offset
		return curFlight
	}
	finishReply := func(partial bool) {
		if len(reply) == 0 {
			return
		}
		first, last := events[reply[0]], events[reply[len(reply)-1]]
		var x int
		if len(pending) > 0 {
			x, pending = pending[0], pending[1:]
		} else {
			cv.Exchanges = append(cv.Exchanges, Exchange{Phase: first.Phase, Command: -1, Sent: first.Offset, Flight: -1})
			x = len(cv.Exchanges) - 1
		}
		ex := &cv.Exchanges[x]
		ex.Reply = reply
		ex.Code = replyCode(first.Line)
		ex.Partial = partial
		ex.Answered = last.Offset
		ex.ReplyFlight = curFlight
		cv.Flights[curFlight].Exchanges = append(cv.Flights[curFlight].Exchanges, x)
		reply = nil
	}
	// flushLoose makes the message lines waiting for their end an
	// exchange without a command, in the flight that carried them.
	flushLoose := func() {
		if len(loose) == 0 {
			return
		}
		first := events[loose[0]]
		cv.Exchanges = append(cv.Exchanges, Exchange{Phase: first.Phase, Command: -1, Body: loose, Sent: first.Offset, Flight: curFlight, ReplyFlight: -1})
		cv.Flights[curFlight].Exchanges = append(cv.Flights[curFlight].Exchanges, len(cv.Exchanges)-1)
		loose = nil
	}
	for i, ev := range events {
		switch ev.Dir {
		case DirClient:
			finishReply(true)
			f := flightFor(DirClient, i)
			if !isCommand(ev, legacy) {
				if lastBDAT >= 0 {
					cv.Exchanges[lastBDAT].Body = append(cv.Exchanges[lastBDAT].Body, i)
				} else {
					loose = append(loose, i)
				}
				continue
			}
			cv.Exchanges = append(cv.Exchanges, Exchange{Phase: ev.Phase, Command: i, Body: loose, Sent: ev.Offset, Flight: f, ReplyFlight: -1})
			loose = nil
			x := len(cv.Exchanges) - 1
			lastBDAT = -1
			if strings.HasPrefix(ev.Line, "BDAT ") {
				lastBDAT = x
			}
			pending = append(pending, x)
			cv.Flights[f].Exchanges = append(cv.Flights[f].Exchanges, x)
		case DirServer:
			// Message lines still waiting for their "." when the server
			// speaks go without it: the "." the client writes later is in
			// another flight, and rounds drawn so far stay as they are.
			flushLoose()
			flightFor(DirServer, i)
			reply = append(reply, i)
			if finalReplyLine(ev.Line) {
				finishReply(false)
			}
		default:
			if ev.Span != "" {
				cv.Spans = append(cv.Spans, SpanTime{Kind: ev.Span, Start: ev.Offset - ev.Took, End: ev.Offset, Event: i})
			}
		}
	}
	finishReply(true)
	flushLoose()
	return cv
}

// markedCommands reports whether the transcript marks its commands (Cmd),
// as every transcript recorded since Cmd exists does.
func markedCommands(events []Event) bool {
	for _, ev := range events {
		if ev.Cmd {
			return true
		}
	}
	return false
}

// isCommand reports whether a client line asks for a reply.
func isCommand(ev Event, legacy bool) bool {
	if !legacy {
		return ev.Cmd
	}
	return ev.Phase != PhaseBody || ev.Line == "." || strings.HasPrefix(ev.Line, "BDAT ")
}

// finalReplyLine reports whether line ends a reply: a code followed by a
// space or nothing (RFC 5321 4.2.1). A line that is not a reply line at
// all also ends it, as the client's reader treats it.
func finalReplyLine(line string) bool {
	return len(line) < 4 || line[3] != '-'
}

// replyCode is the three-digit code a reply line starts with, or 0.
func replyCode(line string) int {
	if len(line) < 3 {
		return 0
	}
	n, err := strconv.Atoi(line[:3])
	if err != nil || n < 100 {
		return 0
	}
	return n
}

// Round is one client flight and what followed it until the client wrote
// again: the commands it carried, each with the reply that answered it,
// and the information lines recorded meanwhile. The lines before the
// client first wrote (DNS, connect, the greeting) form a round of their
// own, whose Flight is -1. A transcript read round by round shows every
// line once, each reply beside its command.
type Round struct {
	// Flight is the index of the client flight (Conversation.Flights), -1
	// for the round before the client first wrote.
	Flight int
	// Items are the round's exchanges and information lines in the order
	// they began.
	Items []RoundItem
	// Wait is what the client waited in this round: from the last line of
	// its flight to the last line of the last reply to it (for the first
	// round, from the end of the connect or TLS span before the greeting
	// to the greeting's last line). 0 when no reply came.
	Wait time.Duration
	// Commands counts the commands the flight carried.
	Commands int
}

// RoundItem is an exchange or an information line of a round: exactly one
// of Exchange and Info is not -1.
type RoundItem struct {
	// Exchange indexes Conversation.Exchanges, or -1.
	Exchange int
	// Info indexes Conversation.Events (an information line), or -1.
	Info int
	// Notes are information lines recorded while the exchange's message
	// was written, up to the client's next line (the message summary
	// before the final "." or after a BDAT chunk): they are shown with
	// the message. ClientLines gives them in order with the lines.
	Notes []int
}

// Rounds reads the conversation round by round. It also returns the
// round of every event (index by event): the lines of an exchange go to
// the round of the flight that carried its command, an information line
// or a reply nobody asked for to the round it arrived in. An event added
// to the transcript later changes only the round it goes to, so a live
// view can redraw from the first round its new events go to.
func (cv Conversation) Rounds() ([]Round, []int) {
	roundOf := make([]int, len(cv.Events))
	var rounds []Round
	flightRound := make(map[int]int) // client flight -> round
	cur := -1
	ensureFirst := func() {
		if cur < 0 {
			rounds = append(rounds, Round{Flight: -1})
			cur = 0
		}
	}
	// First pass: the round each event arrives in.
	arrival := make([]int, len(cv.Events))
	lineFlight := make(map[int]int, len(cv.Events))
	for fi, f := range cv.Flights {
		for _, l := range f.Lines {
			lineFlight[l] = fi
		}
	}
	for i, ev := range cv.Events {
		if ev.Dir == DirClient {
			fi := lineFlight[i]
			r, ok := flightRound[fi]
			if !ok {
				rounds = append(rounds, Round{Flight: fi})
				r = len(rounds) - 1
				flightRound[fi] = r
			}
			cur = r
		} else {
			ensureFirst()
		}
		arrival[i] = cur
	}
	// Every exchange goes to the round of its first line; all its lines
	// follow it there.
	exRound := make([]int, len(cv.Exchanges))
	inExchange := make(map[int]bool, len(cv.Events))
	type keyed struct {
		first int
		item  RoundItem
	}
	items := make([][]keyed, len(rounds))
	for xi, x := range cv.Exchanges {
		lines := exchangeLines(x)
		first := lines[0]
		for _, l := range lines {
			first = min(first, l)
		}
		r := arrival[first]
		if x.Command >= 0 {
			r = arrival[x.Command]
			rounds[r].Commands++
		}
		exRound[xi] = r
		it := RoundItem{Exchange: xi, Info: -1}
		for _, l := range lines {
			roundOf[l] = r
			inExchange[l] = true
		}
		if x.Command >= 0 && len(x.Body) > 0 {
			// From the first client line of the exchange to the next
			// client line after its last.
			last := max(x.Command, x.Body[len(x.Body)-1])
			for i := min(x.Command, x.Body[0]) + 1; i < len(cv.Events) && (i <= last || cv.Events[i].Dir != DirClient); i++ {
				if cv.Events[i].Dir == DirInfo && arrival[i] == r {
					it.Notes = append(it.Notes, i)
					roundOf[i] = r
					inExchange[i] = true
				}
			}
		}
		items[r] = append(items[r], keyed{first, it})
	}
	for i, ev := range cv.Events {
		if ev.Dir == DirInfo && !inExchange[i] {
			r := arrival[i]
			roundOf[i] = r
			items[r] = append(items[r], keyed{i, RoundItem{Exchange: -1, Info: i}})
		}
	}
	for r := range rounds {
		sort.SliceStable(items[r], func(a, b int) bool { return items[r][a].first < items[r][b].first })
		for _, k := range items[r] {
			rounds[r].Items = append(rounds[r].Items, k.item)
		}
	}
	// Waits.
	for xi, x := range cv.Exchanges {
		r := exRound[xi]
		if !x.HasReply() {
			continue
		}
		var from time.Duration
		switch {
		case x.Command >= 0:
			from = cv.Flights[x.Flight].End
		case rounds[r].Flight < 0:
			from = cv.spanEndBefore(x.Reply[len(x.Reply)-1])
		default:
			continue
		}
		rounds[r].Wait = max(rounds[r].Wait, x.Answered-from)
	}
	return rounds, roundOf
}

// ClientLines lists, in the order they were recorded, the exchange's
// client lines (command and message lines) with the item's notes.
func (it RoundItem) ClientLines(x Exchange) []int {
	lines := append(append([]int(nil), x.Body...), it.Notes...)
	if x.Command >= 0 {
		lines = append(lines, x.Command)
	}
	sort.Ints(lines)
	return lines
}

// exchangeLines lists the event indexes of an exchange's lines: body,
// command, reply.
func exchangeLines(x Exchange) []int {
	lines := append([]int(nil), x.Body...)
	if x.Command >= 0 {
		lines = append(lines, x.Command)
	}
	return append(lines, x.Reply...)
}

// spanEndBefore is when the last connect or TLS span that ended before
// event i ended, 0 when none did (a transcript recorded before spans were
// marked).
func (cv Conversation) spanEndBefore(i int) time.Duration {
	var end time.Duration
	for _, s := range cv.Spans {
		if s.Event < i && s.Kind != SpanDNS {
			end = s.End
		}
	}
	return end
}

// Verb is the command word of an exchange's command in upper case
// ("MAIL", "RCPT", "." for the end of data), "" for a reply nobody asked
// for and for an AUTH response line (its phase tells it).
func (cv Conversation) Verb(x Exchange) string {
	if x.Command < 0 {
		return ""
	}
	ev := cv.Events[x.Command]
	if ev.Phase == PhaseAuth && !strings.HasPrefix(strings.ToUpper(ev.Line), "AUTH ") {
		return ""
	}
	w, _, _ := strings.Cut(ev.Line, " ")
	return strings.ToUpper(w)
}

// Timings is where a send's time went, in the stretches a reader asks
// about. Each is measured from the exchanges and spans, never as "time
// until the next line"; they do not overlap, so they can be drawn as one
// stacked bar, and Other is what none of them covers (the client's own
// work between its waits). A stretch that did not happen is 0.
type Timings struct {
	// DNS is the time spent in DNS lookups (MX and address), summed.
	DNS time.Duration
	// Connect is the time spent in TCP connects, failed attempts
	// included, summed.
	Connect time.Duration
	// Greeting is the wait for the server's greeting: from the end of the
	// connect (or, with implicit TLS, of the TLS handshake) to the
	// greeting's last line.
	Greeting time.Duration
	// Hello is the EHLO (or HELO, LHLO) round trips, summed: the one after
	// STARTTLS too.
	Hello time.Duration
	// TLS is the STARTTLS round trip and the TLS handshakes (the implicit
	// TLS one too), summed.
	TLS time.Duration
	// Auth is from the AUTH command to the last reply of the exchange
	// (its challenges and responses included).
	Auth time.Duration
	// Envelope is from MAIL FROM to the last line of the last RCPT TO's
	// reply (to the MAIL reply when no RCPT went), per message, summed.
	Envelope time.Duration
	// Data is from the end of the envelope to the moment the message's
	// last line was written (the "." of DATA or the last line of the last
	// BDAT chunk): the DATA round trip and the writing of the message.
	// With CHUNKING the message usually goes out in the same flight as the
	// envelope, before its replies: its writing then overlaps the
	// envelope's wait, counts there, and Data is 0.
	Data time.Duration
	// FinalReply is from the message's last line written (or, when the
	// envelope's replies came after it, as with CHUNKING, from the last of
	// them) to the last line of the reply that took or refused the
	// message, per message, summed.
	FinalReply time.Duration
	// Quit is from QUIT to its reply; when QUIT went in the same write as
	// the end of the message, from the reply before it (the verdict on the
	// message), so that it does not count the final reply again.
	Quit time.Duration
	// Other is Total less the stretches above (never below 0).
	Other time.Duration
	// Total is the offset of the transcript's last event.
	Total time.Duration
}

// TimingPart is one stretch of Timings with its name, for drawing.
type TimingPart struct {
	// Key is a short stable name ("dns", "final_reply"), Label a reader's.
	Key, Label string
	Duration   time.Duration
}

// Parts lists the stretches in the order they happen, Other last.
func (t Timings) Parts() []TimingPart {
	return []TimingPart{
		{"dns", "DNS", t.DNS}, {"connect", "connect", t.Connect}, {"greeting", "greeting wait", t.Greeting},
		{"hello", "EHLO", t.Hello}, {"tls", "TLS", t.TLS}, {"auth", "AUTH", t.Auth},
		{"envelope", "envelope", t.Envelope}, {"data", "data", t.Data}, {"final_reply", "final reply", t.FinalReply},
		{"quit", "QUIT", t.Quit}, {"other", "other", t.Other},
	}
}

// Timings measures the conversation's stretches (see Timings).
func (cv Conversation) Timings() Timings {
	var t Timings
	if len(cv.Events) == 0 {
		return t
	}
	t.Total = cv.Events[len(cv.Events)-1].Offset
	for _, s := range cv.Spans {
		d := max(s.End-s.Start, 0)
		switch s.Kind {
		case SpanDNS:
			t.DNS += d
		case SpanConnect:
			t.Connect += d
		case SpanTLS:
			t.TLS += d
		}
	}
	var (
		mailSent  = time.Duration(-1) // the open envelope's MAIL, -1 if none
		envEnd    time.Duration       // the open envelope's last reply
		authStart = time.Duration(-1)
		authEnd   time.Duration
		greeted   bool
		// lastAnswered is when the last reply so far arrived.
		lastAnswered time.Duration
	)
	closeEnvelope := func() {
		if mailSent >= 0 {
			t.Envelope += max(envEnd-mailSent, 0)
			mailSent = -1
		}
	}
	for _, x := range cv.Exchanges {
		verb := cv.Verb(x)
		if x.Command < 0 {
			if x.HasReply() {
				lastAnswered = max(lastAnswered, x.Answered)
			}
			if !greeted && x.HasReply() && len(x.Body) == 0 {
				t.Greeting = max(x.Answered-cv.spanEndBefore(x.Reply[len(x.Reply)-1]), 0)
			}
			greeted = true
			continue
		}
		greeted = true
		if x.Phase == PhaseAuth {
			if authStart < 0 {
				authStart = x.Sent
			}
			if x.HasReply() {
				authEnd = x.Answered
			}
			continue
		}
		switch verb {
		case "EHLO", "HELO", "LHLO":
			t.Hello += x.Wait()
		case "STARTTLS":
			t.TLS += x.Wait()
		case "MAIL":
			closeEnvelope()
			mailSent, envEnd = x.Sent, x.Answered
			if !x.HasReply() {
				envEnd = x.Sent
			}
		case "RCPT":
			if mailSent >= 0 && x.HasReply() {
				envEnd = max(envEnd, x.Answered)
			}
		case ".", "BDAT":
			if verb == "BDAT" && !strings.HasSuffix(strings.ToUpper(cv.Events[x.Command].Line), " LAST") {
				continue
			}
			written := x.Sent
			for _, b := range x.Body {
				written = max(written, cv.Events[b].Offset)
			}
			from := written
			if mailSent >= 0 {
				t.Data += max(written-envEnd, 0)
				from = max(written, envEnd)
			}
			closeEnvelope()
			if x.HasReply() {
				t.FinalReply += max(x.Answered-from, 0)
			}
		case "QUIT":
			if x.HasReply() {
				t.Quit += max(x.Answered-max(x.Sent, lastAnswered), 0)
			}
		}
		if x.HasReply() {
			lastAnswered = max(lastAnswered, x.Answered)
		}
	}
	closeEnvelope()
	if authStart >= 0 {
		t.Auth = max(authEnd-authStart, 0)
	}
	sum := t.DNS + t.Connect + t.Greeting + t.Hello + t.TLS + t.Auth + t.Envelope + t.Data + t.FinalReply + t.Quit
	t.Other = max(t.Total-sum, 0)
	return t
}

// String lists the stretches that took time, "connect 1.500 ms, greeting
// wait 10.612 ms, ...; total 58.017 ms", or "" when nothing took time.
func (t Timings) String() string {
	var parts []string
	for _, p := range t.Parts() {
		if p.Duration > 0 {
			parts = append(parts, fmt.Sprintf("%s %.3f ms", p.Label, Millis(p.Duration)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + fmt.Sprintf("; total %.3f ms", Millis(t.Total))
}
