package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TLS for real: a test CA and server certificate made in the test, a
// small SMTP server on 127.0.0.1:0, STARTTLS and implicit TLS.

var envelope1 = Envelope{From: "a@example.org", To: []string{"b@example.net"}}

func TestStartTLSVerified(t *testing.T) {
	p := certs(t)
	tests := []struct {
		name       string
		tlsConfig  *tls.Config
		serverName string // the name the verdict must mention
	}{
		{"server name from the config", p.clientTLS("mx.test"), "mx.test"},
		{"server name from the address (IP SAN)", &tls.Config{RootCAs: p.roots}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &miniServer{
				tls:    p.serverTLS(),
				ext:    []string{"PIPELINING", "STARTTLS", "SIZE 1000000", "X-BEFORE-TLS"},
				extTLS: []string{"PIPELINING", "AUTH PLAIN LOGIN", "SIZE 2000000"},
			}
			addr := serve(t, m.handle)
			tr := NewTranscript()
			cfg := Config{Addr: addr, TLS: TLSStartTLS, TLSConfig: tt.tlsConfig, LocalName: "client.test", Transcript: tr,
				Auth: &Auth{Username: "u", Password: "pw"}}
			ctx := context.Background()
			c, err := Open(ctx, cfg)
			if err != nil {
				t.Fatalf("Open: %v\n%s", err, dumpTranscript(tr))
			}
			st, ok := c.TLS()
			if !ok || !st.HandshakeComplete {
				t.Fatalf("no TLS after STARTTLS")
			}
			if ok, _ := c.Extension("X-BEFORE-TLS"); ok {
				t.Errorf("capability learnt before TLS survived STARTTLS")
			}
			if ok, v := c.Extension("SIZE"); !ok || v != "2000000" {
				t.Errorf("SIZE = %v %q, want the value from after TLS", ok, v)
			}
			if ok, _ := c.Extension("STARTTLS"); ok {
				t.Errorf("STARTTLS still listed after TLS")
			}
			if got := c.AuthMechanisms(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
				t.Errorf("AUTH mechanisms = %v", got)
			}
			res, err := c.SendAndQuit(ctx, envelope1, strings.NewReader("Subject: t\n\nbody\n"))
			if err != nil || res.QueueID != "MINI1" {
				t.Fatalf("send: %v %+v\n%s", err, res, dumpTranscript(tr))
			}
			got := m.got()
			wantVerbs := []string{"EHLO client.test", "STARTTLS", "EHLO client.test", "AUTH PLAIN", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "QUIT"}
			if len(got) != len(wantVerbs) {
				t.Fatalf("server saw %q, want %q", got, wantVerbs)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], wantVerbs[i]) {
					t.Errorf("line %d = %q, want %q", i, got[i], wantVerbs[i])
				}
			}
			ev := tr.Events()
			for _, want := range []string{
				"TLS handshake done",
				"TLS 1.3",
				`certificate 0: subject "CN=mx.test,O=sockmail tests", SANs [mx.test, localhost, 127.0.0.1], issuer "CN=sockmail test CA,O=sockmail tests", valid ` +
					p.leaf.NotBefore.UTC().Format(time.DateOnly) + " to " + p.leaf.NotAfter.UTC().Format(time.DateOnly),
				`certificate 1: subject "CN=sockmail test CA,O=sockmail tests"`,
				"certificate verified for " + tt.serverName,
				"capabilities after STARTTLS: added [AUTH PLAIN LOGIN; SIZE 2000000], removed [SIZE 1000000; STARTTLS; X-BEFORE-TLS]",
			} {
				if !hasEvent(ev, DirInfo, want) {
					t.Errorf("transcript lacks %q:\n%s", want, dumpTranscript(tr))
				}
			}
			if hasEvent(ev, DirInfo, "WITHOUT TLS") {
				t.Errorf("transcript says credentials went without TLS")
			}
		})
	}
}

func TestCapabilitiesUnchangedAfterTLS(t *testing.T) {
	p := certs(t)
	m := &miniServer{tls: p.serverTLS(), ext: []string{"STARTTLS", "8BITMIME"}, extTLS: []string{"8BITMIME", "STARTTLS"}}
	addr := serve(t, m.handle)
	tr := NewTranscript()
	_, err := SendMail(context.Background(), Config{Addr: addr, TLS: TLSStartTLSOptional, TLSConfig: p.clientTLS("localhost"), Transcript: tr},
		envelope1, strings.NewReader("x\n"), SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(tr.Events(), DirInfo, "capabilities after STARTTLS: unchanged") {
		t.Errorf("no 'unchanged' note:\n%s", dumpTranscript(tr))
	}
}

func TestImplicitTLSVerified(t *testing.T) {
	p := certs(t)
	m := &miniServer{tls: p.serverTLS(), implicit: true, ext: []string{"AUTH CRAM-MD5 PLAIN"}}
	addr := serve(t, m.handle)
	tr := NewTranscript()
	res, err := SendMail(context.Background(),
		Config{Addr: addr, TLS: TLSImplicit, TLSConfig: p.clientTLS("localhost"), Transcript: tr, Auth: &Auth{Username: "u", Password: "pw", Mechanism: "plain"}},
		envelope1, strings.NewReader("x\n"), SendOptions{})
	if err != nil || StatusOf(res, err) != StatusSent {
		t.Fatalf("err %v\n%s", err, dumpTranscript(tr))
	}
	ev := tr.Events()
	var tlsPhase Phase
	for _, e := range ev {
		if strings.HasPrefix(e.Line, "TLS handshake done") {
			tlsPhase = e.Phase
		}
	}
	if tlsPhase != PhaseConnect {
		t.Errorf("implicit TLS handshake noted in phase %q, want connect", tlsPhase)
	}
	if !hasEvent(ev, DirInfo, "certificate verified for localhost") {
		t.Errorf("no verdict:\n%s", dumpTranscript(tr))
	}
	if got := m.got(); len(got) < 2 || got[0] != "EHLO [127.0.0.1]" || !strings.HasPrefix(got[1], "AUTH PLAIN ") {
		t.Errorf("server saw %q", got)
	}
}

// expiredView makes cfg verify as if it were a minute past notAfter: the
// server's certificate has expired.
func expiredView(cfg *tls.Config, notAfter time.Time) *tls.Config {
	cfg.Time = func() time.Time { return notAfter.Add(time.Minute) }
	return cfg
}

// TestTLS12Server: a server that speaks at most TLS 1.2 is fine, and the
// transcript says which version and cipher suite were agreed.
func TestTLS12Server(t *testing.T) {
	p := certs(t)
	srv := p.serverTLS()
	srv.MaxVersion = tls.VersionTLS12
	m := &miniServer{tls: srv, ext: []string{"STARTTLS"}}
	addr := serve(t, m.handle)
	tr := NewTranscript()
	res, err := SendMail(context.Background(), Config{Addr: addr, TLS: TLSStartTLS, TLSConfig: p.clientTLS("localhost"), Transcript: tr},
		envelope1, strings.NewReader("x\n"), SendOptions{})
	if err != nil || StatusOf(res, err) != StatusSent {
		t.Fatalf("err %v\n%s", err, dumpTranscript(tr))
	}
	if !hasEvent(tr.Events(), DirInfo, "TLS 1.2, TLS_ECDHE_ECDSA_WITH_") {
		t.Errorf("transcript does not name TLS 1.2 and its cipher suite:\n%s", dumpTranscript(tr))
	}
}

// TestTLSVerificationFails: with the system roots (which do not hold the
// test CA) or the wrong name, the send fails before anything is said
// inside TLS, the error says why, and the transcript shows the chain.
func TestTLSVerificationFails(t *testing.T) {
	p := certs(t)
	tests := []struct {
		name    string
		mode    TLSMode
		cfg     *tls.Config
		phase   Phase
		verdict string
	}{
		{"starttls, default roots", TLSStartTLS, nil, PhaseStartTLS, "certificate NOT verified: x509: certificate signed by unknown authority"},
		{"implicit, default roots", TLSImplicit, nil, PhaseConnect, "certificate NOT verified: x509: certificate signed by unknown authority"},
		{"starttls, wrong name", TLSStartTLS, p.clientTLS("other.test"), PhaseStartTLS, "certificate NOT verified: x509: certificate is valid for mx.test, localhost, not other.test"},
		{"starttls-optional still verifies", TLSStartTLSOptional, nil, PhaseStartTLS, "NOT verified"},
		{"starttls, expired", TLSStartTLS, expiredView(p.clientTLS("localhost"), p.leaf.NotAfter), PhaseStartTLS,
			"certificate NOT verified: x509: certificate has expired or is not yet valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &miniServer{tls: p.serverTLS(), implicit: tt.mode == TLSImplicit, ext: []string{"STARTTLS"}}
			addr := serve(t, m.handle)
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: addr, TLS: tt.mode, TLSConfig: tt.cfg, Transcript: tr,
				Auth: &Auth{Username: "u", Password: "pw"}}, envelope1, strings.NewReader("x\n"), SendOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Phase != tt.phase || e.Temporary() || !strings.Contains(e.Error(), "certificate did not verify") {
				t.Errorf("phase %s temporary %v: %v; want a permanent %s error saying the certificate did not verify", e.Phase, e.Temporary(), e, tt.phase)
			}
			var ve *tls.CertificateVerificationError
			if !errors.As(err, &ve) {
				t.Errorf("error does not wrap the verification error: %v", err)
			}
			if st := StatusOf(res, err); st != StatusPermFail {
				t.Errorf("status %q", st)
			}
			ev := tr.Events()
			for _, want := range []string{
				`certificate 0: subject "CN=mx.test,O=sockmail tests", SANs [mx.test, localhost, 127.0.0.1], issuer "CN=sockmail test CA,O=sockmail tests", valid ` +
					p.leaf.NotBefore.UTC().Format(time.DateOnly) + " to " + p.leaf.NotAfter.UTC().Format(time.DateOnly),
				tt.verdict,
			} {
				if !hasEvent(ev, DirInfo, want) {
					t.Errorf("transcript lacks %q:\n%s", want, dumpTranscript(tr))
				}
			}
			// Nothing after STARTTLS, and certainly not in clear text.
			got := m.got()
			if len(got) > 2 {
				t.Errorf("server saw %q after a failed handshake", got)
			}
			for _, e := range ev {
				if e.Dir == DirClient && (e.Line == "QUIT" || strings.HasPrefix(e.Line, "AUTH") || strings.HasPrefix(e.Line, "MAIL")) {
					t.Errorf("transcript shows %q after a failed handshake", e.Line)
				}
			}
		})
	}
}

func TestInsecureSkipVerify(t *testing.T) {
	p := certs(t)
	tests := []struct {
		name    string
		cfg     *tls.Config
		verdict string
	}{
		{"unknown CA", nil, "certificate NOT verified (insecure override); it would have failed: x509: certificate signed by unknown authority"},
		{"known CA", p.clientTLS("localhost"), "certificate NOT verified (insecure override); it would have verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &miniServer{tls: p.serverTLS(), ext: []string{"STARTTLS"}}
			addr := serve(t, m.handle)
			tr := NewTranscript()
			res, err := SendMail(context.Background(), Config{Addr: addr, TLS: TLSStartTLS, TLSConfig: tt.cfg, InsecureSkipVerify: true, Transcript: tr},
				envelope1, strings.NewReader("x\n"), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("err %v\n%s", err, dumpTranscript(tr))
			}
			ev := tr.Events()
			for _, want := range []string{"certificate verification is OFF (insecure override)", tt.verdict, "certificate 0: subject"} {
				if !hasEvent(ev, DirInfo, want) {
					t.Errorf("transcript lacks %q:\n%s", want, dumpTranscript(tr))
				}
			}
		})
	}
}

// TestStartTLSResponseInjection: bytes sent after the 220 to STARTTLS and
// before the handshake (CVE-2011-0411 style) fail the send before TLS.
func TestStartTLSResponseInjection(t *testing.T) {
	for _, mode := range []TLSMode{TLSStartTLS, TLSStartTLSOptional} {
		t.Run(mode.String(), func(t *testing.T) {
			afterStartTLS := make(chan string, 1)
			addr := serve(t, func(s *serverConn) error {
				if err := s.send("220 mx.test\n"); err != nil {
					return err
				}
				if _, err := s.expect("EHLO"); err != nil {
					return err
				}
				if err := s.send("250-mx.test\n250 STARTTLS\n"); err != nil {
					return err
				}
				if _, err := s.expect("STARTTLS"); err != nil {
					return err
				}
				if err := s.send("220 go ahead\n250 injected\n"); err != nil {
					return err
				}
				rest, _ := io.ReadAll(s.br) // until the client hangs up
				afterStartTLS <- string(rest)
				return nil
			})
			tr := NewTranscript()
			_, err := SendMail(context.Background(), Config{Addr: addr, TLS: mode, Transcript: tr, InsecureSkipVerify: true},
				envelope1, strings.NewReader("x\n"), SendOptions{})
			var e *Error
			if !errors.As(err, &e) || e.Phase != PhaseStartTLS || e.Temporary() || !strings.Contains(e.Message, "response injection") {
				t.Fatalf("err = %v, want a permanent starttls error about response injection", err)
			}
			select {
			case rest := <-afterStartTLS:
				if rest != "" {
					t.Errorf("client sent %q after the injected reply (a TLS handshake or a command)", rest)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("client did not hang up")
			}
			if !hasEvent(tr.Events(), DirInfo, `250 injected`) {
				t.Errorf("transcript does not show the injected bytes:\n%s", dumpTranscript(tr))
			}
		})
	}
}
