package handlers

import (
	"strings"
	"testing"

	"sockmail/smtp"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name      string
		p         Problem
		wantTitle string // substring; "" means no explanation
		wantCode  string
	}{
		{"nothing", Problem{}, "", ""},
		{"421", Problem{Phase: smtp.PhaseGreeting, Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"}, "closing the connection", "421 4.3.2"},
		{"450 greylisting", Problem{Phase: smtp.PhaseRcpt, Code: 450, Enhanced: "4.2.0", Message: "Greylisted"}, "try again later", "450 4.2.0"},
		{"451", Problem{Phase: smtp.PhaseRcpt, Code: 451, Enhanced: "4.3.0", Message: "Temporary failure"}, "try again later", "451 4.3.0"},
		{"452 full", Problem{Phase: smtp.PhaseRcpt, Code: 452, Enhanced: "4.2.2", Message: "Mailbox full"}, "Mailbox full", "452 4.2.2"},
		{"530 starttls", Problem{Phase: smtp.PhaseMail, Code: 530, Enhanced: "5.7.0", Message: "Must issue a STARTTLS command first"}, "requires STARTTLS", "530 5.7.0"},
		{"535", Problem{Phase: smtp.PhaseAuth, Code: 535, Enhanced: "5.7.8", Message: "Error: authentication failed"}, "bad credentials", "535 5.7.8"},
		{"550 5.1.1", Problem{Phase: smtp.PhaseRcpt, Code: 550, Enhanced: "5.1.1", Message: "User unknown"}, "does not exist", "550 5.1.1"},
		{"554 5.7.1 relay", Problem{Phase: smtp.PhaseRcpt, Code: 554, Enhanced: "5.7.1", Message: "Relay access denied"}, "Relaying denied", "554 5.7.1"},
		{"550 5.7.1 policy", Problem{Phase: smtp.PhaseBody, Code: 550, Enhanced: "5.7.1", Message: "Message content rejected"}, "policy", "550 5.7.1"},
		{"552 size", Problem{Phase: smtp.PhaseMail, Code: 552, Enhanced: "5.3.4", Message: "Message size exceeds fixed limit"}, "too large", "552 5.3.4"},
		{"554 greeting", Problem{Phase: smtp.PhaseGreeting, Code: 554, Message: "No SMTP service here"}, "refuses to talk", "554"},
		{"502", Problem{Phase: smtp.PhaseEHLO, Code: 502, Enhanced: "5.5.1", Message: "Command not implemented"}, "did not accept a command", "502 5.5.1"},
		{"refused", Problem{Phase: smtp.PhaseConnect, Message: "cannot connect to 127.0.0.1:25: dial tcp 127.0.0.1:25: connect: connection refused"}, "Connection refused", ""},
		{"port 25 blocked", Problem{Phase: smtp.PhaseConnect, Message: "cannot connect to mx.example.org:25: dial tcp: i/o timeout"}, "timed out", ""},
		{"stalled server", Problem{Phase: smtp.PhaseData, Message: "timed out waiting for the server"}, "stopped answering", ""},
		{"no such host", Problem{Phase: smtp.PhaseConnect, Message: "cannot resolve nope.invalid: lookup nope.invalid: no such host"}, "does not resolve", ""},
		{"tls unknown authority", Problem{Phase: smtp.PhaseStartTLS, Message: "the server's certificate did not verify: tls: failed to verify certificate: x509: certificate signed by unknown authority"}, "authority this machine does not trust", ""},
		{"tls expired", Problem{Phase: smtp.PhaseStartTLS, Message: "the server's certificate did not verify: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2031-01-01T00:00:00Z is after 2030-12-31T00:00:00Z"}, "has expired", ""},
		{"tls wrong name", Problem{Phase: smtp.PhaseStartTLS, Message: "the server's certificate did not verify: tls: failed to verify certificate: x509: certificate is valid for mx.test, localhost, not other.test"}, "for another name", ""},
		{"tls verify, other reason", Problem{Phase: smtp.PhaseStartTLS, Message: "the server's certificate did not verify: tls: failed to verify certificate: x509: certificate specifies an incompatible key usage"}, "did not verify", ""},
		{"tls handshake", Problem{Phase: smtp.PhaseConnect, Message: "TLS handshake failed: tls: first record does not look like a TLS handshake"}, "handshake failed", ""},
		{"no starttls", Problem{Phase: smtp.PhaseStartTLS, Message: "the server does not offer STARTTLS, and TLS mode starttls requires it"}, "does not offer STARTTLS", ""},
		{"insecure auth", Problem{Phase: smtp.PhaseAuth, Message: "refusing to send credentials over an unencrypted connection: use STARTTLS"}, "without TLS", ""},
		{"closed", Problem{Phase: smtp.PhaseRcpt, Message: "server closed the connection: connection closed by server"}, "closed the connection", ""},
		{"aborted", Problem{Phase: smtp.PhaseRcpt, Message: "aborted: context canceled"}, "aborted", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := Explain(tt.p)
			if tt.wantTitle == "" {
				if x != nil {
					t.Fatalf("got %+v, want none", x)
				}
				return
			}
			if x == nil {
				t.Fatal("no explanation")
			}
			if !strings.Contains(strings.ToLower(x.Title), strings.ToLower(tt.wantTitle)) {
				t.Errorf("title %q, want containing %q", x.Title, tt.wantTitle)
			}
			if x.Code != tt.wantCode {
				t.Errorf("code %q, want %q", x.Code, tt.wantCode)
			}
			if x.Detail == "" || len(x.Try) == 0 {
				t.Errorf("no detail or advice: %+v", x)
			}
		})
	}
}

func TestParseProblemRoundTripsErrorText(t *testing.T) {
	tests := []struct {
		err  *smtp.Error
		want Problem
	}{
		{&smtp.Error{Phase: smtp.PhaseAuth, Code: 535, EnhancedCode: "5.7.8", Message: "Authentication failed"},
			Problem{Phase: smtp.PhaseAuth, Code: 535, Enhanced: "5.7.8", Message: "Authentication failed"}},
		{&smtp.Error{Phase: smtp.PhaseGreeting, Code: 554, Message: "go away"},
			Problem{Phase: smtp.PhaseGreeting, Code: 554, Message: "go away"}},
		{&smtp.Error{Phase: smtp.PhaseConnect, Message: "cannot connect to x:25"},
			Problem{Phase: smtp.PhaseConnect, Message: "cannot connect to x:25"}},
	}
	for _, tt := range tests {
		if got := parseProblem(tt.err.Error()); got != tt.want {
			t.Errorf("parseProblem(%q) = %+v, want %+v", tt.err.Error(), got, tt.want)
		}
	}
	if got := parseProblem("something else"); got.Message != "something else" || got.Code != 0 {
		t.Errorf("free text: %+v", got)
	}
}
