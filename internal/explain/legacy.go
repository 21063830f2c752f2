package explain

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"sockmail/smtp"
)

// This file is kept only for sends stored before failures were kept as
// data (migration 0005): they have an error text and no smtp.Failure.
// Nothing new is read this way.

// legacyErrorText is the format of smtp.Error.Error() when those sends
// were stored: "smtp: PHASE: [CODE [X.Y.Z]] MESSAGE". It is compiled at
// first use, not when the program starts.
var legacyErrorText = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^smtp: ([a-z]+): (?:([2-5][0-9][0-9]) (?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?)?(.*)$`)
})

// legacyKind is how an old text without a reply code tells its kind.
type legacyKind struct {
	kind   smtp.Kind
	reason smtp.Reason
	any    []string // the text holds any of these (lower-case)
}

// legacyKinds lists them in the order the old explanation checked; the
// first match wins.
func legacyKinds() []legacyKind {
	return []legacyKind{
		{smtp.KindUnknownOutcome, "", []string{"(outcome unknown"}},
		{smtp.KindConnRefused, "", []string{"connection refused"}},
		{smtp.KindConnectTimeout, "", []string{"timed out", "timeout", "deadline exceeded"}},
		{smtp.KindDNS, "", []string{"no such host", "cannot resolve"}},
		{smtp.KindTLSVerify, smtp.ReasonExpired, []string{"x509: certificate has expired or is not yet valid"}},
		{smtp.KindTLSVerify, smtp.ReasonWrongName, []string{"x509: certificate is valid for"}},
		{smtp.KindTLSVerify, smtp.ReasonUnknownAuthority, []string{"x509: certificate signed by unknown authority"}},
		{smtp.KindTLSVerify, smtp.ReasonOtherCert, []string{"certificate did not verify", "x509:"}},
		{smtp.KindTLSHandshake, "", []string{"tls handshake"}},
		{smtp.KindNoStartTLS, "", []string{"does not offer starttls"}},
		{smtp.KindAuthBeforeTLS, "", []string{"refusing to send credentials"}},
		{smtp.KindNoAuth, "", []string{"does not offer auth"}},
		{smtp.KindClosed, "", []string{"closed the connection", "connection reset", "broken pipe", "eof"}},
		{smtp.KindAborted, "", []string{"aborted", "canceled"}},
	}
}

// legacyFailure recovers a Failure and the message from an old error
// text. A text that is not an smtp.Error's is a failure of kind other.
func legacyFailure(text string) (smtp.Failure, string) {
	m := legacyErrorText().FindStringSubmatch(text)
	if m == nil {
		return smtp.Failure{Kind: smtp.KindOther}, text
	}
	phase, msg := smtp.Phase(m[1]), m[4]
	if code, _ := strconv.Atoi(m[2]); code != 0 {
		return smtp.ReplyFailure(phase, code, m[3], msg), msg
	}
	f := smtp.Failure{Phase: phase, Kind: smtp.KindOther}
	lower := strings.ToLower(msg)
	for _, k := range legacyKinds() {
		if containsAny(lower, k.any) {
			f.Kind, f.Reason = k.kind, k.reason
			break
		}
	}
	if f.Kind == smtp.KindConnectTimeout && phase != smtp.PhaseConnect {
		f.Kind = smtp.KindReplyTimeout
	}
	return f, msg
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
