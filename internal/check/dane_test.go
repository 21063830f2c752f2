package check

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testChain makes a leaf certificate signed by a CA, returned leaf first.
func testChain(t *testing.T) []*x509.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mx.example.org"},
		DNSNames: []string{"mx.example.org"}, NotBefore: now, NotAfter: now.AddDate(0, 3, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf, ca}
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sha512Hex(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

func TestParseTLSA(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		in      string
		want    TLSA
		wantErr string
	}{
		{in: "3 1 1 " + h, want: TLSA{Usage: 3, Selector: 1, MatchingType: 1}},
		{in: "2 0 1 " + h[:32] + " " + h[32:], want: TLSA{Usage: 2, Selector: 0, MatchingType: 1}},
		{in: "3 1 1", wantErr: "want usage, selector"},
		{in: "1 1 1 " + h, wantErr: "usage 1 is not for SMTP"},
		{in: "0 0 1 " + h, wantErr: "usage 0 is not for SMTP"},
		{in: "3 2 1 " + h, wantErr: "selector 2"},
		{in: "3 1 3 " + h, wantErr: "matching type 3"},
		{in: "3 1 1 abcd", wantErr: "2 bytes long, wrong for matching type 1"},
		{in: "3 1 2 " + h, wantErr: "32 bytes long, wrong for matching type 2"},
		{in: "3 1 1 zz", wantErr: "not hexadecimal"},
		{in: "300 1 1 " + h, wantErr: "usage \"300\""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTLSA(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTLSA = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Usage != tt.want.Usage || got.Selector != tt.want.Selector || got.MatchingType != tt.want.MatchingType || hex.EncodeToString(got.Data) != h {
				t.Fatalf("ParseTLSA = %+v, %v; want %+v with data %s", got, err, tt.want, h)
			}
		})
	}
}

func TestTLSAMatches(t *testing.T) {
	chain := testChain(t)
	leaf, ca := chain[0], chain[1]
	other := testChain(t)[0]
	tests := []struct {
		name  string
		rec   string
		chain []*x509.Certificate
		want  bool
	}{
		{"DANE-EE key SHA-256", "3 1 1 " + sha256Hex(leaf.RawSubjectPublicKeyInfo), chain, true},
		{"DANE-EE certificate SHA-512", "3 0 2 " + sha512Hex(leaf.Raw), chain, true},
		{"DANE-EE key exact", "3 1 0 " + hex.EncodeToString(leaf.RawSubjectPublicKeyInfo), chain, true},
		{"DANE-EE certificate of another server", "3 0 1 " + sha256Hex(other.Raw), chain, false},
		{"DANE-EE does not match the CA", "3 1 1 " + sha256Hex(ca.RawSubjectPublicKeyInfo), chain, false},
		{"DANE-TA matches the CA", "2 1 1 " + sha256Hex(ca.RawSubjectPublicKeyInfo), chain, true},
		{"DANE-TA does not match the leaf", "2 1 1 " + sha256Hex(leaf.RawSubjectPublicKeyInfo), chain, false},
		{"DANE-TA without the CA in the chain", "2 0 1 " + sha256Hex(ca.Raw), chain[:1], false},
		{"empty chain", "3 1 1 " + sha256Hex(leaf.RawSubjectPublicKeyInfo), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseTLSA(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Matches(tt.chain); got != tt.want {
				t.Errorf("%s Matches = %v, want %v", rec, got, tt.want)
			}
		})
	}
}
