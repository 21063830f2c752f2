package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Client is one SMTP connection. Its methods are not safe for concurrent
// use; its Transcript is.
type Client struct {
	cfg      Config
	timeouts Timeouts
	host     string // the server's name, for TLS verification
	conn     net.Conn
	rr       replyReader
	bw       *bufio.Writer
	tr       *Transcript
	phase    Phase // phase of the reply being read, for the transcript

	ext       map[string]string // EHLO keywords (upper case) to parameters
	authMechs []string
	esmtp     bool
	helloDone bool
	tlsOn     bool
	needRset  bool // a transaction was started and not finished cleanly
	// noPipeAfterEnd: the server refused commands written in the same
	// flight as the end of a message (an SMTP-smuggling defence, Haraka's
	// 503 "pipelined after end of DATA"): nothing follows the end of data
	// in its write on this connection any more.
	noPipeAfterEnd bool
	quitSent       bool  // QUIT has been written
	written        int64 // bytes the connection has accepted, for flushEnd
	broken         error
	secrets        []string // during AUTH: payloads and credentials, redacted if echoed

	aborted atomic.Bool // the context was cancelled: deadlines stay in the past
	// guarded is set while a guard watches the context of the whole of a
	// SendBatch, which every read and write of it uses: io needs no guard
	// of its own then.
	guarded bool
	// chunk is the BDAT chunk buffer, kept for the next message.
	chunk []byte
}

// aLongTimeAgo is a deadline that has passed, used to abort blocking I/O.
var aLongTimeAgo = time.Unix(1, 0)

// Dial connects to cfg.Addr (resolving its name and trying each address),
// starts TLS at once in TLSImplicit mode, and reads the greeting. It does
// not say EHLO; Hello, StartTLS and Auth do that, or Open does all of it.
// Everything, including a failure, is recorded in cfg.Transcript.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	return dial(ctx, cfg, true)
}

// dial is Dial, optionally without reading the greeting.
func dial(ctx context.Context, cfg Config, greeting bool) (*Client, error) {
	if cfg.Transcript == nil {
		cfg.Transcript = NewTranscript()
	}
	if err := cfg.validate(); err != nil {
		cfg.Transcript.Info(PhaseConnect, "refused before connecting: %v", err)
		return nil, err
	}
	c := &Client{cfg: cfg, timeouts: cfg.Timeouts.withDefaults(), tr: cfg.Transcript}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		e := localError(PhaseConnect, "server address %q is not host:port", cfg.Addr)
		e.Err = err
		c.tr.Info(PhaseConnect, "%s", e.Message)
		return nil, e
	}
	c.host = host
	if err := c.connect(ctx, host, port); err != nil {
		return nil, err
	}
	if cfg.TLS == TLSImplicit {
		if err := c.handshake(ctx); err != nil {
			c.conn.Close()
			return nil, err
		}
	}
	if !greeting {
		return c, nil
	}
	c.phase = PhaseGreeting
	var r *Reply
	err = c.io(ctx, PhaseGreeting, func() error {
		var err error
		r, err = c.rr.readReply()
		return err
	})
	if err != nil {
		c.conn.Close()
		return nil, c.wireError(PhaseGreeting, err)
	}
	if r.Code != 220 {
		e := replyError(PhaseGreeting, r)
		c.refusedGreeting(ctx, r)
		return nil, e
	}
	return c, nil
}

// refusedGreeting ends a connection whose greeting was not 220. After a
// 554 (RFC 5321 3.1, 4.1.1.10) or a 521 (RFC 7504) the server waits for
// QUIT, or closes: the client says QUIT, waits for its reply and closes,
// and says nothing else (no EHLO, no mail command). After a 421 (3.8), or
// any other greeting, nothing may be said: the connection is closed.
func (c *Client) refusedGreeting(ctx context.Context, r *Reply) {
	defer c.conn.Close()
	if r.Code/100 != 5 {
		c.tr.Info(PhaseGreeting, "the server did not greet with 220 (%d): closing the connection", r.Code)
		c.broken = replyError(PhaseGreeting, r)
		return
	}
	c.tr.Info(PhaseGreeting, "the server refused the connection (%d): sending QUIT and waiting for its reply, nothing else (RFC 5321 3.1)", r.Code)
	c.writeLine(PhaseQuit, "QUIT", "QUIT", false)
	if err := c.flush(ctx, PhaseQuit); err != nil {
		c.tr.Info(PhaseQuit, "QUIT could not be sent: %v", err)
		return
	}
	if _, err := c.readReply(ctx, PhaseQuit); err != nil {
		return // readReply noted why (a server may close at once after 521)
	}
	c.broken = replyError(PhaseGreeting, r)
}

// connect resolves host and dials each of its addresses in turn.
func (c *Client) connect(ctx context.Context, host, port string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeouts.Connect)
	defer cancel()
	var addrs []string
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		addrs = []string{net.JoinHostPort(ip.String(), port)}
	} else {
		start := time.Now()
		ips, err := c.resolver().LookupIPAddr(ctx, host)
		took := time.Since(start)
		if err != nil {
			c.tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS lookup of %s failed after %s: %v", host, ms(took), err)
			return netError(PhaseConnect, "cannot resolve "+host, err)
		}
		var shown []string
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.IP.String(), port))
			shown = append(shown, ip.IP.String())
		}
		c.tr.spanEnd(SpanDNS, took, PhaseConnect, "DNS %s A/AAAA: %s (%s)", host, strings.Join(shown, ", "), ms(took))
		if len(addrs) == 0 {
			return netError(PhaseConnect, "no address for "+host, errors.New("empty answer"))
		}
	}
	d := c.cfg.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	var lastErr error
	for _, a := range addrs {
		c.tr.Info(PhaseConnect, "connecting to %s", a)
		start := time.Now()
		conn, err := d.DialContext(ctx, "tcp", a)
		took := time.Since(start)
		if err != nil {
			c.tr.spanEnd(SpanConnect, took, PhaseConnect, "connect to %s failed after %s: %v", a, ms(took), err)
			lastErr = err
			continue
		}
		c.tr.spanEnd(SpanConnect, took, PhaseConnect, "connected to %s from %s in %s", conn.RemoteAddr(), conn.LocalAddr(), ms(took))
		c.setConn(conn)
		return nil
	}
	return netError(PhaseConnect, "cannot connect to "+net.JoinHostPort(host, port), lastErr)
}

func (c *Client) resolver() Resolver {
	if c.cfg.Resolver != nil {
		return c.cfg.Resolver
	}
	return net.DefaultResolver
}

// setConn (re)wraps the connection with a bounded reader that records
// every server line and a buffered writer whose writes carry a deadline.
func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.rr = replyReader{
		br: bufio.NewReaderSize(conn, readBufferSize),
		onLine: func(line string) {
			shown := c.redact(line)
			c.tr.add(DirServer, c.phase, shown, shown != line)
		},
	}
	c.bw = bufio.NewWriterSize(deadlineWriter{c}, writeBufferSize)
}

// deadlineWriter gives every write to the connection a fresh deadline, so
// a server that stops reading cannot block the client forever.
type deadlineWriter struct{ c *Client }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.setDeadline(w.c.conn.SetWriteDeadline, w.c.timeouts.DataBlock)
	n, err := w.c.conn.Write(p)
	w.c.written += int64(n)
	return n, err
}

// setDeadline sets a deadline d from now unless the context was cancelled,
// in which case the deadline stays in the past.
func (c *Client) setDeadline(set func(time.Time) error, d time.Duration) {
	_ = set(time.Now().Add(d))
	if c.aborted.Load() {
		_ = c.conn.SetDeadline(aLongTimeAgo)
	}
}

// io runs fn, which reads or writes the connection, with the phase's
// read deadline and with ctx able to abort it at once.
func (c *Client) io(ctx context.Context, phase Phase, fn func() error) error {
	if c.broken != nil {
		return c.broken
	}
	if err := ctx.Err(); err != nil {
		// Cut short mid-conversation: what is buffered (the end of a
		// message, say) must never go out later with another command.
		c.broken = err
		return err
	}
	if !c.guarded {
		stop := c.guard(ctx)
		defer stop()
	}
	c.setDeadline(c.conn.SetReadDeadline, c.timeouts.forPhase(phase))
	err := fn()
	err = ctxCause(ctx, err)
	if err != nil {
		// After any I/O failure the stream is out of step: nothing more
		// may be said on this connection.
		c.broken = err
	}
	return err
}

// guard lets ctx abort, at once, any read or write of the connection
// until the returned stop is called.
func (c *Client) guard(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		c.aborted.Store(true)
		_ = c.conn.SetDeadline(aLongTimeAgo)
	})
}

// ctxCause puts the context's error in front of an I/O error it caused
// (an abort shows as a timeout on the connection).
func ctxCause(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (%v)", ctx.Err(), err)
}

// wireError turns an I/O error in phase into the typed error and notes it.
func (c *Client) wireError(phase Phase, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := "connection failed"
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		msg = "server broke the protocol"
	case errors.Is(err, errConnLost):
		msg = "server closed the connection"
	case errors.Is(err, context.Canceled):
		msg = "aborted"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		msg = "timed out waiting for the server"
	}
	c.tr.Info(phase, "%s: %v", msg, err)
	return netError(phase, msg, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// addSecret remembers a credential or payload so that a server echoing it
// (in a complaint about the command, say) does not put it in the
// transcript or in an error. Very short values are not worth the noise.
func (c *Client) addSecret(v string) {
	if len(v) >= 4 {
		c.secrets = append(c.secrets, v)
	}
}

// redact replaces every remembered secret in a server line.
func (c *Client) redact(line string) string {
	for _, s := range c.secrets {
		line = strings.ReplaceAll(line, s, redacted)
	}
	return line
}

// redactCut is redact for a line that may have been cut short: when cut,
// the beginning of a secret that ends the line is redacted too.
func (c *Client) redactCut(line string, cut bool) string {
	line = c.redact(line)
	if !cut {
		return line
	}
	for _, s := range c.secrets {
		for k := len(s) - 1; k >= 2; k-- {
			if strings.HasSuffix(line, s[:k]) {
				return line[:len(line)-k] + redacted
			}
		}
	}
	return line
}

// writeLine buffers one command line. shown is what the transcript keeps:
// the line itself, or its redacted form when secret.
func (c *Client) writeLine(phase Phase, line, shown string, secret bool) {
	c.tr.addEvent(Event{Dir: DirClient, Phase: phase, Line: shown, Secret: secret, Cmd: true})
	if phase == PhaseQuit {
		c.quitSent = true
	}
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
}

// flush sends what is buffered.
func (c *Client) flush(ctx context.Context, phase Phase) error {
	return c.io(ctx, phase, c.bw.Flush)
}

// readReply reads one reply in phase.
func (c *Client) readReply(ctx context.Context, phase Phase) (*Reply, error) {
	c.phase = phase
	var r *Reply
	err := c.io(ctx, phase, func() error {
		var err error
		r, err = c.rr.readReply()
		return err
	})
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			pe.Line = c.redactCut(pe.Line, pe.Cut)
		}
		return nil, c.wireError(phase, err)
	}
	for i, l := range r.Lines {
		r.Lines[i] = c.redact(l) // the reply becomes error messages
	}
	// Status codes only from a server that said it sends them (RFC 2034
	// 3). Before its EHLO reply nothing is known, and a code is read if
	// the text starts with one (a 421 or a postscreen 554 carries one).
	r.plain = c.ext != nil && !c.hasExt("ENHANCEDSTATUSCODES")
	if r.Code == 421 {
		// The server is closing the connection (RFC 5321 3.8): nothing
		// more may be said, not even QUIT.
		c.broken = replyError(phase, r)
	}
	return r, nil
}

// cmd sends one command and reads its reply, which must have the expected
// code (a single digit checks only the class: RFC 5321 4.2.1 lets a client
// decide by the first digit, and every command but QUIT is checked so). Every command goes through
// here or through the pipelined batch in Send.
func (c *Client) cmd(ctx context.Context, phase Phase, expect int, line string) (*Reply, error) {
	return c.cmdSecret(ctx, phase, expect, line, line, false)
}

func (c *Client) cmdSecret(ctx context.Context, phase Phase, expect int, line, shown string, secret bool) (*Reply, error) {
	if c.broken != nil {
		// Nothing may be said on a connection that is out of step or that
		// the server closed; the transcript must not show it said either.
		return nil, c.wireError(phase, c.broken)
	}
	if secret {
		if f := strings.Fields(line); len(f) > 0 {
			c.addSecret(f[len(f)-1]) // the payload, without "AUTH PLAIN"
		}
	}
	c.writeLine(phase, line, shown, secret)
	if err := c.flush(ctx, phase); err != nil {
		return nil, c.wireError(phase, err)
	}
	r, err := c.readReply(ctx, phase)
	if err != nil {
		return nil, err
	}
	if !codeMatches(r.Code, expect) {
		return r, replyError(phase, r)
	}
	return r, nil
}

func codeMatches(code, expect int) bool {
	if expect < 10 {
		return code/100 == expect
	}
	return code == expect
}

// Transcript returns the transcript the client records into.
func (c *Client) Transcript() *Transcript { return c.tr }

// TLS reports whether the connection is protected by TLS, and its state.
func (c *Client) TLS() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Extension reports whether the server advertised the EHLO keyword name
// and returns its parameters.
func (c *Client) Extension(name string) (bool, string) {
	v, ok := c.ext[strings.ToUpper(name)]
	return ok, v
}

// AuthMechanisms returns the SASL mechanisms the server offered.
func (c *Client) AuthMechanisms() []string { return append([]string(nil), c.authMechs...) }

// addressLiteral returns name, or when name is a bare IP address its
// RFC 5321 4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
// Servers may refuse a bare address as a HELO name.
func addressLiteral(name string) string {
	ip, err := netip.ParseAddr(name)
	if err != nil || ip.Zone() != "" {
		return name
	}
	if ip.Is4() || ip.Is4In6() {
		return "[" + ip.Unmap().String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// Hello says EHLO, falling back to HELO only when the server answers 500
// or 502 (it does not know EHLO); any other refusal, 421 included, fails.
func (c *Client) Hello(ctx context.Context) error {
	name := c.cfg.LocalName
	if name == "" {
		name = c.defaultName()
	}
	if lit := addressLiteral(name); lit != name {
		c.tr.Info(PhaseEHLO, "HELO name %s is an IP address: sent as the address literal %s (RFC 5321 4.1.3)", name, lit)
		name = lit
	}
	r, err := c.cmd(ctx, PhaseEHLO, 2, "EHLO "+name)
	if err == nil {
		c.esmtp = true
		c.ext, c.authMechs = parseEHLO(r.Lines)
		c.helloDone = true
		return nil
	}
	if r == nil || (r.Code != 500 && r.Code != 502) {
		return err
	}
	c.tr.Info(PhaseEHLO, "server does not know EHLO (%d); falling back to HELO", r.Code)
	if _, err := c.cmd(ctx, PhaseEHLO, 2, "HELO "+name); err != nil {
		return err
	}
	c.esmtp = false
	c.ext, c.authMechs = map[string]string{}, nil
	c.helloDone = true
	return nil
}

// defaultName is the EHLO name when none is configured: the address
// literal of the connection's local address. RFC 5321 4.1.1.1 asks for an
// address literal from a client without a meaningful domain name, and
// "localhost" is not one (servers that check the name refuse it).
func (c *Client) defaultName() string {
	if a, ok := c.conn.LocalAddr().(*net.TCPAddr); ok && a.IP != nil {
		return addressLiteral(a.IP.String())
	}
	return "localhost"
}

// parseEHLO reads the extension lines of an EHLO reply (the first line is
// the server's name). Keywords are matched without regard to case,
// duplicates are merged, and the legacy "AUTH=LOGIN PLAIN" form counts as
// AUTH. Empty lines (smtp-sink sends one) are skipped.
func parseEHLO(lines []string) (map[string]string, []string) {
	ext := map[string]string{}
	var mechs []string
	seen := map[string]bool{}
	addMechs := func(s string) {
		for _, m := range strings.Fields(s) {
			m = strings.ToUpper(m)
			if !seen[m] {
				seen[m] = true
				mechs = append(mechs, m)
			}
		}
	}
	for i, line := range lines {
		if i == 0 {
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kw, param := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			kw, param = line[:i], line[i+1:]
		}
		kw = strings.ToUpper(kw)
		param = strings.TrimSpace(param)
		if strings.HasPrefix(kw, "AUTH=") {
			addMechs(kw[len("AUTH="):] + " " + param)
			if _, ok := ext["AUTH"]; !ok {
				ext["AUTH"] = ""
			}
			continue
		}
		if kw == "AUTH" {
			addMechs(param)
		}
		if old, ok := ext[kw]; !ok || (old == "" && param != "") {
			ext[kw] = param
		}
	}
	if len(mechs) > 0 {
		ext["AUTH"] = strings.Join(mechs, " ")
	}
	return ext, mechs
}

// StartTLS upgrades the connection. With TLSStartTLSOptional a server
// that does not offer STARTTLS, or refuses it, is noted and the
// conversation goes on in clear text; otherwise that fails. Bytes the
// server sends after its 220 and before the handshake fail the send
// (response injection, CVE-2011-0411 and kin). Capabilities learnt before
// TLS are forgotten and EHLO is said again.
func (c *Client) StartTLS(ctx context.Context) error {
	if c.tlsOn {
		// TLS is never started twice on one session (RFC 3207 4).
		c.tr.Info(PhaseStartTLS, "the connection is already protected by TLS: no STARTTLS")
		return nil
	}
	required := c.cfg.TLS == TLSStartTLS
	if ok, _ := c.Extension("STARTTLS"); !ok {
		if required {
			return refusal(KindNoStartTLS, PhaseStartTLS, "the server does not offer STARTTLS, and TLS mode starttls requires it")
		}
		c.tr.Info(PhaseStartTLS, "the server does not offer STARTTLS: going on WITHOUT encryption")
		return nil
	}
	r, err := c.cmd(ctx, PhaseStartTLS, 2, "STARTTLS")
	if err != nil {
		// A 421 closes the connection: there is nothing to go on with.
		if r != nil && r.Code != 421 && !required {
			c.tr.Info(PhaseStartTLS, "the server refused STARTTLS: going on WITHOUT encryption")
			return nil
		}
		return err
	}
	if n := c.rr.br.Buffered(); n > 0 {
		extra, _ := c.rr.br.Peek(n)
		c.tr.Info(PhaseStartTLS, "server sent %d bytes after its 220 reply and before TLS: %q", n, string(extra[:min(n, 200)]))
		c.broken = localError(PhaseStartTLS, "response injection")
		c.conn.Close()
		return localError(PhaseStartTLS, "the server sent %d bytes after its STARTTLS reply, before the TLS handshake (possible response injection); refusing to go on", n)
	}
	if err := c.handshake(ctx); err != nil {
		c.broken = err
		c.conn.Close()
		return err
	}
	before := c.ext
	c.ext, c.authMechs, c.helloDone = nil, nil, false
	if err := c.Hello(ctx); err != nil {
		return err
	}
	c.noteCapabilityChanges(before)
	return nil
}

// noteCapabilityChanges records how the EHLO keywords changed with TLS.
func (c *Client) noteCapabilityChanges(before map[string]string) {
	var added, removed []string
	for k, v := range c.ext {
		if old, ok := before[k]; !ok || old != v {
			added = append(added, strings.TrimSpace(k+" "+v))
		}
	}
	for k, v := range before {
		if now, ok := c.ext[k]; !ok || now != v {
			removed = append(removed, strings.TrimSpace(k+" "+v))
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	if len(added)+len(removed) == 0 {
		c.tr.Info(PhaseEHLO, "capabilities after STARTTLS: unchanged")
		return
	}
	c.tr.Info(PhaseEHLO, "capabilities after STARTTLS: added [%s], removed [%s]", strings.Join(added, "; "), strings.Join(removed, "; "))
}

// handshake runs the TLS handshake on the current connection and records
// the version, cipher and certificate chain.
func (c *Client) handshake(ctx context.Context) error {
	cfg := &tls.Config{}
	if c.cfg.TLSConfig != nil {
		cfg = c.cfg.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = strings.Trim(c.host, "[]")
	}
	if c.cfg.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
		c.tr.Info(PhaseStartTLS, "certificate verification is OFF (insecure override)")
	}
	phase := PhaseStartTLS
	if c.cfg.TLS == TLSImplicit {
		phase = PhaseConnect
	}
	tc := tls.Client(c.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.timeouts.Connect)
	defer cancel()
	start := time.Now()
	err := tc.HandshakeContext(hctx)
	took := time.Since(start)
	if err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			c.noteChain(phase, ve.UnverifiedCertificates, "NOT verified: "+ve.Err.Error())
			return &Error{Phase: phase, Message: "the server's certificate did not verify", Err: err}
		}
		c.tr.spanEnd(SpanTLS, took, phase, "TLS handshake failed after %s: %v", ms(took), err)
		e := netError(phase, "TLS handshake failed", err)
		e.kind = KindTLSHandshake
		var ae tls.AlertError
		if errors.As(err, &ae) {
			e.temporary = false
		}
		return e
	}
	st := tc.ConnectionState()
	c.tr.spanEnd(SpanTLS, took, phase, "TLS handshake done in %s: %s, %s", ms(took), tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	verdict := "verified for " + cfg.ServerName
	if c.cfg.InsecureSkipVerify {
		verdict = "NOT verified (insecure override)"
		if len(st.PeerCertificates) > 0 {
			opts := x509.VerifyOptions{DNSName: cfg.ServerName, Roots: cfg.RootCAs, Intermediates: x509.NewCertPool()}
			for _, ic := range st.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := st.PeerCertificates[0].Verify(opts); err != nil {
				verdict += "; it would have failed: " + err.Error()
			} else {
				verdict += "; it would have verified"
			}
		}
	}
	c.noteChain(phase, st.PeerCertificates, verdict)
	c.setConn(tc)
	c.tlsOn = true
	return nil
}

// noteChain records each certificate of a chain and the verdict.
func (c *Client) noteChain(phase Phase, chain []*x509.Certificate, verdict string) {
	for i, cert := range chain {
		sans := append([]string(nil), cert.DNSNames...)
		for _, ip := range cert.IPAddresses {
			sans = append(sans, ip.String())
		}
		c.tr.Info(phase, "certificate %d: subject %q, SANs [%s], issuer %q, valid %s to %s",
			i, cert.Subject.String(), strings.Join(sans, ", "), cert.Issuer.String(),
			cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly))
	}
	c.tr.Info(phase, "certificate %s", verdict)
}

// Reset sends RSET, ending any transaction.
func (c *Client) Reset(ctx context.Context) error {
	if _, err := c.cmd(ctx, PhaseReset, 250, "RSET"); err != nil {
		return err
	}
	c.needRset = false
	return nil
}

// Quit sends QUIT, reads the 221 and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	defer c.Close()
	_, err := c.cmd(ctx, PhaseQuit, 221, "QUIT")
	return err
}

// UseTranscript makes the client record in tr from now on, so that each
// message sent over a kept connection has a transcript of its own.
func (c *Client) UseTranscript(tr *Transcript) {
	c.tr, c.cfg.Transcript = tr, tr
}

// SetBeforeEnd replaces Config.BeforeEnd for the transactions to come.
func (c *Client) SetBeforeEnd(fn func(ctx context.Context) error) {
	c.cfg.BeforeEnd = fn
}

// Idle reports whether the connection can carry another transaction: it
// has not failed or been aborted, QUIT has not been said, and the server
// has said nothing since its last reply, and nothing is left unsent in
// the client's buffer. A server that ends an idle
// connection sends a 421 or just closes it; either shows up here, within
// a millisecond, instead of as the answer to the next command.
func (c *Client) Idle() bool {
	if c.conn == nil || c.broken != nil || c.quitSent || c.aborted.Load() || c.rr.br.Buffered() > 0 || c.bw.Buffered() > 0 {
		return false
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return false
	}
	_, err := c.rr.br.Peek(1)
	if err := c.conn.SetReadDeadline(time.Time{}); err != nil {
		return false
	}
	return isTimeout(err)
}

// Close closes the connection without saying goodbye.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// errOutOfStep is the cause of every error of replies out of step.
var errOutOfStep = errors.New("replies out of step")

// outOfStep marks the connection unusable after reply r, which cannot be
// the answer to what it was read for: the server's replies no longer
// match the commands (RFC 5321 4.2, RFC 2920 3.1), so no later reply can
// be trusted as the answer to anything. The error is temporary.
func (c *Client) outOfStep(phase Phase, r *Reply, what string) *Error {
	e := &Error{Phase: phase, Message: fmt.Sprintf("the server answered %s with %d: its replies are out of step with the commands", what, r.Code), Err: errOutOfStep, temporary: true}
	c.tr.Info(phase, "%s; nothing more is said on this connection", e.Message)
	c.broken = e
	return e
}

// unasked marks the connection unusable when the server has sent bytes
// that answer nothing the client said (they are waiting, unread, where no
// reply is due): its replies are out of step with the commands (RFC 5321
// 4.2). The error is temporary.
func (c *Client) unasked(phase Phase, when string) *Error {
	e := &Error{Phase: phase, Message: "the server sent a reply nobody asked for " + when + ": its replies are out of step with the commands", Err: errOutOfStep, temporary: true}
	if n := c.rr.br.Buffered(); n > 0 {
		extra, _ := c.rr.br.Peek(min(n, 200))
		c.tr.Info(phase, "unread from the server (%d bytes): %q", n, c.redact(string(extra)))
	}
	c.tr.Info(phase, "%s; nothing more is said on this connection", e.Message)
	c.broken = e
	return e
}

// ms formats a duration as milliseconds with three decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64) + "ms"
}

// PipelinesAfterEnd reports whether commands may go in the same write as
// the end of a message on this connection: false once the server refused
// them (a 503 "pipelined after end of DATA", an SMTP-smuggling defence)
// or after AvoidPipeliningAfterEnd.
func (c *Client) PipelinesAfterEnd() bool { return !c.noPipeAfterEnd }

// AvoidPipeliningAfterEnd makes the client write nothing after the end of
// a message in the same write, as after such a refusal: for a new
// connection to a server already known to refuse it.
func (c *Client) AvoidPipeliningAfterEnd() { c.noPipeAfterEnd = true }
