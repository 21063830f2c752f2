package interop

// The interoperability matrix: the same cases sent with the sockmail client
// to each real server of .ci/servers.sh (Postfix, aiosmtpd, Haraka, Mailpit,
// Inbucket), every stored copy read back and compared byte for byte with
// what was sent, the server's own trace header fields aside. Subtests are
// named server/case, so a failure reads as a cell of the README's matrix.
//
// Line ends: Postfix (Maildir) and Inbucket are known to store LF line
// ends, so for them the sent CRLF become LF before comparing; every other
// server must store the CRLF bytes as sent. Nothing else is normalised.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/testenv"
	"sockmail/smtp"
	"sockmail/smtp/message"
)

// endpoint is one way into a server.
type endpoint struct {
	addr  string
	tls   smtp.TLSMode
	auth  *smtp.Auth // nil: no AUTH
	store Store      // where this endpoint's messages land
}

// server is one real server under test and what it is known to offer.
type server struct {
	name string
	// plain is the port with STARTTLS offered (used without TLS, and with
	// STARTTLS).
	plain endpoint
	// implicit is the implicit-TLS endpoint, nil when not offered.
	implicit *endpoint
	// authAt is where AUTH is tried, with the credentials (Mechanism set
	// per case); mechs the mechanisms it must offer there (in any order); authRefused: it offers AUTH but refuses every
	// credential by design (aiosmtpd's sink has no authenticator).
	authAt      endpoint
	mechs       []string
	authRefused bool
	// smtputf8: SMTPUTF8 is offered (otherwise the client must refuse a
	// UTF-8 address before MAIL).
	smtputf8 bool
	// lf: the store keeps LF line ends; trace: the header fields the
	// server puts before the message.
	lf    bool
	trace []string
	ca    testenv.CA
}

// sinkTrace are the lines the aiosmtpd and Haraka sinks write before the
// message.
var sinkTrace = []string{"X-Sink-Peer", "X-Sink-Helo", "X-Sink-TLS", "X-Sink-Auth", "X-Sink-Mail-From", "X-Sink-Rcpt-To"}

// servers returns the servers under test, each loaded when its subtest runs
// (a missing server skips its cells, or fails them under CI=true).
func servers(since time.Time) []struct {
	name string
	load func(t *testing.T) *server
} {
	// Reads the REST stores; its timeout bounds each request.
	httpClient := &http.Client{Timeout: 60 * time.Second}
	return []struct {
		name string
		load func(t *testing.T) *server
	}{
		{"postfix", func(t *testing.T) *server {
			p := testenv.Postfix(t)
			if p == nil {
				return nil
			}
			st := &Maildir{Dir: p.Maildir, Marker: PostfixMarker, Since: since}
			auth := &smtp.Auth{Username: p.User, Password: p.Password}
			return &server{
				name:     "postfix",
				plain:    endpoint{addr: p.SMTPAddr, store: st},
				implicit: &endpoint{addr: p.SMTPSAddr, tls: smtp.TLSImplicit, auth: auth, store: st},
				authAt:   endpoint{addr: p.SubmissionAddr, tls: smtp.TLSStartTLS, auth: auth, store: st},
				mechs:    []string{"PLAIN", "LOGIN", "CRAM-MD5"},
				smtputf8: true,
				lf:       true,
				trace:    []string{"Return-Path", "X-Original-To", "Delivered-To", "Received"},
				ca:       p.CA,
			}
		}},
		{"aiosmtpd", func(t *testing.T) *server {
			a := testenv.AIOSMTPD(t)
			if a == nil {
				return nil
			}
			st := &Maildir{Dir: a.Maildir, Marker: SinkMarker, Since: since}
			return &server{
				name:        "aiosmtpd",
				plain:       endpoint{addr: a.Addr, store: st},
				authAt:      endpoint{addr: a.Addr, tls: smtp.TLSStartTLS, auth: &smtp.Auth{Username: "tester", Password: "any"}, store: st},
				mechs:       []string{"LOGIN", "PLAIN"},
				authRefused: true,
				smtputf8:    true,
				trace:       sinkTrace,
				ca:          a.CA,
			}
		}},
		{"haraka", func(t *testing.T) *server {
			v := peerEnv(t, "Haraka", "HARAKA_HOST", "HARAKA_PORT", "HARAKA_SMTPS_PORT", "HARAKA_MAILDIR", "POSTFIX_USER", "POSTFIX_PASSWORD")
			if v == nil {
				return nil
			}
			st := &Maildir{Dir: v.vals[3], Marker: SinkMarker, Since: since}
			return &server{
				name:     "haraka",
				plain:    endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), store: st},
				implicit: &endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[2]), tls: smtp.TLSImplicit, store: st},
				authAt: endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), tls: smtp.TLSStartTLS,
					auth: &smtp.Auth{Username: v.vals[4], Password: v.vals[5]}, store: st},
				mechs:    []string{"PLAIN", "LOGIN", "CRAM-MD5"},
				smtputf8: true,
				// Authentication-Results (RFC 8601) after AUTH.
				trace: append([]string{"Received", "Authentication-Results"}, sinkTrace...),
				ca:    v.ca,
			}
		}},
		{"mailpit", func(t *testing.T) *server {
			v := peerEnv(t, "Mailpit", "MAILPIT_HOST", "MAILPIT_PORT", "MAILPIT_API", "MAILPIT_TLS_PORT", "MAILPIT_TLS_API")
			if v == nil {
				return nil
			}
			st := &Mailpit{API: v.vals[2], Client: httpClient}
			return &server{
				name:     "mailpit",
				plain:    endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), store: st},
				implicit: &endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[3]), tls: smtp.TLSImplicit, store: &Mailpit{API: v.vals[4], Client: httpClient}},
				// --smtp-auth-accept-any: any credentials.
				authAt: endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), tls: smtp.TLSStartTLS,
					auth: &smtp.Auth{Username: "tester", Password: "any"}, store: st},
				mechs:    []string{"LOGIN", "PLAIN"},
				smtputf8: true,
				trace:    []string{"Return-Path", "Received"},
				ca:       v.ca,
			}
		}},
		{"inbucket", func(t *testing.T) *server {
			v := peerEnv(t, "Inbucket", "INBUCKET_HOST", "INBUCKET_PORT", "INBUCKET_API", "INBUCKET_TLS_PORT", "INBUCKET_TLS_API")
			if v == nil {
				return nil
			}
			st := &Inbucket{API: v.vals[2], Client: httpClient}
			return &server{
				name:     "inbucket",
				plain:    endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), store: st},
				implicit: &endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[3]), tls: smtp.TLSImplicit, store: &Inbucket{API: v.vals[4], Client: httpClient}},
				// Inbucket accepts any credentials.
				authAt: endpoint{addr: net.JoinHostPort(v.vals[0], v.vals[1]), tls: smtp.TLSStartTLS,
					auth: &smtp.Auth{Username: "tester", Password: "any"}, store: st},
				mechs: []string{"PLAIN", "LOGIN"},
				// Its own two fields end in CRLF, the message in LF.
				lf:    true,
				trace: []string{"Return-Path", "Received"},
				ca:    v.ca,
			}
		}},
	}
}

// peerValues are a peer server's env values and the test CA.
type peerValues struct {
	vals []string
	ca   testenv.CA
}

// peerEnv reads keys from the servers' env file and checks that the SMTP
// ports (keys named *_PORT) accept connections. A missing server skips the
// test, or fails it under CI=true.
func peerEnv(t *testing.T, what string, keys ...string) *peerValues {
	t.Helper()
	fail := func(err error) *peerValues {
		t.Helper()
		if testenv.InCI() {
			t.Fatalf("interop: %s test server unavailable: %v\n(CI=true: a missing test server is a failure; %s)", what, err, testenv.StartHint)
		}
		t.Skipf("interop: %s test server unavailable: %v; %s", what, err, testenv.StartHint)
		return nil
	}
	env, err := testenv.ReadEnv()
	if err != nil {
		return fail(err)
	}
	vals, err := env.Require(append(keys, "TLS_CA_FILE", "TLS_SERVER_NAME")...)
	if err != nil {
		return fail(err)
	}
	ca, err := loadCA(vals[len(keys)], vals[len(keys)+1])
	if err != nil {
		return fail(err)
	}
	for i, k := range keys {
		if !strings.HasSuffix(k, "_PORT") {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(vals[0], vals[i]), 5*time.Second)
		if err != nil {
			return fail(err)
		}
		c.Close()
	}
	return &peerValues{vals: vals[:len(keys)], ca: ca}
}

// cell is one case of the matrix, run against each server.
type cell struct {
	name string
	run  func(t *testing.T, s *server)
}

// TestInterop sends the matrix to every server. Servers run in parallel,
// the cases of one server one after another.
func TestInterop(t *testing.T) {
	since := time.Now().Add(-time.Minute)
	cli := &cliBinary{}
	t.Cleanup(func() {
		if cli.path != "" {
			os.RemoveAll(filepath.Dir(cli.path))
		}
	})
	cells := []cell{
		{"plain", func(t *testing.T, s *server) { sendOne(t, s, s.plain, textMessage(t, "plain")) }},
		{"starttls", func(t *testing.T, s *server) {
			ep := s.plain
			ep.tls = smtp.TLSStartTLS
			sendOne(t, s, ep, textMessage(t, "starttls"))
		}},
		{"implicit-tls", func(t *testing.T, s *server) {
			if s.implicit == nil {
				t.Skipf("%s offers no implicit TLS port", s.name)
			}
			sendOne(t, s, *s.implicit, textMessage(t, "implicit-tls"))
		}},
		{"auth-offered", testAuthOffered},
		{"auth-PLAIN", func(t *testing.T, s *server) { testAuth(t, s, "PLAIN") }},
		{"auth-LOGIN", func(t *testing.T, s *server) { testAuth(t, s, "LOGIN") }},
		{"auth-CRAM-MD5", func(t *testing.T, s *server) { testAuth(t, s, "CRAM-MD5") }},
		{"utf8-text", func(t *testing.T, s *server) {
			tok := testenv.UniqueToken()
			m := compose(t, "Grüße, 世界 — "+tok, []string{testenv.UniqueAddress()}, func(m *message.Message) {
				m.From = &mail.Address{Name: "Jörg Müller", Address: "tester@example.test"}
				m.Text = "Größe: 5 €\nこんにちは、世界\nÆØÅ æøå " + tok + "\n"
			})
			sendOne(t, s, s.plain, m)
		}},
		{"html-inline-5mb", func(t *testing.T, s *server) {
			tok := testenv.UniqueToken()
			big := make([]byte, 5<<20)
			rand.Read(big)
			m := compose(t, "html "+tok, []string{testenv.UniqueAddress()}, func(m *message.Message) {
				m.HTML = `<p>Logo: <img src="cid:logo@sockmail.test" alt="logo"></p><p>` + tok + `</p>`
				m.Text = "Logo above. " + tok + "\n"
				logo := message.BytesAttachment("logo.png", pngImage(t))
				logo.ContentID = "logo@sockmail.test"
				m.Inline = []*message.Attachment{logo}
				m.Attachments = []*message.Attachment{message.BytesAttachment("random-5MiB.bin", big)}
			})
			sendOne(t, s, s.plain, m)
		}},
		{"rcpt-50", func(t *testing.T, s *server) {
			var to []string
			for range 50 {
				to = append(to, testenv.UniqueAddress())
			}
			sendOne(t, s, s.plain, compose(t, "fifty "+testenv.UniqueToken(), to, nil))
		}},
		{"batch-20", testBatch},
		{"cli-count-20", func(t *testing.T, s *server) { testCLICount(t, s, cli) }},
		{"dot-lines", func(t *testing.T, s *server) {
			tok, to := testenv.UniqueToken(), testenv.UniqueAddress()
			raw := "From: tester@example.test\r\nTo: " + to + "\r\nSubject: dots " + tok + "\r\nX-Interop-Token: " + tok + "\r\n" +
				"Message-ID: <" + tok + "@example.test>\r\nDate: Sun, 06 Dec 2026 20:00:00 +0000\r\n\r\n" +
				".starts with a dot\r\n..starts with two dots\r\n.\r\nafter a line with only a dot\r\n" +
				". a dot and a space\r\n.\r\n"
			m, err := message.RawBytes("tester@example.test", []string{to}, []byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			sendOne(t, s, s.plain, sent{content: m, bytes: []byte(raw), rcpts: []string{to}, token: tok})
		}},
		{"smtputf8-address", testSMTPUTF8},
	}
	for _, srv := range servers(since) {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cells {
				t.Run(c.name, func(t *testing.T) {
					s := srv.load(t)
					if s == nil {
						return
					}
					c.run(t, s)
				})
			}
		})
	}
}

// sent is a message ready to send and the exact bytes it consists of.
type sent struct {
	content message.Content
	bytes   []byte
	rcpts   []string
	token   string
}

// compose builds a message from tester@example.test to the addresses, the
// subject holding a unique token, and returns it with its bytes. edit, if
// set, fills in the rest. Composition must give the same bytes every time
// (boundaries, Message-ID and Date are fixed by Prepare): checked.
func compose(t *testing.T, subject string, to []string, edit func(m *message.Message)) sent {
	t.Helper()
	tok := subject[strings.LastIndex(subject, " ")+1:]
	m := &message.Message{
		From:    &mail.Address{Address: "tester@example.test"},
		Subject: subject,
		Text:    "Sent by sockmail's interoperability test. " + tok + "\n",
		// The token in clear, whatever the encoding of subject and body.
		Headers: []message.Field{{Name: "X-Interop-Token", Value: tok}},
	}
	for _, a := range to {
		m.To = append(m.To, &mail.Address{Address: a})
	}
	if edit != nil {
		edit(m)
	}
	if err := m.Prepare(); err != nil {
		t.Fatalf("compose: %v", err)
	}
	var a, b bytes.Buffer
	if _, err := m.WriteTo(&a); err != nil {
		t.Fatalf("compose: %v", err)
	}
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatalf("compose: %v", err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("compose: two WriteTo calls gave different bytes; the comparison needs them equal")
	}
	return sent{content: m, bytes: a.Bytes(), rcpts: m.Recipients(), token: tok}
}

// textMessage is a small text message to one fresh address, labelled.
func textMessage(t *testing.T, label string) sent {
	return compose(t, label+" "+testenv.UniqueToken(), []string{testenv.UniqueAddress()}, nil)
}

// pngImage returns a small PNG picture.
func pngImage(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for x := range 16 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{R: uint8(x * 16), G: uint8(y * 16), B: 200, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// envelopeOf returns the SMTP envelope a message asks for, as sockmail send
// builds it.
func envelopeOf(c message.Content) smtp.Envelope {
	env := smtp.Envelope{From: c.EnvelopeFrom(), To: c.Recipients(), SMTPUTF8: c.NeedsSMTPUTF8(), EightBit: c.Needs8BitMIME()}
	if n, err := c.Size(); err == nil {
		env.Size = n
	}
	return env
}

// config returns the client configuration for an endpoint, with a fresh
// transcript.
func config(s *server, ep endpoint) smtp.Config {
	return smtp.Config{
		Addr:       ep.addr,
		TLS:        ep.tls,
		TLSConfig:  s.ca.TLSConfig(),
		LocalName:  "localhost",
		Auth:       ep.auth,
		Transcript: smtp.NewTranscript(),
	}
}

// logTranscript puts the conversation into the test log (secrets are
// redacted by the transcript; bodies are summarised).
func logTranscript(t *testing.T, tr *smtp.Transcript) {
	t.Helper()
	var b strings.Builder
	for _, ev := range tr.Events() {
		b.WriteString(smtp.FormatEvent(ev))
		b.WriteByte('\n')
	}
	t.Logf("transcript:\n%s", b.String())
}

// sendOne sends m through ep, then reads it back and compares.
func sendOne(t *testing.T, s *server, ep endpoint, m sent) {
	t.Helper()
	cfg := config(s, ep)
	res, err := smtp.SendMail(context.Background(), cfg, envelopeOf(m.content), m.content, smtp.SendOptions{})
	if err != nil {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("send to %s: %v", ep.addr, err)
	}
	if got := len(res.Accepted()); got != len(m.rcpts) {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("%d of %d recipients accepted", got, len(m.rcpts))
	}
	checkStored(t, s, ep.store, m)
}

// checkStored waits until every recipient of m has exactly one stored copy
// and compares each with what was sent.
func checkStored(t *testing.T, s *server, st Store, m sent) {
	t.Helper()
	checkStoredN(t, s, st, m, 1)
}

// checkStoredN waits until every recipient of m has n stored copies (m sent
// n times) and compares each with what was sent. More than n is a failure
// (a message stored twice). The wait fails only when the count of copies
// stops growing for testenv.StallLimit.
func checkStoredN(t *testing.T, s *server, st Store, m sent, n int) {
	t.Helper()
	ctx := context.Background()
	copies := map[string][][]byte{}
	var findErr error
	testenv.WaitFor(t, fmt.Sprintf("%s to store %d copies for each of %d recipients of %s", s.name, n, len(m.rcpts), m.token), func() (int, bool) {
		total := 0
		for _, r := range m.rcpts {
			if len(copies[r]) < n {
				found, err := st.Find(ctx, r, m.token)
				if err != nil {
					findErr = err
					return -1, true
				}
				if len(found) > n {
					findErr = fmt.Errorf("%d copies for %s, want %d: a message stored twice", len(found), r, n)
					return -1, true
				}
				copies[r] = found
			}
			total += len(copies[r])
		}
		return total, total == n*len(m.rcpts)
	})
	if findErr != nil {
		t.Fatalf("reading back from %s: %v", s.name, findErr)
	}
	for _, r := range m.rcpts {
		for i, c := range copies[r] {
			if err := Compare(c, m.bytes, s.trace, s.lf); err != nil {
				t.Errorf("copy %d for %s: %v", i+1, r, err)
			}
		}
	}
}

// testAuthOffered: the server offers exactly the mechanisms expected where
// AUTH is tested (after STARTTLS).
func testAuthOffered(t *testing.T, s *server) {
	cfg := config(s, s.authAt)
	cfg.Auth = nil
	c, err := smtp.Open(context.Background(), cfg)
	if err != nil {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("open %s: %v", s.authAt.addr, err)
	}
	defer c.Close()
	got := c.AuthMechanisms()
	if err := c.Quit(context.Background()); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	got, want := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(s.mechs))
	if !slices.Equal(got, want) {
		t.Fatalf("AUTH mechanisms offered: %v, want %v", got, want)
	}
}

// testAuth sends a message authenticated with mech where the server offers
// it; a server that refuses every credential by design must answer 535.
func testAuth(t *testing.T, s *server, mech string) {
	if !slices.Contains(s.mechs, mech) {
		t.Skipf("%s does not offer AUTH %s", s.name, mech)
	}
	ep := s.authAt
	a := *ep.auth
	a.Mechanism = mech
	ep.auth = &a
	m := textMessage(t, "auth-"+mech)
	if !s.authRefused {
		sendOne(t, s, ep, m)
		return
	}
	cfg := config(s, ep)
	_, err := smtp.SendMail(context.Background(), cfg, envelopeOf(m.content), m.content, smtp.SendOptions{})
	var se *smtp.Error
	if !errors.As(err, &se) || se.Phase != smtp.PhaseAuth || se.Code != 535 {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("AUTH %s at %s: %v; want 535 in the auth phase (this server refuses every credential)", mech, s.name, err)
	}
}

// testBatch sends 20 messages over one connection with SendBatch, as
// "sockmail send --count 20" does (pipelined where offered), and checks
// that all 20 are stored intact. Haraka refuses commands pipelined after
// the end of data: the client must recover without losing one.
func testBatch(t *testing.T, s *server) {
	batchTok := testenv.UniqueToken()
	var msgs []sent
	var batch []smtp.BatchMessage
	for i := range 20 {
		m := compose(t, fmt.Sprintf("batch %d/20 %s-%02d", i+1, batchTok, i+1), []string{testenv.UniqueAddress()}, nil)
		msgs = append(msgs, m)
		batch = append(batch, smtp.BatchMessage{Envelope: envelopeOf(m.content), Message: m.content})
	}
	cfg := config(s, s.plain)
	c, err := smtp.Open(context.Background(), cfg)
	if err != nil {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("open %s: %v", s.plain.addr, err)
	}
	defer c.Close()
	results, err := c.SendBatch(context.Background(), batch, true)
	failed := 0
	for i, r := range results {
		if r.Err != nil {
			failed++
			t.Errorf("message %d/20: %v", i+1, r.Err)
		}
	}
	if err != nil || failed > 0 || len(results) != len(batch) {
		logTranscript(t, cfg.Transcript)
		t.Fatalf("batch: %d results for %d messages, %d failed, error %v", len(results), len(batch), failed, err)
	}
	for _, m := range msgs {
		checkStored(t, s, s.plain.store, m)
	}
}

// cliBinary builds the sockmail command once per TestInterop run, the first
// time a cell needs it.
type cliBinary struct {
	once sync.Once
	path string
	err  error
}

// build returns the path of the built command, building it the first time.
func (b *cliBinary) build(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "sockmail-interop-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "sockmail")
		out, err := exec.Command("go", "build", "-o", b.path, "sockmail/cmd/sockmail").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building the sockmail command: %v", b.err)
	}
	return b.path
}

// testCLICount runs "sockmail send --count 20 --data FILE" against the
// server: 20 copies of one raw message over one connection (pipelined where
// offered). All 20 must be reported sent and stored, each byte for byte.
// This is the case where Haraka once lost 10 of 20 messages. The message
// carries its own Message-ID and Date: Postfix and Mailpit add them when
// missing, which would not be the message as sent.
func testCLICount(t *testing.T, s *server, cli *cliBinary) {
	bin := cli.build(t)
	tok, to := testenv.UniqueToken(), testenv.UniqueAddress()
	raw := "From: tester@example.test\r\nTo: " + to + "\r\nSubject: count " + tok + "\r\nX-Interop-Token: " + tok +
		"\r\nMessage-ID: <" + tok + "@example.test>\r\nDate: Sun, 06 Dec 2026 20:00:00 +0000\r\n\r\nOne of twenty. " + tok + "\r\n.dot line\r\n"
	file := filepath.Join(t.TempDir(), "count.eml")
	if err := os.WriteFile(file, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "send", "--server", s.plain.addr, "--tls", "none", "--helo", "localhost",
		"--from", "tester@example.test", "--to", to, "--data", file, "--count", "20", "--quiet")
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sockmail send --count 20: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), ": sent"); got != 20 {
		t.Fatalf("sockmail send --count 20 reported %d sent, want 20:\n%s", got, out)
	}
	checkStoredN(t, s, s.plain.store, sent{bytes: []byte(raw), rcpts: []string{to}, token: tok}, 20)
}

// testSMTPUTF8 sends to an address with a non-ASCII local part where the
// server offers SMTPUTF8; where it does not, the client must refuse before
// MAIL FROM and nothing is stored.
func testSMTPUTF8(t *testing.T, s *server) {
	tok := testenv.UniqueToken()
	to := "jörg-" + strings.TrimPrefix(tok, "tok-") + "@example.test"
	m := compose(t, "smtputf8 "+tok, []string{to}, nil)
	if s.smtputf8 {
		sendOne(t, s, s.plain, m)
		return
	}
	cfg := config(s, s.plain)
	_, err := smtp.SendMail(context.Background(), cfg, envelopeOf(m.content), m.content, smtp.SendOptions{})
	if err == nil {
		t.Fatalf("%s does not offer SMTPUTF8, yet the send to %s succeeded", s.name, to)
	}
	for _, ev := range cfg.Transcript.Events() {
		if ev.Dir == smtp.DirClient && strings.HasPrefix(ev.Line, "MAIL FROM") {
			logTranscript(t, cfg.Transcript)
			t.Fatalf("the client sent MAIL FROM to a server without SMTPUTF8; want a refusal before it (error: %v)", err)
		}
	}
}

// loadCA reads the test CA for TLS verification.
func loadCA(file, serverName string) (testenv.CA, error) {
	pool, err := caPool(file)
	if err != nil {
		return testenv.CA{}, err
	}
	return testenv.CA{RootCAs: pool, CAFile: file, ServerName: serverName}, nil
}

// caPool reads a PEM file into a certificate pool.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate found", file)
	}
	return pool, nil
}
