package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// Outcomes stored late.
//
// An attempt's outcome is known once the send returns: the server's 250,
// its refusal, or an outcome unknown on the wire. When the database
// refuses to store it (a full disk, a read-only or unreachable database),
// the worker does not drop it and does not leave it to the lease (which
// would make the item unknown, or send it again): it keeps the outcome in
// memory and, when it has one (Deps.Journal), in a local journal file
// synced to disk, and stores it with backoff (Deps.StoreRetry) until the
// database takes it. Meanwhile it renews the item's lease (RenewLease,
// every third of Lease), so that no worker of this or another instance
// takes the item over; and it claims no new item while any outcome
// waits, since it could not record theirs either. The attempt's
// transcript, with a note saying when and why the outcome was stored late,
// reaches the history with the outcome, in the same transaction.
//
// If the process stops (or is stopped past ShutdownGrace) while an
// outcome waits, the journal still holds it: Run stores the journal's
// outcomes before it claims anything. Without a journal (or with a full
// one) such an outcome is lost with the process, and the item is left to
// its lease: unknown if its end of message was marked sent, sent again
// if not (as for any crash).

// Defaults of Deps.StoreRetry.
const (
	DefaultStoreRetryBase = 500 * time.Millisecond
	DefaultStoreRetryMax  = 15 * time.Second
)

// Journal keeps outcomes the database could not take across a crash;
// *journal.Journal is one.
type Journal interface {
	// Put records data under key, on disk when it returns nil.
	Put(key string, data []byte) error
	// Done forgets key.
	Done(key string) error
	// Found returns what was put and not done before this process
	// opened the journal.
	Found() map[string][]byte
}

// heldOutcome is an attempt's outcome waiting to be stored; it is also
// the journal's record.
type heldOutcome struct {
	Key     string             `json:"key"`
	Item    int64              `json:"item"`
	Owner   string             `json:"owner"`
	Status  store.OutboxStatus `json:"status"`
	Next    time.Time          `json:"next"`
	LastErr string             `json:"last_error"`
	// Verdict says what the server answered, for the late note.
	Verdict string      `json:"verdict"`
	Send    *store.Send `json:"send"`
	// FirstErr and FailedAt are the first refusal to store it.
	FirstErr string    `json:"first_error"`
	FailedAt time.Time `json:"failed_at"`
}

// verdict describes what the server said about an attempt.
func verdict(status store.OutboxStatus, res *smtp.Result, sendErr error) string {
	switch {
	case res != nil && res.Final != nil && status == store.OutboxSent:
		return fmt.Sprintf("the server accepted the message (%d %s)", res.Final.Code, strings.Join(res.Final.Lines, " "))
	case status == store.OutboxSent:
		return "the server accepted the message"
	case sendErr != nil:
		return "the attempt ended with: " + sendErr.Error()
	}
	return "the attempt ended as " + string(status)
}

// hold keeps an outcome FinishAttemptSend could not store (err) and
// stores it late; it returns once it is stored, or when ctx ends (the
// worker was stopped past its grace period).
func (w *Worker) hold(ctx context.Context, it store.OutboxItem, o outcome, vrd string, snd *store.Send, err error, log *slog.Logger) {
	reason := err.Error()
	if se, ok := store.StorageFailure(err); ok {
		reason = se.Error()
	}
	h := &heldOutcome{Key: fmt.Sprintf("%s/%d/%d", w.d.Owner, it.ID, it.Attempts), Item: it.ID, Owner: w.d.Owner,
		Status: o.status, Next: o.next, LastErr: o.lastErr, Verdict: vrd, Send: snd, FirstErr: reason, FailedAt: w.d.Now()}
	journaled := w.journalPut(h, log)
	log.Error("outbox: cannot store the outcome of the attempt; keeping it and storing it when the database takes writes (the item is not sent again)",
		"status", o.status, "journaled", journaled, "err", err)
	w.pending.Add(1)
	defer w.pending.Add(-1)
	w.storeLate(ctx, h, journaled, log)
}

// journalPut writes h to the journal, without the message copy if the
// whole does not fit; it reports whether h is in the journal.
func (w *Worker) journalPut(h *heldOutcome, log *slog.Logger) bool {
	if w.d.Journal == nil {
		return false
	}
	data, err := json.Marshal(h)
	if err == nil {
		if err = w.d.Journal.Put(h.Key, data); err == nil {
			return true
		}
	}
	if h.Send != nil && len(h.Send.Message) > 0 {
		c := *h.Send
		c.Message, c.MessageTruncated = nil, true
		lean := *h
		lean.Send = &c
		if data, err2 := json.Marshal(&lean); err2 == nil {
			if err2 = w.d.Journal.Put(h.Key, data); err2 == nil {
				return true
			}
		}
	}
	log.Error("outbox: cannot write the outcome to the journal; it is kept in memory only", "err", err)
	return false
}

// storeLate stores h with backoff until the database takes it, renewing
// the item's lease meanwhile.
func (w *Worker) storeLate(ctx context.Context, h *heldOutcome, journaled bool, log *slog.Logger) {
	delay := w.d.StoreRetry.Base
	renewed := time.Time{} // never: renew at the first try
	for tries := 1; ; tries++ {
		select {
		case <-ctx.Done():
			if journaled {
				log.Error("outbox: stopping with an outcome not stored; it is in the journal and will be stored at the next start", "status", h.Status)
			} else {
				log.Error("outbox: stopping with an outcome not stored and not journaled; the item is left to its lease", "status", h.Status)
			}
			return
		case <-w.d.After(delay):
		}
		delay = min(2*delay, w.d.StoreRetry.Max)
		now := w.d.Now()
		if now.Sub(renewed) >= w.d.Lease/3 {
			sctx, cancel := storeCtx(ctx)
			err := w.d.Store.RenewLease(sctx, h.Item, h.Owner, now.Add(w.d.Lease))
			cancel()
			switch {
			case err == nil:
				renewed = now
			case errors.Is(err, store.ErrLeaseLost):
				// The item was settled (or taken over) meanwhile: the
				// store below still takes the outcome if it was settled
				// as unknown from this owner's mark.
			default:
				log.Debug("outbox: renew lease while holding an outcome", "err", err)
			}
		}
		done, err := w.tryStoreLate(ctx, h, tries, log)
		if done {
			w.journalDone(h, journaled, log)
			return
		}
		if tries == 1 || tries%10 == 0 {
			log.Warn("outbox: the outcome still cannot be stored; retrying", "status", h.Status, "tries", tries, "err", err)
		}
	}
}

// tryStoreLate tries once to store h; done reports that nothing is left
// to do (stored, or the item is gone to another worker and only the
// history record could be kept).
func (w *Worker) tryStoreLate(ctx context.Context, h *heldOutcome, tries int, log *slog.Logger) (done bool, err error) {
	snd := *h.Send
	now := w.d.Now()
	reason := h.FirstErr
	note := fmt.Sprintf("%s but the outcome could not be stored at the time (%s, %s: %s); the worker kept it, the item was not sent again, and stored it at %s after %d tries",
		h.Verdict, h.Status, h.FailedAt.UTC().Format(time.RFC3339), reason, now.UTC().Format(time.RFC3339), tries+1)
	snd.Events = append(append([]smtp.Event(nil), h.Send.Events...),
		smtp.Event{Offset: now.Sub(snd.CreatedAt), Dir: smtp.DirInfo, Phase: smtp.PhaseQuit, Line: note})
	lastErr := "stored late: " + h.Verdict + " but the outcome could not be stored at the time"
	if h.LastErr != "" {
		lastErr = h.LastErr + " (" + lastErr + ")"
	}
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	err = w.d.Store.FinishAttemptSend(sctx, h.Item, h.Owner, h.Status, h.Next, lastErr, &snd)
	switch {
	case err == nil:
		log.Info("outbox: outcome stored late", "status", h.Status, "send", snd.ID, "tries", tries+1)
		return true, nil
	case errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrNotFound):
		if w.alreadyStored(sctx, h) {
			// A commit whose answer was lost (the connection broke
			// during COMMIT) had stored it.
			log.Info("outbox: the outcome had been stored by a commit whose answer was lost", "status", h.Status)
			return true, nil
		}
		if cerr := w.d.Store.CreateSend(sctx, &snd); cerr != nil {
			return false, cerr
		}
		log.Warn("outbox: the item changed hands while its outcome waited to be stored; only the attempt's history record was kept",
			"status", h.Status, "send", snd.ID, "err", err)
		return true, nil
	}
	return false, err
}

// alreadyStored reports whether the item holds h's outcome already: its
// status, and as its last attempt a send started when h's was, to the
// same server.
func (w *Worker) alreadyStored(ctx context.Context, h *heldOutcome) bool {
	it, err := w.d.Store.OutboxItem(ctx, h.Item)
	if err != nil || it.Status != h.Status || it.LastSendID == nil {
		return false
	}
	last, err := w.d.Store.Send(ctx, *it.LastSendID)
	return err == nil && last.CreatedAt.Equal(h.Send.CreatedAt.Truncate(time.Microsecond)) && last.Server == h.Send.Server
}

func (w *Worker) journalDone(h *heldOutcome, journaled bool, log *slog.Logger) {
	if !journaled {
		return
	}
	if err := w.d.Journal.Done(h.Key); err != nil {
		log.Error("outbox: cannot mark a stored outcome done in the journal; at the next start the item will not take it again, and only a second history record of the attempt is kept", "err", err)
	}
}

// replayJournal starts storing the outcomes the journal held when it was
// opened (a previous process stopped with them not stored); wg tracks
// them. It returns how many.
func (w *Worker) replayJournal(ctx context.Context, start func(func())) int {
	if w.d.Journal == nil {
		return 0
	}
	n := 0
	for key, data := range w.d.Journal.Found() {
		var h heldOutcome
		if err := json.Unmarshal(data, &h); err != nil || h.Send == nil {
			w.d.Logger.Error("outbox: unreadable journal record; dropping it", "key", key, "err", err)
			_ = w.d.Journal.Done(key)
			continue
		}
		h.Key = key
		log := w.d.Logger.With("item", h.Item, "journal", key)
		log.Warn("outbox: storing an outcome a previous process kept in the journal", "status", h.Status, "from", h.Owner)
		n++
		w.pending.Add(1)
		start(func() {
			defer w.pending.Add(-1)
			w.storeLate(ctx, &h, true, log)
		})
	}
	return n
}
