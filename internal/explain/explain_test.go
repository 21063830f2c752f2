package explain

import (
	"strings"
	"testing"

	"sockmail/smtp"
	"sockmail/views"
)

// Handlers convert an explanation to the view's type directly; this stops
// compiling if the two types part.
var _ = (*views.Explanation)((*Explanation)(nil))

func in(phase smtp.Phase, code int, enhanced string, k smtp.Kind, text string) Input {
	return Input{Failure: smtp.Failure{Phase: phase, Code: code, EnhancedCode: enhanced, Kind: k}, Text: text}
}

func tls(r smtp.Reason, text string) Input {
	return Input{Failure: smtp.Failure{Phase: smtp.PhaseStartTLS, Kind: smtp.KindTLSVerify, Reason: r}, Text: text}
}

// TestRules gives every rule of the table an example: the example must be
// matched by that rule (and so by no rule before it), and every rule must
// have an example.
func TestRules(t *testing.T) {
	const (
		connect  = smtp.PhaseConnect
		greeting = smtp.PhaseGreeting
		auth     = smtp.PhaseAuth
		mail     = smtp.PhaseMail
		rcpt     = smtp.PhaseRcpt
		body     = smtp.PhaseBody
	)
	tests := []struct {
		rule      string
		in        Input
		wantTitle string // substring
		wantCode  string
	}{
		{"unknown outcome", in(body, 0, "", smtp.KindUnknownOutcome, "server closed the connection"), "outcome is unknown", ""},
		{"aborted", in(rcpt, 0, "", smtp.KindAborted, "aborted: context canceled"), "aborted", ""},
		{"stopped", in("", 0, "", smtp.KindStopped, "stopped as asked"), "stopped where it was asked", ""},
		{"connection refused", in(connect, 0, "", smtp.KindConnRefused, "cannot connect to 127.0.0.1:25: connection refused"), "Connection refused", ""},
		{"connect timeout", in(connect, 0, "", smtp.KindConnectTimeout, "cannot connect to mx.example.org:25: dial tcp: i/o timeout"), "timed out", ""},
		{"reply timeout", in(smtp.PhaseData, 0, "", smtp.KindReplyTimeout, "timed out waiting for the server"), "stopped answering", ""},
		{"dns", in(connect, 0, "", smtp.KindDNS, "cannot resolve nope.invalid"), "does not resolve", ""},
		{"tls expired", tls(smtp.ReasonExpired, "x509: certificate has expired or is not yet valid"), "has expired", ""},
		{"tls wrong name", tls(smtp.ReasonWrongName, "x509: certificate is valid for mx.test, localhost, not other.test"), "for another name", ""},
		{"tls unknown authority", tls(smtp.ReasonUnknownAuthority, "x509: certificate signed by unknown authority"), "authority this machine does not trust", ""},
		{"tls verify", tls(smtp.ReasonOtherCert, "x509: certificate specifies an incompatible key usage"), "did not verify", ""},
		{"tls handshake", in(connect, 0, "", smtp.KindTLSHandshake, "TLS handshake failed"), "handshake failed", ""},
		{"starttls not offered", in(smtp.PhaseStartTLS, 0, "", smtp.KindNoStartTLS, ""), "does not offer STARTTLS", ""},
		{"auth before tls", in(auth, 0, "", smtp.KindAuthBeforeTLS, ""), "without TLS", ""},
		{"auth not offered", in(auth, 0, "", smtp.KindNoAuth, ""), "does not offer AUTH", ""},
		{"421 closing", in(greeting, 421, "4.3.2", smtp.KindClosed, "Service shutting down"), "closing the connection", "421 4.3.2"},
		{"server closed", in(rcpt, 0, "", smtp.KindClosed, "server closed the connection"), "closed the connection", ""},
		{"greeting refused", in(greeting, 554, "", smtp.KindGreetingRefused, "No SMTP service here"), "refuses to talk", "554"},
		{"starttls required", in(mail, 530, "5.7.0", smtp.KindOther, "Must issue a STARTTLS command first"), "requires STARTTLS", "530 5.7.0"},
		{"auth credentials", in(auth, 535, "5.7.8", smtp.KindAuthRejected, "Error: authentication failed"), "bad credentials", "535 5.7.8"},
		{"auth mechanism too weak", in(auth, 534, "5.7.9", smtp.KindAuthRejected, "Authentication mechanism is too weak"), "too weak", "534 5.7.9"},
		{"auth temporary", in(auth, 454, "4.7.0", smtp.KindAuthRejected, "Temporary authentication failure"), "Temporary authentication failure", "454 4.7.0"},
		{"auth needs encryption", in(auth, 538, "5.7.11", smtp.KindAuthRejected, "Encryption required"), "Encryption required", "538 5.7.11"},
		{"mailbox unknown", in(rcpt, 550, "5.1.1", smtp.KindMailboxUnknown, "User unknown"), "does not exist", "550 5.1.1"},
		{"relay denied", in(rcpt, 554, "5.7.1", smtp.KindRelayDenied, "Relay access denied"), "Relaying denied", "554 5.7.1"},
		{"policy", in(body, 550, "5.7.1", smtp.KindMessageRefused, "Message content rejected"), "policy", "550 5.7.1"},
		{"too large", in(body, 552, "5.3.4", smtp.KindTooLarge, "Message size exceeds fixed limit"), "too large", "552 5.3.4"},
		{"mailbox full or too many recipients", in(rcpt, 452, "4.2.2", smtp.KindOther, "Mailbox full"), "Mailbox full", "452 4.2.2"},
		{"try again later", in(rcpt, 450, "4.2.0", smtp.KindOther, "Greylisted"), "try again later", "450 4.2.0"},
		{"address not accepted", in(mail, 553, "5.1.8", smtp.KindSenderRejected, "Sender address rejected"), "not accepted", "553 5.1.8"},
		{"transaction failed", in(smtp.PhaseData, 554, "5.5.1", smtp.KindMessageRefused, "No valid recipients"), "Transaction failed", "554 5.5.1"},
		{"command not accepted", in(smtp.PhaseEHLO, 502, "5.5.1", smtp.KindOther, "Command not implemented"), "did not accept a command", "502 5.5.1"},
		{"temporary", in(mail, 471, "", smtp.KindOther, "try later"), "Temporary failure", "471"},
		{"permanent", in(mail, 550, "5.1.0", smtp.KindSenderRejected, "no"), "Permanent failure", "550 5.1.0"},
		{"other", in(mail, 0, "", smtp.KindOther, "the message needs SMTPUTF8"), "The send failed", ""},
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, ok := match(tt.in)
			if !ok || r.name != tt.rule {
				t.Fatalf("matched by rule %q, want %q", r.name, tt.rule)
			}
			checkExplanation(t, Explain(tt.in), tt.wantTitle, tt.wantCode)
		})
		tested[tt.rule] = true
	}
	names := map[string]bool{}
	for _, r := range rules() {
		if names[r.name] {
			t.Errorf("two rules are named %q", r.name)
		}
		names[r.name] = true
		if !tested[r.name] {
			t.Errorf("rule %q has no test case", r.name)
		}
	}
	for name := range tested {
		if !names[name] {
			t.Errorf("test case for rule %q, which the table does not have", name)
		}
	}
}

// checkExplanation fails unless x has a title containing wantTitle (in
// any case), the code wantCode, a detail and advice.
func checkExplanation(t *testing.T, x *Explanation, wantTitle, wantCode string) {
	t.Helper()
	if x == nil {
		t.Fatal("no explanation")
	}
	if !strings.Contains(strings.ToLower(x.Title), strings.ToLower(wantTitle)) {
		t.Errorf("title %q, want containing %q", x.Title, wantTitle)
	}
	if x.Code != wantCode {
		t.Errorf("code %q, want %q", x.Code, wantCode)
	}
	if x.Detail == "" || len(x.Try) == 0 {
		t.Errorf("no detail or advice: %+v", x)
	}
}

func TestNoFailureNoExplanation(t *testing.T) {
	if x := Explain(Input{}); x != nil {
		t.Errorf("Explain(zero) = %+v", x)
	}
	if x := Send(smtp.Failure{}, ""); x != nil {
		t.Errorf("Send(zero, \"\") = %+v", x)
	}
	if x := Recipient(smtp.RecipientResult{Address: "a@x.test", Accepted: true, Code: 250}); x != nil {
		t.Errorf("accepted recipient explained: %+v", x)
	}
}

// TestSend explains stored sends: the failure fields decide, the error
// text is only quoted (without its "smtp: phase: code" prefix).
func TestSend(t *testing.T) {
	tests := []struct {
		name      string
		f         smtp.Failure
		errText   string
		wantTitle string
		wantIn    string // in Detail
	}{
		{"kind decides, not the text", smtp.Failure{Phase: smtp.PhaseConnect, Kind: smtp.KindConnRefused}, "smtp: connect: something unexpected", "Connection refused", ""},
		{"other quotes the message", smtp.Failure{Phase: smtp.PhaseMail, Kind: smtp.KindOther},
			"smtp: mail: the message needs SMTPUTF8 (internationalised addresses or headers) but the server does not offer it",
			"The send failed", "the message needs SMTPUTF8"},
		{"wrong name quotes the names", smtp.Failure{Phase: smtp.PhaseStartTLS, Kind: smtp.KindTLSVerify, Reason: smtp.ReasonWrongName},
			"smtp: starttls: the server's certificate did not verify: tls: failed to verify certificate: x509: certificate is valid for mx.test, localhost, not other.test",
			"for another name", "valid for mx.test, localhost, not other.test."},
		{"a text that is not smtp's", smtp.Failure{Kind: smtp.KindOther}, "outbox: send panicked: boom", "The send failed", "outbox: send panicked: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := Send(tt.f, tt.errText)
			if x == nil || !strings.Contains(x.Title, tt.wantTitle) || !strings.Contains(x.Detail, tt.wantIn) {
				t.Errorf("Send = %+v, want title with %q, detail with %q", x, tt.wantTitle, tt.wantIn)
			}
			if tt.wantIn != "" && strings.Contains(x.Detail, "smtp: ") {
				t.Errorf("detail keeps the error prefix: %q", x.Detail)
			}
		})
	}
}

func TestMessageOf(t *testing.T) {
	tests := []struct {
		err  *smtp.Error
		want string
	}{
		{&smtp.Error{Phase: smtp.PhaseAuth, Code: 535, EnhancedCode: "5.7.8", Message: "Authentication failed"}, "Authentication failed"},
		{&smtp.Error{Phase: smtp.PhaseRcpt, Code: 554, EnhancedCode: "5.7.1", Message: "5.7.1 <b@x.test>: Relay access denied"}, "<b@x.test>: Relay access denied"},
		{&smtp.Error{Phase: smtp.PhaseGreeting, Code: 554, Message: "go away"}, "go away"},
		{&smtp.Error{Phase: smtp.PhaseConnect, Message: "cannot connect to x:25"}, "cannot connect to x:25"},
	}
	for _, tt := range tests {
		if got := messageOf(smtp.Classify(tt.err), tt.err.Error()); got != tt.want {
			t.Errorf("messageOf(%q) = %q, want %q", tt.err.Error(), got, tt.want)
		}
	}
}

func TestRecipient(t *testing.T) {
	tests := []struct {
		rc        smtp.RecipientResult
		wantTitle string
		wantCode  string
	}{
		{smtp.RecipientResult{Address: "b@x.test", Code: 550, EnhancedCode: "5.1.1", Message: "5.1.1 <b@x.test>: Recipient address rejected: User unknown"}, "does not exist", "550 5.1.1"},
		{smtp.RecipientResult{Address: "b@y.test", Code: 554, EnhancedCode: "5.7.1", Message: "5.7.1 <b@y.test>: Relay access denied"}, "Relaying denied", "554 5.7.1"},
		{smtp.RecipientResult{Address: "b@z.test", Code: 450, EnhancedCode: "4.2.0", Message: "Greylisted"}, "try again later", "450 4.2.0"},
	}
	for _, tt := range tests {
		x := Recipient(tt.rc)
		if x == nil || !strings.Contains(strings.ToLower(x.Title), strings.ToLower(tt.wantTitle)) || x.Code != tt.wantCode {
			t.Errorf("Recipient(%+v) = %+v, want title with %q and code %q", tt.rc, x, tt.wantTitle, tt.wantCode)
		}
	}
}
