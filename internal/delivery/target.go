package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// Kind says which server a Target names.
type Kind int

// The kinds of target.
const (
	// KindCapture is the built-in capture server.
	KindCapture Kind = iota + 1
	// KindProfile is a saved server profile (Target.ProfileID).
	KindProfile
	// KindServer is a server typed in (Target.Host, Target.Port).
	KindServer
	// KindSameAs is the server an earlier send went to (Target.SendID).
	KindSameAs
)

// Target names the server of a send and how to speak to it. For a
// profile, the profile's own TLS mode, verification, HELO name and
// credentials are used and the connection fields here are ignored.
type Target struct {
	Kind      Kind
	ProfileID int64  // KindProfile
	Host      string // KindServer
	Port      string // KindServer
	SendID    int64  // KindSameAs

	// TLS is a TLS mode name (smtp.ParseTLSMode).
	TLS string
	// Verify verifies the server's certificate.
	Verify bool
	// Helo is the name sent in EHLO/HELO; the host name if empty.
	Helo string
	// AuthMech is "" (no AUTH), "auto" or a mechanism name.
	AuthMech          string
	Username          string
	Password          string
	AllowInsecureAuth bool
}

// The errors of target resolution. Resolve returns them inside a
// *TargetError, which says which form field they belong to.
var (
	// ErrCaptureOff: the target is the built-in capture server, which is
	// off. It is temporary for the outbox.
	ErrCaptureOff = errors.New("delivery: the built-in capture server is off")
	// ErrProfileNotFound: the saved profile no longer exists. The error
	// also matches store.ErrNotFound.
	ErrProfileNotFound = errors.New("delivery: the server profile no longer exists")
	// ErrSendNotFound: the earlier send of a KindSameAs target no longer
	// exists.
	ErrSendNotFound = errors.New("delivery: the earlier send no longer exists")
	// ErrPasswordUndecryptable: a profile's stored password cannot be
	// decrypted with the current key.
	ErrPasswordUndecryptable = errors.New("delivery: the profile's stored password cannot be decrypted")
	// ErrBadTLSMode: the TLS mode is not one smtp knows.
	ErrBadTLSMode = errors.New("delivery: not a TLS mode")
	// ErrBadTarget: the target's kind or address is not valid.
	ErrBadTarget = errors.New("delivery: not a valid server")
)

// TargetError is a target that cannot be resolved: the form field it
// belongs to ("server", "tls", "host", "port"), a message for the person
// who chose it, and the sentinel error (ErrCaptureOff, ...) with its
// cause.
type TargetError struct {
	Field string
	Msg   string
	Err   error // a sentinel of this package
	Cause error // what went wrong underneath, if anything
}

func (e *TargetError) Error() string {
	msg := "delivery: " + strings.TrimSuffix(e.Msg, ".")
	if e.Cause != nil {
		return msg + ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause.
func (e *TargetError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// ProfileStore reads saved server profiles. *store.Store is one.
type ProfileStore interface {
	Profile(ctx context.Context, id int64) (*store.Profile, error)
}

// SendReader reads a stored send. *store.Store is one.
type SendReader interface {
	Send(ctx context.Context, id int64) (*store.Send, error)
}

// Opener decrypts stored passwords. *crypt.Box is one.
type Opener interface {
	Open(ciphertext []byte) ([]byte, error)
}

// Capture describes the built-in capture server.
type Capture struct {
	// Addr is its host:port; empty when it is off.
	Addr string
	// Certificate is its self-signed certificate, trusted for sends.
	Certificate *x509.Certificate
}

// ResolverDeps is what a Resolver reads.
type ResolverDeps struct {
	Profiles ProfileStore
	// Sends resolves KindSameAs targets; optional.
	Sends   SendReader
	Opener  Opener
	Capture Capture
	// RootCAs verifies the servers sends go to; the system pool if nil.
	// The capture server's certificate is added to a copy of it.
	RootCAs *x509.CertPool
}

// Resolver turns targets into SMTP configurations: the one place that
// knows how a server profile, the capture server or a typed-in server
// becomes an smtp.Config.
type Resolver struct {
	profiles ProfileStore
	sends    SendReader
	opener   Opener
	capture  Capture
	roots    *x509.CertPool
}

// NewResolver builds a Resolver.
func NewResolver(d ResolverDeps) *Resolver {
	roots := d.RootCAs
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
	}
	roots = roots.Clone()
	if d.Capture.Certificate != nil {
		roots.AddCert(d.Capture.Certificate)
	}
	return &Resolver{profiles: d.Profiles, sends: d.Sends, opener: d.Opener, capture: d.Capture, roots: roots}
}

// CaptureAddr returns the capture server's address, "" when it is off.
func (r *Resolver) CaptureAddr() string { return r.capture.Addr }

// Resolve turns t into an smtp.Config with a new transcript. Its errors
// are *TargetError; other errors (the store failing) are wrapped.
func (r *Resolver) Resolve(ctx context.Context, t Target) (smtp.Config, error) {
	cfg := smtp.Config{Transcript: smtp.NewTranscript(), TLSConfig: &tls.Config{RootCAs: r.roots}}
	switch t.Kind {
	case KindCapture:
		if r.capture.Addr == "" {
			return smtp.Config{}, &TargetError{Field: "server", Msg: "The built-in capture server is off.", Err: ErrCaptureOff}
		}
		cfg.Addr = r.capture.Addr
	case KindServer:
		if t.Host == "" || t.Port == "" {
			return smtp.Config{}, &TargetError{Field: "host", Msg: "Enter the server's host name and port.", Err: ErrBadTarget}
		}
		cfg.Addr = net.JoinHostPort(t.Host, t.Port)
	case KindSameAs:
		addr, err := r.sameAs(ctx, t.SendID)
		if err != nil {
			return smtp.Config{}, err
		}
		cfg.Addr = addr
	case KindProfile:
		return r.profile(ctx, cfg, t.ProfileID)
	default:
		return smtp.Config{}, &TargetError{Field: "server", Msg: "Choose a server.", Err: ErrBadTarget}
	}
	mode, err := smtp.ParseTLSMode(t.TLS)
	if err != nil {
		return smtp.Config{}, &TargetError{Field: "tls", Msg: "Choose a TLS mode.", Err: ErrBadTLSMode}
	}
	cfg.TLS, cfg.InsecureSkipVerify, cfg.LocalName, cfg.AllowInsecureAuth = mode, !t.Verify, t.Helo, t.AllowInsecureAuth
	cfg.Auth = auth(t.AuthMech, t.Username, t.Password)
	return cfg, nil
}

// Profile resolves an outbox item's server: profile 0 is the built-in
// capture server, spoken to in plain SMTP on loopback; any other id is a
// saved profile. Its signature is outbox.ProfileFunc's.
func (r *Resolver) Profile(ctx context.Context, id int64) (smtp.Config, error) {
	if id == 0 {
		return r.Resolve(ctx, Target{Kind: KindCapture, TLS: smtp.TLSNone.String()})
	}
	return r.Resolve(ctx, Target{Kind: KindProfile, ProfileID: id})
}

func (r *Resolver) sameAs(ctx context.Context, id int64) (string, error) {
	if r.sends == nil {
		return "", &TargetError{Field: "server", Msg: "Choose a server.", Err: ErrBadTarget}
	}
	snd, err := r.sends.Send(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", &TargetError{Field: "server", Msg: fmt.Sprintf("Send #%d no longer exists.", id), Err: ErrSendNotFound, Cause: err}
	}
	if err != nil {
		return "", fmt.Errorf("delivery: send %d: %w", id, err)
	}
	if snd.Server == "" {
		return "", &TargetError{Field: "server", Msg: fmt.Sprintf("Send #%d names no server; choose one.", id), Err: ErrBadTarget}
	}
	return snd.Server, nil
}

func (r *Resolver) profile(ctx context.Context, cfg smtp.Config, id int64) (smtp.Config, error) {
	p, err := r.profiles.Profile(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return smtp.Config{}, &TargetError{Field: "server", Msg: fmt.Sprintf("The server profile %d no longer exists.", id), Err: ErrProfileNotFound, Cause: err}
	}
	if err != nil {
		return smtp.Config{}, fmt.Errorf("delivery: server profile %d: %w", id, err)
	}
	if cfg.TLS, err = smtp.ParseTLSMode(p.TLSMode); err != nil {
		return smtp.Config{}, &TargetError{Field: "server", Msg: fmt.Sprintf("The TLS mode of the server profile %q is not valid; edit the profile.", p.Name), Err: ErrBadTLSMode}
	}
	cfg.Addr = net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	cfg.InsecureSkipVerify, cfg.LocalName, cfg.AllowInsecureAuth = p.InsecureSkipVerify, p.HeloName, p.AllowInsecureAuth
	var password []byte
	if p.AuthMech != "" && len(p.PasswordEnc) > 0 {
		if r.opener == nil {
			err = errors.New("no key to decrypt it")
		} else {
			password, err = r.opener.Open(p.PasswordEnc)
		}
		if err != nil {
			return smtp.Config{}, &TargetError{Field: "server", Err: ErrPasswordUndecryptable, Cause: err,
				Msg: fmt.Sprintf("The stored password of the server profile %q cannot be decrypted (was the secret key changed?). Save the profile's password again.", p.Name)}
		}
	}
	cfg.Auth = auth(p.AuthMech, p.Username, string(password))
	return cfg, nil
}

// auth returns the AUTH settings of a mechanism choice: none for "",
// the best the server offers for "auto".
func auth(mech, username, password string) *smtp.Auth {
	if mech == "" {
		return nil
	}
	if mech == "auto" {
		mech = ""
	}
	return &smtp.Auth{Mechanism: mech, Username: username, Password: password}
}
