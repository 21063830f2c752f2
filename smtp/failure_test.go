package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"sockmail/internal/testenv"
)

// scriptErr runs one send against a scripted server and returns its error.
func scriptErr(server string, env Envelope, mutate func(*Config)) func(*testing.T) error {
	return func(*testing.T) error {
		f := newFaker(server)
		cfg := fakeConfig(f)
		if mutate != nil {
			mutate(&cfg)
		}
		if env.From == "" {
			env = Envelope{From: "a@example.org", To: []string{"b@example.net"}}
		}
		_, err := SendMail(context.Background(), cfg, env, strings.NewReader("Subject: hi\n\nhello\n"), SendOptions{})
		return err
	}
}

// dialErr dials a real listener with cfg (Addr filled in) and returns the error.
func dialErr(addr func(*testing.T) string, cfg Config) func(*testing.T) error {
	return func(t *testing.T) error {
		cfg.Addr = addr(t)
		cfg.LocalName = "client.test"
		c, err := Dial(context.Background(), cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// implicitTLSServer serves the test certificate with implicit TLS; the
// client is expected to give up during the handshake.
func implicitTLSServer(t *testing.T) string {
	return serve(t, func(s *serverConn) error {
		_ = s.startTLS(certs(t).serverTLS()) // fails: the client refuses the certificate
		return nil
	})
}

// plainServer greets in plain text where the client expects TLS.
func plainServer(t *testing.T) string {
	return serve(t, func(s *serverConn) error {
		if err := s.send("220 mx.test ESMTP\n"); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, s)
		return nil
	})
}

func typed(err error) func(*testing.T) error { return func(*testing.T) error { return err } }

func canceledSend(t *testing.T) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := newFaker(ehloPlain)
	_, err := SendMail(ctx, fakeConfig(f), Envelope{From: "a@example.org", To: []string{"b@example.net"}}, strings.NewReader("x\n"), SendOptions{})
	return err
}

func TestClassify(t *testing.T) {
	auth := func(c *Config) { c.Auth = &Auth{Username: "u", Password: "secret-pass"}; c.AllowInsecureAuth = true }
	large := Envelope{From: "a@example.org", To: []string{"b@example.net"}, Size: 2000}
	tests := []struct {
		name string
		err  func(*testing.T) error
		want Failure
	}{
		{"no error", typed(nil), Failure{}},
		{"connection refused (real closed port)", dialErr(func(t *testing.T) string { return testenv.ClosedPort(t) }, Config{}),
			Failure{Phase: PhaseConnect, Kind: KindConnRefused}},
		{"connect timeout", typed(netError(PhaseConnect, "cannot connect to mx.test:25", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})),
			Failure{Phase: PhaseConnect, Kind: KindConnectTimeout}},
		{"reply timeout", typed(netError(PhaseData, "timed out waiting for the server", fmt.Errorf("%w (read)", context.DeadlineExceeded))),
			Failure{Phase: PhaseData, Kind: KindReplyTimeout}},
		{"no such host", typed(netError(PhaseConnect, "cannot resolve nope.invalid", &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true})),
			Failure{Phase: PhaseConnect, Kind: KindDNS}},
		{"TLS handshake (real: plain text where TLS was expected)", dialErr(plainServer, Config{TLS: TLSImplicit}),
			Failure{Phase: PhaseConnect, Kind: KindTLSHandshake}},
		{"TLS handshake timeout is a timeout", typed(func() error {
			e := netError(PhaseStartTLS, "TLS handshake failed", context.DeadlineExceeded)
			e.kind = KindTLSHandshake
			return e
		}()), Failure{Phase: PhaseStartTLS, Kind: KindReplyTimeout}},
		{"TLS unknown authority (real)", dialErr(implicitTLSServer, Config{TLS: TLSImplicit, TLSConfig: &tls.Config{ServerName: "mx.test"}}),
			Failure{Phase: PhaseConnect, Kind: KindTLSVerify, Reason: ReasonUnknownAuthority}},
		{"TLS wrong name (real)", func(t *testing.T) error {
			return dialErr(implicitTLSServer, Config{TLS: TLSImplicit, TLSConfig: certs(t).clientTLS("other.test")})(t)
		},
			Failure{Phase: PhaseConnect, Kind: KindTLSVerify, Reason: ReasonWrongName}},
		{"TLS expired (real: the client's clock is two days on)", func(t *testing.T) error {
			cfg := certs(t).clientTLS("mx.test")
			cfg.Time = func() time.Time { return time.Now().Add(48 * time.Hour) }
			return dialErr(implicitTLSServer, Config{TLS: TLSImplicit, TLSConfig: cfg})(t)
		}, Failure{Phase: PhaseConnect, Kind: KindTLSVerify, Reason: ReasonExpired}},
		{"TLS other verification failure", typed(&Error{Phase: PhaseStartTLS, Message: "the server's certificate did not verify",
			Err: &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}}),
			Failure{Phase: PhaseStartTLS, Kind: KindTLSVerify, Reason: ReasonOtherCert}},
		{"STARTTLS not offered", scriptErr(ehloPlain+"221 Bye\n", Envelope{}, func(c *Config) { c.TLS = TLSStartTLS }),
			Failure{Phase: PhaseStartTLS, Kind: KindNoStartTLS}},
		{"AUTH not offered", scriptErr(ehloPlain+"221 Bye\n", Envelope{}, auth),
			Failure{Phase: PhaseAuth, Kind: KindNoAuth}},
		{"AUTH mechanism not offered", scriptErr(ehloAuth+"221 Bye\n", Envelope{}, func(c *Config) { auth(c); c.Auth.Mechanism = "CRAM-MD5" }),
			Failure{Phase: PhaseAuth, Kind: KindNoAuth}},
		{"AUTH refused before TLS", scriptErr(ehloAuth+"221 Bye\n", Envelope{}, func(c *Config) { auth(c); c.AllowInsecureAuth = false }),
			Failure{Phase: PhaseAuth, Kind: KindAuthBeforeTLS}},
		{"AUTH rejected", scriptErr(ehloAuth+"535 5.7.8 Error: authentication failed\n221 Bye\n", Envelope{}, auth),
			Failure{Phase: PhaseAuth, Code: 535, EnhancedCode: "5.7.8", Kind: KindAuthRejected}},
		{"relay denied", scriptErr(ehloPlain+"250 Ok\n554 5.7.1 <b@example.net>: Relay access denied\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseRcpt, Code: 554, EnhancedCode: "5.7.1", Kind: KindRelayDenied}},
		{"mailbox unknown", scriptErr(ehloPlain+"250 Ok\n550 5.1.1 <b@example.net>: User unknown\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseRcpt, Code: 550, EnhancedCode: "5.1.1", Kind: KindMailboxUnknown}},
		{"sender rejected", scriptErr(ehloPlain+"553 5.1.8 <a@example.org>: Sender address rejected\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseMail, Code: 553, EnhancedCode: "5.1.8", Kind: KindSenderRejected}},
		{"message refused", scriptErr(ehloPlain+"250 Ok\n250 Ok\n354 go\n554 5.7.1 Message rejected as spam\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseBody, Code: 554, EnhancedCode: "5.7.1", Kind: KindMessageRefused}},
		{"message too large (552)", scriptErr(ehloPlain+"250 Ok\n250 Ok\n354 go\n552 5.3.4 Message size exceeds fixed limit\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseBody, Code: 552, EnhancedCode: "5.3.4", Kind: KindTooLarge}},
		{"message too large (SIZE)", scriptErr("220 mx.test\n250-mx.test\n250 SIZE 1000\n221 Bye\n", large, nil),
			Failure{Phase: PhaseMail, Kind: KindTooLarge}},
		{"greeting refused", scriptErr("554 5.7.1 No SMTP service here\n", Envelope{}, nil),
			Failure{Phase: PhaseGreeting, Code: 554, EnhancedCode: "5.7.1", Kind: KindGreetingRefused}},
		{"421 in the greeting", scriptErr("421 4.3.2 Service shutting down\n", Envelope{}, nil),
			Failure{Phase: PhaseGreeting, Code: 421, EnhancedCode: "4.3.2", Kind: KindClosed}},
		{"server closed the connection", scriptErr(ehloPlain, Envelope{}, nil),
			Failure{Phase: PhaseMail, Kind: KindClosed}},
		{"unknown outcome", scriptErr(ehloPlain+"250 Ok\n250 Ok\n354 go\n", Envelope{}, nil),
			Failure{Phase: PhaseBody, Kind: KindUnknownOutcome}},
		{"aborted", canceledSend, Failure{Phase: PhaseGreeting, Kind: KindAborted}},
		{"aborted: not an smtp error", typed(fmt.Errorf("send: %w", context.Canceled)), Failure{Kind: KindAborted}},
		{"stopped", typed(errStopped), Failure{Kind: KindStopped}}, // SendMail itself returns nil
		{"other: a temporary refusal", scriptErr(ehloPlain+"250 Ok\n450 4.2.0 Greylisted\n221 Bye\n", Envelope{}, nil),
			Failure{Phase: PhaseRcpt, Code: 450, EnhancedCode: "4.2.0", Kind: KindOther}},
		{"other: not an smtp error", typed(errors.New("outbox: send panicked")), Failure{Kind: KindOther}},
	}
	seen := map[Kind]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			got := Classify(err)
			if got != tt.want {
				t.Errorf("Classify(%v)\n = %+v\nwant %+v", err, got, tt.want)
			}
			if err == nil {
				return
			}
			if wrapped := Classify(fmt.Errorf("outer: %w", err)); wrapped != got {
				t.Errorf("wrapped: %+v, want %+v", wrapped, got)
			}
		})
		seen[tt.want.Kind] = true
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("kind %q has no test case", k)
		}
	}
}

func TestReplyFailure(t *testing.T) {
	tests := []struct {
		phase    Phase
		code     int
		enhanced string
		text     string
		want     Kind
	}{
		{PhaseRcpt, 250, "2.1.5", "Ok", KindNone},
		{PhaseRcpt, 550, "", "<b@x.test>: Recipient address rejected: User unknown in local recipient table", KindMailboxUnknown},
		{PhaseRcpt, 550, "5.7.1", "Sender not allowed", KindRelayDenied},
		{PhaseBody, 554, "5.7.1", "Relay access denied", KindRelayDenied},
		{PhaseMail, 530, "5.7.0", "Must issue a STARTTLS command first", KindOther},
		{PhaseRcpt, 552, "5.2.2", "Mailbox full", KindTooLarge},
		{PhaseData, 554, "5.5.1", "No valid recipients", KindMessageRefused},
	}
	for _, tt := range tests {
		got := RecipientFailure(RecipientResult{Code: tt.code, EnhancedCode: tt.enhanced, Message: tt.text})
		if tt.phase != PhaseRcpt {
			got = ReplyFailure(tt.phase, tt.code, tt.enhanced, tt.text)
		}
		if got.Kind != tt.want {
			t.Errorf("%s %d %s %q: kind %q, want %q", tt.phase, tt.code, tt.enhanced, tt.text, got.Kind, tt.want)
		}
	}
}
