package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Env
		wantErr string
	}{
		{name: "empty", in: "", want: Env{}},
		{name: "simple", in: "A=1\nB_2=two\n", want: Env{"A": "1", "B_2": "two"}},
		{name: "comments and blanks", in: "# hello\n\n  \nA=1\n  # indented comment\n", want: Env{"A": "1"}},
		{name: "export prefix", in: "export A=1\n", want: Env{"A": "1"}},
		{name: "spaces trimmed", in: "  A = 1  \n", want: Env{"A": "1"}},
		{name: "double quotes", in: `A="x y"`, want: Env{"A": "x y"}},
		{name: "single quotes", in: `A='x "y"'`, want: Env{"A": `x "y"`}},
		{name: "unbalanced quote kept", in: `A="x`, want: Env{"A": `"x`}},
		{name: "empty value", in: "A=\n", want: Env{"A": ""}},
		{name: "equals in value", in: "DSN=postgres://u@h/db?sslmode=disable&a=b\n", want: Env{"DSN": "postgres://u@h/db?sslmode=disable&a=b"}},
		{name: "no expansion", in: "A=$HOME\n", want: Env{"A": "$HOME"}},
		{name: "later wins", in: "A=1\nA=2\n", want: Env{"A": "2"}},
		{name: "CRLF", in: "A=1\r\nB=2\r\n", want: Env{"A": "1", "B": "2"}},
		{name: "no equals", in: "A=1\nJUNK\n", wantErr: "line 2"},
		{name: "bad key", in: "1A=1\n", wantErr: "invalid key"},
		{name: "key with dash", in: "A-B=1\n", wantErr: "invalid key"},
		{name: "empty key", in: "=1\n", wantErr: "invalid key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnv(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEnv(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseEnv(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEnvRequire(t *testing.T) {
	env := Env{"A": "1", "B": "2", "E": ""}
	got, err := env.Require("B", "A")
	if err != nil || !reflect.DeepEqual(got, []string{"2", "1"}) {
		t.Errorf("Require(B, A) = %v, %v", got, err)
	}
	if _, err := env.Require("A", "C", "E"); err == nil || !strings.Contains(err.Error(), "C, E") {
		t.Errorf("Require(A, C, E) error = %v, want one naming C, E", err)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable"},
		{"postgresql://u:p@h/", "postgresql://u:p@h/db1"},
		{"postgres://h", "postgres://h/db1"},
		{"host=127.0.0.1 user=postgres dbname=test", "host=127.0.0.1 user=postgres dbname=test dbname=db1"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "db1")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestUnique(t *testing.T) {
	a, b := UniqueAddress(), UniqueAddress()
	if a == b || !strings.HasSuffix(a, "@"+Domain) || len(a) > 64 {
		t.Errorf("UniqueAddress() gave %q and %q", a, b)
	}
	if x, y := UniqueToken(), UniqueToken(); x == y || !strings.HasPrefix(x, "tok-") {
		t.Errorf("UniqueToken() gave %q and %q", x, y)
	}
}

// writeMaildirFile delivers data into maildir/sub the Maildir way (tmp/,
// then rename).
func writeMaildirFile(t *testing.T, maildir, sub, name, data string) string {
	t.Helper()
	tmp := filepath.Join(maildir, "tmp", name)
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(maildir, sub, name)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	return final
}

func newMaildir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestWaitForMessage runs in a synctest bubble: the delivery 100 ms into
// the wait and the 150 ms timeout are on its fake clock, so the test does
// not depend on the machine's speed. File times are real and therefore
// newer than the bubble's clock (it starts in 2000): only the file made
// old on purpose is older than the window.
func TestWaitForMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newMaildir(t)
		writeMaildirFile(t, dir, "new", "1.other", "Subject: other\n\nbody\n")
		old := writeMaildirFile(t, dir, "cur", "0.old", "Subject: wanted-token\n\nstale copy\n")
		past := time.Now().Add(-2 * maxMessageAge)
		if err := os.Chtimes(old, past, past); err != nil {
			t.Fatal(err)
		}
		const deliveredAfter = 100 * time.Millisecond
		go func() {
			time.Sleep(deliveredAfter)
			writeMaildirFile(t, dir, "new", "2.wanted", "Subject: wanted-token\n\nfresh\n")
		}()
		start := time.Now()
		got := WaitForMessage(t, dir, "wanted-token", 5*time.Second)
		if !strings.Contains(string(got), "fresh") {
			t.Errorf("WaitForMessage returned %q, want the fresh message", got)
		}
		if d := time.Since(start); d < deliveredAfter {
			t.Errorf("WaitForMessage returned %v into the wait (bubble time), before the message was delivered", d)
		}

		writeMaildirFile(t, dir, "cur", "3.seen", "Subject: in-cur\n\n")
		if got := WaitForMessage(t, dir, "in-cur", time.Second); !strings.Contains(string(got), "in-cur") {
			t.Errorf("message in cur/ not found: %q", got)
		}

		ft := &fakeTB{TB: t}
		start = time.Now()
		if got := WaitForMessage(ft, dir, "never-delivered", 150*time.Millisecond); got != nil {
			t.Errorf("WaitForMessage found %q for a substring never delivered", got)
		}
		if !strings.Contains(ft.failed, "never-delivered") || !strings.Contains(ft.failed, dir) {
			t.Errorf("timeout failure message = %q, want the substring and the Maildir in it", ft.failed)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 150*time.Millisecond+2*pollInterval {
			t.Errorf("timeout after %v (bubble time), want 150ms", d)
		}
	})
}

// fakeTB records Skipf and Fatalf instead of stopping the test, to check
// what the accessors do when a server is missing.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) { f.skipped = fmt.Sprintf(format, args...) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func (f *fakeTB) Errorf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

// TestMissingServers checks the skip-or-fail rule: skip with a hint
// locally, fail under CI=true.
func TestMissingServers(t *testing.T) {
	accessors := map[string]func(testing.TB) bool{
		"Postfix":  func(tb testing.TB) bool { return Postfix(tb) == nil },
		"AIOSMTPD": func(tb testing.TB) bool { return AIOSMTPD(tb) == nil },
		"Postgres": func(tb testing.TB) bool { return Postgres(tb) == "" },
		"Chromium": func(tb testing.TB) bool { return Chromium(tb) == "" },
	}
	for name, call := range accessors {
		for _, ci := range []string{"", "true"} {
			t.Run(name+"/CI="+ci, func(t *testing.T) {
				t.Setenv(StateDirVar, t.TempDir()) // no env file there
				t.Setenv(PostgresDSNVar, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
				t.Setenv("PATH", t.TempDir())
				t.Setenv("CI", ci)
				ft := &fakeTB{TB: t}
				if !call(ft) {
					t.Fatalf("%s returned a value with nothing running", name)
				}
				if ci == "true" {
					if ft.failed == "" || ft.skipped != "" || !strings.Contains(ft.failed, "CI=true") {
						t.Errorf("CI=true: failed=%q skipped=%q, want a failure", ft.failed, ft.skipped)
					}
					return
				}
				if ft.skipped == "" || ft.failed != "" {
					t.Errorf("CI unset: failed=%q skipped=%q, want a skip", ft.failed, ft.skipped)
				}
				if name != "Postgres" && !strings.Contains(ft.skipped, "make testservers") {
					t.Errorf("skip message %q does not say how to start the server", ft.skipped)
				}
			})
		}
	}
}

func TestServerDown(t *testing.T) {
	// An env file whose servers do not answer counts as missing.
	dir := t.TempDir()
	writeTestCA(t, filepath.Join(dir, "ca.pem"))
	env := "TLS_CA_FILE=" + filepath.Join(dir, "ca.pem") + "\nTLS_SERVER_NAME=localhost\n" +
		"AIOSMTPD_HOST=127.0.0.1\nAIOSMTPD_PORT=1\nAIOSMTPD_MAILDIR=" + dir + "\nAIOSMTPD_MESSAGE_SIZE_LIMIT=10\n"
	if err := os.WriteFile(filepath.Join(dir, EnvFileName), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(StateDirVar, dir)
	t.Setenv("CI", "")
	ft := &fakeTB{TB: t}
	if AIOSMTPD(ft) != nil || !strings.Contains(ft.skipped, "127.0.0.1:1") {
		t.Errorf("AIOSMTPD with nothing on its port: skipped=%q failed=%q, want a skip naming the address", ft.skipped, ft.failed)
	}
}

// writeTestCA writes a self-signed CA certificate in PEM to path.
func writeTestCA(t *testing.T, path string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add("A=1\nexport B='x y'\n# c\n")
	f.Add("DSN=postgres://u@h/db?a=b\r\n")
	f.Add("=\n\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		env, err := ParseEnv(strings.NewReader(in))
		if err != nil {
			return
		}
		for k, v := range env {
			if !validKey(k) {
				t.Errorf("accepted invalid key %q", k)
			}
			if strings.ContainsAny(v, "\n") {
				t.Errorf("value %q of %s spans lines", v, k)
			}
		}
	})
}

func TestReadAxeScript(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	axe := "/*! axe v4.14.1\n */\n!function(){axe.run=function(){}}();"
	tests := []struct {
		name, path, wantErr string
	}{
		{"axe", write("axe.min.js", axe), ""},
		{"missing", filepath.Join(dir, "nothere.js"), "no such file"},
		{"empty", write("empty.js", ""), "empty file"},
		{"another script", write("jquery.js", "/*! jQuery v3.7.1 */ jQuery.run=1"), "not axe-core's"},
		{"banner without axe.run", write("half.js", "/*! axe v4.14.1 */ var x;"), "no axe.run"},
		{"too large", write("big.js", axe+strings.Repeat(" ", maxAxeScript)), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAxeScript(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readAxeScript(%s) error = %v, want one containing %q", tt.path, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != axe {
				t.Fatalf("readAxeScript(%s) = %d bytes, %v; want the file", tt.path, len(got), err)
			}
		})
	}
}

func TestAxeScriptInstalled(t *testing.T) {
	script := AxeScript(t)
	if !strings.HasPrefix(script, "/*! axe v4.") {
		t.Errorf("axe script starts %q", script[:min(len(script), 40)])
	}
}
