package smtp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// chunkSize is the size of one BDAT chunk. A message that fits one chunk
// goes out in the same write as its envelope. The chunk is held in memory
// whole until its size is known: 256 KiB keeps the CLI's peak RSS with a
// 20 MiB attachment under 16 MiB (1 MiB did not), and with PIPELINING the
// chunks do not wait for each other's replies, so smaller costs no waits.
const chunkSize = 256 << 10

// keptChunk bounds the chunk buffer a Client keeps for its next message:
// enough for the usual message, little for a connection kept idle.
const keptChunk = 64 << 10

// sizer is implemented by messages that know their size in advance
// (smtp/message.Message does).
type sizer interface{ Size() (int64, error) }

// sendMode says how a transaction ends.
type sendMode int

const (
	modeSend     sendMode = iota // send the message
	modeSendQuit                 // send the message and pipeline QUIT after it
	modeStopMail                 // stop after MAIL FROM
	modeStopRcpt                 // stop after the RCPTs
)

// Send runs one mail transaction: MAIL FROM, RCPT TO for every recipient,
// then DATA (or BDAT with CHUNKING) and the message. With PIPELINING the
// envelope goes in one write. Refused recipients are reported in the
// result and the message still goes to the accepted ones; the error is
// nil then. The connection stays open for another Send.
func (c *Client) Send(ctx context.Context, env Envelope, msg Message) (*Result, error) {
	return c.transaction(ctx, env, msg, modeSend)
}

// SendAndQuit is Send followed by QUIT, which with PIPELINING goes in the
// same write as the end of the message: one round trip less. The
// connection is closed afterwards.
func (c *Client) SendAndQuit(ctx context.Context, env Envelope, msg Message) (*Result, error) {
	defer c.Close()
	return c.transaction(ctx, env, msg, modeSendQuit)
}

// transaction is Send with its ending chosen by mode.
func (c *Client) transaction(ctx context.Context, env Envelope, msg Message, mode sendMode) (*Result, error) {
	t, err := c.begin(ctx, env, msg)
	if err != nil {
		return t.res, err
	}
	res := t.res
	pipelining := c.esmtp && !c.cfg.DisablePipelining && c.hasExt("PIPELINING")
	chunking := c.esmtp && !c.cfg.DisableChunking && c.hasExt("CHUNKING")
	sending := mode == modeSend || mode == modeSendQuit

	// QUIT may follow the end of the message in the same write only with
	// PIPELINING; otherwise it waits for the final reply.
	t.quit = mode == modeSendQuit
	t.quitPipelined = t.quit && pipelining && !c.noPipeAfterEnd
	t.kept = mode == modeSend

	if !pipelining {
		if c.needRset {
			if err := c.Reset(ctx); err != nil {
				return res, err
			}
		}
		c.needRset = true
		if err := t.envelopeOneByOne(ctx, mode); err != nil {
			return res, err
		}
		if !sending {
			return res, t.stop(ctx, mode)
		}
		if chunking {
			return res, t.bdat(ctx, msg, mode, false)
		}
		return res, t.data(ctx, msg, mode, false)
	}

	// Pipelined: RSET (when reusing the connection), MAIL and the RCPTs go
	// in one write, with DATA too unless CHUNKING carries the message.
	t.pipeEnvelope(mode != modeStopMail)
	switch {
	case !sending:
		if mode == modeStopMail {
			t.rcptLines = nil
		}
		if err := c.flush(ctx, PhaseMail); err != nil {
			return res, c.wireError(PhaseMail, err)
		}
		if err := t.readEnvelope(ctx); err != nil {
			return res, err
		}
		return res, t.stop(ctx, mode)
	case chunking:
		return res, t.bdat(ctx, msg, mode, true)
	default:
		c.writeLine(PhaseData, "DATA", "DATA", false)
		if err := c.flush(ctx, PhaseMail); err != nil {
			return res, c.wireError(PhaseMail, err)
		}
		return res, t.data(ctx, msg, mode, true)
	}
}

// begin checks a transaction before anything of it is said: the envelope,
// the state of the connection (saying EHLO first on a Client from Dial),
// and what the message needs against what the server offers. The
// returned txn is never nil: its result is the one to report on error.
func (c *Client) begin(ctx context.Context, env Envelope, msg Message) (*txn, error) {
	return c.beginAfter(ctx, env, msg, false)
}

// beginAfter is begin; with inFlight the replies to a message before this
// one are still due, so replies waiting unread are not stray ones.
func (c *Client) beginAfter(ctx context.Context, env Envelope, msg Message, inFlight bool) (*txn, error) {
	t := &txn{c: c, env: &env, res: &Result{Server: c.cfg.Addr}, hook: c.cfg.BeforeEnd}
	if err := checkEnvelope(&env); err != nil {
		c.tr.Info(PhaseMail, "refused before sending: %s", err.(*Error).Message)
		return t, err
	}
	if c.broken != nil {
		// The server closed the conversation or it is out of step: a new
		// transaction cannot start, and must not seem to in the transcript.
		return t, c.wireError(PhaseMail, c.broken)
	}
	if c.helloDone && !inFlight && c.rr.br.Buffered() > 0 {
		// The server said something nobody asked for since its last
		// reply: a stray reply, or the late real answer to an earlier
		// command. No reply from now on can be matched to its command.
		return t, c.unasked(PhaseMail, "before the message started")
	}
	if !c.helloDone {
		// A Client from Dial: EHLO, STARTTLS and AUTH as the
		// configuration asks, as Open would have done.
		if err := c.ready(ctx, ""); err != nil {
			return t, err
		}
	}
	if c.cfg.TLS == TLSStartTLS && !c.tlsOn {
		err := localError(PhaseStartTLS, "TLS mode starttls requires STARTTLS before a message is sent (use Open, or call StartTLS)")
		c.tr.Info(PhaseMail, "refused before sending: %s", err.Message)
		return t, err
	}
	if env.Size == 0 && msg != nil {
		if s, ok := msg.(sizer); ok {
			if n, err := s.Size(); err == nil {
				env.Size = n
			}
		}
	}
	var err error
	t.mailLine, t.rcptLines, err = c.envelopeCommands(&env)
	if err != nil {
		c.tr.Info(PhaseMail, "refused before sending: %s", err.(*Error).Message)
		return t, err
	}
	return t, nil
}

// pipeEnvelope buffers a pipelined RSET (when an earlier transaction was
// not finished cleanly), MAIL and, if rcpts, the RCPTs.
func (t *txn) pipeEnvelope(rcpts bool) {
	c := t.c
	if c.needRset {
		c.writeLine(PhaseReset, "RSET", "RSET", false)
		t.rset = true
	}
	c.needRset = true
	c.writeLine(PhaseMail, t.mailLine, t.mailLine, false)
	if rcpts {
		for _, l := range t.rcptLines {
			c.writeLine(PhaseRcpt, l, l, false)
		}
	}
}

func (c *Client) hasExt(k string) bool { ok, _ := c.Extension(k); return ok }

// txn is the state of one transaction.
type txn struct {
	c         *Client
	env       *Envelope
	res       *Result
	mailLine  string
	rcptLines []string
	rset      bool // a pipelined RSET precedes MAIL
	// afterEnd is set when the envelope went in the same write as the end
	// of the message before it (SendBatch).
	afterEnd bool

	quit, quitPipelined bool
	// chunked is set when the message goes with BDAT (RFC 3030).
	chunked bool
	// kept is set when nothing follows the end of the message, neither
	// QUIT nor another envelope: the connection is kept for later
	// messages, and no later reply checks the verdict.
	kept bool
	// emptyEnd is set when the server said 354 although the envelope
	// failed, and the "." that ends the empty message is buffered.
	emptyEnd bool
	// endAt is where the end of the message (the "." or the last BDAT
	// chunk) ends in the stream, counted as Client.written counts.
	endAt int64
	// envRead is set once the replies to the envelope are read; pending
	// counts the BDAT commands written (writeBDAT).
	envRead bool
	pending int
	// beforeWait, if set, is called before the client first waits for a
	// reply to this transaction (a batch reads the verdict on the message
	// before it there).
	beforeWait func() error
	// hook is the BeforeEnd of this message: Config.BeforeEnd, or a
	// batch message's own (BatchMessage.BeforeEnd).
	hook func(ctx context.Context) error
}

// envelopeOneByOne sends MAIL and each RCPT, waiting for each reply.
func (t *txn) envelopeOneByOne(ctx context.Context, mode sendMode) error {
	c := t.c
	if _, err := c.cmd(ctx, PhaseMail, 2, t.mailLine); err != nil {
		return err
	}
	if mode == modeStopMail {
		return nil
	}
	for i, l := range t.rcptLines {
		r, err := c.cmd(ctx, PhaseRcpt, 2, l)
		if r == nil {
			return err
		}
		t.addRcpt(t.env.To[i], r)
	}
	return t.checkRecipients()
}

// errAfterEnd is what readEnvelope returns when the server answered 503
// to an envelope written in the same flight as the end of the message
// before it: it refuses pipelining after the end of data.
var errAfterEnd = errors.New("smtp: the server refused commands pipelined after the end of data")

// envReply reads the reply to a pipelined RSET, MAIL or RCPT. A 3xx or 1xx
// reply cannot answer one: the replies are out of step.
func (t *txn) envReply(ctx context.Context, phase Phase) (*Reply, error) {
	r, err := t.c.readReply(ctx, phase)
	if err != nil {
		return nil, err
	}
	if r.Code/100 == 3 || r.Code/100 == 1 {
		return nil, t.c.outOfStep(phase, r, string(phase))
	}
	return r, nil
}

// readEnvelope reads the replies to a pipelined RSET, MAIL and RCPTs.
func (t *txn) readEnvelope(ctx context.Context) error {
	var rsetErr error
	if t.rset {
		r, err := t.envReply(ctx, PhaseReset)
		if err != nil {
			return err
		}
		if t.afterEnd && r.Code == 503 {
			return errAfterEnd
		}
		if t.afterEnd && t.chunked && r.Code/100 != 2 {
			// RSET is always answered 250 (RFC 5321 4.1.1.5): after a
			// BDAT LAST whose verdict was read just before, another reply
			// means that verdict may have been a stray one.
			if r.Code == 421 {
				return replyError(PhaseReset, r)
			}
			return t.c.outOfStep(PhaseReset, r, "RSET")
		}
		if r.Code != 250 {
			// The replies to MAIL and RCPT still follow; read them to stay
			// in step, then report the RSET failure.
			rsetErr = replyError(PhaseReset, r)
		}
	}
	mr, err := t.envReply(ctx, PhaseMail)
	if err != nil {
		return err
	}
	if t.afterEnd && !t.rset && mr.Code == 503 {
		return errAfterEnd
	}
	for i := range t.rcptLines {
		r, err := t.envReply(ctx, PhaseRcpt)
		if err != nil {
			return err
		}
		t.addRcpt(t.env.To[i], r)
	}
	if rsetErr != nil {
		return rsetErr
	}
	if mr.Code/100 != 2 {
		return replyError(PhaseMail, mr)
	}
	if t.rcptLines == nil {
		return nil
	}
	return t.checkRecipients()
}

// addRcpt records the reply to one RCPT. A 552 without an enhanced code,
// or with 5.5.3, is recorded as the 452 "too many recipients" it stands
// for (RFC 5321 4.5.3.1.10: RFC 821 gave that condition 552, and clients
// should take it as temporary), with 4.5.3; the server's text is kept,
// with a note.
func (t *txn) addRcpt(addr string, r *Reply) {
	code, enhanced, text := r.Code, r.EnhancedCode(), r.Text()
	if code == 552 && (enhanced == "" || enhanced == "5.5.3") {
		// Not when the enhanced code says otherwise (5.2.2, mailbox full).
		code = 452
		if enhanced != "" {
			enhanced = "4.5.3"
		}
		text += " [the server said 552: taken as 452, too many recipients, RFC 5321 4.5.3.1.10]"
		t.c.tr.Info(PhaseRcpt, "552 to RCPT TO:<%s> taken as 452, a temporary refusal (too many recipients, RFC 5321 4.5.3.1.10)", addr)
	}
	t.res.Recipients = append(t.res.Recipients, RecipientResult{
		Address: addr, Accepted: code/100 == 2, Code: code,
		EnhancedCode: enhanced, Message: text,
	})
}

// checkRecipients fails when no recipient was accepted. The error carries
// a permanent code if any refusal was permanent.
func (t *txn) checkRecipients() error {
	var worst *RecipientResult
	for i := range t.res.Recipients {
		rc := &t.res.Recipients[i]
		if rc.Accepted {
			return nil
		}
		if worst == nil || (worst.Code < 500 && rc.Code >= 500) {
			worst = rc
		}
	}
	if worst == nil {
		return localError(PhaseRcpt, "no recipients")
	}
	msg := worst.Message
	if n := len(t.res.Recipients); n > 1 {
		msg = fmt.Sprintf("all %d recipients were refused; %s: %s", n, worst.Address, worst.Message)
	}
	return &Error{Phase: PhaseRcpt, Code: worst.Code, EnhancedCode: worst.EnhancedCode, Message: msg}
}

// stop ends a transaction that was only a probe (stop after MAIL or
// RCPT): the server is told RSET and the caller decides about QUIT.
func (t *txn) stop(ctx context.Context, mode sendMode) error {
	if err := t.c.Reset(ctx); err != nil {
		return err
	}
	return errStopped
}

// data sends DATA (unless already pipelined), the message, the final "."
// and, in modeSendQuit, QUIT in the same write.
func (t *txn) data(ctx context.Context, msg Message, mode sendMode, pipelined bool) error {
	c := t.c
	ok, err := t.openData(ctx, pipelined)
	if !ok {
		if t.emptyEnd {
			if err := c.flush(ctx, PhaseBody); err != nil {
				return c.wireError(PhaseBody, err)
			}
			if _, rerr := c.readReply(ctx, PhaseBody); rerr != nil {
				return rerr
			}
		}
		return err
	}
	if err := t.writeBody(ctx, msg); err != nil {
		return err
	}
	if err := t.flushEnd(ctx); err != nil {
		return err
	}
	return t.final(ctx, mode)
}

// openData reads the replies to a pipelined envelope and DATA, or sends
// DATA and reads its reply, and reports whether the message may follow.
// When it may not, the error says why: a refusal (the connection is still
// usable, c.broken is nil) or a lost connection. When the server said 354
// although the envelope failed (RFC 2920 3.1), the "." that ends the empty
// message is buffered and t.emptyEnd set: the caller sends it and reads
// its reply.
func (t *txn) openData(ctx context.Context, pipelined bool) (bool, error) {
	c := t.c
	var envErr error
	if pipelined {
		envErr = t.readEnvelope(ctx)
		var e *Error
		if envErr != nil && !(errors.As(envErr, &e) && e.Code != 0) {
			return false, envErr // the connection is gone
		}
	}
	var dr *Reply
	var err error
	if pipelined {
		dr, err = c.readReply(ctx, PhaseData)
		if err != nil {
			return false, err
		}
	} else {
		dr, err = c.cmd(ctx, PhaseData, 3, "DATA")
		if dr == nil {
			return false, err
		}
	}
	if dr.Code/100 != 3 && dr.Code < 400 {
		// DATA is answered 354 or refused (RFC 5321 4.3.2); anything else
		// (an extra 250 before the 354, say) means the replies are out of
		// step. The message is not sent: nothing says which reply would
		// be its verdict.
		return false, c.outOfStep(PhaseData, dr, "DATA")
	}
	if dr.Code/100 != 3 {
		if envErr != nil {
			return false, envErr
		}
		return false, replyError(PhaseData, dr)
	}
	if envErr == nil && c.rr.br.Buffered() > 0 {
		// More than the 354 came back before the message was sent: a
		// stray reply that the end of the message would be matched with.
		// The message is withheld.
		return false, c.unasked(PhaseData, "after its 354, before the message was sent")
	}
	if envErr != nil {
		c.tr.Info(PhaseData, "the server accepted DATA after refusing the envelope: sending an empty message to end it")
		c.writeLine(PhaseBody, ".", ".", false)
		t.emptyEnd = true
		return false, envErr
	}
	return true, nil
}

// writeBody writes the message and buffers the "." that ends it; what
// does not fit the buffer is already on the wire.
func (t *txn) writeBody(ctx context.Context, msg Message) error {
	c := t.c
	rec := newBodyRecorder(c)
	bw := newBodyWriter(c.bw, true, rec)
	bw.sevenBit = t.sevenBit()
	// The body's writes happen outside c.io: the context must still be
	// able to abort one blocked on a server that stopped reading.
	stop := c.guard(ctx)
	if msg != nil {
		if _, err := msg.WriteTo(bw); err != nil {
			stop()
			return t.bodyError(ctx, err, bw.err)
		}
	}
	if err := bw.finish(); err != nil {
		stop()
		return t.bodyError(ctx, err, err)
	}
	stop()
	rec.summary(bw.n)
	if err := t.beforeEnd(ctx); err != nil {
		return err
	}
	if err := t.spokeDuringBody(); err != nil {
		return err
	}
	c.writeLine(PhaseBody, ".", ".", false)
	t.markEnd()
	return nil
}

// spokeDuringBody looks, without waiting, for a reply the server sent
// while the message was going out. No reply is due before its end: a
// refusal is the answer to the message (a server that stops taking it),
// anything else a stray reply that the end of the message would be matched
// with (RFC 5321 4.2). Either way the end is withheld and the connection
// closed, so the server cannot take the message.
func (t *txn) spokeDuringBody() error {
	c := t.c
	if c.rr.br.Buffered() == 0 && !socketReadable(c.conn) {
		return nil
	}
	if r := c.salvageReply(); r != nil {
		c.broken = replyError(PhaseBody, r)
		t.res.Final = r
		c.tr.Info(PhaseBody, "the server answered %d before the end of the message: the end is withheld", r.Code)
		c.conn.Close()
		return replyError(PhaseBody, r)
	}
	e := c.unasked(PhaseBody, "while the message was going out, before its end: the end is withheld")
	c.conn.Close()
	return e
}

// sevenBit reports whether the MAIL command declared no 8-bit content:
// neither BODY=8BITMIME nor SMTPUTF8 (whose UTF-8 header is 8-bit content
// a server offering it takes, RFC 6531 3.4).
func (t *txn) sevenBit() bool {
	return !strings.Contains(t.mailLine, " BODY=8BITMIME") && !strings.HasSuffix(t.mailLine, " SMTPUTF8") && !strings.Contains(t.mailLine, " SMTPUTF8 ")
}

// beforeEnd runs the message's BeforeEnd hook (Config.BeforeEnd, or a
// batch message's own), if set, once everything before the end of the
// message is on the wire.
func (t *txn) beforeEnd(ctx context.Context) error {
	c := t.c
	if t.hook == nil {
		return nil
	}
	if err := c.flush(ctx, PhaseBody); err != nil {
		return c.wireError(PhaseBody, err)
	}
	if err := t.hook(ctx); err != nil {
		c.tr.Info(PhaseBody, "the end of the message was withheld (%v): closing the connection so the server discards the message", err)
		c.broken = err
		c.conn.Close()
		return &Error{Phase: PhaseBody, Message: "the end of the message was withheld", Err: err, temporary: true}
	}
	return nil
}

// markEnd notes that the end of the message is the last byte buffered.
func (t *txn) markEnd() { t.endAt = t.c.written + int64(t.c.bw.Buffered()) }

// flushEnd sends what is buffered up to the end of the message and what
// follows it: a pipelined QUIT, or in a batch the next envelope. When the
// write fails with the end of the message still unsent the server cannot
// have the message: that is a plain temporary failure, not an unknown
// outcome.
func (t *txn) flushEnd(ctx context.Context) error {
	c := t.c
	if t.quitPipelined {
		c.writeLine(PhaseQuit, "QUIT", "QUIT", false)
	}
	if err := c.flush(ctx, PhaseBody); err != nil {
		if c.written < t.endAt {
			// Closing makes that true: the end, still buffered, can no
			// longer go out with whatever this client writes next.
			c.tr.Info(PhaseBody, "the end of the message was not sent: closing the connection, so the server cannot have taken it")
			if c.broken == nil {
				c.broken = err
			}
			c.conn.Close()
			return c.wireError(PhaseBody, err)
		}
		return t.unknown(c.wireError(PhaseBody, err))
	}
	return nil
}

// bodyError reports a failure while writing the message: a failure to
// write to the server (wireErr set) is a lost connection, anything else
// is the message source failing, and the connection cannot be used
// again because the message is half sent.
func (t *txn) bodyError(ctx context.Context, err, wireErr error) error {
	c := t.c
	if wireErr != nil {
		var e *Error
		if errors.As(wireErr, &e) {
			return e // already reported (a refusal or failure before the chunk)
		}
		if r := c.salvageReply(); r != nil {
			// The server stopped reading and said why: that reply, not the
			// broken pipe, is the answer to the message.
			c.broken = replyError(PhaseBody, r)
			t.res.Final = r
			c.tr.Info(PhaseBody, "the server stopped reading the message and answered %d", r.Code)
			return replyError(PhaseBody, r)
		}
		c.broken = wireErr
		return c.wireError(PhaseBody, ctxCause(ctx, wireErr))
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	c.broken = err
	what := "reading the message failed"
	if errors.Is(err, errLineTooLong) || errors.Is(err, errUndeclared8Bit) {
		what = "the message cannot be sent as it is"
	}
	c.tr.Info(PhaseBody, "%s: %v; closing the connection so the partial message is not delivered", what, err)
	c.conn.Close()
	return &Error{Phase: PhaseBody, Message: what, Err: err}
}

// unknown marks an error after the end of the message as of unknown
// outcome: the server may have taken the message.
// The error is a copy: e may be what the connection keeps as the reason
// it is broken, which later messages report, and those were not sent.
func (t *txn) unknown(e *Error) error {
	if e.Code == 0 {
		u := *e
		u.OutcomeUnknown = true
		u.temporary = false
		t.c.tr.Info(PhaseBody, "the connection was lost after the end of the message and before its reply: the outcome is UNKNOWN")
		return &u
	}
	return e
}

// final reads the reply to the end of the message and, after a pipelined
// QUIT, the 221.
func (t *txn) final(ctx context.Context, mode sendMode) error {
	c := t.c
	r, err := c.readReply(ctx, PhaseBody)
	if err != nil {
		var e *Error
		errors.As(err, &e)
		return t.unknown(e)
	}
	if r.Code < 200 || r.Code/100 == 3 {
		// Only a completion reply can be the verdict on the message.
		return t.unknown(c.outOfStep(PhaseBody, r, "the end of the message"))
	}
	if t.kept && c.rr.br.Buffered() > 0 {
		// Two replies to one end of the message: either may be the
		// verdict (RFC 5321 4.2).
		e := c.unasked(PhaseBody, "together with its reply to the end of the message")
		e.Message = fmt.Sprintf("the message was answered %d and the server sent more replies with it: the replies are out of step and the verdict is not known", r.Code)
		return t.unknown(e)
	}
	// After a refused BDAT the state of the transaction is not known (RFC
	// 3030 2): RSET before the next one. After "." it is over.
	c.needRset = t.chunked && r.Code/100 != 2
	t.res.Final = r
	if r.Code/100 == 2 {
		t.res.QueueID = parseQueueID(r.Text())
		if t.res.QueueID != "" {
			c.tr.Info(PhaseBody, "queue id: %s", t.res.QueueID)
		}
	}
	if t.quit {
		if err := t.quitReply(ctx, r); err != nil {
			return err
		}
	}
	if r.Code/100 != 2 {
		return replyError(PhaseBody, r)
	}
	return nil
}

// quitReply says QUIT after the verdict r on the message (or reads the
// reply to a QUIT pipelined after its end) and checks the reply. A 503 to
// a pipelined QUIT is a server refusing pipelining after the end of data:
// not a failure of the message; QUIT is said again on its own. Any other
// reply but 221 after a positive verdict means that the replies are out of
// step (a stray early reply was taken for the verdict, say): the outcome
// of the message is unknown.
func (t *txn) quitReply(ctx context.Context, r *Reply) error {
	c := t.c
	var qr *Reply
	if t.quitPipelined {
		qr, _ = c.readReply(ctx, PhaseQuit) // readReply notes a failure
	} else {
		var qerr error
		qr, qerr = c.cmd(ctx, PhaseQuit, 221, "QUIT")
		if qr == nil && qerr != nil {
			c.tr.Info(PhaseQuit, "QUIT failed: %v", qerr)
		}
	}
	if qr == nil || qr.Code == 221 {
		return nil // a server may close without answering QUIT
	}
	if t.quitPipelined && qr.Code == 503 {
		c.noPipeAfterEnd = true
		c.tr.Info(PhaseQuit, "the server refused the QUIT pipelined after the end of the message (503): saying QUIT again on its own")
		if _, err := c.cmd(ctx, PhaseQuit, 221, "QUIT"); err != nil {
			c.tr.Info(PhaseQuit, "QUIT failed: %v", err)
		}
		return nil
	}
	c.tr.Info(PhaseQuit, "unexpected reply to QUIT: %d", qr.Code)
	if r.Code/100 != 2 {
		return nil
	}
	e := c.outOfStep(PhaseBody, qr, "QUIT")
	e.Message = fmt.Sprintf("the message was answered %d but QUIT was answered %d: the replies are out of step and either may be the verdict", r.Code, qr.Code)
	return t.unknown(e)
}

// bdat sends the message with BDAT (RFC 3030). A message that fits one
// chunk goes in the same write as the (pipelined) envelope: two round
// trips in all with QUIT. A larger one waits for the envelope replies
// first, so a refused envelope does not cost the whole upload.
func (t *txn) bdat(ctx context.Context, msg Message, mode sendMode, pipelined bool) error {
	if err := t.writeBDAT(ctx, msg, pipelined); err != nil {
		return err
	}
	if err := t.flushEnd(ctx); err != nil {
		return err
	}
	return t.readBDAT(ctx, mode)
}

// writeBDAT writes the message in BDAT chunks up to and including the
// last one, which stays buffered with what follows it; the replies are
// read by readBDAT.
func (t *txn) writeBDAT(ctx context.Context, msg Message, pipelined bool) error {
	c := t.c
	t.chunked = true
	t.envRead = !pipelined
	cw := t.newChunkWriter(ctx, &t.envRead)
	rec := newBodyRecorder(c)
	rec.hold = true
	cw.rec = rec
	bw := newBodyWriter(cw, false, rec)
	bw.sevenBit = t.sevenBit()
	stop := c.guard(ctx) // as in data: the context aborts a blocked write
	cw.buf = c.chunk[:0]
	err := t.writeChunks(ctx, msg, cw, bw, stop)
	if cap(cw.buf) <= keptChunk {
		c.chunk = cw.buf[:0] // emptied: the next message fills it again
	}
	if err != nil {
		return err
	}
	t.markEnd()
	t.pending = cw.pending
	rec.summary(bw.n)
	return nil
}

// readBDAT reads the replies to a message that writeBDAT wrote and whose
// end has been flushed: the envelope replies if they went with it, those
// to the chunks, and the verdict.
func (t *txn) readBDAT(ctx context.Context, mode sendMode) error {
	if !t.envRead {
		// Envelope and whole message went together: everything after this
		// point is of unknown outcome if the connection drops.
		if err := t.readEnvelopeAfterChunks(ctx, t.pending); err != nil {
			return err
		}
	}
	if err := t.readChunkReplies(ctx, t.pending-1); err != nil {
		return err
	}
	return t.final(ctx, mode)
}

// newChunkWriter returns the BDAT writer of the transaction. Before its
// first chunk that is not the last, it sends the pipelined envelope and
// reads its replies, setting *envRead; without PIPELINING it waits for the
// reply to each chunk but the last.
func (t *txn) newChunkWriter(ctx context.Context, envRead *bool) *chunkWriter {
	c := t.c
	cw := &chunkWriter{c: c, size: chunkSize}
	if !c.hasExt("PIPELINING") || c.cfg.DisablePipelining {
		// Without PIPELINING each BDAT waits for its reply (RFC 3030 4.2).
		cw.sync = func() error {
			if err := c.flush(ctx, PhaseBody); err != nil {
				return c.wireError(PhaseBody, err)
			}
			r, err := c.readReply(ctx, PhaseBody)
			if err != nil {
				return err
			}
			if r.Code/100 != 2 {
				t.res.Final = r
				return replyError(PhaseBody, r)
			}
			return nil
		}
	}
	cw.first = func(last bool) error {
		if *envRead || last {
			return nil
		}
		*envRead = true
		if err := c.flush(ctx, PhaseMail); err != nil {
			return c.wireError(PhaseMail, err)
		}
		if t.beforeWait != nil {
			// A batch's message in flight: its replies come first.
			if err := t.beforeWait(); err != nil {
				return err
			}
		}
		return t.readEnvelope(ctx)
	}
	return cw
}

// writeChunks writes the message through bw into BDAT chunks, calls
// Config.BeforeEnd before the last one, and sends the last; it calls stop
// (ending the context's guard) once done or before handling an error.
func (t *txn) writeChunks(ctx context.Context, msg Message, cw *chunkWriter, bw *bodyWriter, stop func() bool) error {
	if msg != nil {
		if _, err := msg.WriteTo(bw); err != nil {
			stop()
			if cw.err != nil {
				return t.chunkError(ctx, cw.err)
			}
			return t.bodyError(ctx, err, nil)
		}
	}
	if err := bw.finish(); err != nil {
		stop()
		return t.chunkError(ctx, err)
	}
	if t.hook != nil {
		// Everything but an empty last chunk goes first, so that the end
		// of the message is a few bytes sent after BeforeEnd.
		if len(cw.buf) > 0 {
			cw.emit(false)
		} else if !cw.started {
			cw.started = true
			cw.err = cw.first(false)
		}
		if cw.err != nil {
			stop()
			return t.chunkError(ctx, cw.err)
		}
		if err := t.beforeEnd(ctx); err != nil {
			stop()
			return err
		}
	}
	cw.emit(true)
	stop()
	if cw.err != nil {
		return t.chunkError(ctx, cw.err)
	}
	return nil
}

// readEnvelopeAfterChunks reads the envelope replies that went in the same
// write as the whole message. A lost connection makes the outcome unknown;
// after a refused envelope the replies to the pending BDAT commands (and
// to a pipelined QUIT) are read and the refusal returned.
func (t *txn) readEnvelopeAfterChunks(ctx context.Context, pending int) error {
	c := t.c
	err := t.readEnvelope(ctx)
	if err == nil || errors.Is(err, errAfterEnd) {
		return err
	}
	var e *Error
	if errors.As(err, &e) && e.Code == 0 {
		return t.unknown(e)
	}
	// The server refused the envelope; it still answers the BDAT.
	for i := 0; i < pending; i++ {
		if _, rerr := c.readReply(ctx, PhaseBody); rerr != nil {
			break
		}
	}
	if t.quitPipelined {
		_, _ = c.readReply(ctx, PhaseQuit)
	}
	return err
}

// readChunkReplies reads the replies to n BDAT commands before the last;
// a lost connection makes the outcome unknown.
func (t *txn) readChunkReplies(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		r, err := t.c.readReply(ctx, PhaseBody)
		if err != nil {
			var e *Error
			errors.As(err, &e)
			return t.unknown(e)
		}
		if r.Code/100 != 2 {
			t.res.Final = r
			return replyError(PhaseBody, r)
		}
	}
	return nil
}

// chunkError handles a failure of the chunk writer: an envelope refusal
// found before the first chunk is returned as it is and leaves the
// connection usable; anything else is a failure to write to the server
// (a temporary network failure, not a fault of the message).
func (t *txn) chunkError(ctx context.Context, err error) error {
	if errors.Is(err, errAfterEnd) {
		return err
	}
	return t.bodyError(ctx, err, err)
}

// salvageReply reads, with a short deadline, a reply the server may have
// sent before it stopped reading the message (a server that refuses a
// message mid-way answers 5xx and stops). It returns nil when there is
// none, or when the send was cancelled.
func (c *Client) salvageReply() *Reply {
	if c.aborted.Load() || c.rr.br == nil {
		return nil
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(salvageWait))
	c.phase = PhaseBody
	r, err := c.rr.readReply()
	if err != nil || r.Code < 400 {
		return nil
	}
	return r
}

// salvageWait bounds the look for a reply after a failed write.
const salvageWait = time.Second
