package explain

import (
	"testing"

	"sockmail/smtp"
)

// TestLegacyRows checks that sends stored before failures were kept as
// data, with only their error text, get the explanation they got before:
// these are the cases of the old text-parsing Explain, as stored texts.
func TestLegacyRows(t *testing.T) {
	tests := []struct {
		stored    string
		wantTitle string // substring
		wantCode  string
	}{
		{"smtp: greeting: 421 4.3.2 Service shutting down", "closing the connection", "421 4.3.2"},
		{"smtp: rcpt: 450 4.2.0 Greylisted", "try again later", "450 4.2.0"},
		{"smtp: rcpt: 451 4.3.0 Temporary failure", "try again later", "451 4.3.0"},
		{"smtp: rcpt: 452 4.2.2 Mailbox full", "Mailbox full", "452 4.2.2"},
		{"smtp: mail: 530 5.7.0 Must issue a STARTTLS command first", "requires STARTTLS", "530 5.7.0"},
		{"smtp: auth: 535 5.7.8 Error: authentication failed", "bad credentials", "535 5.7.8"},
		{"smtp: rcpt: 550 5.1.1 User unknown", "does not exist", "550 5.1.1"},
		{"smtp: rcpt: 554 5.7.1 Relay access denied", "Relaying denied", "554 5.7.1"},
		{"smtp: body: 550 5.7.1 Message content rejected", "policy", "550 5.7.1"},
		{"smtp: mail: 552 5.3.4 Message size exceeds fixed limit", "too large", "552 5.3.4"},
		{"smtp: greeting: 554 No SMTP service here", "refuses to talk", "554"},
		{"smtp: ehlo: 502 5.5.1 Command not implemented", "did not accept a command", "502 5.5.1"},
		{"smtp: connect: cannot connect to 127.0.0.1:25: dial tcp 127.0.0.1:25: connect: connection refused", "Connection refused", ""},
		{"smtp: connect: cannot connect to mx.example.org:25: dial tcp: i/o timeout", "timed out", ""},
		{"smtp: data: timed out waiting for the server: context deadline exceeded", "stopped answering", ""},
		{"smtp: connect: cannot resolve nope.invalid: lookup nope.invalid: no such host", "does not resolve", ""},
		{"smtp: starttls: the server's certificate did not verify: tls: failed to verify certificate: x509: certificate signed by unknown authority", "authority this machine does not trust", ""},
		{"smtp: starttls: the server's certificate did not verify: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2031-01-01T00:00:00Z is after 2030-12-31T00:00:00Z", "has expired", ""},
		{"smtp: starttls: the server's certificate did not verify: tls: failed to verify certificate: x509: certificate is valid for mx.test, localhost, not other.test", "for another name", ""},
		{"smtp: starttls: the server's certificate did not verify: tls: failed to verify certificate: x509: certificate specifies an incompatible key usage", "did not verify", ""},
		{"smtp: connect: TLS handshake failed: tls: first record does not look like a TLS handshake", "handshake failed", ""},
		{"smtp: starttls: the server does not offer STARTTLS, and TLS mode starttls requires it", "does not offer STARTTLS", ""},
		{"smtp: auth: refusing to send credentials over an unencrypted connection: use STARTTLS", "without TLS", ""},
		{"smtp: auth: the server does not offer AUTH on this connection", "does not offer AUTH", ""},
		{"smtp: rcpt: server closed the connection: connection closed by server", "closed the connection", ""},
		{"smtp: body: server closed the connection: connection closed by server (outcome unknown: the server may have accepted the message)", "outcome is unknown", ""},
		{"smtp: rcpt: aborted: context canceled", "aborted", ""},
		{"smtp: mail: the message needs SMTPUTF8 but the server does not offer it", "The send failed", ""},
		{"something else entirely", "The send failed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.stored, func(t *testing.T) {
			checkExplanation(t, Send(smtp.Failure{}, tt.stored), tt.wantTitle, tt.wantCode)
		})
	}
}

// TestLegacyParseRoundTripsErrorText checks the old parser against the
// text smtp.Error still writes, so that the two cannot drift unnoticed.
func TestLegacyParseRoundTripsErrorText(t *testing.T) {
	tests := []struct {
		err     *smtp.Error
		want    smtp.Failure
		wantMsg string
	}{
		{&smtp.Error{Phase: smtp.PhaseAuth, Code: 535, EnhancedCode: "5.7.8", Message: "Authentication failed"},
			smtp.Failure{Phase: smtp.PhaseAuth, Code: 535, EnhancedCode: "5.7.8", Kind: smtp.KindAuthRejected}, "Authentication failed"},
		{&smtp.Error{Phase: smtp.PhaseGreeting, Code: 554, Message: "go away"},
			smtp.Failure{Phase: smtp.PhaseGreeting, Code: 554, Kind: smtp.KindGreetingRefused}, "go away"},
		{&smtp.Error{Phase: smtp.PhaseConnect, Message: "cannot connect to x:25"},
			smtp.Failure{Phase: smtp.PhaseConnect, Kind: smtp.KindOther}, "cannot connect to x:25"},
	}
	for _, tt := range tests {
		got, msg := legacyFailure(tt.err.Error())
		if got != tt.want || msg != tt.wantMsg {
			t.Errorf("legacyFailure(%q) = %+v, %q; want %+v, %q", tt.err.Error(), got, msg, tt.want, tt.wantMsg)
		}
	}
}
