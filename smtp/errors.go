package smtp

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Error is every failure of a send: a negative reply from the server, a
// broken connection, a TLS failure or a refusal sockmail made itself
// before sending anything. Callers inspect it with errors.As.
type Error struct {
	// Phase is where the conversation failed.
	Phase Phase
	// Code is the server's reply code, or 0 when there was no reply.
	Code int
	// EnhancedCode is the RFC 3463 status code ("5.7.1") when the server
	// sent one.
	EnhancedCode string
	// Message is the reply text (lines joined with "\n") or, without a
	// reply, a description of what went wrong.
	Message string
	// Err is the underlying cause (network, TLS, context), if any.
	Err error
	// OutcomeUnknown is set when the connection was lost after the end of
	// the message was sent and before its reply arrived: the server may or
	// may not have taken the message.
	OutcomeUnknown bool

	temporary bool
	// kind is set where the failure is not told by a reply or a typed
	// cause: a refusal sockmail made itself, a TLS handshake (see Classify).
	kind Kind
}

// Error returns "smtp: PHASE: CODE ENHANCED MESSAGE" or "smtp: PHASE: MESSAGE: CAUSE".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("smtp: ")
	b.WriteString(string(e.Phase))
	b.WriteString(": ")
	if e.Code != 0 {
		fmt.Fprintf(&b, "%d ", e.Code)
		// The reply text usually starts with the enhanced code already.
		if e.EnhancedCode != "" && !strings.HasPrefix(e.Message, e.EnhancedCode) {
			b.WriteString(e.EnhancedCode + " ")
		}
	}
	b.WriteString(strings.ReplaceAll(e.Message, "\n", " / "))
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.OutcomeUnknown {
		b.WriteString(" (outcome unknown: the server may have accepted the message)")
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: a 4xx reply,
// or a connection that was lost or timed out.
func (e *Error) Temporary() bool {
	if e.Code != 0 {
		return e.Code >= 400 && e.Code < 500
	}
	return e.temporary
}

// replyError builds the typed error for a negative reply.
func replyError(phase Phase, r *Reply) *Error {
	return &Error{
		Phase:        phase,
		Code:         r.Code,
		EnhancedCode: r.EnhancedCode(),
		Message:      r.Text(),
	}
}

// netError builds the typed error for a failure to talk to the server at
// all. Timeouts and lost connections are temporary; TLS verification and
// protocol errors are not.
func netError(phase Phase, msg string, err error) *Error {
	return &Error{Phase: phase, Message: msg, Err: err, temporary: isTemporaryNet(err)}
}

// localError builds the typed error for something sockmail refused before
// sending it. It is permanent: the same input will fail the same way.
func localError(phase Phase, format string, args ...any) *Error {
	return &Error{Phase: phase, Message: fmt.Sprintf(format, args...)}
}

// refusal is localError for a refusal Classify reports as kind.
func refusal(kind Kind, phase Phase, format string, args ...any) *Error {
	e := localError(phase, format, args...)
	e.kind = kind
	return e
}

func isTemporaryNet(err error) bool {
	if err == nil {
		return false
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return false
	}
	// Before net.Error, which *net.DNSError also is: "no such host" is
	// not worth retrying.
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTemporary || de.IsTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, errConnLost)
}

// errConnLost is the cause recorded when the server closed the connection.
var errConnLost = errors.New("connection closed by server")

// ProtocolError is a reply that breaks RFC 5321: a malformed line, codes
// that disagree inside one reply, a line or reply over the limits.
type ProtocolError struct {
	// Reason says what was wrong.
	Reason string
	// Line is the offending line, cut to a readable length.
	Line string
	// Cut reports that Line is only the beginning of the line.
	Cut bool
}

// Error describes the violation.
func (e *ProtocolError) Error() string {
	if e.Line == "" {
		return "protocol error: " + e.Reason
	}
	l := e.Line
	if len(l) > 80 {
		l = l[:80] + "..."
	}
	return fmt.Sprintf("protocol error: %s: %q", e.Reason, l)
}
