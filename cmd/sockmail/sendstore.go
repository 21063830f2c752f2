//go:build !sendonly

package main

// "sockmail send --store": the send goes into the history of a database,
// like a send from the web app, with source "cli".

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"sockmail/internal/config"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// storeDatabase returns the database --store writes to: --database, else
// SOCKMAIL_DATABASE, else SOCKMAIL_DATABASE_URL, else sockmail.db in
// SOCKMAIL_DATA (default ./data), the database "sockmail serve" uses.
func storeDatabase(flagValue string, getenv func(string) string) string {
	for _, v := range []string{flagValue, getenv("SOCKMAIL_DATABASE"), getenv("SOCKMAIL_DATABASE_URL")} {
		if v != "" {
			return v
		}
	}
	dir := getenv("SOCKMAIL_DATA")
	if dir == "" {
		dir = config.DefaultDataDir
	}
	return filepath.Join(dir, "sockmail.db")
}

// checkStore validates the storing flags into the plan.
func (p *sendPlan) checkStore(f *sendFlags) error {
	switch {
	case !f.storeSend && f.database != "":
		return errors.New("--database needs --store")
	case !f.storeSend:
		return nil
	case f.count > 1:
		return errors.New("--store and --count exclude each other: the history keeps one send per conversation")
	}
	p.storeDSN, p.stderr = f.database, os.Stderr // runSend gives its own stderr
	return nil
}

// sendRecorder stores a CLI send in the history.
type sendRecorder struct {
	st    *store.Store
	start time.Time
	sent  cappedBuffer // the message as written to the server
}

// openRecorder opens the database before anything is sent, so that a bad
// database fails the run early.
func openRecorder(ctx context.Context, dsn string) (*sendRecorder, error) {
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	return &sendRecorder{st: st, start: time.Now(), sent: cappedBuffer{limit: config.DefaultMaxStoredMsg}}, nil
}

func (r *sendRecorder) Close() { r.st.Close() }

// tee returns the message to send, copying what is written into the
// recorder: the stored source is byte for byte what the server was sent
// (a second rendering could differ: MIME boundaries, DKIM timestamps).
func (r *sendRecorder) tee(c message.Content) smtp.Message {
	return &teeMessage{c: c, sent: &r.sent}
}

// teeMessage keeps a copy of the message as it is written. It may be
// written more than once (one conversation per recipient domain): the
// copy is of the first complete write.
type teeMessage struct {
	c        message.Content
	sent     *cappedBuffer
	complete bool
}

func (t *teeMessage) WriteTo(w io.Writer) (int64, error) {
	if t.complete {
		return t.c.WriteTo(w)
	}
	*t.sent = cappedBuffer{limit: t.sent.limit}
	n, err := t.c.WriteTo(io.MultiWriter(w, t.sent))
	t.complete = err == nil
	return n, err
}

// record stores the outcome and returns the new send's id.
func (r *sendRecorder) record(ctx context.Context, cfg smtp.Config, msg message.Content, tr *smtp.Transcript, o outcome) (int64, error) {
	if r.sent.buf.Len() == 0 && !r.sent.over {
		// Stopped before DATA: keep the message that would have gone.
		if _, err := msg.WriteTo(&r.sent); err != nil {
			r.sent = cappedBuffer{limit: r.sent.limit}
		}
	}
	env := envelopeOf(msg)
	raw := r.sent.buf.Bytes()
	rec := delivery.Record{Source: delivery.SourceCLI, Server: cfg.Addr, TLS: cfg.TLS, From: env.From, To: env.To,
		Message: raw, MaxStored: int64(r.sent.limit)}
	if host, err := os.Hostname(); err == nil {
		rec.ClientAddr = host
	}
	snd := delivery.NewSend(r.start, rec)
	snd.MessageTruncated = snd.MessageTruncated || r.sent.over
	delivery.Finish(snd, o.result, o.err, tr, r.start, time.Now)
	if err := r.st.CreateSend(ctx, snd); err != nil {
		return 0, fmt.Errorf("--store: %w", err)
	}
	return snd.ID, nil
}

// cappedBuffer keeps the first limit bytes written to it and notes
// whether more came.
type cappedBuffer struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.over = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}
