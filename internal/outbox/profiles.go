package outbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// ProfileStore reads server profiles. *store.Store is one.
type ProfileStore interface {
	Profile(ctx context.Context, id int64) (*store.Profile, error)
}

// Opener decrypts stored passwords. *crypt.Box is one.
type Opener interface {
	Open(ciphertext []byte) ([]byte, error)
}

// ErrNoCaptureServer is returned for profile 0 when the built-in capture
// server is off. It is temporary: turning the capture server on, or
// pointing the form at a profile, lets the queued messages go.
var ErrNoCaptureServer = errors.New("outbox: the form delivers to the built-in capture server, which is off")

// StoreProfiles returns the ProfileFunc of a running sockmail: profile 0
// is the capture server at captureAddr (plain SMTP on loopback; "" when
// it is off); any other id is read from ps, its password decrypted with
// box, and its certificate verified against roots (the system pool if
// nil). A profile that no longer exists gives an error wrapping
// store.ErrNotFound.
func StoreProfiles(ps ProfileStore, box Opener, captureAddr string, roots *x509.CertPool) ProfileFunc {
	return func(ctx context.Context, id int64) (smtp.Config, error) {
		if id == 0 {
			if captureAddr == "" {
				return smtp.Config{}, ErrNoCaptureServer
			}
			return smtp.Config{Addr: captureAddr, TLS: smtp.TLSNone}, nil
		}
		p, err := ps.Profile(ctx, id)
		if err != nil {
			return smtp.Config{}, fmt.Errorf("outbox: server profile %d: %w", id, err)
		}
		mode, err := smtp.ParseTLSMode(p.TLSMode)
		if err != nil {
			return smtp.Config{}, fmt.Errorf("outbox: server profile %q: %w", p.Name, err)
		}
		cfg := smtp.Config{
			Addr:               net.JoinHostPort(p.Host, strconv.Itoa(p.Port)),
			TLS:                mode,
			TLSConfig:          &tls.Config{RootCAs: roots},
			InsecureSkipVerify: p.InsecureSkipVerify,
			LocalName:          p.HeloName,
		}
		if p.AuthMech != "" {
			mech := p.AuthMech
			if mech == "auto" {
				mech = ""
			}
			var password []byte
			if len(p.PasswordEnc) > 0 {
				if password, err = box.Open(p.PasswordEnc); err != nil {
					return smtp.Config{}, fmt.Errorf("outbox: server profile %q: the stored password cannot be decrypted (was the secret key changed?): %w", p.Name, err)
				}
			}
			cfg.Auth = &smtp.Auth{Mechanism: mech, Username: p.Username, Password: string(password)}
		}
		return cfg, nil
	}
}
