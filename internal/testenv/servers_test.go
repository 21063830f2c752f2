package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests talk to the real servers: they check that .ci/servers.sh set
// up what the README promises, using only the standard library's client.

const deliveryTimeout = StallLimit

// dialSMTP connects to addr, in implicit TLS when tlsConf is not nil, and
// reads the greeting.
func dialSMTP(t *testing.T, addr string, tlsConf *tls.Config) *smtp.Client {
	t.Helper()
	var conn net.Conn
	var err error
	if tlsConf != nil {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsConf)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		conn.Close()
		t.Fatalf("greeting from %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("testenv.example.test"); err != nil {
		t.Fatalf("EHLO to %s: %v", addr, err)
	}
	return c
}

// message builds a small message whose Subject is token.
func message(from, to, token string, extraHeaders ...string) string {
	h := "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + token + "\r\n"
	for _, x := range extraHeaders {
		h += x + "\r\n"
	}
	return h + "\r\nHello from internal/testenv.\r\n.leading dot\r\n"
}

// send runs MAIL, RCPT, DATA and returns the first error.
func send(c *smtp.Client, from, to, msg string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

// wantCode checks that err is an SMTP reply with the given code and that
// its text contains want.
func wantCode(t *testing.T, err error, code int, want string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("got error %v, want an SMTP %d reply", err, code)
	}
	if te.Code != code || !strings.Contains(te.Msg, want) {
		t.Fatalf("got %d %q, want %d containing %q", te.Code, te.Msg, code, want)
	}
}

func TestPostfixServer(t *testing.T) {
	p := Postfix(t)
	if p.Domain != Domain || p.MessageSizeLimit < 60<<20 {
		t.Errorf("env: domain %q, size limit %d", p.Domain, p.MessageSizeLimit)
	}

	t.Run("extensions", func(t *testing.T) { postfixExtensions(t, p) })

	t.Run("2525 STARTTLS delivery", func(t *testing.T) {
		t.Parallel()
		c := dialSMTP(t, p.SMTPAddr, nil)
		if err := c.StartTLS(p.TLSConfig()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		to, tok := UniqueAddress(), UniqueToken()
		if err := send(c, "sender@elsewhere.test", to, message("sender@elsewhere.test", to, tok)); err != nil {
			t.Fatal(err)
		}
		got := string(WaitForMessage(t, p.Maildir, tok, deliveryTimeout))
		// The client dot-stuffed ".leading dot", the server unstuffed it,
		// and Postfix stores LF line ends.
		for _, want := range []string{"Delivered-To: " + to, "using TLSv1.3", "\n.leading dot\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, got)
			}
		}
	})

	t.Run("2465 implicit TLS and AUTH", func(t *testing.T) { postfixImplicitTLSAuth(t, p) })

	t.Run("2465 needs AUTH", func(t *testing.T) {
		t.Parallel()
		c := dialSMTP(t, p.SMTPSAddr, p.TLSConfig())
		wantCode(t, send(c, p.User, UniqueAddress(), "x"), 554, "Access denied")
	})

	t.Run("2587 STARTTLS then AUTH", func(t *testing.T) {
		t.Parallel()
		c := dialSMTP(t, p.SubmissionAddr, nil)
		wantCode(t, c.Mail(p.User), 530, "STARTTLS")
		if err := c.StartTLS(p.TLSConfig()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if err := c.Auth(smtp.PlainAuth("", p.User, p.Password, "localhost")); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
		tok := UniqueToken()
		if err := send(c, p.User, UniqueAddress(), message(p.User, "x@"+Domain, tok)); err != nil {
			t.Fatal(err)
		}
		WaitForMessage(t, p.Maildir, tok, deliveryTimeout)
	})

	t.Run("wrong password", func(t *testing.T) { postfixWrongPassword(t, p) })

	t.Run("failure injection", func(t *testing.T) { postfixFailureInjection(t, p) })

	t.Run("authenticated mail to other domains stays here", func(t *testing.T) {
		t.Parallel()
		c := dialSMTP(t, p.SMTPSAddr, p.TLSConfig())
		if err := c.Auth(smtp.PlainAuth("", p.User, p.Password, "localhost")); err != nil {
			t.Fatal(err)
		}
		wantCode(t, send(c, p.User, "someone@elsewhere.test", "x"), 550, "never sends mail off the machine")
	})
}

// postfixImplicitTLSAuth: port 2465: implicit TLS, AUTH PLAIN and CRAM-MD5, the authenticated sender in the Received header.
func postfixImplicitTLSAuth(t *testing.T, p *PostfixServer) {
	t.Parallel()
	for _, auth := range []struct {
		name string
		a    smtp.Auth
	}{
		{"PLAIN", smtp.PlainAuth("", p.User, p.Password, "localhost")},
		{"CRAM-MD5", smtp.CRAMMD5Auth(p.User, p.Password)},
	} {
		c := dialSMTP(t, p.SMTPSAddr, p.TLSConfig())
		if ok, params := c.Extension("AUTH"); !ok || !strings.Contains(params, "LOGIN") || !strings.Contains(params, auth.name) {
			t.Errorf("AUTH advertised as %q", params)
		}
		if err := c.Auth(auth.a); err != nil {
			t.Fatalf("AUTH %s: %v", auth.name, err)
		}
		tok := UniqueToken()
		if err := send(c, p.User, UniqueAddress(), message(p.User, "x@"+Domain, tok)); err != nil {
			t.Fatal(err)
		}
		got := string(WaitForMessage(t, p.Maildir, tok, deliveryTimeout))
		if !strings.Contains(got, "(Authenticated sender: "+p.User+")") {
			t.Errorf("Received header does not show the authenticated sender:\n%s", got)
		}
	}
}

// postfixWrongPassword: a failed AUTH is answered without Dovecot's
// failure delay. Dovecot answers failures on a 500 ms timer; its default
// 2 s failure delay and per-IP penalty are off. The failure is timed
// against a successful AUTH on the same machine, best of three, so that
// only a delay of its own shows, however slow the machine.
func postfixWrongPassword(t *testing.T, p *PostfixServer) {
	t.Parallel()
	best := time.Hour
	for range 3 {
		ok := timeAuth(t, p, p.Password, 0, "")
		bad := timeAuth(t, p, "wrong", 535, "5.7.8")
		best = min(best, bad-ok)
		if best < 1500*time.Millisecond {
			return
		}
	}
	t.Errorf("a failed AUTH took at least %v more than a successful one: Dovecot's failure delay or penalty is on", best)
}

// timeAuth returns how long AUTH PLAIN with password takes on the
// submission port after STARTTLS; it must succeed when code is 0, else
// fail with code and a message containing want.
func timeAuth(t *testing.T, p *PostfixServer, password string, code int, want string) time.Duration {
	t.Helper()
	c := dialSMTP(t, p.SubmissionAddr, nil)
	if err := c.StartTLS(p.TLSConfig()); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	start := time.Now()
	err := c.Auth(smtp.PlainAuth("", p.User, password, "localhost"))
	took := time.Since(start)
	if code == 0 && err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if code != 0 {
		wantCode(t, err, code, want)
	}
	return took
}

// postfixFailureInjection: the addresses and header that make the server refuse.
func postfixFailureInjection(t *testing.T, p *PostfixServer) {
	t.Parallel()
	c := dialSMTP(t, p.SMTPAddr, nil)
	wantCode(t, c.Mail(RejectRecipient550), 550, "5.7.1")
	wantCode(t, c.Mail(TempFailRecipient451), 451, "4.3.0")
	if err := c.Mail("sender@elsewhere.test"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(RejectRecipient550), 550, "5.1.1")
	wantCode(t, c.Rcpt(TempFailRecipient451), 451, "4.3.0")
	wantCode(t, c.Rcpt(FullRecipient452), 452, "4.2.2")
	wantCode(t, c.Rcpt("someone@elsewhere.test"), 554, "Relay access denied")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	to := UniqueAddress()
	wantCode(t, send(c, "sender@elsewhere.test", to, message("s@elsewhere.test", to, UniqueToken(), RejectHeader)), 550, "5.7.1")
}

// postfixExtensions: what port 2525 advertises before and after STARTTLS.
func postfixExtensions(t *testing.T, p *PostfixServer) {
	t.Parallel()
	c := dialSMTP(t, p.SMTPAddr, nil)
	for _, ext := range []string{"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("port 2525 does not advertise %s", ext)
		}
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Errorf("port 2525 advertises AUTH before STARTTLS")
	}
	if err := c.StartTLS(p.TLSConfig()); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Errorf("port 2525 advertises AUTH after STARTTLS")
	}
}

func TestAIOSMTPDServer(t *testing.T) {
	s := AIOSMTPD(t)
	c := dialSMTP(t, s.Addr, nil)
	for _, ext := range []string{"SIZE", "8BITMIME", "SMTPUTF8", "STARTTLS"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("aiosmtpd does not advertise %s", ext)
		}
	}
	for _, ext := range []string{"PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); ok {
			t.Errorf("aiosmtpd advertises %s: update the README and AIOSMTPD's doc", ext)
		}
	}
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	wantCode(t, c.Rcpt(RejectRecipient550), 503, "") // no MAIL yet
	if err := c.Mail("sender@elsewhere.test"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(RejectRecipient550), 550, "5.1.1")
	wantCode(t, c.Rcpt(TempFailRecipient451), 451, "4.3.0")
	wantCode(t, c.Rcpt(FullRecipient452), 452, "4.2.2")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	to, tok := UniqueAddress(), UniqueToken()
	msg := message("sender@elsewhere.test", to, tok)
	if err := send(c, "sender@elsewhere.test", to, msg); err != nil {
		t.Fatal(err)
	}
	got := string(WaitForMessage(t, s.Maildir, tok, deliveryTimeout))
	// net/smtp adds BODY=8BITMIME and SMTPUTF8 when they are advertised.
	wantPrefix := "X-Sink-TLS: yes\r\nX-Sink-Mail-From: <sender@elsewhere.test> BODY=8BITMIME SMTPUTF8\r\n" +
		"X-Sink-Rcpt-To: <" + to + ">\r\n"
	if !strings.Contains(got, wantPrefix) || !strings.HasSuffix(got, wantPrefix+msg) {
		t.Errorf("stored message is not the X-Sink-* lines plus the exact bytes sent:\n%q", got)
	}
	wantCode(t, send(c, "s@elsewhere.test", UniqueAddress(), message("s@elsewhere.test", to, tok, RejectHeader)), 550, "5.7.1")
}

func TestPostgresDatabase(t *testing.T) {
	var dsn, name string
	t.Run("create", func(t *testing.T) {
		dsn = Postgres(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, testDBPrefix) {
			t.Errorf("database %q is not a fresh test database", name)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		if other := Postgres(t); other == dsn {
			t.Errorf("two calls gave the same DSN %s", dsn)
		}
	})
	if name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresBaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestChromiumBinary(t *testing.T) {
	path := Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Chromium") {
		t.Fatalf("%s --version: %v: %s", path, err, out)
	}
	if args := ChromiumArgs(t.TempDir()); !strings.HasPrefix(args[len(args)-1], "--user-data-dir=") {
		t.Errorf("ChromiumArgs = %v", args)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
