//go:build !sendonly

package main

// The keys and certificates serve loads or generates at start.

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sockmail/internal/config"
	"sockmail/internal/crypt"
)

// rootCAs returns the system pool plus the CAs of caFile, if any.
func rootCAs(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("serve: CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("serve: CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// keySetter is the part of the store that keeps generated keys.
type keySetter interface {
	SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// settingKey returns the random key stored under name, generating it on
// first start. SetSettingIfAbsent makes instances sharing a database
// agree on one key.
func settingKey(ctx context.Context, st keySetter, name string, size int) ([]byte, error) {
	k := make([]byte, size)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("serve: generate %s: %w", name, err)
	}
	got, err := st.SetSettingIfAbsent(ctx, name, k)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", name, err)
	}
	if len(got) != size {
		return nil, fmt.Errorf("serve: stored %s has %d bytes, want %d", name, len(got), size)
	}
	return got, nil
}

// secretKey returns the key that encrypts stored SMTP passwords: from
// SOCKMAIL_SECRET_KEY, or from DataDir/secret.key, generated on first use.
// It is kept out of the database so that a database copy alone does not
// reveal the passwords.
func secretKey(cfg *config.Config) ([]byte, error) {
	if cfg.SecretKey != "" {
		return base64.StdEncoding.DecodeString(cfg.SecretKey)
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	b, err := os.ReadFile(path)
	if err == nil {
		k, derr := base64.StdEncoding.DecodeString(string(trimNewline(b)))
		if derr != nil || len(k) != crypt.KeySize {
			return nil, fmt.Errorf("serve: %s does not hold a base64 key of %d bytes", path, crypt.KeySize)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("serve: read secret key: %w", err)
	}
	k := make([]byte, crypt.KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("serve: generate secret key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve: create secret key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("serve: write secret key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("serve: write secret key: %w", err)
	}
	return k, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
