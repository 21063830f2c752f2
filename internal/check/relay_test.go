package check

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestRelay runs the open relay test against the real servers: the test
// Postfix refuses to relay (554 5.7.1), aiosmtpd takes any recipient and
// stands in for an open relay. Each conversation stops after RCPT TO:
// no DATA, then RSET and QUIT.
func TestRelay(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	aio := testenv.AIOSMTPD(t)
	tests := []struct {
		name   string
		target string
		mxPort int
		host   string
		status Status
		text   string
	}{
		{name: "postfix server", target: "postfix.check.test:" + strconv.Itoa(portOf(t, pf.SMTPAddr)), host: "postfix.check.test",
			status: Pass, text: "RCPT TO:<sockmail-relay-test@example.net> got 554 5.7.1 <sockmail-relay-test@example.net>: Relay access denied"},
		{name: "postfix as MX", target: "good.check.test", mxPort: portOf(t, pf.SMTPAddr), host: "localhost",
			status: Pass, text: "refuses to relay"},
		{name: "aiosmtpd open relay", target: "aiosmtpd.check.test:" + strconv.Itoa(portOf(t, aio.Addr)), host: "aiosmtpd.check.test",
			status: Fail, text: "open relay: it accepted mail from sockmail-relay-test@example.com to sockmail-relay-test@example.net"},
		// No relay test where the check could not connect.
		{name: "unreachable MX", target: "insecure.test", mxPort: portOf(t, testenv.ClosedPort(t)), host: "mx.insecure.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := ParseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), target, Options{Resolver: d.Resolver, RootCAs: pf.RootCAs, MXPort: tt.mxPort, RelayTest: true})
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == "" {
				for _, f := range rep.Findings() {
					if f.ID == "smtp.relay" {
						t.Errorf("relay test of an unreachable host: %s", f.Message)
					}
				}
				if got := finding(t, rep, tt.host, "smtp.connect"); got.Status != Fail {
					t.Errorf("smtp.connect %s, want fail", got.Status)
				}
				return
			}
			f := finding(t, rep, tt.host, "smtp.relay")
			if f.Status != tt.status || !strings.Contains(f.Message, tt.text) {
				t.Errorf("smtp.relay: %s %q; want %s containing %q", f.Status, f.Message, tt.status, tt.text)
			}
			if tt.status != Pass && f.Fix == "" {
				t.Error("an open relay finding without a fix")
			}
			var conv *Conversation
			for _, c := range rep.Conversations() {
				if c.ID == f.Conversation {
					conv = c
				}
			}
			if conv == nil || conv.Purpose != "relay test" {
				t.Fatalf("finding's conversation %d is not a relay test: %+v", f.Conversation, conv)
			}
			var sent []string
			for _, ev := range conv.Transcript.Events() {
				if ev.Dir == smtp.DirClient {
					verb, _, _ := strings.Cut(ev.Line, " ")
					sent = append(sent, strings.ToUpper(strings.TrimRight(verb, ":")))
				}
			}
			all := strings.Join(sent, " ")
			if strings.Contains(all, "DATA") || strings.Contains(all, "BDAT") {
				t.Errorf("the relay test sent a message: %s", all)
			}
			if !strings.Contains(all, "MAIL") || !strings.Contains(all, "RCPT") || !strings.HasSuffix(all, "QUIT") {
				t.Errorf("client commands %q; want MAIL, RCPT, then QUIT at the end", all)
			}
		})
	}
}

// TestRelayAddresses checks that the relay test's addresses are never in
// the checked domains.
func TestRelayAddresses(t *testing.T) {
	tests := []struct {
		own      []string
		from, to string
	}{
		{own: []string{"check.test", ""}, from: "sockmail-relay-test@example.com", to: "sockmail-relay-test@example.net"},
		{own: []string{"mail.example.com", ""}, from: "sockmail-relay-test@example.net", to: "sockmail-relay-test@example.org"},
		{own: []string{"example.net", "example.com"}, from: "sockmail-relay-test@example.org", to: "sockmail-relay-test@example.org"},
	}
	for _, tt := range tests {
		from, to := relayAddresses(tt.own...)
		if from != tt.from || to != tt.to {
			t.Errorf("relayAddresses(%v) = %s, %s; want %s, %s", tt.own, from, to, tt.from, tt.to)
		}
	}
}

// TestSubmissionSRV checks a domain whose RFC 6186 SRV records name the
// test Postfix's submission (STARTTLS, 2587) and submissions (implicit
// TLS, 2465) ports: both are found and checked as servers, and the relay
// test leaves them alone.
func TestSubmissionSRV(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	target, err := ParseTarget("srv.sender.test")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), target, Options{Resolver: d.Resolver, RootCAs: pf.RootCAs, RelayTest: true})
	if err != nil {
		t.Fatal(err)
	}
	checkFindings(t, rep, "", []wantFinding{
		{"srv.submission", Pass, "_submission._tcp.srv.sender.test: sub.sender.test:2587 (priority 0, weight 1)"},
		{"srv.submissions", Pass, "(implicit TLS) in _submissions._tcp.srv.sender.test: subs.sender.test:2465"},
	})
	checkFindings(t, rep, "sub.sender.test", []wantFinding{
		{"smtp.connect", Pass, "127.0.0.1:2587 answered"},
		{"tls.starttls", Pass, "handshake succeeded"},
	})
	checkFindings(t, rep, "subs.sender.test", []wantFinding{
		{"smtp.connect", Pass, "127.0.0.1:2465 answered"},
	})
	for _, h := range rep.Hosts() {
		if h.Name == "sub.sender.test" && (h.Port != 2587 || h.Service != "submission") ||
			h.Name == "subs.sender.test" && (h.Port != 2465 || h.Service != "submissions") {
			t.Errorf("host %+v", h)
		}
	}
	for _, f := range rep.Findings() {
		if f.ID == "smtp.relay" {
			t.Errorf("relay test on a submission server: %s %s", f.Host, f.Message)
		}
	}
}
