package smtp

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
)

// redacted is what the transcript shows instead of an AUTH payload.
const redacted = "********"

// authPreference lists the mechanisms sockmail speaks, strongest first.
// CRAM-MD5 keeps the password off the wire; PLAIN and LOGIN send it
// (inside TLS); XOAUTH2 is used only when a token is given.
func authPreference() []string { return []string{"XOAUTH2", "CRAM-MD5", "PLAIN", "LOGIN"} }

// Auth authenticates with the configured credentials (RFC 4954). It
// refuses to send credentials over a connection without TLS unless
// AllowInsecureAuth is set. Every payload is redacted in the transcript as
// it is written.
func (c *Client) Auth(ctx context.Context) error {
	a := c.cfg.Auth
	if a == nil {
		return nil
	}
	if !c.tlsOn && !c.cfg.AllowInsecureAuth {
		return refusal(KindAuthBeforeTLS, PhaseAuth, "refusing to send credentials over an unencrypted connection: use STARTTLS or implicit TLS, or allow insecure AUTH explicitly")
	}
	if c.cfg.AllowInsecureAuth && !c.tlsOn {
		c.tr.Info(PhaseAuth, "sending credentials WITHOUT TLS (explicitly allowed)")
	}
	if len(c.authMechs) == 0 {
		return refusal(KindNoAuth, PhaseAuth, "the server does not offer AUTH on this connection")
	}
	mech, err := c.pickMechanism(a)
	if err != nil {
		return err
	}
	// Replies during AUTH are checked for echoed credentials; after it,
	// nothing is (a short password would otherwise mangle later lines).
	c.addSecret(a.Password)
	c.addSecret(a.Token)
	defer func() { c.secrets = nil }()
	c.tr.Info(PhaseAuth, "authenticating as %q with %s", a.Username, mech)
	switch mech {
	case "PLAIN":
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + a.Username + "\x00" + a.Password))
		line, shown, ok := c.initialResponse(ctx, mech, resp)
		if !ok {
			return line.err
		}
		err = c.authLast(ctx, mech, line.text, shown)
	case "LOGIN":
		err = c.authLogin(ctx, a)
	case "CRAM-MD5":
		err = c.authCRAMMD5(ctx, a)
	case "XOAUTH2":
		err = c.authXOAUTH2(ctx, a)
	}
	return err
}

// pickMechanism returns the named mechanism if the server offers it, or
// the strongest offered one that the credentials can serve.
func (c *Client) pickMechanism(a *Auth) (string, error) {
	if a.Mechanism != "" {
		m := strings.ToUpper(a.Mechanism)
		if !slices.Contains(authPreference(), m) {
			return "", localError(PhaseAuth, "unsupported AUTH mechanism %q (sockmail speaks %s)", a.Mechanism, strings.Join(authPreference(), ", "))
		}
		if !slices.Contains(c.authMechs, m) {
			return "", refusal(KindNoAuth, PhaseAuth, "the server does not offer AUTH %s (it offers %s)", m, strings.Join(c.authMechs, " "))
		}
		return m, nil
	}
	for _, m := range authPreference() {
		if m == "XOAUTH2" && a.Token == "" {
			continue
		}
		if slices.Contains(c.authMechs, m) {
			return m, nil
		}
	}
	return "", localError(PhaseAuth, "no AUTH mechanism in common: the server offers %s; sockmail speaks %s", strings.Join(c.authMechs, " "), strings.Join(authPreference(), ", "))
}

// challenge expects a 334 reply and returns its decoded text.
func (c *Client) expect334(ctx context.Context, line, shown string, secret bool) ([]byte, error) {
	r, err := c.cmdSecret(ctx, PhaseAuth, 3, line, shown, secret)
	if err != nil {
		return nil, err
	}
	dec, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text()))
	if derr != nil {
		// The server waits for a response: the exchange is cancelled with
		// "*" (RFC 4954 4) rather than left open for QUIT to be read as one.
		e := &Error{Phase: PhaseAuth, Code: r.Code, Message: "server challenge is not base64", Err: derr}
		c.tr.Info(PhaseAuth, "the server's challenge is not base64: cancelling the exchange with \"*\" (RFC 4954 4)")
		cr, _ := c.cmd(ctx, PhaseAuth, 501, "*")
		if cr != nil && cr.Code < 400 {
			c.broken = e // still in the exchange, or authenticated: out of step
		}
		return nil, e
	}
	return dec, nil
}

func (c *Client) authLogin(ctx context.Context, a *Auth) error {
	if _, err := c.expect334(ctx, "AUTH LOGIN", "AUTH LOGIN", false); err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString
	if _, err := c.expect334(ctx, b64([]byte(a.Username)), redacted, true); err != nil {
		return err
	}
	return c.authLast(ctx, "LOGIN", b64([]byte(a.Password)), redacted)
}

func (c *Client) authCRAMMD5(ctx context.Context, a *Auth) error {
	challenge, err := c.expect334(ctx, "AUTH CRAM-MD5", "AUTH CRAM-MD5", false)
	if err != nil {
		return err
	}
	mac := hmac.New(md5.New, []byte(a.Password))
	mac.Write(challenge)
	resp := a.Username + " " + hex.EncodeToString(mac.Sum(nil))
	return c.authLast(ctx, "CRAM-MD5", base64.StdEncoding.EncodeToString([]byte(resp)), redacted)
}

// authXOAUTH2 sends the token. On failure the server answers 334 with a
// base64 JSON error; the client must then send an empty line and read
// the final error reply.
func (c *Client) authXOAUTH2(ctx context.Context, a *Auth) error {
	payload := "user=" + a.Username + "\x01auth=Bearer " + a.Token + "\x01\x01"
	line, shown, ok := c.initialResponse(ctx, "XOAUTH2", base64.StdEncoding.EncodeToString([]byte(payload)))
	if !ok {
		return line.err
	}
	r, err := c.cmdSecret(ctx, PhaseAuth, 2, line.text, shown, true)
	if err == nil || r == nil || r.Code/100 != 3 {
		return err
	}
	if detail, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text())); derr == nil {
		c.tr.Info(PhaseAuth, "XOAUTH2 error detail: %s", c.redact(string(detail)))
	}
	r, err = c.cmd(ctx, PhaseAuth, 2, "")
	if r != nil && r.Code/100 == 3 {
		return c.authCancel(ctx, "XOAUTH2")
	}
	return err
}

// maxCommandLine is RFC 5321's limit on a command line, CRLF included
// (4.5.3.1.4); an AUTH command is held to it (RFC 4954 4).
const maxCommandLine = 512

// authLine is the line that carries a mechanism's first message, or the
// error that stopped the exchange before it.
type authLine struct {
	text string
	err  error
}

// initialResponse returns the line that carries resp, the mechanism's
// first message, and how the transcript shows it: "AUTH MECH resp" when
// that fits a command line, and otherwise (RFC 4954 4: the client must not
// send an initial response that makes AUTH longer) resp alone, once the
// server has answered a bare "AUTH MECH" with its empty 334 challenge. ok
// is false when that exchange failed; the line's err says why.
func (c *Client) initialResponse(ctx context.Context, mech, resp string) (line authLine, shown string, ok bool) {
	cmd := "AUTH " + mech
	if len(cmd)+1+len(resp)+2 <= maxCommandLine {
		return authLine{text: cmd + " " + resp}, cmd + " " + redacted, true
	}
	c.tr.Info(PhaseAuth, "the initial response would make AUTH longer than %d octets: sent after the server's challenge (RFC 4954 4)", maxCommandLine)
	if _, err := c.expect334(ctx, cmd, cmd, false); err != nil {
		return authLine{err: err}, "", false
	}
	return authLine{text: resp}, redacted, true
}

// authLast sends the last message the mechanism has (a secret: line is
// redacted as shown) and reads the verdict. A server that asks for more
// with another 334 challenge is not answered (the password is not sent
// again, nor empty lines): the exchange is cancelled (authCancel).
func (c *Client) authLast(ctx context.Context, mech, line, shown string) error {
	r, err := c.cmdSecret(ctx, PhaseAuth, 2, line, shown, true)
	if r != nil && r.Code/100 == 3 {
		return c.authCancel(ctx, mech)
	}
	return err
}

// authCancel cancels an AUTH exchange with a line "*", which the server
// answers 501 (RFC 4954 4), and fails: the server asked for more than the
// mechanism has to say (PLAIN one message, RFC 4616; CRAM-MD5 one
// response; LOGIN two prompts).
func (c *Client) authCancel(ctx context.Context, mech string) error {
	c.tr.Info(PhaseAuth, "the server sent another challenge after the last %s message: cancelling the exchange with \"*\" (RFC 4954 4)", mech)
	e := refusal(KindAuthRejected, PhaseAuth, "the server asked for more than the %s mechanism has to send; the AUTH exchange was cancelled", mech)
	r, err := c.cmd(ctx, PhaseAuth, 501, "*")
	if r == nil {
		e.Err = err
		return e
	}
	if r.Code != 501 {
		c.tr.Info(PhaseAuth, "the server answered the cancellation with %d, not 501", r.Code)
	}
	if r.Code < 400 {
		// Still in the exchange, or authenticated after all: out of step.
		c.broken = e
	}
	if r.Code >= 400 {
		e.Code, e.EnhancedCode = r.Code, r.EnhancedCode()
	}
	return e
}
