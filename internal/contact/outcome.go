package contact

import (
	"fmt"
	"net/http"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/webform"
)

// Kind says what became of a submission.
type Kind int

// The kinds of outcome. Every refusal also carries a Problem with the
// HTTP status and the stable code the public endpoint answers with.
const (
	// Stored: the submission and its outbox item are committed.
	Stored Kind = iota
	// Blocked: caught by a spam rule and stored as blocked; the visitor
	// is answered as for a success.
	Blocked
	// NotFound: there is no such form.
	NotFound
	// Disabled: the form takes no messages now.
	Disabled
	// OriginRefused: posted from a site the form does not list.
	OriginRefused
	// RateLimited: over the per-address or per-form limit; see
	// Problem.RetryAfter.
	RateLimited
	// TooLarge: the body, a field, the files or their number is over a
	// limit.
	TooLarge
	// BadRequest: the body could not be read, or is of a type the form
	// does not take.
	BadRequest
	// InvalidField: a field's value is not acceptable (Problem.Field).
	InvalidField
	// Empty: nothing was filled in.
	Empty
	// TokenMissing: posted without a time-trap token.
	TokenMissing
	// TooFast: the token is younger than the time trap allows.
	TooFast
	// Expired: the token is older than it may be.
	Expired
	// CaptchaFailed: the captcha answer was wrong or missing.
	CaptchaFailed
	// CaptchaUnavailable: the captcha provider could not be asked.
	CaptchaUnavailable
	// Misconfigured: the form's own settings make the message impossible.
	Misconfigured
	// Unavailable: storage (or another dependency needed to keep the
	// message) is down; never a fake success.
	Unavailable
	// AlreadyReceived: the post's token was used by a stored submission
	// (SubmissionID): a retry, answered as a success, nothing stored.
	AlreadyReceived
)

func (k Kind) String() string {
	names := [...]string{"stored", "blocked", "not found", "disabled", "origin refused", "rate limited", "too large",
		"bad request", "invalid field", "empty", "token missing", "too fast", "expired", "captcha failed",
		"captcha unavailable", "misconfigured", "unavailable", "already received"}
	if k >= 0 && int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Problem is a refusal to report to the visitor: a kind, the HTTP status
// and stable code the endpoint answers with, and a friendly sentence. It
// never holds internal details.
type Problem struct {
	Kind    Kind
	Status  int
	Code    string
	Message string
	// Field is the field at fault, if one is.
	Field string
	// RetryAfter is set for RateLimited, Unavailable and
	// CaptchaUnavailable.
	RetryAfter time.Duration
}

func (p *Problem) Error() string { return "contact: " + p.Code + ": " + p.Message }

// RetryAfterSeconds is RetryAfter in whole seconds (0 when unset), for a
// Retry-After header.
func (p *Problem) RetryAfterSeconds() int { return int(p.RetryAfter / time.Second) }

func problem(k Kind, status int, code, msg string) *Problem {
	return &Problem{Kind: k, Status: status, Code: code, Message: msg}
}

// ErrNotFound is the problem of a slug that names no form.
func ErrNotFound() *Problem {
	return problem(NotFound, http.StatusNotFound, "not_found",
		"This contact form does not exist. Please tell the site's owner that its form is broken.")
}

// ErrUnavailable is the problem when the database (or another dependency
// sockmail needs to keep the message) is down.
func ErrUnavailable() *Problem {
	p := problem(Unavailable, http.StatusServiceUnavailable, "unavailable",
		"Sorry, this form cannot take messages right now, so your message was not sent. Please try again in a few minutes.")
	p.RetryAfter = time.Minute
	return p
}

// ErrTooLarge is the problem of a body over limit bytes.
func ErrTooLarge(limit int64) *Problem {
	return problem(TooLarge, http.StatusRequestEntityTooLarge, "too_large",
		"Your message is larger than this form accepts ("+webform.Bytes(limit)+"). Please shorten it or attach smaller files.")
}

// ErrBadRequest is the problem of a body that cannot be read; msg says
// what to do.
func ErrBadRequest(msg string) *Problem {
	return problem(BadRequest, http.StatusBadRequest, "bad_request", msg)
}

// ErrUnsupportedType is the problem of a body of another media type.
func ErrUnsupportedType() *Problem {
	return problem(BadRequest, http.StatusUnsupportedMediaType, "unsupported_type",
		"This form accepts url-encoded, multipart or JSON bodies.")
}

// ErrDisabled is the problem of a post to a disabled form.
func ErrDisabled() *Problem {
	return problem(Disabled, http.StatusForbidden, "form_disabled",
		"This form is not taking messages at the moment. Please contact the site's owner another way.")
}

// ErrOriginRefused is the problem of a post from a site the form does not
// list among its allowed origins.
func ErrOriginRefused() *Problem {
	return problem(OriginRefused, http.StatusForbidden, "origin_refused", "This form does not take messages from this website.")
}

// Outcome is what Submit did with a submission.
type Outcome struct {
	Kind Kind
	// SubmissionID and OutboxID are set when the submission was stored
	// (Stored or Blocked); SubmissionID also for AlreadyReceived (the
	// first copy's).
	SubmissionID, OutboxID int64
	// BlockReason says which spam rule blocked it.
	BlockReason string
	// Origin is the origin recorded with the submission (the Origin
	// header, or the site's origin carried by the confirmation page).
	Origin string
	// Problem is set for every kind but Stored and Blocked.
	Problem *Problem
	// Confirm is set when a browser can finish the submission on
	// sockmail's confirmation page: no token yet, a token too young or
	// too old, or an email address to fix.
	Confirm *Confirmation
}

// OK reports whether the visitor is told the message was received
// (Stored, Blocked quietly, or AlreadyReceived).
func (o Outcome) OK() bool { return o.Kind == Stored || o.Kind == Blocked || o.Kind == AlreadyReceived }

func refused(p *Problem) Outcome { return Outcome{Kind: p.Kind, Problem: p} }

// Confirmation is what sockmail's confirmation page shows: the message as
// the visitor typed it, a token, and what to fix.
type Confirmation struct {
	// Status is the HTTP status of the page: 200, or the email
	// problem's.
	Status int
	// Token is the time-trap token the page posts with.
	Token string
	// Notice explains why the page is shown, when the token was at fault.
	Notice string
	// EmailError, Email and EditEmail ask for the address to be fixed.
	EmailError string
	Email      string
	EditEmail  bool
	// Fields and Files are carried in hidden fields.
	Fields []store.FieldValue
	Files  []store.SubmissionFile
	// CaptchaField and CaptchaValue carry the captcha answer.
	CaptchaField, CaptchaValue string
	// Origin is the site's origin, carried back.
	Origin string
}
