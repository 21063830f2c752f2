package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// BatchMessage is one message of a batch: its envelope and its content.
type BatchMessage struct {
	Envelope Envelope
	Message  Message
	// BeforeEnd, if set, replaces Config.BeforeEnd for this message: a
	// queue marks each message's end sent, just before that end goes.
	BeforeEnd func(ctx context.Context) error
	// Transcript, if set, records this message's lines (its envelope,
	// content, end and the replies to them) instead of the client's
	// transcript, so that each message of a pipelined batch has a
	// transcript of its own; lines of no message (a failure of the
	// connection, RSET after a refused flight) go where the message being
	// worked on records.
	Transcript *Transcript
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
// CHUNKING too, each message's RSET, envelope and BDAT chunks up to its
// BDAT LAST go out right after the end of the message before it, whose
// replies are read only then: one message in flight while the next is
// written. Without PIPELINING they are sent one after another, as by
// Send.
//
// Each message's outcome is its own: a refused envelope, a refused BDAT or
// a refusal after the end of a message affects that message only (a
// message whose DATA is refused is not sent; one whose envelope failed
// although DATA got 354 is ended empty, as Send does). A failure of the connection stops the batch:
// each message whose end was sent and whose reply did not come has an error
// of unknown outcome (Error.OutcomeUnknown; after a 421 the server took
// nothing more, and such a message was not sent), and those not yet sent a
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
	b := &batch{c: c, msgs: msgs, out: make([]BatchResult, len(msgs)), prev: -1, base: c.tr}
	defer func() { c.tr = b.base }()
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
	if !c.guarded {
		// One guard lets ctx abort any read or write of the whole batch,
		// rather than one per reply (a context.AfterFunc each).
		stop := c.guard(ctx)
		c.guarded = true
		defer func() {
			stop()
			c.guarded = false
		}()
	}
	var err error
	switch {
	case pipelining && !chunking && !c.noPipeAfterEnd:
		err = b.pipelined(ctx, quit)
	case pipelining && chunking && !c.noPipeAfterEnd:
		err = b.chunked(ctx, quit)
	default:
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
	// fly is the message in flight in chunked (its end written, its
	// replies not read), flyI its index.
	fly  *txn
	flyI int
	// settleErr is the failure of the connection found while reading the
	// replies to fly, nil if none.
	settleErr error
	// base is the client's transcript, for messages without their own.
	base *Transcript
}

// use makes the client record in message i's transcript (the client's
// own when the message has none).
func (b *batch) use(i int) {
	if i >= 0 && i < len(b.msgs) && b.msgs[i].Transcript != nil {
		b.c.tr = b.msgs[i].Transcript
		return
	}
	b.c.tr = b.base
}

// oneByOne sends each message as Send does, the last with QUIT after it
// (pipelined when the server allows) when quit.
func (b *batch) oneByOne(ctx context.Context, quit bool) error {
	for i := b.next; i < len(b.msgs); i++ {
		b.next = i + 1
		if err := b.sendOne(ctx, i, quit && i == len(b.msgs)-1); err != nil {
			return err
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
				b.use(ci)
				_, err := c.readReply(ctx, PhaseBody)
				b.use(ni)
				if err != nil {
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
		b.use(ci) // the verdict is read after the next envelope went
		err = cur.final(ctx, modeSend)
		b.use(ni)
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
		b.use(i)
		t, err := b.c.begin(ctx, m.Envelope, m.Message)
		if err != nil {
			b.out[i] = BatchResult{Result: t.res, Err: err}
			continue
		}
		if m.BeforeEnd != nil {
			t.hook = m.BeforeEnd
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

// chunked sends the messages with BDAT when the server offers CHUNKING and
// PIPELINING (RFC 3030 2 and 4, RFC 2920 3.1), one message in flight: the
// RSET, envelope and chunks of the next message, up to its BDAT LAST, go
// out before the replies to the message before it are read, and those
// replies are read, in order, while the server works on the next one. The
// RSET clears what a refused BDAT left (RFC 3030 2: the state is not known
// then, and RSET must come before anything else); after an accepted BDAT
// LAST it does nothing (RFC 5321 4.1.1.5), and any reply to it but 250
// means the replies are out of step. QUIT goes with the last message.
func (b *batch) chunked(ctx context.Context, quit bool) error {
	c := b.c
	for {
		t, i, err := b.writeNext(ctx)
		if err != nil {
			if errors.Is(err, errAfterEnd) {
				return b.resumeChunked(ctx, t, i, quit)
			}
			return err
		}
		if t == nil {
			last := b.fly
			if last == nil {
				b.quit(ctx, quit)
				return nil
			}
			if !last.quit {
				// The last messages were refused before a word of them was
				// said: the one in flight is the last.
				if quit {
					last.quit, last.quitPipelined = true, true
					c.writeLine(PhaseQuit, "QUIT", "QUIT", false)
				} else {
					last.kept = true
				}
			}
			if err := c.flush(ctx, PhaseBody); err != nil {
				return b.failFlight(c.wireError(PhaseBody, err), nil, -1)
			}
			if err := b.settle(ctx); err != nil {
				if errors.Is(err, errAfterEnd) {
					return b.resumeChunked(ctx, nil, -1, quit)
				}
				return b.failFlight(err, nil, -1)
			}
			return nil
		}
		if b.next == len(b.msgs) {
			// The last message: QUIT after its end, or nothing when the
			// connection is kept (its verdict is then checked for company).
			if quit {
				t.quit, t.quitPipelined = true, true
				c.writeLine(PhaseQuit, "QUIT", "QUIT", false)
			} else {
				t.kept = true
			}
		}
		if err := c.flush(ctx, PhaseBody); err != nil {
			return b.failFlight(c.wireError(PhaseBody, err), t, i)
		}
		if err := b.settle(ctx); err != nil {
			if errors.Is(err, errAfterEnd) {
				return b.resumeChunked(ctx, t, i, quit)
			}
			return b.failFlight(err, t, i)
		}
		c.needRset = true // t is open: its RSET was written
		b.fly, b.flyI = t, i
	}
}

// writeNext writes the next message that can go, up to its BDAT LAST,
// which stays buffered, while b.fly may still be in flight (its replies
// are read before the client first waits for this one's: a message
// larger than a chunk, or Config.BeforeEnd). Messages refused before any
// chunk of theirs went out get their outcome and the next one is tried.
// It returns nil when no message is left, and an error when the
// connection failed (the outcomes are recorded) or with errAfterEnd, the
// message concerned returned with it.
func (b *batch) writeNext(ctx context.Context) (*txn, int, error) {
	c := b.c
	for b.next < len(b.msgs) {
		i := b.next
		b.next++
		m := b.msgs[i]
		b.use(i)
		t, err := c.beginAfter(ctx, m.Envelope, m.Message, b.fly != nil)
		if m.BeforeEnd != nil {
			t.hook = m.BeforeEnd
		}
		if err != nil {
			b.out[i] = BatchResult{Result: t.res, Err: err}
			if c.broken != nil {
				return nil, -1, b.failFlight(err, nil, -1)
			}
			continue
		}
		t.afterEnd = b.fly != nil
		t.pipeEnvelope(true)
		t.beforeWait = func() error {
			if err := b.settle(ctx); err != nil {
				return err
			}
			c.needRset = true // t is open
			return nil
		}
		err = t.writeBDAT(ctx, m.Message, true)
		switch {
		case err == nil:
			return t, i, nil
		case errors.Is(err, errAfterEnd):
			return t, i, err
		case b.settleErr != nil:
			// The connection failed while the message before was read:
			// nothing of the end of this one went out.
			b.out[i].Result = t.res
			return nil, -1, b.failFlight(b.settleErr, t, i)
		}
		b.out[i] = BatchResult{Result: t.res, Err: err}
		if c.broken != nil {
			return nil, -1, b.failFlight(err, nil, -1)
		}
		// Refused before its chunks went out (its envelope): the next one
		// follows, after an RSET.
	}
	return nil, -1, nil
}

// settle reads the replies to the message in flight, if any, and records
// its outcome. It returns errAfterEnd (the outcome is not recorded: the
// message goes again) or, when the connection failed, the failure.
func (b *batch) settle(ctx context.Context) error {
	t, i := b.fly, b.flyI
	if t == nil {
		return nil
	}
	b.fly = nil
	cur := b.c.tr
	b.use(i) // its replies come while the next message is written
	err := t.readBDAT(ctx, modeSend)
	b.c.tr = cur
	if errors.Is(err, errAfterEnd) {
		b.fly, b.flyI = t, i // still to be read by resumeChunked
		return err
	}
	if e := (*Error)(nil); errors.As(err, &e) && e.Phase == PhaseReset {
		// The reply to the RSET right after the verdict on the message
		// before was not 250: that verdict may have been a stray reply.
		// (Out of step later, the RSET's 250 stood for it.)
		b.suspect(err)
	}
	b.out[i] = BatchResult{Result: t.res, Err: err}
	b.prev = i
	if b.c.broken != nil {
		b.settleErr = b.c.broken
		return b.c.broken
	}
	if ctx.Err() != nil {
		// Cancelled before a read (io does not mark the connection
		// broken then): nothing more goes out.
		b.settleErr = netError(PhaseBody, "aborted", ctx.Err())
		return b.settleErr
	}
	return nil
}

// failFlight stops the batch after the connection failed with cause: the
// message in flight and t (message i, written after it; nil for none) get
// inFlightError, those not started a temporary error. It returns cause.
func (b *batch) failFlight(cause error, t *txn, i int) error {
	if f := b.fly; f != nil {
		b.fly = nil
		b.out[b.flyI] = BatchResult{Result: f.res, Err: b.inFlightError(f, cause)}
	}
	if t != nil {
		b.out[i] = BatchResult{Result: t.res, Err: b.inFlightError(t, cause)}
	}
	return b.abandon(-1, cause)
}

// inFlightError is the outcome of message t, whose verdict was not read
// because the connection failed with cause: not sent when its end did not
// go out, or when the server said 421 before it (it closes then, RFC 5321
// 3.8, and takes nothing more); otherwise unknown, for the server may have
// taken it.
func (b *batch) inFlightError(t *txn, cause error) error {
	c := b.c
	var e *Error
	closing := errors.As(cause, &e) && e.Code == 421
	if t.endAt == 0 || c.written < t.endAt || closing {
		return &Error{Phase: PhaseBody, Message: "not sent: the connection failed before the end of this message was taken", Err: cause, temporary: true}
	}
	c.tr.Info(PhaseBody, "a message whose end was sent has no reply (%v): its outcome is UNKNOWN", cause)
	return &Error{Phase: PhaseBody, Message: "the connection failed after the end of this message and before its reply: the server may have taken it", Err: cause, OutcomeUnknown: true}
}

// resumeChunked goes on after the server refused with 503 the RSET written
// right after the end of the message before: a defence against SMTP
// smuggling. The refused message is b.fly when the refusal came while its
// replies were read (t, if not nil, was written after it), else t. The
// rest of the refused message's replies are read and set aside; a message
// written after it whose chunks went out has replies of its own, read as
// usual (one with only its envelope out is set aside too). An RSET on its
// own then puts the client in step again, and the messages set aside go
// again one at a time, as every later one: nothing is pipelined after the
// end of data on this connection any more.
func (b *batch) resumeChunked(ctx context.Context, t *txn, i int, quit bool) error {
	c := b.c
	c.noPipeAfterEnd = true
	c.tr.Info(PhaseMail, "the server refused the commands written after the end of the message before (503): it does not take pipelining after the end of data; the refused messages go again, and nothing follows the end of data in its write on this connection any more")
	type at struct {
		t *txn
		i int
	}
	var flight []at
	if b.fly != nil {
		flight = append(flight, at{b.fly, b.flyI})
		b.fly = nil
	}
	if t != nil {
		flight = append(flight, at{t, i})
	}
	var redo []int
	lost := func(err error) error {
		for _, m := range flight {
			if b.out[m.i].Result == nil {
				b.out[m.i] = BatchResult{Result: m.t.res, Err: &Error{Phase: PhaseReset, Message: "not sent: the connection failed before this message", Err: err, temporary: true}}
			}
		}
		return b.abandon(-1, err)
	}
	for k, m := range flight {
		read := 0
		if k == 0 {
			read = 1 // the 503 to its RSET
		} else if m.t.pending > 0 {
			b.fly, b.flyI = m.t, m.i
			err := b.settle(ctx)
			if err == nil {
				continue
			}
			if !errors.Is(err, errAfterEnd) {
				return lost(err) // its own outcome is recorded
			}
			b.fly, read = nil, 1
		}
		n := 1 + len(m.t.rcptLines) + m.t.pending - read
		if m.t.rset {
			n++
		}
		if m.t.quitPipelined {
			n++
			c.quitSent = false // the QUIT was refused with the rest: said again at the end
		}
		for ; n > 0; n-- {
			if _, err := c.readReply(ctx, PhaseReset); err != nil {
				return lost(err)
			}
		}
		b.out[m.i] = BatchResult{}
		redo = append(redo, m.i)
	}
	c.writeLine(PhaseReset, "RSET", "RSET", false)
	if err := c.flush(ctx, PhaseReset); err != nil {
		return lost(c.wireError(PhaseReset, err))
	}
	r, err := c.readReply(ctx, PhaseReset)
	if err != nil {
		return lost(err)
	}
	if r.Code/100 != 2 {
		return lost(c.outOfStep(PhaseReset, r, "RSET"))
	}
	c.needRset = false
	for _, k := range redo {
		// The message's chunks went out once: it goes again only from
		// its start, when it can be written again.
		if err := rewind(b.msgs[k].Message); err != nil {
			b.out[k] = BatchResult{Result: &Result{Server: c.cfg.Addr}, Err: &Error{Phase: PhaseMail, Message: "not sent: the server refused it, pipelined after the end of the message before, and the message cannot be written again to send it alone; send it again", Err: err, temporary: true}}
			continue
		}
		if err := b.sendOne(ctx, k, quit && k == len(b.msgs)-1 && b.next == len(b.msgs)); err != nil {
			return err
		}
	}
	return b.oneByOne(ctx, quit)
}

// sendOne sends message i as Send does, with QUIT after it when quit. It
// returns the failure of the connection, having recorded the outcomes.
func (b *batch) sendOne(ctx context.Context, i int, quit bool) error {
	c := b.c
	mode := modeSend
	if quit {
		mode = modeSendQuit
	}
	m := b.msgs[i]
	b.use(i)
	if m.BeforeEnd != nil {
		saved := c.cfg.BeforeEnd
		c.cfg.BeforeEnd = m.BeforeEnd
		defer func() { c.cfg.BeforeEnd = saved }()
	}
	res, err := c.transaction(ctx, m.Envelope, m.Message, mode)
	b.out[i] = BatchResult{Result: res, Err: err}
	if c.broken != nil {
		return b.abandon(-1, err)
	}
	return nil
}

// Repeatable is implemented by a Message whose WriteTo writes the whole
// message each time it is called (smtp/message.Message renders it anew).
// SendBatch sends such a message, or an io.Seeker rewound to its start,
// again when a server refused it after its chunks had gone out (a 503 to
// commands pipelined after the end of the message before); any other
// message fails temporarily then.
type Repeatable interface {
	Message
	Repeatable() bool
}

// rewind makes msg ready to be written again from its start.
func rewind(msg Message) error {
	if r, ok := msg.(Repeatable); ok && r.Repeatable() {
		return nil
	}
	if s, ok := msg.(io.Seeker); ok {
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewind the message: %w", err)
		}
		return nil
	}
	return errors.New("the message is neither Repeatable nor an io.Seeker")
}
