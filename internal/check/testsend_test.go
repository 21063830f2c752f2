package check

import (
	"context"
	"crypto/tls"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// TestTestSend sends real test messages through the test Postfix: as a
// server check on 2525 and through a profile-like configuration on 2587
// (STARTTLS and AUTH), accepted (found in the Maildir) and refused, with
// the alignment findings for From domains of the sender.test zone whose
// SPF passes (local) or fails (reject) for 127.0.0.1.
func TestTestSend(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	server := "postfix.check.test:" + strconv.Itoa(portOf(t, pf.SMTPAddr))
	profile := &smtp.Config{Addr: pf.SubmissionAddr, TLS: smtp.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: pf.RootCAs, ServerName: pf.ServerName},
		Auth: &smtp.Auth{Mechanism: "PLAIN", Username: pf.User, Password: pf.Password}}
	tests := []struct {
		name    string
		target  string
		to      string
		from    string
		via     *smtp.Config
		mxPort  int // 0: a closed port
		group   string
		status  Status
		text    string
		align   []wantFinding
		unalign bool // no alignment findings expected
	}{
		{name: "server check, spf passes", target: server, to: testenv.UniqueAddress(), from: "check@local.sender.test", group: "postfix.check.test",
			status: Pass, text: "was accepted by 127.0.0.1:2525 (queue id ", align: []wantFinding{
				{"align.spf.identifier", Pass, "local.sender.test aligns with the From header's domain local.sender.test (aspf=r, relaxed)"},
				{"align.spf.result", Pass, "SPF gives pass for 127.0.0.1 sending as check@local.sender.test (this is the address the receiving server judges)"},
				{"align.dkim", Warning, "carried no DKIM-Signature"},
				{"align.dmarc", Pass, "would pass DMARC"},
			}},
		{name: "domain check, first MX that answered", target: "good.check.test", mxPort: portOf(t, pf.SMTPAddr), to: testenv.UniqueAddress(), from: "check@local.sender.test", group: "localhost",
			status: Pass, text: "was accepted by 127.0.0.1:" + strconv.Itoa(portOf(t, pf.SMTPAddr)) + " (queue id ", align: []wantFinding{
				{"align.dmarc", Pass, "would pass DMARC"},
			}},
		{name: "server check, refused recipient", target: server, to: testenv.RejectRecipient550, from: "check@local.sender.test", group: "postfix.check.test",
			status: Fail, text: "was refused by 127.0.0.1:2525 at RCPT: 550 5.1.1", unalign: true},
		{name: "profile, spf fails", target: server, to: testenv.UniqueAddress(), from: "check@reject.sender.test", via: profile, group: TestSendGroup,
			status: Pass, text: "was accepted by profile test (" + pf.SubmissionAddr + ") (queue id ", align: []wantFinding{
				{"align.spf.identifier", Pass, "(aspf=s, strict)"},
				{"align.spf.result", Fail, "SPF gives fail for 127.0.0.1 sending as check@reject.sender.test (a submission server relays the message from its own address"},
				{"align.dmarc", Fail, "would fail DMARC: nothing aligned passes (SPF fail, no DKIM signature); reject.sender.test's policy p=reject"},
			}},
		{name: "profile, spf passes", target: "good.check.test", to: testenv.UniqueAddress(), from: "check@local.sender.test", via: profile, group: TestSendGroup,
			status: Pass, text: "was accepted by profile test", align: []wantFinding{
				{"align.spf.result", Pass, "SPF gives pass for 127.0.0.1"},
				{"align.dmarc", Pass, "would pass DMARC"},
			}},
		{name: "profile, refused sender", target: server, to: testenv.UniqueAddress(), from: testenv.RejectRecipient550, via: profile, group: TestSendGroup,
			status: Fail, text: "at MAIL: 550", unalign: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := ParseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			mxPort := tt.mxPort
			if mxPort == 0 {
				mxPort = portOf(t, testenv.ClosedPort(t))
			}
			rep, err := Run(context.Background(), target, Options{Resolver: d.Resolver, RootCAs: pf.RootCAs, MXPort: mxPort,
				TestSend: TestSendOptions{To: tt.to, From: tt.from, Via: tt.via, ViaName: "profile test"}})
			if err != nil {
				t.Fatal(err)
			}
			f := finding(t, rep, tt.group, "send.result")
			if f.Status != tt.status || !strings.Contains(f.Message, tt.text) {
				t.Fatalf("send.result: %s %q; want %s containing %q", f.Status, f.Message, tt.status, tt.text)
			}
			if tt.status == Fail && f.Fix == "" {
				t.Error("a refusal without a fix")
			}
			var conv *Conversation
			for _, c := range rep.Conversations() {
				if c.ID == f.Conversation {
					conv = c
				}
			}
			if conv == nil || conv.Purpose != "test message" {
				t.Fatalf("send.result's conversation %d is not the test message: %+v", f.Conversation, conv)
			}
			checkFindings(t, rep, tt.group, tt.align)
			if tt.unalign {
				for _, f := range rep.Findings() {
					if strings.HasPrefix(f.ID, "align.") {
						t.Errorf("alignment finding after a refusal: %s %s", f.ID, f.Message)
					}
				}
			}
			if tt.status != Pass {
				return
			}
			if tt.via != nil && !strings.Contains(transcriptText(conv), "AUTH PLAIN") {
				t.Error("the profile's conversation did not authenticate")
			}
			id := regexp.MustCompile(`<(sockmail-check-[0-9a-f]+@[^>]+)>`).FindStringSubmatch(f.Message)
			if id == nil {
				t.Fatalf("no Message-ID in %q", f.Message)
			}
			msg := testenv.WaitForMessage(t, pf.Maildir, id[1], 30*time.Second)
			if !strings.Contains(string(msg), "This is a test message sent by sockmail check") || !strings.Contains(string(msg), "From: <"+tt.from+">") {
				t.Errorf("delivered message:\n%s", msg)
			}
		})
	}
}

// transcriptText joins a conversation's lines.
func transcriptText(c *Conversation) string {
	var b strings.Builder
	for _, ev := range c.Transcript.Events() {
		b.WriteString(ev.Line + "\n")
	}
	return b.String()
}

// TestTestSendValidate checks the test message options' errors.
func TestTestSendValidate(t *testing.T) {
	domain := Target{Kind: KindDomain, Host: "example.org"}
	server := Target{Kind: KindServer, Host: "192.0.2.1", Port: 25}
	tests := []struct {
		name   string
		o      TestSendOptions
		sender string
		target Target
		from   string
		err    string
	}{
		{name: "none", target: domain},
		{name: "default from target", o: TestSendOptions{To: "a@example.net"}, target: domain, from: "sockmail-check@example.org"},
		{name: "default from sender domain", o: TestSendOptions{To: "a@example.net"}, sender: "mail.example.com", target: server, from: "sockmail-check@mail.example.com"},
		{name: "server needs from", o: TestSendOptions{To: "a@example.net"}, target: server, err: "needs a sender address"},
		{name: "from without to", o: TestSendOptions{From: "a@example.net"}, target: domain, err: "needs a recipient"},
		{name: "bad to", o: TestSendOptions{To: "nobody"}, target: domain, err: `recipient "nobody" is not an address`},
		{name: "to with brackets", o: TestSendOptions{To: "a@b.org>"}, target: domain, err: "is not an address"},
		{name: "bad from domain", o: TestSendOptions{To: "a@example.net", From: "x@localhost"}, target: domain, err: "it needs a dot"},
		{name: "long", o: TestSendOptions{To: strings.Repeat("a", 300) + "@example.net"}, target: domain, err: "the limit is 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate(tt.sender, tt.target)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.o.From != tt.from {
					t.Errorf("From %q, want %q", tt.o.From, tt.from)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v; want one containing %q", err, tt.err)
			}
		})
	}
}
