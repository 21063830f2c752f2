package message

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// testKeys holds one RSA and one Ed25519 key, generated once per run.
type testKeys struct {
	once sync.Once
	rsa  *rsa.PrivateKey
	ed   ed25519.PrivateKey
}

func (k *testKeys) get(t *testing.T) (*rsa.PrivateKey, ed25519.PrivateKey) {
	k.once.Do(func() {
		var err error
		if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return k.rsa, k.ed
}

var keys testKeys

// smallRSAKey returns a 512-bit key, which crypto/rsa only makes when asked
// through GODEBUG.
func smallRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Setenv("GODEBUG", "rsa1024min=0")
	k, err := rsa.GenerateKey(rand.Reader, 512)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// txtRecord returns the DKIM DNS TXT record of key's public half.
func txtRecord(t *testing.T, key crypto.Signer) string {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("key %T", key)
	return ""
}

func verify(t *testing.T, data []byte, key crypto.Signer) []*dkim.Verification {
	t.Helper()
	record := txtRecord(t, key)
	v, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "sel._domainkey.example.com" {
				return nil, fmt.Errorf("unexpected lookup %s", domain)
			}
			return []string{record}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dkimpyVerify is run by the system python3 with the dkimpy module (Debian
// python3-dkim), an independent DKIM implementation. It reads a JSON list
// of {record, message} on stdin, verifies each message with its TXT record
// and prints a JSON list of booleans.
const dkimpyVerify = `
import base64, json, sys, dkim
results = []
for case in json.load(sys.stdin):
    record = case["record"].encode()
    def dns(name, timeout=5, record=record):
        return record if name == b"sel._domainkey.example.com." else None
    results.append(bool(dkim.verify(base64.b64decode(case["message"]), dnsfunc=dns)))
json.dump(results, sys.stdout)
`

// dkimpyCase is one message for dkimpyVerify and the result it should give.
type dkimpyCase struct {
	name   string
	record string
	data   []byte
	want   bool
}

// runDkimpy verifies all cases in one python3 run.
func runDkimpy(t *testing.T, py string, cases []dkimpyCase) {
	t.Helper()
	type in struct {
		Record  string `json:"record"`
		Message []byte `json:"message"`
	}
	var input []in
	for _, c := range cases {
		input = append(input, in{c.record, c.data})
	}
	js, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", dkimpyVerify)
	cmd.Stdin = bytes.NewReader(js)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, stderr.String())
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("dkimpy output %q: %v", out, err)
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("dkimpy: %s verified %v, want %v", c.name, got[i], c.want)
		}
	}
}

// dkimpy returns the python3 that has dkimpy, or "" with a logged note.
func dkimpy(t *testing.T) string {
	if err := exec.Command("/usr/bin/python3", "-c", "import dkim, nacl").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("independent DKIM verifier missing under CI (make testservers installs python3-dkim python3-nacl): %v", err)
		}
		t.Logf("independent DKIM check skipped: /usr/bin/python3 with the dkim and nacl modules not found (apt-get install python3-dkim python3-nacl): %v", err)
		return ""
	}
	return "/usr/bin/python3"
}

func TestSignDKIM(t *testing.T) {
	rk, ek := keys.get(t)
	var pyCases []dkimpyCase
	for _, key := range []crypto.Signer{rk, ek} {
		for _, s := range shapes() {
			name := fmt.Sprintf("%T/%s", key.Public(), s.name)
			t.Run(name, func(t *testing.T) {
				m := fixed(s.msg())
				signed, err := SignDKIM(m, DKIMOptions{Domain: "example.com", Selector: "sel", Signer: key})
				if err != nil {
					t.Fatal(err)
				}
				data := write(t, signed)
				if size, err := signed.Size(); err != nil || size != int64(len(data)) {
					t.Errorf("Size() = %d, %v; wrote %d", size, err, len(data))
				}
				if again := write(t, signed); !bytes.Equal(data, again) {
					t.Error("second WriteTo differs")
				}
				if !bytes.HasPrefix(data, []byte("DKIM-Signature: ")) {
					t.Fatalf("no signature first: %q", data[:40])
				}
				sigLen := len(signed.Signature())
				checkWellFormed(t, name, data[sigLen:], s.name != "intl")
				for _, line := range lines([]byte(signed.Signature())) {
					if len(line) > softLineLen && !strings.HasPrefix(line, " h=") {
						t.Errorf("signature line of %d characters: %q", len(line), line)
					}
				}
				sig := signed.Signature()
				for _, want := range []string{"c=relaxed/relaxed", "d=example.com", "s=sel", "h=From:From:"} {
					if !strings.Contains(strings.ReplaceAll(sig, "\r\n ", ""), want) {
						t.Errorf("signature lacks %s: %s", want, sig)
					}
				}
				algo := "a=rsa-sha256"
				if _, ok := key.(ed25519.PrivateKey); ok {
					algo = "a=ed25519-sha256"
				}
				if !strings.Contains(sig, algo) {
					t.Errorf("signature lacks %s", algo)
				}
				v := verify(t, data, key)
				if len(v) != 1 || v[0].Err != nil || v[0].Domain != "example.com" {
					t.Fatalf("verification: %+v", v[0])
				}
				// Tampering with the body or a signed field breaks it.
				bad := bytes.Replace(data, []byte("\r\n\r\n"), []byte("\r\n\r\nX"), 1)
				if v := verify(t, bad, key); v[0].Err == nil {
					t.Error("tampered body verified")
				}
				extra := append([]byte("From: mallory@example.org\r\n"), data...)
				if v := verify(t, extra, key); v[0].Err == nil {
					t.Error("added From verified: From must be oversigned")
				}
				record := txtRecord(t, key)
				pyCases = append(pyCases, dkimpyCase{name, record, data, true}, dkimpyCase{name + " tampered", record, bad, false})
			})
		}
	}
	if py := dkimpy(t); py != "" {
		runDkimpy(t, py, pyCases)
	}
}

func TestSignDKIMRaw(t *testing.T) {
	_, ek := keys.get(t)
	r, err := RawBytes("alice@example.com", []string{"bob@example.net"}, []byte(rawInput))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignDKIM(r, DKIMOptions{Domain: "example.com", Selector: "sel", Signer: ek, Identifier: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	data := write(t, signed)
	if v := verify(t, data, ek); v[0].Err != nil || v[0].Identifier != "alice@example.com" {
		t.Fatalf("verification: %+v", v[0])
	}
	if signed.EnvelopeFrom() != "alice@example.com" || len(signed.Recipients()) != 1 {
		t.Error("envelope not passed through")
	}
}

func TestSignDKIMOptions(t *testing.T) {
	rk, _ := keys.get(t)
	small := smallRSAKey(t)
	tests := []struct {
		name   string
		opts   DKIMOptions
		errHas string
	}{
		{"no signer", DKIMOptions{Domain: "example.com", Selector: "s"}, "message: dkim: no signer"},
		{"no domain", DKIMOptions{Selector: "s", Signer: rk}, "invalid domain"},
		{"domain CRLF", DKIMOptions{Domain: "example.com\r\n", Selector: "s", Signer: rk}, "invalid domain"},
		{"selector semicolon", DKIMOptions{Domain: "example.com", Selector: "s;x=1", Signer: rk}, "invalid selector"},
		{"small key", DKIMOptions{Domain: "example.com", Selector: "s", Signer: small}, "at least 1024"},
		{"no From in keys", DKIMOptions{Domain: "example.com", Selector: "s", Signer: rk, HeaderKeys: []string{"Subject"}}, "From"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SignDKIM(base(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %v, want %q", err, tt.errHas)
			}
		})
	}
	// An invalid message fails before signing.
	m := base()
	m.Subject = "a\nb"
	if _, err := SignDKIM(m, DKIMOptions{Domain: "example.com", Selector: "s", Signer: rk}); err == nil ||
		!strings.Contains(err.Error(), "Subject") {
		t.Fatalf("invalid message: %v", err)
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	rk, ek := keys.get(t)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	small := smallRSAKey(t)
	tests := []struct {
		name   string
		data   []byte
		errHas string
	}{
		{"pkcs1 rsa", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), ""},
		{"pkcs8 rsa", pkcs8(rk), ""},
		{"pkcs8 ed25519", pkcs8(ek), ""},
		{"small rsa", pkcs8(small), "at least 1024"},
		{"not pem", []byte("hello"), "no PEM block"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), "unsupported PEM block"},
		{"garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), "message: dkim: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tt.data)
			if tt.errHas == "" {
				if err != nil || k == nil {
					t.Fatalf("got %v, %v", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %v, want %q", err, tt.errHas)
			}
		})
	}
}
