package main

// Tests of "sockmail send" against the real Postfix of the test servers.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"sockmail/internal/testenv"
)

// TestPostfixSubmission is the Done-when check of issue 2: a send to the
// local Postfix submission port with STARTTLS, AUTH and an attachment
// prints the live transcript with the password redacted, and the mail is
// in the Maildir with the attachment intact.
func TestPostfixSubmission(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	for _, mech := range []string{"", "PLAIN", "LOGIN", "CRAM-MD5"} {
		t.Run("mech="+mech, func(t *testing.T) {
			attachment := make([]byte, 300<<10)
			rand.Read(attachment)
			path := filepath.Join(t.TempDir(), "report.bin")
			if err := os.WriteFile(path, attachment, 0o600); err != nil {
				t.Fatal(err)
			}
			token, to := testenv.UniqueToken(), testenv.UniqueAddress()
			args := []string{
				"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile,
				"--auth-user", p.User, "--auth-password", p.Password,
				"--from", p.User, "--to", to, "--subject", "done-when " + token,
				"--body", "issue 2 done-when check\n", "--attach", path,
			}
			if mech != "" {
				args = append(args, "--auth-mech", mech)
			}
			code, stdout, stderr := run(t, args...)
			if code != 0 {
				t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			// The transcript, in order: greeting, EHLO, STARTTLS, the
			// verified certificate, EHLO again, AUTH redacted, the
			// transaction, the queue id, QUIT.
			order := []string{"<- 220 ", "-> EHLO [127.0.0.1]", "-> STARTTLS", "<- 220 2.0.0 Ready to start TLS",
				"== TLS handshake done", "== certificate verified for 127.0.0.1", "-> EHLO [127.0.0.1]",
				"-> AUTH ", "<- 235 2.7.0 Authentication successful", "-> MAIL FROM:<" + p.User + ">",
				"-> RCPT TO:<" + to + ">", "-> Content-Type: multipart/mixed", "== queue id: ", "<- 221 ",
				"message 1/1: sent (250 2.0.0 Ok: "}
			rest := stdout
			for _, want := range order {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("transcript lacks %q (in this order):\n%s", want, stdout)
				}
				rest = rest[i+len(want):]
			}
			if !strings.Contains(stdout, "********") {
				t.Errorf("no redacted AUTH payload:\n%s", stdout)
			}
			for _, secret := range []string{
				p.Password,
				base64.StdEncoding.EncodeToString([]byte(p.Password)),
				base64.StdEncoding.EncodeToString([]byte("\x00" + p.User + "\x00" + p.Password)),
			} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("output contains the password or its encoding %q", secret)
				}
			}
			raw := testenv.WaitForMessage(t, p.Maildir, token, testenv.StallLimit)
			got := attachmentOf(t, raw, "report.bin")
			if !bytes.Equal(got, attachment) {
				t.Errorf("delivered attachment: %d bytes, differs from the %d sent", len(got), len(attachment))
			}
		})
	}
}

// attachmentOf parses a delivered message and returns the decoded content
// of the part with the given file name.
func attachmentOf(t *testing.T, raw []byte, filename string) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered message does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no part named %q: %v", filename, err)
		}
		if part.FileName() != filename {
			continue
		}
		if enc := part.Header.Get("Content-Transfer-Encoding"); !strings.EqualFold(enc, "base64") {
			t.Fatalf("attachment encoded %q", enc)
		}
		data, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
		if err != nil {
			t.Fatalf("attachment does not decode: %v", err)
		}
		return data
	}
}

// TestPostfixPhases checks the exit statuses against the real server's
// refusals and a probe that stops early.
func TestPostfixPhases(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	auth := []string{"--ca-file", p.CAFile, "--auth-user", p.User, "--auth-password", p.Password, "--from", p.User}
	tests := []struct {
		name    string
		args    []string
		want    int
		outcome string
	}{
		{"implicit TLS port", append([]string{"--server", p.SMTPSAddr, "--tls", "implicit", "--to", testenv.UniqueAddress()}, auth...), exitOK, "sent"},
		{"recipient refused", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.RejectRecipient550}, auth...), exitRcpt, "refused: " + testenv.RejectRecipient550 + " (550"},
		{"recipient deferred", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.TempFailRecipient451}, auth...), exitRcpt, "temporary failure in rcpt"},
		{"partial", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--to", testenv.UniqueAddress() + "," + testenv.RejectRecipient550}, auth...), exitPartial, "partly sent"},
		{"wrong password", []string{"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile, "--auth-user", p.User, "--auth-password", "wrong", "--from", p.User, "--to", testenv.UniqueAddress()}, exitAuth, "in auth"},
		{"STARTTLS required by the server", []string{"--server", p.SubmissionAddr, "--tls", "none", "--from", p.User, "--to", testenv.UniqueAddress()}, exitMail, "in mail"},
		{"untrusted certificate", []string{"--server", p.SubmissionAddr, "--tls", "starttls", "--from", p.User, "--to", testenv.UniqueAddress()}, exitStartTLS, "in starttls"},
		{"quit after tls", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--quit-after", "tls", "--to", testenv.UniqueAddress()}, auth...), exitOK, "stopped after starttls"},
		{"three over one connection", append([]string{"--server", p.SubmissionAddr, "--tls", "starttls", "--count", "3", "--to", testenv.UniqueAddress()}, auth...), exitOK, "message 3/3: sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append(tc.args, "--timeout", "15s")...)
			if code != tc.want {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.outcome) {
				t.Errorf("output lacks %q:\n%s", tc.outcome, stdout)
			}
		})
	}
}

// render writes a message to a string.
func render(t *testing.T, c io.WriterTo) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// writeDKIMKey writes a new Ed25519 private key as PKCS #8 PEM and returns
// its path and the DNS TXT record that publishes its public key.
func writeDKIMKey(t *testing.T) (string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "dkim.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return path, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

// verifyDKIM checks every DKIM signature of msg with go-msgauth, the key
// published at name as txt.
func verifyDKIM(t *testing.T, msg []byte, name, txt string) {
	t.Helper()
	lookup := func(domain string) ([]string, error) {
		if domain != name {
			return nil, fmt.Errorf("no TXT record for %s", domain)
		}
		return []string{txt}, nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("dkim verify: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("no DKIM signature found")
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("DKIM signature of %s does not verify: %v", v.Domain, v.Err)
		}
	}
}

// TestPostfixFullComposer is the Done-when check of issue 3 through the
// CLI: HTML from a file, a big attachment and an inline image, DKIM
// signed, delivered by the local Postfix; Python's email package (an
// independent parser) reads back every part byte for byte, and the DKIM
// signature verifies.
func TestPostfixFullComposer(t *testing.T) {
	p := testenv.Postfix(t)
	if p == nil {
		return
	}
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if testenv.InCI() {
			t.Fatalf("%s missing: %v", py, err)
		}
		t.Skipf("%s missing: %v", py, err)
	}
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "x.html")
	html := "<html><body><h1>Grüße</h1><p>Logo: <img src=\"cid:logo.png\"></p></body></html>\n"
	big := make([]byte, 11<<20)
	rand.Read(big)
	logo := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 2000)...)
	for name, data := range map[string][]byte{"x.html": []byte(html), "big.bin": big, "logo.png": logo} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, txt := writeDKIMKey(t)
	token, to := testenv.UniqueToken(), testenv.UniqueAddress()
	code, stdout, stderr := run(t,
		"--server", p.SubmissionAddr, "--tls", "starttls", "--ca-file", p.CAFile,
		"--auth-user", p.User, "--auth-password", p.Password, "--from", p.User, "--to", to,
		"--subject", "Grüße "+token, "--html-file", htmlPath,
		"--attach", filepath.Join(dir, "big.bin"), "--inline", filepath.Join(dir, "logo.png"),
		"--dkim-key", key, "--dkim-selector", "s1", "--quiet", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("status %d\n%s%s", code, stdout, stderr)
	}
	raw := testenv.WaitForMessage(t, p.Maildir, to, testenv.StallLimit)

	// Postfix stores LF line ends; the signature was made over CRLF.
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	verifyDKIM(t, crlf, "s1._domainkey.example.test", txt)

	file := filepath.Join(dir, "delivered.eml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import email, email.policy, hashlib, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
parts = []
for part in m.walk():
    if part.is_multipart():
        parts.append({"type": part.get_content_type()})
        continue
    data = part.get_payload(decode=True)
    parts.append({"type": part.get_content_type(), "filename": part.get_filename(), "cid": part.get("Content-ID"),
                  "sha256": hashlib.sha256(data).hexdigest(), "text": part.get_content() if part.get_content_maintype() == "text" else None})
print(json.dumps({"subject": str(m["subject"]), "parts": parts}))
`
	out, err := exec.Command(py, "-c", script, file).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Subject string
		Parts   []struct {
			Type, Filename, Cid, Sha256 string
			Text                        *string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %s: %v", out, err)
	}
	if got.Subject != "Grüße "+token {
		t.Errorf("subject %q", got.Subject)
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	var types []string
	found := map[string]bool{}
	for _, part := range got.Parts {
		types = append(types, part.Type)
		switch {
		case part.Filename == "big.bin":
			found["big"] = part.Sha256 == sum(big)
		case part.Cid == "<logo.png>":
			found["logo"] = part.Sha256 == sum(logo) && part.Type == "image/png"
		case part.Type == "text/html":
			found["html"] = part.Text != nil && *part.Text == html
		case part.Type == "text/plain":
			found["text"] = part.Text != nil && strings.Contains(*part.Text, "Grüße")
		}
	}
	if want := "multipart/mixed multipart/alternative text/plain multipart/related text/html image/png application/octet-stream"; strings.Join(types, " ") != want {
		t.Errorf("structure %q, want %q", strings.Join(types, " "), want)
	}
	for _, k := range []string{"big", "logo", "html", "text"} {
		if !found[k] {
			t.Errorf("part %s missing or not byte-identical; parts %+v", k, got.Parts)
		}
	}
}
