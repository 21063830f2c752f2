package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// Kind says what kind of failure ended a send, as data: it is stored with
// the send and explained without reading the error text again.
type Kind string

// The kinds of failure. KindNone is no failure.
const (
	KindNone Kind = ""
	// KindConnRefused: nothing accepted the TCP connection.
	KindConnRefused Kind = "connection refused"
	// KindConnectTimeout: the connection (or the implicit TLS handshake
	// that is part of it) got no answer in time.
	KindConnectTimeout Kind = "connect timeout"
	// KindReplyTimeout: the connection was open but a reply did not come
	// in time.
	KindReplyTimeout Kind = "reply timeout"
	// KindDNS: the host name (or the domain's MX) did not resolve.
	KindDNS Kind = "dns"
	// KindTLSHandshake: client and server could not agree on TLS.
	KindTLSHandshake Kind = "tls handshake"
	// KindTLSVerify: the server's certificate did not verify; Failure.Reason
	// says why.
	KindTLSVerify Kind = "tls verification"
	// KindNoStartTLS: STARTTLS was required and the server did not offer it.
	KindNoStartTLS Kind = "starttls not offered"
	// KindNoAuth: AUTH (or the AUTH mechanism asked for) was not offered.
	KindNoAuth Kind = "auth not offered"
	// KindAuthBeforeTLS: sockmail refused to send credentials without TLS.
	KindAuthBeforeTLS Kind = "auth refused before tls"
	// KindAuthRejected: the server answered AUTH with a refusal.
	KindAuthRejected Kind = "auth rejected"
	// KindRelayDenied: the server does not relay to the recipient's domain.
	KindRelayDenied Kind = "relay denied"
	// KindMailboxUnknown: the recipient's mailbox does not exist.
	KindMailboxUnknown Kind = "mailbox unknown"
	// KindSenderRejected: the server refused MAIL FROM permanently.
	KindSenderRejected Kind = "sender rejected"
	// KindMessageRefused: the server refused DATA or the message itself.
	KindMessageRefused Kind = "message refused"
	// KindTooLarge: the message is larger than the server takes (SIZE, 552).
	KindTooLarge Kind = "message too large"
	// KindGreetingRefused: the server's greeting was a permanent refusal.
	KindGreetingRefused Kind = "greeting refused"
	// KindClosed: the server closed the connection, or said 421.
	KindClosed Kind = "server closed"
	// KindUnknownOutcome: the connection was lost after the end of the
	// message and before its reply (Error.OutcomeUnknown).
	KindUnknownOutcome Kind = "unknown outcome"
	// KindAborted: the send's context was canceled.
	KindAborted Kind = "aborted"
	// KindStopped: the send stopped where it was asked to (SendOptions.StopAfter).
	KindStopped Kind = "stopped"
	// KindOther: any other failure; the reply code and text tell more.
	KindOther Kind = "other"
)

// Kinds returns every failure kind but KindNone, in the order above.
func Kinds() []Kind {
	return []Kind{KindConnRefused, KindConnectTimeout, KindReplyTimeout, KindDNS, KindTLSHandshake,
		KindTLSVerify, KindNoStartTLS, KindNoAuth, KindAuthBeforeTLS, KindAuthRejected, KindRelayDenied,
		KindMailboxUnknown, KindSenderRejected, KindMessageRefused, KindTooLarge, KindGreetingRefused,
		KindClosed, KindUnknownOutcome, KindAborted, KindStopped, KindOther}
}

// Reason refines a KindTLSVerify failure: why the certificate did not
// verify.
type Reason string

// The reasons a certificate does not verify. ReasonNone is used with every
// other kind.
const (
	ReasonNone Reason = ""
	// ReasonExpired: the certificate has expired or is not valid yet.
	ReasonExpired Reason = "expired"
	// ReasonWrongName: the certificate is for other names.
	ReasonWrongName Reason = "wrong name"
	// ReasonUnknownAuthority: no trusted authority signed the certificate.
	ReasonUnknownAuthority Reason = "unknown authority"
	// ReasonOtherCert: any other verification failure.
	ReasonOtherCert Reason = "other"
)

// Failure is a failed send as data: where it failed, the server's reply
// code and enhanced code if a reply came, and what kind of failure it
// was. The zero Failure is no failure.
type Failure struct {
	// Phase is where the conversation failed; "" if not known.
	Phase Phase `json:"phase,omitempty"`
	// Code is the reply code, 0 when no reply caused the failure.
	Code int `json:"code,omitempty"`
	// EnhancedCode is the RFC 3463 status code of the reply, if any.
	EnhancedCode string `json:"enhanced_code,omitempty"`
	// Kind is what kind of failure it was.
	Kind Kind `json:"kind,omitempty"`
	// Reason refines KindTLSVerify.
	Reason Reason `json:"reason,omitempty"`
}

// IsZero reports whether f records no failure.
func (f Failure) IsZero() bool { return f == Failure{} }

// Classify turns the error of a send into a Failure: the zero Failure for
// nil, and otherwise the phase, reply codes and kind, read from the typed
// errors in err's chain (*Error, x509 and TLS errors, *net.DNSError,
// syscall errors, context errors).
func Classify(err error) Failure {
	if err == nil {
		return Failure{}
	}
	if errors.Is(err, errStopped) {
		return Failure{Kind: KindStopped}
	}
	var f Failure
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) {
			return Failure{Kind: KindAborted}
		}
		f.Kind, f.Reason = causeKind("", err)
		return f
	}
	f.Phase, f.Code, f.EnhancedCode = e.Phase, e.Code, e.EnhancedCode
	switch {
	case e.OutcomeUnknown:
		f.Kind = KindUnknownOutcome
	case errors.Is(err, context.Canceled):
		f.Kind = KindAborted
	case e.kind != KindNone:
		f.Kind = e.kind
	case e.Code != 0:
		f.Kind = replyKind(e.Phase, e.Code, e.EnhancedCode, e.Message)
	default:
		f.Kind, f.Reason = causeKind(e.Phase, err)
	}
	if f.Kind == KindTLSHandshake && isTimeoutErr(err) {
		f.Kind = timeoutKind(e.Phase)
	}
	return f
}

// RecipientFailure is the Failure of one refused recipient: the kind of
// its RCPT TO reply. It is the zero Failure for an accepted recipient or
// one without a reply.
func RecipientFailure(rc RecipientResult) Failure {
	return ReplyFailure(PhaseRcpt, rc.Code, rc.EnhancedCode, rc.Message)
}

// ReplyFailure is the Failure a negative reply (code, enhanced code and
// text) in phase stands for; the zero Failure for no reply or a positive
// one.
func ReplyFailure(phase Phase, code int, enhanced, text string) Failure {
	if code < 400 {
		return Failure{}
	}
	return Failure{Phase: phase, Code: code, EnhancedCode: enhanced, Kind: replyKind(phase, code, enhanced, text)}
}

// replyKind classifies a negative reply. The reply text is read only for
// what the codes leave open: Postfix and others say "Relay access denied"
// and "User unknown" with codes other servers use for other refusals.
func replyKind(phase Phase, code int, enhanced, text string) Kind {
	lower := strings.ToLower(text)
	switch {
	case code == 421:
		return KindClosed
	case phase == PhaseGreeting && code >= 500:
		return KindGreetingRefused
	case phase == PhaseAuth:
		return KindAuthRejected
	case enhanced == "5.1.1" || code == 550 && strings.Contains(lower, "user unknown"):
		return KindMailboxUnknown
	case enhanced == "5.7.1" && (phase == PhaseRcpt || strings.Contains(lower, "relay")):
		return KindRelayDenied
	case code == 552 || enhanced == "5.3.4" || enhanced == "5.2.3":
		return KindTooLarge
	case phase == PhaseMail && code >= 500 && code != 530:
		return KindSenderRejected
	case (phase == PhaseData || phase == PhaseBody) && code >= 500:
		return KindMessageRefused
	}
	return KindOther
}

// causeKind classifies a failure without a reply from its cause.
func causeKind(phase Phase, err error) (Kind, Reason) {
	if r, ok := certReason(err); ok {
		return KindTLSVerify, r
	}
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return KindDNS, ReasonNone
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnRefused, ReasonNone
	case isTimeoutErr(err):
		return timeoutKind(phase), ReasonNone
	case errors.Is(err, errConnLost), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return KindClosed, ReasonNone
	}
	return KindOther, ReasonNone
}

// certReason tells whether err is a certificate that did not verify, and
// why, from the x509 error types.
func certReason(err error) (Reason, bool) {
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return ReasonExpired, true
	case errors.As(err, &host):
		return ReasonWrongName, true
	case errors.As(err, &unknown):
		return ReasonUnknownAuthority, true
	case errors.As(err, &inv), errors.As(err, &ve):
		return ReasonOtherCert, true
	}
	return ReasonNone, false
}

func isTimeoutErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)
}

// timeoutKind is a timeout while connecting or while waiting for a reply.
func timeoutKind(phase Phase) Kind {
	if phase == PhaseConnect {
		return KindConnectTimeout
	}
	return KindReplyTimeout
}
