package smtp

import (
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
	// message lines sent without an end (a send cut off mid-message).
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
	if len(loose) > 0 {
		first := events[loose[0]]
		cv.Exchanges = append(cv.Exchanges, Exchange{Phase: first.Phase, Command: -1, Body: loose, Sent: first.Offset, Flight: curFlight, ReplyFlight: -1})
	}
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
