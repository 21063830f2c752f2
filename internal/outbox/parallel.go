package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// Delivery in parallel. Due items are claimed together and grouped by
// server profile; each group of up to Deps.Pipeline items to one server
// goes over one connection as a pipelined batch (smtp.Client.SendBatch,
// RFC 2920): the next message's envelope is written right after the end
// of the message before it, so a message costs one wait for the server
// instead of two or three. Up to Deps.Concurrency groups are sent at
// once, over at most Deps.Connections connections to one server; a group
// waits for a connection when they are all busy.
//
// Each message keeps what a lone attempt has: its own lease, its own
// end-of-message mark (store.MarkDataSent, taken through the message's
// own BeforeEnd hook just before its end goes on the wire, when the
// verdict on the message before it has already been read), its own
// transcript and its own outcome, recorded for exactly that message. A
// crash in the middle of a batch therefore leaves each item as a lone
// attempt would: those whose mark was written become unknown (their end
// went, or was about to go: never sent again), the others are taken
// over and sent (their end never went, the server discarded them). A
// mark that finds its lease gone withholds that message's end and closes
// the connection: the messages after it are not sent and go back to the
// queue, the verdicts on those before it were read already.
//
// A server that refuses commands written in the same flight as the end
// of a message (Haraka's 503 "pipelined after end of DATA", a defence
// against SMTP smuggling) loses nothing: the client sends the refused
// message again on its own and sends nothing after the end of a message
// on that connection any more (smtp.SendBatch); the worker remembers the
// server, and new connections to it go one transaction per round trip
// from the start.

// DefaultPipeline is how many messages go in one pipelined batch
// (Deps.Pipeline).
const DefaultPipeline = 8

// groups splits items into groups of up to per items with the same
// server profile, in the order the items came.
func groups(items []store.OutboxItem, per int) [][]store.OutboxItem {
	var out [][]store.OutboxItem
	open := map[int64]int{} // profile -> index in out of its group being filled
	for _, it := range items {
		i, ok := open[it.ProfileID]
		if !ok || len(out[i]) >= per {
			i = len(out)
			out = append(out, nil)
			open[it.ProfileID] = i
		}
		out[i] = append(out[i], it)
	}
	return out
}

// spread deals groups into at most n lanes, each sent one group after
// another.
func spread(gs [][]store.OutboxItem, n int) [][][]store.OutboxItem {
	n = min(n, len(gs))
	if n <= 0 {
		return nil
	}
	lanes := make([][][]store.OutboxItem, n)
	for i, g := range gs {
		lanes[i%n] = append(lanes[i%n], g)
	}
	return lanes
}

// attemptGroup attempts the items of a group (one server profile), as a
// pipelined batch over one connection when there are several and the
// worker keeps connections; every attempt ends by deadline.
func (w *Worker) attemptGroup(ctx context.Context, g []store.OutboxItem, deadline time.Time) {
	if len(g) == 1 || w.pool == nil {
		for _, it := range g {
			w.attempt(ctx, it, deadline)
		}
		return
	}
	tries := make([]*try, len(g))
	var batch, alone []*try
	for i, it := range g {
		a := w.prepare(ctx, it)
		tries[i] = a
		switch {
		case !a.ready:
		case a.cfg.Addr != "" && (len(batch) == 0 || keyOf(it.ProfileID, a.cfg) == keyOf(batch[0].it.ProfileID, batch[0].cfg)):
			batch = append(batch, a)
		default: // no address (MX delivery), or the profile changed meanwhile
			alone = append(alone, a)
		}
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if len(batch) == 1 {
		alone = append(alone, batch[0])
	} else if len(batch) > 1 {
		w.sendBatchSafely(actx, batch)
	}
	for _, a := range alone {
		a.res, a.sendErr = w.sendSafely(actx, a.it, a.cfg, a.env, a.msg)
	}
	for _, a := range tries {
		if a.ready {
			w.noteStop(ctx, actx, a)
		}
	}
	w.recordAll(ctx, tries)
}

// sendBatchSafely is sendBatch turning a panic into every message's
// error, so that each attempt is still recorded.
func (w *Worker) sendBatchSafely(ctx context.Context, tries []*try) {
	defer func() {
		if r := recover(); r != nil {
			for _, a := range tries {
				if a.res == nil && a.sendErr == nil {
					a.res, a.sendErr = &smtp.Result{Server: a.cfg.Addr}, fmt.Errorf("outbox: send panicked: %v", r)
				}
			}
		}
	}()
	w.sendBatch(ctx, tries)
}

// sendBatch sends the messages of tries (one server) as one pipelined
// batch over a kept connection or a new one, and keeps the connection
// afterwards when it can be. Each message gets its result, its
// transcript and its end-of-message mark; the first one's transcript
// holds the opening of a new connection.
func (w *Worker) sendBatch(ctx context.Context, tries []*try) {
	first := tries[0]
	cfg := first.cfg
	key := keyOf(first.it.ProfileID, cfg)
	fail := func(err error) {
		for i, a := range tries {
			if i > 0 {
				a.tr.Info(smtp.PhaseConnect, "sent in one batch with outbox item %d, whose attempt could not get a connection to %s: %v", first.it.ID, cfg.Addr, err)
			}
			a.res, a.sendErr = &smtp.Result{Server: cfg.Addr}, err
		}
	}
	limit := w.connections(ctx, first.it.ProfileID)
	kc, slot, err := w.pool.get(ctx, key, limit)
	if err != nil {
		first.tr.Info(smtp.PhaseConnect, "%v", err)
		fail(err)
		return
	}
	ids := make([]string, len(tries))
	for i, a := range tries {
		ids[i] = fmt.Sprint(a.it.ID)
	}
	for {
		reused := kc != nil
		if !reused {
			if kc, err = w.open(ctx, key, slot, first.it.ID, cfg); err != nil {
				fail(err)
				return
			}
		}
		ends := make([]bool, len(tries))
		msgs := make([]smtp.BatchMessage, len(tries))
		for i, a := range tries {
			if reused || i > 0 {
				a.tr.Info(smtp.PhaseConnect, "reusing the connection to %s opened by the attempt of outbox item %d (message %d on it; its greeting, EHLO, TLS and AUTH are in that attempt's transcript)",
					cfg.Addr, kc.origin, kc.msgs+i+1)
				for _, l := range kc.tls {
					a.tr.Info(smtp.PhaseConnect, "%s (when the connection was opened)", l)
				}
			}
			a.tr.Info(smtp.PhaseMail, "message %d of a pipelined batch of %d (outbox items %s): each message has its own end-of-message mark, verdict and transcript", i+1, len(tries), strings.Join(ids, ", "))
			hook := a.cfg.BeforeEnd
			msgs[i] = smtp.BatchMessage{Envelope: a.env, Message: a.msg, Transcript: a.tr,
				BeforeEnd: func(ctx context.Context) error {
					ends[i] = true
					return hook(ctx)
				}}
		}
		kc.c.UseTranscript(first.tr)
		out, berr := kc.c.SendBatch(ctx, msgs, false)
		kc.msgs += len(msgs)
		if berr != nil && reused && !anyTrue(ends) && untouched(out) {
			w.pool.drop(kc)
			first.tr.Info(smtp.PhaseConnect, "the kept connection failed before any message was sent (%v): using another one", berr)
			if kc, slot, err = w.pool.get(ctx, key, limit); err != nil {
				first.tr.Info(smtp.PhaseConnect, "%v", err)
				fail(err)
				return
			}
			continue
		}
		for i, a := range tries {
			a.res, a.sendErr = out[i].Result, out[i].Err
			if a.res == nil {
				a.res = &smtp.Result{Server: cfg.Addr}
			}
		}
		w.pool.learn(kc)
		w.pool.put(kc)
		return
	}
}

// untouched reports whether no message of a batch got an answer of its
// own: each failed without a reply from the server, or with 421 (a kept
// connection the server had ended). With no end of a message sent, the
// batch may go again over another connection.
func untouched(out []smtp.BatchResult) bool {
	for _, o := range out {
		var e *smtp.Error
		if o.Err == nil || !errors.As(o.Err, &e) || e.OutcomeUnknown || (e.Code != 0 && e.Code != 421) {
			return false
		}
	}
	return len(out) > 0
}

func anyTrue(bs []bool) bool {
	for _, b := range bs {
		if b {
			return true
		}
	}
	return false
}
