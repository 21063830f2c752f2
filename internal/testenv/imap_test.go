package testenv

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCertSoonServer: the listener on CERT_SOON_PORT shows, after
// STARTTLS, a certificate from the test CA for its name that ends in 4 to
// 5 days.
func TestCertSoonServer(t *testing.T) {
	s := CertSoon(t)
	if s == nil {
		return
	}
	c := dialSMTP(t, s.Addr, nil)
	conf := s.TLSConfig()
	conf.ServerName = s.Name
	if err := c.StartTLS(conf); err != nil {
		t.Fatalf("STARTTLS with a certificate for %s from the test CA: %v", s.Name, err)
	}
	cs, ok := c.TLSConnectionState()
	if !ok || len(cs.PeerCertificates) == 0 {
		t.Fatal("no certificate after STARTTLS")
	}
	left := time.Until(cs.PeerCertificates[0].NotAfter)
	if left <= 4*24*time.Hour-time.Hour || left > 5*24*time.Hour {
		t.Errorf("certificate ends in %v, want 4 to 5 days", left)
	}
	_ = c.Quit()
}

// TestIMAPServer: both IMAP ports greet; the plain one offers STARTTLS
// and, inside TLS that verifies against the test CA, takes the test
// user's LOGIN; and mail Postfix takes for Address reaches the IMAP
// Maildir, not the shared Postfix one.
func TestIMAPServer(t *testing.T) {
	s := IMAP(t)
	pf := Postfix(t)
	if s == nil || pf == nil {
		return
	}
	conn, err := net.DialTimeout("tcp", s.Addr, dialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(StallLimit))
	r := bufio.NewReader(conn)
	line := func(r *bufio.Reader) string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return l
	}
	if g := line(r); !strings.HasPrefix(g, "* OK") || !strings.Contains(g, "STARTTLS") {
		t.Fatalf("greeting %q, want * OK with STARTTLS", g)
	}
	if _, err := conn.Write([]byte("a STARTTLS\r\n")); err != nil {
		t.Fatal(err)
	}
	if l := line(r); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(conn, s.TLSConfig())
	tr := bufio.NewReader(tc)
	if _, err := tc.Write([]byte("b LOGIN \"" + s.User + "\" \"" + s.Password + "\"\r\n")); err != nil {
		t.Fatalf("LOGIN inside TLS: %v", err)
	}
	for {
		l := line(tr)
		if strings.HasPrefix(l, "b ") {
			if !strings.HasPrefix(l, "b OK") {
				t.Fatalf("LOGIN: %q", l)
			}
			break
		}
	}
	tls2, err := tls.DialWithDialer(&net.Dialer{Timeout: dialTimeout}, "tcp", s.TLSAddr, s.TLSConfig())
	if err != nil {
		t.Fatalf("implicit TLS port: %v", err)
	}
	_ = tls2.SetDeadline(time.Now().Add(StallLimit))
	if g := line(bufio.NewReader(tls2)); !strings.HasPrefix(g, "* OK") {
		t.Errorf("implicit TLS greeting %q", g)
	}
	tls2.Close()
	token := UniqueToken()
	c := dialSMTP(t, pf.SMTPAddr, nil)
	if err := send(c, "sender@example.test", s.Address, message("sender@example.test", s.Address, token)); err != nil {
		t.Fatal(err)
	}
	WaitForMessage(t, s.Maildir, token, StallLimit)
}
