package smtp

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds the real-listener side of the test harness: a scripted
// SMTP server on 127.0.0.1:0 for what the faker cannot show (deadlines,
// TLS, a server that stops reading), and a test PKI made in the test.

// serverConn is the server's end of one test connection.
type serverConn struct {
	net.Conn
	br *bufio.Reader
}

// send writes text in one write, "\n" turned into CRLF.
func (s *serverConn) send(text string) error {
	_, err := io.WriteString(s.Conn, strings.ReplaceAll(text, "\n", "\r\n"))
	return err
}

// readLine reads one client line without its CRLF.
func (s *serverConn) readLine() (string, error) {
	line, err := s.br.ReadString('\n')
	if err != nil {
		return line, err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

// expect reads one line and checks that it starts with prefix.
func (s *serverConn) expect(prefix string) (string, error) {
	line, err := s.readLine()
	if err != nil {
		return line, fmt.Errorf("waiting for %q: %w", prefix, err)
	}
	if !strings.HasPrefix(line, prefix) {
		return line, fmt.Errorf("client said %q, want %q", line, prefix)
	}
	return line, nil
}

// readData reads a DATA body up to and without the terminating ".".
func (s *serverConn) readData() (string, error) {
	var b strings.Builder
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		if line == ".\r\n" {
			return b.String(), nil
		}
		b.WriteString(line)
	}
}

// startTLS runs the server side of a TLS handshake on the connection.
func (s *serverConn) startTLS(cfg *tls.Config) error {
	tc := tls.Server(s.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	s.Conn = tc
	s.br = bufio.NewReader(tc)
	return nil
}

// serve starts a listener on 127.0.0.1:0 whose connections are handled,
// one at a time and in order, by the handlers given; it returns the
// address. At cleanup the listener and any open connection are closed,
// and a handler's error fails the test.
func serve(t testing.TB, handlers ...func(*serverConn) error) string {
	t.Helper()
	return serveOn(t, "127.0.0.1:0", handlers...)
}

// serveOn is serve on a given listen address, e.g. "[::1]:0".
func serveOn(t testing.TB, listen string, handlers ...func(*serverConn) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open net.Conn
	done := make(chan error, 1)
	go func() {
		var errs []error
		for i, h := range handlers {
			conn, err := ln.Accept()
			if err != nil {
				errs = append(errs, fmt.Errorf("accept %d: %w", i, err))
				break
			}
			mu.Lock()
			open = conn
			mu.Unlock()
			if err := h(&serverConn{Conn: conn, br: bufio.NewReader(conn)}); err != nil {
				errs = append(errs, fmt.Errorf("connection %d: %w", i, err))
			}
			conn.Close()
		}
		done <- errors.Join(errs...)
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		if open != nil {
			open.Close()
		}
		mu.Unlock()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("test server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("test server did not finish")
		}
	})
	return ln.Addr().String()
}

// testPKI is a CA and a server certificate made for the tests.
type testPKI struct {
	ca     *x509.Certificate
	roots  *x509.CertPool
	server tls.Certificate
	leaf   *x509.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

// certs returns the test PKI: an ECDSA CA "sockmail test CA" and a server
// certificate for mx.test, localhost and 127.0.0.1, valid from an hour ago
// for a day.
func certs(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = makePKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func makePKI() (*testPKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"sockmail tests"}, CommonName: "sockmail test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{Organization: []string{"sockmail tests"}, CommonName: "mx.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"mx.test", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &testPKI{
		ca:     ca,
		roots:  roots,
		server: tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf},
		leaf:   leaf,
	}, nil
}

// serverTLS returns the server's TLS configuration.
func (p *testPKI) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
}

// clientTLS returns a client configuration that trusts the test CA.
func (p *testPKI) clientTLS(serverName string) *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: serverName}
}

// miniServer is a small, well-behaved SMTP server for tests that need a
// real conversation (TLS, MX, subscribers) rather than a fixed script. It
// records every line the client sent.
type miniServer struct {
	greeting string   // "220 mx.test ESMTP" if empty
	ext      []string // EHLO keywords before TLS
	extTLS   []string // EHLO keywords after TLS; ext if nil
	tls      *tls.Config
	implicit bool // TLS from the first byte
	// afterEHLO, if set, runs after the first EHLO reply is sent.
	afterEHLO func()

	mu    sync.Mutex
	lines []string
	data  []string
}

// got returns the client lines seen so far.
func (m *miniServer) got() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

func (m *miniServer) note(line string) {
	m.mu.Lock()
	m.lines = append(m.lines, line)
	m.mu.Unlock()
}

// handle plays one conversation.
func (m *miniServer) handle(s *serverConn) error {
	if m.implicit {
		if err := s.startTLS(m.tls); err != nil {
			return nil // the client may refuse the certificate
		}
	}
	greeting := m.greeting
	if greeting == "" {
		greeting = "220 mx.test ESMTP"
	}
	if err := s.send(greeting + "\n"); err != nil {
		return err
	}
	tlsOn := m.implicit
	ehlos := 0
	for {
		line, err := s.readLine()
		if err != nil {
			return nil
		}
		m.note(line)
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		reply := "250 2.0.0 Ok"
		switch verb {
		case "EHLO":
			ext := m.ext
			if tlsOn && m.extTLS != nil {
				ext = m.extTLS
			}
			var b strings.Builder
			b.WriteString("250")
			if len(ext) > 0 {
				b.WriteString("-")
			} else {
				b.WriteString(" ")
			}
			b.WriteString("mx.test\n")
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				b.WriteString("250" + sep + e + "\n")
			}
			reply = strings.TrimSuffix(b.String(), "\n")
			ehlos++
			if err := s.send(reply + "\n"); err != nil {
				return err
			}
			if ehlos == 1 && m.afterEHLO != nil {
				m.afterEHLO()
			}
			continue
		case "STARTTLS":
			if err := s.send("220 2.0.0 Ready to start TLS\n"); err != nil {
				return err
			}
			if err := s.startTLS(m.tls); err != nil {
				return nil
			}
			tlsOn = true
			continue
		case "AUTH":
			reply = "235 2.7.0 Authentication successful"
		case "DATA":
			if err := s.send("354 End data with <CR><LF>.<CR><LF>\n"); err != nil {
				return err
			}
			body, err := s.readData()
			if err != nil {
				return nil
			}
			m.mu.Lock()
			m.data = append(m.data, body)
			m.mu.Unlock()
			reply = "250 2.0.0 Ok: queued as MINI1"
		case "QUIT":
			return s.send("221 2.0.0 Bye\n")
		}
		if err := s.send(reply + "\n"); err != nil {
			return err
		}
	}
}

// eventLines returns the lines of the events in direction dir.
func eventLines(events []Event, dir Direction) []string {
	var out []string
	for _, ev := range events {
		if ev.Dir == dir {
			out = append(out, ev.Line)
		}
	}
	return out
}

// hasEvent reports whether an event in direction dir contains sub.
func hasEvent(events []Event, dir Direction, sub string) bool {
	for _, ev := range events {
		if ev.Dir == dir && strings.Contains(ev.Line, sub) {
			return true
		}
	}
	return false
}

// dumpTranscript renders a transcript for a failure message.
func dumpTranscript(tr *Transcript) string {
	var b strings.Builder
	_ = tr.WriteText(&b)
	return b.String()
}
