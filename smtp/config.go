package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// TLSMode says how a connection is protected.
type TLSMode int

// The TLS modes a send can use.
const (
	// TLSNone never uses TLS.
	TLSNone TLSMode = iota
	// TLSStartTLS requires STARTTLS: a server that does not offer it, or
	// refuses it, fails the send before anything else is said.
	TLSStartTLS
	// TLSStartTLSOptional uses STARTTLS when the server offers it and goes
	// on in clear text otherwise (noted in the transcript).
	TLSStartTLSOptional
	// TLSImplicit starts TLS on connect (port 465, RFC 8314).
	TLSImplicit
)

// tlsModeNames returns the modes' names, indexed by mode.
func tlsModeNames() []string { return []string{"none", "starttls", "starttls-optional", "implicit"} }

// String returns the mode's name as ParseTLSMode accepts it.
func (m TLSMode) String() string {
	if names := tlsModeNames(); m >= 0 && int(m) < len(names) {
		return names[m]
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// ParseTLSMode parses "none", "starttls", "starttls-optional" or "implicit".
func ParseTLSMode(s string) (TLSMode, error) {
	for i, n := range tlsModeNames() {
		if strings.EqualFold(s, n) {
			return TLSMode(i), nil
		}
	}
	return 0, fmt.Errorf("smtp: unknown TLS mode %q (want one of %s)", s, strings.Join(tlsModeNames(), ", "))
}

// Timeouts bounds every network wait. Zero fields take the defaults of
// RFC 5321 4.5.3.2, which DefaultTimeouts returns.
type Timeouts struct {
	// Connect bounds DNS lookups, the TCP connect and the TLS handshake.
	Connect time.Duration
	// Greeting bounds the wait for the 220 greeting (RFC: 5 minutes).
	Greeting time.Duration
	// Command bounds EHLO, STARTTLS, AUTH, RSET and QUIT replies.
	Command time.Duration
	// Mail bounds the MAIL FROM reply (RFC: 5 minutes).
	Mail time.Duration
	// Rcpt bounds each RCPT TO reply (RFC: 5 minutes).
	Rcpt time.Duration
	// DataInit bounds the reply to DATA (RFC: 2 minutes).
	DataInit time.Duration
	// DataBlock bounds each write of the message body (RFC: 3 minutes).
	DataBlock time.Duration
	// DataTerm bounds the reply after the final "." (RFC: 10 minutes).
	DataTerm time.Duration
}

// DefaultTimeouts returns the RFC 5321 4.5.3.2 values, with 30 seconds to
// connect and 5 minutes for commands the RFC does not name.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Connect:   30 * time.Second,
		Greeting:  5 * time.Minute,
		Command:   5 * time.Minute,
		Mail:      5 * time.Minute,
		Rcpt:      5 * time.Minute,
		DataInit:  2 * time.Minute,
		DataBlock: 3 * time.Minute,
		DataTerm:  10 * time.Minute,
	}
}

// withDefaults fills zero fields from DefaultTimeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, p := range []struct{ v, def *time.Duration }{
		{&t.Connect, &d.Connect}, {&t.Greeting, &d.Greeting}, {&t.Command, &d.Command},
		{&t.Mail, &d.Mail}, {&t.Rcpt, &d.Rcpt}, {&t.DataInit, &d.DataInit},
		{&t.DataBlock, &d.DataBlock}, {&t.DataTerm, &d.DataTerm},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return t
}

// forPhase returns the reply timeout of a phase.
func (t Timeouts) forPhase(p Phase) time.Duration {
	switch p {
	case PhaseGreeting:
		return t.Greeting
	case PhaseMail:
		return t.Mail
	case PhaseRcpt:
		return t.Rcpt
	case PhaseData:
		return t.DataInit
	case PhaseBody:
		return t.DataTerm
	case PhaseConnect:
		return t.Connect
	}
	return t.Command
}

// Auth holds credentials. The password and token are used on the wire only
// and never recorded.
type Auth struct {
	// Mechanism is PLAIN, LOGIN, CRAM-MD5 or XOAUTH2; empty picks the
	// strongest one the server offers.
	Mechanism string
	// Username is the login name.
	Username string
	// Password is the password (PLAIN, LOGIN, CRAM-MD5).
	Password string
	// Token is the OAuth 2 access token (XOAUTH2).
	Token string
}

// Resolver looks up mail exchangers and addresses. *net.Resolver is one.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Dialer opens TCP connections. *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config describes how to reach and talk to a server.
type Config struct {
	// Addr is the server as host:port. Empty means deliver straight to the
	// recipient domain's MX hosts on port 25 (see SendMail).
	Addr string
	// TLS is the TLS mode.
	TLS TLSMode
	// TLSConfig, if set, is cloned for the handshake; ServerName defaults
	// to the host of Addr.
	TLSConfig *tls.Config
	// InsecureSkipVerify accepts any certificate. It is shown in the
	// transcript.
	InsecureSkipVerify bool
	// LocalName is the name sent with EHLO/HELO: the client's fully
	// qualified domain name. If empty, the address literal of the
	// connection's local address ("[192.0.2.1]", RFC 5321 4.1.1.1).
	LocalName string
	// Auth, if set, authenticates after EHLO (and STARTTLS).
	Auth *Auth
	// AllowInsecureAuth permits sending credentials over a connection
	// without TLS.
	AllowInsecureAuth bool
	// Timeouts bounds each wait; zero fields take RFC 5321 defaults.
	Timeouts Timeouts
	// Transcript receives the conversation; a new one is made when nil.
	Transcript *Transcript
	// ShowBody records the message body in the transcript instead of a
	// summary with a byte count.
	ShowBody bool
	// DisablePipelining and DisableChunking ignore those extensions even
	// when the server offers them.
	DisablePipelining, DisableChunking bool
	// Resolver is used for MX and address lookups; net.DefaultResolver if nil.
	Resolver Resolver
	// Dialer opens connections; a net.Dialer if nil.
	Dialer Dialer
	// MXPort is the port used for MX delivery; 25 if zero.
	MXPort int
	// BeforeEnd, if set, is called when everything but the end of the
	// message (the final "." or the last BDAT) has been written to the
	// server, just before the end is sent: the point after which the
	// server may deliver the message. A durable queue records there that
	// a crash from now on must not lead to a resend. An error withholds
	// the end: the connection is closed, so the server discards the
	// message, and the send fails with a temporary error.
	BeforeEnd func(ctx context.Context) error
}

// validate checks the parts of the configuration that would otherwise be
// sent on the wire.
func (c *Config) validate() error {
	if err := checkArg("HELO name", c.LocalName); err != nil {
		return err
	}
	if c.LocalName != "" && strings.ContainsAny(c.LocalName, " \t") {
		return localError(PhaseEHLO, "HELO name %q contains a space", c.LocalName)
	}
	if len(c.LocalName) > 255 {
		return localError(PhaseEHLO, "HELO name is %d octets; the limit is 255 (RFC 5321 4.5.3.1.2)", len(c.LocalName))
	}
	if !isASCII(c.LocalName) {
		// The EHLO domain is an LDH name or an address literal (RFC 5321
		// 4.1.2); also with SMTPUTF8 it is sent in A-labels (RFC 6531
		// 3.7.1).
		return localError(PhaseEHLO, "HELO name %q is not ASCII: give an internationalised name in A-labels (xn--...)", c.LocalName)
	}
	if c.TLS < TLSNone || c.TLS > TLSImplicit {
		return localError(PhaseConnect, "unknown TLS mode %d", int(c.TLS))
	}
	if a := c.Auth; a != nil {
		if strings.ContainsAny(a.Username, "\x00\r\n") || strings.ContainsAny(a.Token, "\x00\r\n") {
			return localError(PhaseAuth, "AUTH user or token contains a line break or NUL")
		}
		if strings.ContainsRune(a.Password, 0) {
			return localError(PhaseAuth, "AUTH password contains a NUL byte, which AUTH PLAIN cannot carry")
		}
	}
	return nil
}

// checkArg refuses CR, LF and NUL in anything that becomes part of a
// command line.
func checkArg(what, v string) error {
	if i := strings.IndexAny(v, "\r\n\x00"); i >= 0 {
		return localError(PhaseConnect, "%s contains a forbidden character %q at byte %d", what, v[i], i)
	}
	return nil
}

// CheckAddress validates an envelope address (the part inside < >): no
// CR, LF, NUL, '<', '>' or white space, at most 256 octets with at most 64
// before the '@' (RFC 5321 4.5.3.1). An empty address is allowed only for
// the null reverse-path, which the caller decides.
func CheckAddress(addr string) error {
	if len(addr) > 256 {
		return fmt.Errorf("address is %d bytes long; the limit is 256", len(addr))
	}
	for i := 0; i < len(addr); i++ {
		switch c := addr[i]; c {
		case '\r', '\n', 0, '<', '>', ' ', '\t':
			return fmt.Errorf("address %q contains a forbidden character %q", addr, c)
		}
		if addr[i] < 0x20 || addr[i] == 0x7f {
			return fmt.Errorf("address %q contains a control character", addr)
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return fmt.Errorf("address %q is not of the form local@domain", addr)
	}
	if at > 64 {
		return fmt.Errorf("address %q has a local part over 64 bytes", addr)
	}
	return nil
}
