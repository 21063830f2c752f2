package handlers_test

import (
	"crypto/x509"
	"net"
	"os"
	"testing"

	"sockmail/internal/testenv"
)

// postfixRoots returns the system pool plus the test CA, when the test
// servers are there; nil (the system pool) otherwise.
func postfixRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	env, err := testenv.ReadEnv()
	if err != nil || env["TLS_CA_FILE"] == "" {
		return nil
	}
	pem, err := os.ReadFile(env["TLS_CA_FILE"])
	if err != nil {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(pem)
	return pool
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}
