package delivery

import (
	"bytes"
	"time"

	"sockmail/internal/mailread"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// Where sends come from (store.Send.Source).
const (
	SourceWeb     = "web"
	SourceCLI     = "cli"
	SourceContact = "contact"
	// SourceAlert is a monitor's alert email, which the outbox delivers
	// like a contact message.
	SourceAlert = "alert"
)

// DefaultMaxStoredMessage caps the message source kept with a send when
// Record.MaxStored is 0.
const DefaultMaxStoredMessage = 10 << 20

// Record describes a send for the history, before it runs.
type Record struct {
	// Source is SourceWeb, SourceCLI, SourceContact or SourceAlert.
	Source string
	// ClientAddr is the address of who asked for the send (an IP address,
	// or the host name for the CLI).
	ClientAddr string
	// UserID is the signed-in admin, ParentID the send this one re-sends
	// or retries, FormID the contact form that caused it.
	UserID, ParentID, FormID *int64

	// Server is the host:port sent to; TLS the TLS mode.
	Server string
	TLS    smtp.TLSMode
	// From and To are the envelope.
	From string
	To   []string
	// Message is the message source; its header block gives the
	// Subject and Headers.
	Message []byte
	// MaxStored caps the source kept (DefaultMaxStoredMessage if 0): a
	// longer one is kept cut and marked truncated.
	MaxStored int64
	// OmitMessage keeps no source (it is kept with an earlier send, the
	// ParentID), marking the record truncated.
	OmitMessage bool
}

// NewSend returns the history record of a send starting at at: status
// running, subject decoded from the header block, message capped.
func NewSend(at time.Time, r Record) *store.Send {
	head, _, _ := bytes.Cut(r.Message, []byte("\r\n\r\n"))
	snd := &store.Send{
		CreatedAt: at, Source: r.Source, ClientAddr: r.ClientAddr, UserID: r.UserID, ParentID: r.ParentID, FormID: r.FormID,
		Server: r.Server, TLSMode: r.TLS.String(), MailFrom: r.From, Rcpts: r.To,
		Subject: mailread.Subject(head), Headers: string(head), Status: store.StatusRunning,
	}
	limit := r.MaxStored
	if limit <= 0 {
		limit = DefaultMaxStoredMessage
	}
	switch {
	case r.OmitMessage:
		snd.MessageTruncated = true
	case int64(len(r.Message)) > limit:
		snd.Message, snd.MessageTruncated = r.Message[:limit], true
	default:
		snd.Message = r.Message
	}
	return snd
}

// Finish completes a send's record from its outcome: status, per-
// recipient results, queue id, error, transcript and its timings
// (smtp.Timings), end time (now()) and duration since start (a time of
// the same clock). A send to MX hosts
// (no server named) records the server the result names.
func Finish(snd *store.Send, res *smtp.Result, err error, tr *smtp.Transcript, start time.Time, now func() time.Time) {
	end := now()
	snd.FinishedAt = &end
	snd.DurationMS = float64(end.Sub(start).Microseconds()) / 1000
	snd.Status = smtp.StatusOf(res, err)
	if res != nil {
		snd.Recipients, snd.QueueID = res.Recipients, res.QueueID
		if snd.Server == "" {
			snd.Server = res.Server
		}
	}
	snd.Error, snd.Failure = "", smtp.Classify(err)
	if err != nil {
		snd.Error = err.Error()
	}
	if tr != nil {
		snd.Events = tr.Events()
		// Kept beside the transcript, so that lists draw where the time
		// went without reading it.
		t := smtp.Converse(snd.Events).Timings()
		snd.Timings = &t
	}
}
