// Package capture is sockmail's built-in capture SMTP server: the target a
// fresh installation sends to, so the very first test send works with no
// mail server around. It never relays anything: every message it accepts
// is stored for viewing and goes nowhere else.
//
// It listens on loopback only and speaks ESMTP (RFC 5321) with PIPELINING,
// 8BITMIME, SIZE (RFC 1870), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES,
// CHUNKING (RFC 3030), DSN (RFC 3461, parameters accepted and ignored),
// STARTTLS (RFC 3207) with a self-signed certificate generated once into
// the data directory, and AUTH PLAIN and LOGIN (RFC 4954), offered only
// after STARTTLS. AUTH is optional. With Options.Username and
// Options.Password set, only those credentials pass and anything else gets
// 535 5.7.8 (useful to see a failure); without them any credentials pass,
// so that a send configured with AUTH works against it out of the box.
package capture

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"sockmail/internal/mailread"
	"sockmail/internal/store"
)

// Saver stores a received message and drops the oldest beyond the
// limits. *store.Store is one.
type Saver interface {
	SaveCaptured(ctx context.Context, c *store.Captured) error
	PruneCaptured(ctx context.Context, l store.CapturedLimits) (int, error)
}

// Defaults of the limits on what the capture server keeps.
const (
	DefaultMaxMessages   = 1000
	DefaultMaxTotalBytes = 256 << 20
)

// Options configures a capture server.
type Options struct {
	// Addr is the listen address; it must be on loopback. Port 0 picks a
	// free port (see Server.Addr).
	Addr string
	// Domain is the name in the greeting; "localhost" if empty.
	Domain string
	// Certificate is offered with STARTTLS. Use LoadOrCreateCertificate.
	Certificate tls.Certificate
	// MaxSize is the largest message accepted, in bytes (SIZE); 25 MiB if 0.
	MaxSize int64
	// MaxRecipients bounds RCPT TO per message; 100 if 0.
	MaxRecipients int
	// MaxMessages is how many captured messages are kept: after each
	// message is stored, the oldest beyond it are deleted.
	// DefaultMaxMessages if 0.
	MaxMessages int
	// MaxTotalBytes bounds the total size of the captured messages
	// kept, oldest deleted first; DefaultMaxTotalBytes if 0. It must be
	// at least MaxSize.
	MaxTotalBytes int64
	// Username and Password, when both are set, are the only credentials
	// AUTH accepts. Otherwise any credentials are accepted.
	Username, Password string
	// Timeout bounds each read and write on a connection; 1 minute if 0.
	Timeout time.Duration
	// Logger receives connection errors and one line per stored message.
	Logger *slog.Logger
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
	// Notifier, if not nil, is notified after each message is stored.
	Notifier *Notifier
}

// Server is a running capture server.
type Server struct {
	opts  Options
	saver Saver
	srv   *gosmtp.Server
	ln    *trackingListener
	done  chan error
	log   *slog.Logger
}

// Listen validates the options, opens the listener and starts serving in
// the background. Stop it with Shutdown.
func Listen(opts Options, saver Saver) (*Server, error) {
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("capture: address %q: %w", opts.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("capture: address %q is not on loopback", opts.Addr)
	}
	if saver == nil {
		return nil, errors.New("capture: no saver")
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 25 << 20
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 100
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxTotalBytes <= 0 {
		opts.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if opts.MaxTotalBytes < opts.MaxSize {
		return nil, fmt.Errorf("capture: total size limit %d bytes is below the message size limit %d bytes", opts.MaxTotalBytes, opts.MaxSize)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, saver: saver, done: make(chan error, 1), log: opts.Logger.With("component", "capture")}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	srv.Domain = opts.Domain
	srv.MaxMessageBytes = opts.MaxSize
	srv.MaxRecipients = opts.MaxRecipients
	// RFC 5321 caps lines at 1000 octets, but a capture server is there to
	// show what a client sent, so it is lenient (still bounded).
	srv.MaxLineLength = 64 << 10
	srv.ReadTimeout = opts.Timeout
	srv.WriteTimeout = opts.Timeout
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ErrorLog = log.New(slogWriter{s.log}, "", 0)
	if len(opts.Certificate.Certificate) > 0 {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{opts.Certificate}, MinVersion: tls.VersionTLS12}
	}
	s.srv = srv
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("capture: listen: %w", err)
	}
	s.ln = &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	ln = s.ln
	go func() { s.done <- srv.Serve(ln) }()
	s.log.Info("capture SMTP server listening", "addr", ln.Addr().String(), "starttls", srv.TLSConfig != nil, "auth", s.authDescription())
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CertPool returns a pool holding the server's certificate, so that a
// client can verify it, or nil without a certificate.
func (s *Server) CertPool() *x509.CertPool {
	if s.opts.Certificate.Leaf == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(s.opts.Certificate.Leaf)
	return p
}

// Certificate returns the server's certificate, or nil without one.
func (s *Server) Certificate() *x509.Certificate { return s.opts.Certificate.Leaf }

// Shutdown stops accepting connections and waits for open ones to finish
// until ctx is done, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	// Close the listener and let Serve return before asking go-smtp to
	// wait for its connections: its Shutdown races with an Accept in
	// flight, and its Close after Shutdown does not close connections.
	_ = s.ln.Close()
	<-s.done
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener we closed above
	}
	if err != nil && ctx.Err() != nil {
		// Cut the connections still open; their goroutines end at once.
		s.ln.closeAll()
		_ = s.srv.Shutdown(context.Background())
	}
	if err != nil {
		return fmt.Errorf("capture: shutdown: %w", err)
	}
	return nil
}

// trackingListener remembers the open connections so that Shutdown can
// close them when its deadline passes.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

func (s *Server) authDescription() string {
	if s.opts.Username != "" && s.opts.Password != "" {
		return "configured credentials only"
	}
	return "any credentials"
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	sess := &session{srv: s, remote: c.Conn().RemoteAddr().String()}
	if st, ok := c.TLSConnectionState(); ok {
		sess.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	}
	return sess, nil
}

// session is one SMTP session (between EHLO and RSET, STARTTLS or QUIT).
type session struct {
	srv      *Server
	remote   string
	tls      string
	authUser string
	from     string
	rcpts    []string
}

// AuthMechanisms implements gosmtp.AuthSession.
func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

// Auth implements gosmtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		o := s.srv.opts
		if o.Username != "" && o.Password != "" && (user != o.Username || pass != o.Password) {
			s.srv.log.Info("capture AUTH refused", "user", user, "remote", s.remote)
			return gosmtp.ErrAuthFailed
		}
		s.authUser = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return gosmtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// Mail implements gosmtp.Session.
func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from = from
	s.rcpts = nil
	return nil
}

// Rcpt implements gosmtp.Session.
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data implements gosmtp.Session: it reads the message (bounded by the
// server's size limit) and stores it.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		return fmt.Errorf("capture: read message: %w", err)
	}
	c := &store.Captured{
		ReceivedAt: s.srv.opts.Now().UTC(),
		MailFrom:   s.from,
		Rcpts:      append([]string(nil), s.rcpts...),
		Subject:    subjectOf(raw),
		Size:       int64(len(raw)),
		Raw:        raw,
		RemoteAddr: s.remote,
		TLS:        s.tls != "",
		AuthUser:   s.authUser,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.srv.saver.SaveCaptured(ctx, c); err != nil {
		s.srv.log.Error("capture: store message", "err", err)
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message, try again later"}
	}
	s.srv.log.Info("captured message", "id", c.ID, "from", c.MailFrom, "rcpts", len(c.Rcpts), "size", c.Size, "tls", s.tls)
	if n := s.srv.opts.Notifier; n != nil {
		defer n.Notify() // after pruning, so a live list never shows a message already dropped
	}
	// The message is stored: a failure to prune is logged, not answered.
	if n, err := s.srv.saver.PruneCaptured(ctx, store.CapturedLimits{MaxMessages: s.srv.opts.MaxMessages, MaxBytes: s.srv.opts.MaxTotalBytes}); err != nil {
		s.srv.log.Error("capture: drop the oldest messages", "err", err)
	} else if n > 0 {
		s.srv.log.Info("captured messages over the limits dropped", "dropped", n,
			"max_messages", s.srv.opts.MaxMessages, "max_total_bytes", s.srv.opts.MaxTotalBytes)
	}
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("OK: queued as C%d (captured, not delivered)", c.ID)}
}

// Reset implements gosmtp.Session.
func (s *session) Reset() { s.from, s.rcpts = "", nil }

// Logout implements gosmtp.Session.
func (s *session) Logout() error { return nil }

// subjectOf returns the decoded Subject header of a raw message, or "".
func subjectOf(raw []byte) string {
	subj := mailread.Subject(raw)
	if len(subj) > 998 {
		subj = subj[:998]
	}
	return strings.TrimSpace(subj)
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl no longer provides.
type loginServer struct {
	check    func(user, pass string) error
	step     int
	username string
}

// Next implements sasl.Server.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if response != nil {
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}

// slogWriter turns go-smtp's log.Logger output into slog records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
