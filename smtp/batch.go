package smtp

import (
	"context"
	"errors"
)

// BatchMessage is one message of a batch: its envelope and its content.
type BatchMessage struct {
	Envelope Envelope
	Message  Message
}

// BatchResult is the outcome of one message of a batch, as Send would have
// returned it: Result is never nil, Err is nil when the message was sent.
type BatchResult struct {
	Result *Result
	Err    error
}

// SendBatch sends msgs over the connection, one transaction each, and
// returns one result per message, in order; with quit it ends with QUIT
// and closes the connection.
//
// With PIPELINING (RFC 2920) and without CHUNKING, the next message's MAIL,
// RCPTs and DATA go in the same write as the end of the message before it
// ("." and the envelope after it), and QUIT goes with the end of the last
// one: one wait for the server per message, where Send needs two. With
// CHUNKING a message that fits one chunk already takes one wait (envelope
// and BDAT LAST in one write), and the messages are sent one after another
// as by Send, QUIT riding with the last. Without PIPELINING too they are
// sent one after another.
//
// Each message's outcome is its own: a refused envelope or a refusal after
// the end of a message affects that message only (a message whose DATA is
// refused is not sent; one whose envelope failed although DATA got 354 is
// ended empty, as Send does). A failure of the connection stops the batch:
// the message whose end was sent and whose reply did not come has an error
// of unknown outcome (Error.OutcomeUnknown), and those not yet sent a
// temporary error wrapping the cause. The returned error is that failure,
// nil when every message has its own outcome.
//
// Everything is recorded in the client's one transcript, each message's
// lines as Send records them (with pipelining, the next envelope appears
// before the reply to the message before it, as it went on the wire).
func (c *Client) SendBatch(ctx context.Context, msgs []BatchMessage, quit bool) ([]BatchResult, error) {
	if quit {
		defer c.Close()
	}
	b := &batch{c: c, msgs: msgs, out: make([]BatchResult, len(msgs)), prev: -1}
	if c.broken == nil && !c.helloDone {
		// A Client from Dial: EHLO, STARTTLS and AUTH once for all.
		if err := c.ready(ctx, ""); err != nil {
			for i := range b.out {
				b.out[i] = BatchResult{Result: &Result{Server: c.cfg.Addr}, Err: err}
			}
			return b.out, err
		}
	}
	if c.broken != nil {
		return b.out, b.abandon(-1, c.wireError(PhaseMail, c.broken))
	}
	pipelining := c.esmtp && !c.cfg.DisablePipelining && c.hasExt("PIPELINING")
	chunking := c.esmtp && !c.cfg.DisableChunking && c.hasExt("CHUNKING")
	var err error
	if pipelining && !chunking && !c.noPipeAfterEnd {
		err = b.pipelined(ctx, quit)
	} else {
		err = b.oneByOne(ctx, quit)
	}
	return b.out, err
}

// batch is the state of SendBatch.
type batch struct {
	c    *Client
	msgs []BatchMessage
	out  []BatchResult
	next int // the next message to start
	// prev is the message whose end went in the same write as the
	// current envelope, -1 for none.
	prev int
}

// oneByOne sends each message as Send does, the last with QUIT after it
// (pipelined when the server allows) when quit.
func (b *batch) oneByOne(ctx context.Context, quit bool) error {
	c := b.c
	for i := b.next; i < len(b.msgs); i++ {
		m := b.msgs[i]
		mode := modeSend
		if quit && i == len(b.msgs)-1 {
			mode = modeSendQuit
		}
		res, err := c.transaction(ctx, m.Envelope, m.Message, mode)
		b.out[i] = BatchResult{Result: res, Err: err}
		if c.broken != nil {
			b.next = i + 1
			return b.abandon(-1, err)
		}
	}
	b.next = len(b.msgs)
	b.quit(ctx, quit)
	return nil
}

// pipelined sends the messages with each envelope in the same write as
// the end of the message before it.
func (b *batch) pipelined(ctx context.Context, quit bool) error {
	c := b.c
	cur, ci := b.start(ctx)
	if cur == nil {
		b.quit(ctx, quit)
		return nil
	}
	if err := c.flush(ctx, PhaseMail); err != nil {
		b.out[ci] = BatchResult{Result: cur.res, Err: c.wireError(PhaseMail, err)}
		return b.abandon(-1, b.out[ci].Err)
	}
	for cur != nil {
		ok, err := cur.openData(ctx, true)
		if errors.Is(err, errAfterEnd) {
			return b.resumeAfterEnd(ctx, cur, ci, quit)
		}
		b.suspect(err)
		b.prev = -1
		if !ok {
			b.out[ci] = BatchResult{Result: cur.res, Err: err}
			if c.broken != nil {
				return b.abandon(-1, err)
			}
			// Refused: nothing of the message goes out, save the "." of an
			// empty message. The next envelope follows it.
			next, ni := b.start(ctx)
			if next != nil && cur.emptyEnd {
				next.afterEnd = true // in the write of the empty message's "."
			}
			quitNow := next == nil && quit
			if quitNow {
				c.writeLine(PhaseQuit, "QUIT", "QUIT", false)
			}
			if c.bw.Buffered() > 0 {
				if err := c.flush(ctx, PhaseMail); err != nil {
					return b.abandon(b.started(next, ni), c.wireError(PhaseMail, err))
				}
			}
			if cur.emptyEnd {
				if _, err := c.readReply(ctx, PhaseBody); err != nil {
					return b.abandon(b.started(next, ni), err)
				}
			}
			if quitNow {
				b.readQuit(ctx)
			}
			cur, ci = next, ni
			continue
		}
		if err := cur.writeBody(ctx, b.msgs[ci].Message); err != nil {
			b.out[ci] = BatchResult{Result: cur.res, Err: err}
			return b.abandon(-1, err)
		}
		// The "." ends the transaction whatever the reply: the next one
		// needs no RSET.
		c.needRset = false
		next, ni := b.start(ctx)
		if next != nil {
			next.afterEnd = true
		}
		if next == nil && quit {
			cur.quit, cur.quitPipelined = true, true
		}
		if err := cur.flushEnd(ctx); err != nil {
			b.out[ci] = BatchResult{Result: cur.res, Err: err}
			return b.abandon(b.started(next, ni), err)
		}
		err = cur.final(ctx, modeSend)
		b.out[ci] = BatchResult{Result: cur.res, Err: err}
		if next != nil {
			c.needRset = true // final cleared it for cur; next is open
			b.prev = ci
		}
		if c.broken != nil {
			return b.abandon(b.started(next, ni), err)
		}
		cur, ci = next, ni
	}
	return nil
}

// resumeAfterEnd goes on after the server refused with 503 the envelope
// of message i (t), written in the same flight as the end of the message
// before it: a defence against SMTP smuggling (Haraka's "pipelined after
// end of DATA") refuses what RFC 2920 allows. Message i was not sent and
// is not failed for it: the rest of the refused flight's replies are read
// up to the reply to an RSET written on its own, and the batch goes on
// from message i one message at a time, nothing pipelined after the end
// of data on this connection any more.
func (b *batch) resumeAfterEnd(ctx context.Context, t *txn, i int, quit bool) error {
	c := b.c
	c.noPipeAfterEnd = true
	c.tr.Info(PhaseMail, "the server refused the commands written after the end of the message before (503): it does not take pipelining after the end of data; this message goes again, and nothing follows the end of data in its write on this connection any more")
	c.writeLine(PhaseReset, "RSET", "RSET", false)
	if err := c.flush(ctx, PhaseReset); err != nil {
		return b.abandon(b.started(t, i), c.wireError(PhaseReset, err))
	}
	// The refused RCPTs and DATA may each have a 503 of their own, or not.
	for n := 0; ; n++ {
		r, err := c.readReply(ctx, PhaseReset)
		if err != nil {
			return b.abandon(b.started(t, i), err)
		}
		if r.Code/100 == 2 {
			break
		}
		if r.Code/100 != 5 || n > len(t.rcptLines)+1 {
			return b.abandon(b.started(t, i), c.outOfStep(PhaseReset, r, "RSET"))
		}
	}
	c.needRset = false
	b.next = i
	return b.oneByOne(ctx, quit)
}

// suspect makes the outcome of message b.prev unknown when err says the
// replies to the envelope written after its end were out of step: the
// reply taken as its verdict may have been a stray one (RFC 5321 4.2),
// and a success must not be reported then.
func (b *batch) suspect(err error) {
	if b.prev < 0 || !errors.Is(err, errOutOfStep) || b.out[b.prev].Err != nil {
		return
	}
	e := &Error{Phase: PhaseBody, Message: "the replies after this message were out of step: the reply taken as its verdict may not have been one", Err: errOutOfStep, OutcomeUnknown: true}
	b.c.tr.Info(PhaseBody, "%s: the outcome of the message before is UNKNOWN", err)
	b.out[b.prev].Err = e
}

// started returns i when t was started, -1 when t is nil.
func (b *batch) started(t *txn, i int) int {
	if t == nil {
		return -1
	}
	b.out[i].Result = t.res
	return i
}

// start buffers the envelope and DATA of the next message that passes the
// checks of begin; those that do not get their error (nothing of them is
// said). It returns nil when no message is left.
func (b *batch) start(ctx context.Context) (*txn, int) {
	for b.next < len(b.msgs) {
		i := b.next
		b.next++
		m := b.msgs[i]
		t, err := b.c.begin(ctx, m.Envelope, m.Message)
		if err != nil {
			b.out[i] = BatchResult{Result: t.res, Err: err}
			continue
		}
		t.pipeEnvelope(true)
		b.c.writeLine(PhaseData, "DATA", "DATA", false)
		return t, i
	}
	return nil, -1
}

// abandon stops the batch after the connection failed with cause: the
// started message ti (its envelope sent, its content not; -1 for none)
// and every message not yet started get a temporary error wrapping cause.
// It returns cause.
func (b *batch) abandon(ti int, cause error) error {
	c := b.c
	n := len(b.msgs) - b.next
	if ti >= 0 {
		n++
	}
	if n > 0 {
		c.tr.Info(PhaseMail, "the connection failed: %d message(s) of the batch not sent", n)
	}
	notSent := func(res *Result) BatchResult {
		if res == nil {
			res = &Result{Server: c.cfg.Addr}
		}
		return BatchResult{Result: res, Err: &Error{Phase: PhaseMail, Message: "not sent: the connection failed before this message", Err: cause, temporary: true}}
	}
	if ti >= 0 {
		b.out[ti] = notSent(b.out[ti].Result)
	}
	for i := b.next; i < len(b.msgs); i++ {
		b.out[i] = notSent(nil)
	}
	b.next = len(b.msgs)
	return cause
}

// quit says QUIT at the end of a batch unless it was said already or the
// connection cannot carry it.
func (b *batch) quit(ctx context.Context, quit bool) {
	c := b.c
	if !quit || c.quitSent || c.broken != nil {
		return
	}
	if _, err := c.cmd(ctx, PhaseQuit, 221, "QUIT"); err != nil {
		c.tr.Info(PhaseQuit, "QUIT failed: %v", err)
	}
}

// readQuit reads the reply to a pipelined QUIT.
func (b *batch) readQuit(ctx context.Context) {
	if r, err := b.c.readReply(ctx, PhaseQuit); err == nil && r.Code != 221 {
		b.c.tr.Info(PhaseQuit, "unexpected reply to QUIT: %d", r.Code)
	}
}
