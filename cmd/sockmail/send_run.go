package main

// Running a sendPlan: one conversation, or --count messages over one
// connection in batches, and the exit status of the run.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// envelopeOf returns the SMTP envelope a message asks for.
func envelopeOf(c message.Content) smtp.Envelope {
	env := smtp.Envelope{
		From:     c.EnvelopeFrom(),
		To:       c.Recipients(),
		SMTPUTF8: c.NeedsSMTPUTF8(),
		EightBit: c.Needs8BitMIME(),
	}
	if n, err := c.Size(); err == nil {
		env.Size = n
	}
	return env
}

// outcome is what happened to one message.
type outcome struct {
	n      int
	result *smtp.Result
	err    error
}

// run carries out the plan and returns the exit status.
func (p *sendPlan) run(ctx context.Context, stdout io.Writer) int {
	tr := smtp.NewTranscript()
	if p.quiet && p.storeDSN == "" {
		// Only the outcome lines are printed, from the results: keeping
		// (and composing) the transcript would be wasted work per message.
		tr = smtp.NewDiscardTranscript()
	}
	out := &lockedWriter{w: stdout}
	if !p.json && !p.quiet {
		// Printed as it happens: the subscriber is called synchronously
		// for every event, in order.
		tr.Subscribe(func(ev smtp.Event) { fmt.Fprintln(out, smtp.FormatEvent(ev)) })
	}
	cfg := p.cfg
	cfg.Transcript = tr
	var rec *sendRecorder
	var first smtp.Message = p.first
	if p.storeDSN != "" {
		var err error
		if rec, err = openRecorder(ctx, p.storeDSN); err != nil {
			fmt.Fprintf(p.stderr, "sockmail send: %v\n", err)
			return exitInternal
		}
		defer rec.Close()
		first = rec.tee(p.first)
	}
	var outs []outcome
	if p.count == 1 {
		res, err := smtp.SendMail(ctx, cfg, envelopeOf(p.first), first, smtp.SendOptions{StopAfter: p.stopAfter})
		outs = append(outs, outcome{n: 1, result: res, err: err})
	} else {
		outs = p.sendMany(ctx, cfg)
	}
	code := exitStatus(outs)
	if rec != nil {
		id, err := rec.record(context.WithoutCancel(ctx), cfg, p.first, tr, outs[0])
		if err != nil {
			fmt.Fprintf(p.stderr, "sockmail send: %v\n", err)
			code = exitInternal
		} else {
			fmt.Fprintf(p.stderr, "stored as send #%d\n", id)
		}
	}
	if p.json {
		if err := writeJSON(out, cfg.Addr, tr, outs, p.count, code); err != nil {
			return exitInternal
		}
		return code
	}
	// The outcome lines go out together: one write, not one per message
	// of a --count run. Before them, where the time went (the live lines
	// above are in the order they happened, not paired).
	bw := bufio.NewWriter(out)
	if !p.quiet {
		if t := smtp.Converse(tr.Events()).Timings().String(); t != "" {
			fmt.Fprintf(bw, "== timings: %s\n", t)
		}
	}
	for _, o := range outs {
		fmt.Fprintln(bw, outcomeLine(o, p.count, p.stopAfter))
	}
	if len(outs) < p.count {
		fmt.Fprintf(bw, "messages %d to %d of %d: not sent\n", len(outs)+1, p.count, p.count)
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintf(p.stderr, "sockmail send: write the outcome: %v\n", err)
		if code == exitOK {
			code = exitInternal
		}
	}
	return code
}

// batchSize is how many messages sendMany composes ahead and hands to
// one SendBatch.
const batchSize = 100

// sendMany sends p.count messages over one connection with SendBatch:
// with PIPELINING each message's envelope goes with the end of the one
// before, one wait per message. Each message's outcome is its own; a
// failed connection, or a message that cannot be composed, ends the run.
func (p *sendPlan) sendMany(ctx context.Context, cfg smtp.Config) []outcome {
	c, err := smtp.Open(ctx, cfg)
	if err != nil {
		return []outcome{{n: 1, result: &smtp.Result{Server: cfg.Addr}, err: err}}
	}
	defer c.Close()
	var outs []outcome
	for start := 1; start <= p.count; start += batchSize {
		end := min(start+batchSize-1, p.count)
		var msgs []smtp.BatchMessage
		var bad *outcome
		for i := start; i <= end; i++ {
			msg := p.first
			if i > 1 {
				if msg, err = p.compose(i); err != nil {
					bad = &outcome{n: i, err: err}
					break
				}
			}
			msgs = append(msgs, smtp.BatchMessage{Envelope: envelopeOf(msg), Message: msg})
		}
		last := end == p.count && bad == nil
		results, err := c.SendBatch(ctx, msgs, last)
		for k, r := range results {
			outs = append(outs, outcome{n: start + k, result: r.Result, err: r.Err})
		}
		if err != nil {
			return outs
		}
		if bad != nil {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = c.Quit(qctx)
			cancel()
			return append(outs, *bad)
		}
	}
	return outs
}

// exitStatus returns the exit status of a run.
func exitStatus(outs []outcome) int {
	partial := false
	for _, o := range outs {
		if o.err != nil {
			return exitCodeOf(o.err)
		}
		if smtp.StatusOf(o.result, nil) == smtp.StatusPartial {
			partial = true
		}
	}
	if partial {
		return exitPartial
	}
	return exitOK
}

// exitCodeOf maps a send error to its exit status.
func exitCodeOf(err error) int {
	var e *smtp.Error
	switch {
	case errors.As(err, &e) && e.OutcomeUnknown:
		return exitUnknown
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case !errors.As(err, &e):
		return exitInternal
	}
	switch e.Phase {
	case smtp.PhaseConnect:
		return exitConnect
	case smtp.PhaseGreeting:
		return exitGreeting
	case smtp.PhaseEHLO:
		return exitEHLO
	case smtp.PhaseStartTLS:
		return exitStartTLS
	case smtp.PhaseAuth:
		return exitAuth
	case smtp.PhaseMail, smtp.PhaseReset:
		return exitMail
	case smtp.PhaseRcpt:
		return exitRcpt
	case smtp.PhaseData, smtp.PhaseBody:
		return exitData
	}
	return exitInternal
}
