package smtp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// AUTH (RFC 4954): the exact bytes of each mechanism, the choice of
// mechanism, the refusal to send credentials in clear text, and that no
// rendering of the transcript ever holds a secret.

const (
	authUser  = "user@example.org"
	authPass  = "Pa55w0rdSECRET"
	authToken = "ya29.TOKENSECRET"
)

func authConfig(f *faker, a *Auth) Config {
	cfg := fakeConfig(f)
	cfg.Auth = a
	cfg.AllowInsecureAuth = true // the faker has no TLS
	return cfg
}

func TestAuthExactBytes(t *testing.T) {
	const tail = "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n"
	rest := lf("MAIL FROM:<a@example.org>\n") + "|" + lf("RCPT TO:<b@example.net>\n") + "|" + lf("DATA\n") + "|" + lf("x\n.\n") + "|" + lf("QUIT\n")
	tests := []struct {
		name   string
		offer  string
		auth   Auth
		server string // replies to the AUTH exchange
		client string // the AUTH exchange
	}{
		{
			name: "PLAIN", offer: "PLAIN", auth: Auth{Username: authUser, Password: authPass},
			server: "235 2.7.0 ok\n",
			client: lf("AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n"),
		},
		{
			name: "LOGIN", offer: "LOGIN", auth: Auth{Username: authUser, Password: authPass},
			server: "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 ok\n",
			client: lf("AUTH LOGIN\n") + "|" + lf("dXNlckBleGFtcGxlLm9yZw==\n") + "|" + lf("UGE1NXcwcmRTRUNSRVQ=\n"),
		},
		{
			// RFC 2195's own example: the HMAC must match it exactly.
			name: "CRAM-MD5 (RFC 2195 example)", offer: "CRAM-MD5", auth: Auth{Username: "tim", Password: "tanstaaftanstaaf"},
			server: "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\n235 2.7.0 ok\n",
			client: lf("AUTH CRAM-MD5\n") + "|" + lf("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\n"),
		},
		{
			name: "XOAUTH2", offer: "XOAUTH2 PLAIN", auth: Auth{Username: authUser, Token: authToken},
			server: "235 2.7.0 Accepted\n",
			client: lf("AUTH XOAUTH2 dXNlcj11c2VyQGV4YW1wbGUub3JnAWF1dGg9QmVhcmVyIHlhMjkuVE9LRU5TRUNSRVQBAQ==\n"),
		},
		{
			name: "named mechanism in lower case", offer: "CRAM-MD5 LOGIN PLAIN", auth: Auth{Username: authUser, Password: authPass, Mechanism: "login"},
			server: "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 ok\n",
			client: lf("AUTH LOGIN\n") + "|" + lf("dXNlckBleGFtcGxlLm9yZw==\n") + "|" + lf("UGE1NXcwcmRTRUNSRVQ=\n"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker("220 mx.test\n250-mx.test\n250 AUTH " + tt.offer + "\n" + tt.server + tail)
			a := tt.auth
			cfg := authConfig(f, &a)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			if err != nil || StatusOf(res, err) != StatusSent {
				t.Fatalf("err %v\n%s", err, dumpTranscript(cfg.Transcript))
			}
			want := lf("EHLO client.test\n") + "|" + tt.client + "|" + rest
			if got := f.client(); got != want {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
			}
			if !hasEvent(cfg.Transcript.Events(), DirInfo, "sending credentials WITHOUT TLS (explicitly allowed)") {
				t.Errorf("the insecure override is not in the transcript")
			}
		})
	}
}

// TestXOAUTH2ErrorFlow: on a bad token the server answers 334 with a
// base64 JSON error; the client sends an empty line and gets the final
// error (Google's documented flow).
func TestXOAUTH2ErrorFlow(t *testing.T) {
	f := newFaker("220 mx.test\n250-mx.test\n250-ENHANCEDSTATUSCODES\n250 AUTH XOAUTH2\n" +
		"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\n" +
		"535-5.7.8 Username and Password not accepted.\n535 5.7.8 https://support.example/?p=BadCredentials\n221 Bye\n")
	cfg := authConfig(f, &Auth{Username: authUser, Token: authToken})
	res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
	want := lf("EHLO client.test\n") + "|" +
		lf("AUTH XOAUTH2 dXNlcj11c2VyQGV4YW1wbGUub3JnAWF1dGg9QmVhcmVyIHlhMjkuVE9LRU5TRUNSRVQBAQ==\n") + "|" + lf("\n") + "|" + lf("QUIT\n")
	if got := f.client(); got != want {
		t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseAuth || e.Code != 535 || e.EnhancedCode != "5.7.8" || e.Temporary() {
		t.Fatalf("err = %v, want a permanent auth 535 5.7.8", err)
	}
	if StatusOf(res, err) != StatusPermFail {
		t.Errorf("status %q", StatusOf(res, err))
	}
	if !hasEvent(cfg.Transcript.Events(), DirInfo, `XOAUTH2 error detail: {"status":"401"`) {
		t.Errorf("the decoded error detail is not in the transcript:\n%s", dumpTranscript(cfg.Transcript))
	}
	assertNoSecrets(t, cfg.Transcript, err)
}

func TestAuthFailures(t *testing.T) {
	tests := []struct {
		name   string
		offer  string // EHLO extension lines after the name
		auth   Auth
		server string
		client string // after EHLO, without QUIT
		code   int
		temp   bool
		msg    string
	}{
		{name: "535 wrong password", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "535 5.7.8 Error: authentication failed\n",
			client: lf("AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n"), code: 535, msg: "authentication failed"},
		{name: "534 mechanism too weak (RFC 4954 6): permanent", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "534 5.7.9 Authentication mechanism is too weak\n",
			client: lf("AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n"), code: 534, msg: "too weak"},
		{name: "538 encryption required (RFC 4954 6): permanent", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "538 5.7.11 Encryption required for requested authentication mechanism\n",
			client: lf("AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n"), code: 538, msg: "Encryption required"},
		{name: "454 temporary", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "454 4.7.0 Temporary authentication failure\n",
			client: lf("AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n"), code: 454, temp: true},
		{name: "LOGIN refused at the password", offer: "250 AUTH LOGIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n535 5.7.8 no\n",
			client: lf("AUTH LOGIN\n") + "|" + lf("dXNlckBleGFtcGxlLm9yZw==\n") + "|" + lf("UGE1NXcwcmRTRUNSRVQ=\n"), code: 535},
		{name: "LOGIN challenge not base64: cancelled with * (RFC 4954 4), not answered with QUIT", offer: "250 AUTH LOGIN\n", auth: Auth{Username: authUser, Password: authPass},
			server: "334 !!not base64!!\n501 5.7.0 Authentication cancelled\n",
			client: lf("AUTH LOGIN\n") + "|" + lf("*\n"), code: 334, msg: "not base64"},
		{name: "CRAM-MD5 refused", offer: "250 AUTH CRAM-MD5\n", auth: Auth{Username: authUser, Password: authPass},
			server: "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\n535 5.7.8 no\n",
			client: lf("AUTH CRAM-MD5\n") + "|" + lf("dXNlckBleGFtcGxlLm9yZyBiYTlmNzhjMjkzMjRlNTNkMWQ5ZDZhZTg4MTFlM2NlMA==\n"), code: 535},
		{name: "no mechanism in common", offer: "250 AUTH GSSAPI NTLM\n", auth: Auth{Username: authUser, Password: authPass},
			msg: "no AUTH mechanism in common"},
		{name: "named mechanism not offered", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass, Mechanism: "CRAM-MD5"},
			msg: "does not offer AUTH CRAM-MD5"},
		{name: "unknown mechanism named", offer: "250 AUTH PLAIN\n", auth: Auth{Username: authUser, Password: authPass, Mechanism: "DIGEST-MD5"},
			msg: "unsupported AUTH mechanism"},
		{name: "no AUTH offered", offer: "250 8BITMIME\n", auth: Auth{Username: authUser, Password: authPass},
			msg: "does not offer AUTH"},
		{name: "XOAUTH2 not picked without a token", offer: "250 AUTH XOAUTH2\n", auth: Auth{Username: authUser, Password: authPass},
			msg: "no AUTH mechanism in common"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker("220 mx.test\n250-mx.test\n" + tt.offer + tt.server + "221 Bye\n")
			a := tt.auth
			cfg := authConfig(f, &a)
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			want := lf("EHLO client.test\n") + "|"
			if tt.client != "" {
				want += tt.client + "|"
			}
			want += lf("QUIT\n")
			if got := f.client(); got != want {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Phase != PhaseAuth || e.Code != tt.code || e.Temporary() != tt.temp {
				t.Fatalf("err = %v; want phase auth, code %d, temporary %v", err, tt.code, tt.temp)
			}
			if !strings.Contains(e.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", e.Error(), tt.msg)
			}
			want2 := StatusPermFail
			if tt.temp {
				want2 = StatusTempFail
			}
			if st := StatusOf(res, err); st != want2 {
				t.Errorf("status %q, want %q", st, want2)
			}
			assertNoSecrets(t, cfg.Transcript, err)
		})
	}
}

// TestAuthChoosesStrongest: with no mechanism named, the strongest one the
// server offers and the credentials can serve.
func TestAuthChoosesStrongest(t *testing.T) {
	tests := []struct {
		offer string
		token bool
		want  string
	}{
		{"PLAIN LOGIN", false, "PLAIN"},
		{"LOGIN PLAIN", false, "PLAIN"},
		{"LOGIN", false, "LOGIN"},
		{"LOGIN PLAIN CRAM-MD5", false, "CRAM-MD5"},
		{"login cram-md5", false, "CRAM-MD5"},
		{"XOAUTH2 PLAIN CRAM-MD5", false, "CRAM-MD5"},
		{"XOAUTH2 PLAIN CRAM-MD5", true, "XOAUTH2"},
		{"GSSAPI PLAIN", false, "PLAIN"},
	}
	for _, tt := range tests {
		f := newFaker("220 mx.test\n250-mx.test\n250 AUTH " + tt.offer + "\n")
		a := &Auth{Username: authUser, Password: authPass}
		if tt.token {
			a.Token = authToken
		}
		c, err := Dial(context.Background(), authConfig(f, a))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := c.pickMechanism(a)
		if err != nil || got != tt.want {
			t.Errorf("offer %q token %v: picked %q (%v), want %q", tt.offer, tt.token, got, err, tt.want)
		}
	}
}

// TestAuthRefusedWithoutTLS: credentials never go over a connection
// without TLS unless explicitly allowed, and nothing of them is sent.
func TestAuthRefusedWithoutTLS(t *testing.T) {
	for _, mode := range []TLSMode{TLSNone, TLSStartTLSOptional} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFaker(ehloAuth + "221 Bye\n")
			cfg := fakeConfig(f)
			cfg.TLS = mode
			cfg.Auth = &Auth{Username: authUser, Password: authPass}
			res, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			want := lf("EHLO client.test\n") + "|" + lf("QUIT\n")
			if got := f.client(); got != want {
				t.Errorf("client wrote:\n%q\nwant:\n%q", got, want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Phase != PhaseAuth || e.Temporary() || !strings.Contains(e.Message, "unencrypted") {
				t.Fatalf("err = %v, want a permanent auth error about the unencrypted connection", err)
			}
			if StatusOf(res, err) != StatusPermFail {
				t.Errorf("status %q", StatusOf(res, err))
			}
			if strings.Contains(f.wire(), "AUTH") {
				t.Errorf("AUTH went out in clear text: %q", f.wire())
			}
		})
	}
}

// secretForms lists what must never appear in any rendering of a
// transcript: the password and token, their base64, and each payload.
func secretForms() []string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return []string{
		authPass, authToken,
		b64(authPass), b64(authToken),
		b64("\x00" + authUser + "\x00" + authPass),
		b64("user=" + authUser + "\x01auth=Bearer " + authToken + "\x01\x01"),
		"AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ", // PLAIN blob without padding
		"UGE1NXcwcmRTRUNSRVQ",                         // password base64 without padding
	}
}

// assertNoSecrets scans the events, the text and JSON renderings and the
// error for any form of the credentials.
func assertNoSecrets(t *testing.T, tr *Transcript, err error) {
	t.Helper()
	var text bytes.Buffer
	if werr := tr.WriteText(&text); werr != nil {
		t.Fatal(werr)
	}
	js, jerr := json.Marshal(tr)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var lines []string
	for _, ev := range tr.Events() {
		lines = append(lines, ev.Line)
	}
	renderings := map[string]string{
		"events": strings.Join(lines, "\n"),
		"text":   text.String(),
		"json":   string(js),
	}
	if err != nil {
		renderings["error"] = err.Error()
	}
	for name, s := range renderings {
		for _, secret := range secretForms() {
			if strings.Contains(s, secret) {
				t.Errorf("%s rendering of the transcript holds the secret %q:\n%s", name, secret, s)
			}
		}
	}
}

// TestTranscriptNeverHoldsSecrets runs every mechanism, succeeding and
// failing, and scans every rendering.
func TestTranscriptNeverHoldsSecrets(t *testing.T) {
	tests := []struct {
		name, offer, server string
		auth                Auth
		secretEvents        int
	}{
		{"PLAIN ok", "PLAIN", "235 ok\n", Auth{Username: authUser, Password: authPass}, 1},
		{"PLAIN refused", "PLAIN", "535 5.7.8 no\n", Auth{Username: authUser, Password: authPass}, 1},
		{"LOGIN ok", "LOGIN", "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 ok\n", Auth{Username: authUser, Password: authPass}, 2},
		{"LOGIN refused", "LOGIN", "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n535 no\n", Auth{Username: authUser, Password: authPass}, 2},
		{"CRAM-MD5 ok", "CRAM-MD5", "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\n235 ok\n", Auth{Username: authUser, Password: authPass}, 1},
		{"XOAUTH2 ok", "XOAUTH2", "235 ok\n", Auth{Username: authUser, Token: authToken}, 1},
		{"XOAUTH2 refused", "XOAUTH2", "334 e30=\n535 no\n", Auth{Username: authUser, Token: authToken}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker("220 mx.test\n250-mx.test\n250 AUTH " + tt.offer + "\n" + tt.server + "250 Ok\n250 Ok\n354 go\n250 Ok\n221 Bye\n")
			a := tt.auth
			cfg := authConfig(f, &a)
			_, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			assertNoSecrets(t, cfg.Transcript, err)
			n := 0
			for _, ev := range cfg.Transcript.Events() {
				if ev.Secret {
					n++
					if ev.Dir != DirClient || !strings.Contains(ev.Line, redacted) {
						t.Errorf("secret event %+v is not a redacted client line", ev)
					}
				}
			}
			if n != tt.secretEvents {
				t.Errorf("%d secret events, want %d:\n%s", n, tt.secretEvents, dumpTranscript(cfg.Transcript))
			}
			// The wire did carry the credentials: the test would be empty otherwise.
			if !strings.Contains(f.wire(), "AUTH") {
				t.Errorf("no AUTH on the wire")
			}
		})
	}
}

// TestEchoedCredentialsRedacted: a server that quotes the AUTH payload or
// the password back in its reply does not get it into the transcript or
// the error.
func TestEchoedCredentialsRedacted(t *testing.T) {
	tests := []struct {
		name, offer, server string
		broken              bool // the reply breaks the protocol: the connection ends
	}{
		{"PLAIN blob echoed", "PLAIN", "501 5.5.2 Cannot decode AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAUGE1NXcwcmRTRUNSRVQ=\n", false},
		{"password echoed", "PLAIN", "535-5.7.8 user@example.org/Pa55w0rdSECRET\n535 5.7.8 rejected\n", false},
		{"LOGIN password line echoed", "LOGIN", "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n500 5.5.1 unrecognized command UGE1NXcwcmRTRUNSRVQ=\n", false},
		{"XOAUTH2 token echoed in the error detail", "XOAUTH2", "334 eyJ0b2tlbiI6InlhMjkuVE9LRU5TRUNSRVQifQ==\n535 5.7.8 bad token ya29.TOKENSECRET\n", false},
		{"password in a malformed reply", "PLAIN", "5x5 user@example.org/Pa55w0rdSECRET\n", true},
		{"password in a broken multi-line reply", "PLAIN", "535-5.7.8 rejected\n550 user@example.org/Pa55w0rdSECRET\n", true},
		{"password cut at the end of an over-long line", "PLAIN", strings.Repeat("5", 3) + " " + strings.Repeat("x", 70) + "Pa55w0rdSECRET" + strings.Repeat("y", 5000) + "\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaker("220 mx.test\n250-mx.test\n250 AUTH " + tt.offer + "\n" + tt.server + "221 Bye\n")
			cfg := authConfig(f, &Auth{Username: authUser, Password: authPass, Token: authToken})
			_, err := SendMail(context.Background(), cfg, envelope1, strings.NewReader("x\n"), SendOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			assertNoSecrets(t, cfg.Transcript, err)
			// Not even the beginning of the password, where a line was cut.
			if prefix := authPass[:6]; strings.Contains(err.Error(), prefix) || hasEvent(cfg.Transcript.Events(), DirInfo, prefix) {
				t.Errorf("the beginning of the password %q shows: %v\n%s", prefix, err, dumpTranscript(cfg.Transcript))
			}
			// Lines after AUTH are left alone.
			if !tt.broken && !hasEvent(cfg.Transcript.Events(), DirServer, "221 Bye") {
				t.Errorf("later lines changed:\n%s", dumpTranscript(cfg.Transcript))
			}
		})
	}
}
