package check

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, now time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sockmail check test CA"},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a server certificate for names, valid from notBefore to
// notAfter.
func (ca *testCA) issue(t *testing.T, names []string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// scriptedServer is a minimal SMTP server for certificate and parallelism
// tests: it greets, answers EHLO (with STARTTLS before TLS), STARTTLS and
// QUIT, and refuses everything else with 502. It never accepts mail.
type scriptedServer struct {
	addr string
	tls  *tls.Config
	// gate, if above 0, holds back the greeting of the first gate
	// connections until all of them are open.
	gate    int
	arrived atomic.Int32
	all     chan struct{}
	once    sync.Once

	mu    sync.Mutex
	conns []net.Conn
	// open counts the connections open now, maxOpen the most at once.
	open, maxOpen int
}

// mostAtOnce reports the most connections that were open at once.
func (s *scriptedServer) mostAtOnce() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

func startScripted(t *testing.T, cfg *tls.Config, gate int) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedServer{addr: ln.Addr().String(), tls: cfg, gate: gate, all: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.open++
			s.maxOpen = max(s.maxOpen, s.open)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					s.mu.Lock()
					s.open--
					s.mu.Unlock()
				}()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *scriptedServer) serve(c net.Conn) {
	if n := int(s.arrived.Add(1)); s.gate > 0 && n <= s.gate {
		if n == s.gate {
			s.once.Do(func() { close(s.all) })
		}
		<-s.all
	}
	var conn net.Conn = c
	r := bufio.NewReader(conn)
	say := func(lines string) bool {
		_, err := conn.Write([]byte(strings.ReplaceAll(lines, "\n", "\r\n")))
		return err == nil
	}
	if !say("220 mx1.check.test ESMTP scripted\n") {
		return
	}
	inTLS := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch {
		case verb == "EHLO" && !inTLS:
			say("250-mx1.check.test\n250-SIZE 52428800\n250 STARTTLS\n")
		case verb == "EHLO":
			say("250-mx1.check.test\n250 SIZE 52428800\n")
		case verb == "STARTTLS" && !inTLS:
			say("220 2.0.0 go ahead\n")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, r, inTLS = tc, bufio.NewReader(tc), true
		case verb == "QUIT":
			say("221 bye\n")
			return
		default:
			say("502 5.5.1 not here\n")
		}
	}
}
