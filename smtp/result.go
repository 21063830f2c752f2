package smtp

import (
	"context"
	"errors"
	"io"
	"strings"
)

// Message is what a send transmits: anything that can write itself. The
// client normalises line endings and dot-stuffs on the way out, so the
// message may use bare LF; smtp/message.Message and message.Raw are
// Messages.
type Message = io.WriterTo

// DSN holds the RFC 3461 delivery status notification parameters. They
// are sent only when the server offers DSN.
type DSN struct {
	// Notify is NEVER, or any of SUCCESS, FAILURE, DELAY (RCPT NOTIFY=).
	Notify []string
	// Return is FULL or HDRS (MAIL RET=).
	Return string
	// EnvID is the envelope identifier (MAIL ENVID=), printable ASCII.
	EnvID string
	// OriginalRecipient adds ORCPT=rfc822;ADDRESS to each RCPT.
	OriginalRecipient bool
}

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	// From is the reverse-path; "" sends the null sender MAIL FROM:<>.
	From string
	// To lists the forward-paths, one RCPT TO each.
	To []string
	// Size is the message size in bytes if known, for the SIZE parameter
	// and the check against the server's limit; 0 if unknown.
	Size int64
	// SMTPUTF8 asks for RFC 6531 (internationalised addresses or headers).
	// It is also set automatically when an address is not ASCII.
	SMTPUTF8 bool
	// EightBit declares an 8bit body (BODY=8BITMIME, RFC 6152).
	EightBit bool
	// DSN, if set, requests delivery status notifications.
	DSN *DSN
}

// RecipientResult is the server's answer to one RCPT TO.
type RecipientResult struct {
	// Address is the recipient.
	Address string `json:"address"`
	// Accepted is true for a 2xx reply.
	Accepted bool `json:"accepted"`
	// Code, EnhancedCode and Message are the reply, if one came.
	Code         int    `json:"code,omitempty"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	Message      string `json:"message,omitempty"`
}

// Result is what happened to one message.
type Result struct {
	// Recipients holds the answer to each RCPT TO, in order.
	Recipients []RecipientResult `json:"recipients"`
	// Final is the reply to the end of the message (after "." or the last
	// BDAT), nil if none came.
	Final *Reply `json:"final,omitempty"`
	// QueueID is the server's id for the message, parsed from Final.
	QueueID string `json:"queue_id,omitempty"`
	// Server is the host:port that took part.
	Server string `json:"server,omitempty"`
}

// Accepted returns the addresses the server accepted.
func (r *Result) Accepted() []string {
	var out []string
	for _, rc := range r.Recipients {
		if rc.Accepted {
			out = append(out, rc.Address)
		}
	}
	return out
}

// Status is the outcome of a send as a person reads it.
type Status string

// The outcomes of a send.
const (
	StatusSent      Status = "sent"
	StatusPartial   Status = "partly sent"
	StatusTempFail  Status = "temporary failure"
	StatusPermFail  Status = "permanent failure"
	StatusUnknown   Status = "unknown outcome"
	StatusAborted   Status = "aborted"
	StatusStopped   Status = "stopped early"
	StatusNotStated Status = ""
)

// StatusOf classifies the result and error of a send.
func StatusOf(res *Result, err error) Status {
	if err != nil {
		var e *Error
		switch {
		case errors.As(err, &e) && e.OutcomeUnknown:
			return StatusUnknown
		case errors.Is(err, errStopped):
			return StatusStopped
		case errors.Is(err, context.Canceled):
			return StatusAborted
		case errors.As(err, &e) && e.Temporary():
			return StatusTempFail
		}
		return StatusPermFail
	}
	if res == nil {
		return StatusNotStated
	}
	if res.Final == nil {
		return StatusStopped
	}
	if len(res.Accepted()) < len(res.Recipients) {
		return StatusPartial
	}
	return StatusSent
}

// errStopped marks a send that stopped where it was asked to.
var errStopped = errors.New("stopped as asked")

// parseQueueID finds the server's message id in a final reply: Postfix
// ("queued as 4Xyz"), Exim ("id=1abc-..."), Sendmail ("x1Y2z Message
// accepted for delivery") and others of those shapes.
func parseQueueID(text string) string {
	clean := func(s string) string {
		return strings.TrimRight(strings.Trim(s, "<>()[]"), ".,;")
	}
	lower := strings.ToLower(text)
	for _, marker := range []string{"queued as ", "id=", "queued as: "} {
		// A marker starts a word: "InternalId=" is not "id=".
		for from := 0; ; {
			i := strings.Index(lower[from:], marker)
			if i < 0 {
				break
			}
			i += from
			if i == 0 || lower[i-1] == ' ' {
				if f := strings.Fields(text[i+len(marker):]); len(f) > 0 {
					return clean(f[0])
				}
			}
			from = i + 1
		}
	}
	_, rest := splitEnhanced(text)
	f := strings.Fields(rest)
	if n := len(f); n >= 4 && strings.EqualFold(f[0], "OK") && f[n-2] == "-" && strings.EqualFold(f[n-1], "gsmtp") {
		return clean(f[n-3]) // Gmail: "OK  1700000000 <id> - gsmtp"
	}
	for i, w := range f {
		lw := strings.ToLower(w)
		if (lw == "message" || lw == "mail") && i > 0 && i+1 < len(f) && strings.HasPrefix(strings.ToLower(f[i+1]), "accepted") {
			return clean(f[i-1])
		}
	}
	return ""
}
