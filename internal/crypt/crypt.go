// Package crypt encrypts small secrets at rest, such as the SMTP passwords
// of saved server profiles, with AES-256-GCM (NIST SP 800-38D) from the
// standard library.
//
// A sealed value is a version byte, a random 96-bit nonce and the GCM
// ciphertext with its 128-bit tag. Random nonces are safe for the number
// of values sockmail seals under one key (far below the 2^32 limit).
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// version1 marks the format: AES-256-GCM, 12-byte random nonce, 16-byte tag.
const version1 = 1

// ErrDecrypt is returned by Open when a value is malformed, was sealed
// under another key, or was changed after sealing.
var ErrDecrypt = errors.New("crypt: cannot decrypt: wrong key or damaged value")

// Box seals and opens values under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext with a fresh random nonce, so
// sealing the same plaintext twice gives different values.
func (b *Box) Seal(plaintext []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+b.aead.Overhead())
	out[0] = version1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("crypt: nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:1+ns], plaintext, out[:1]), nil
}

// Open decrypts a value made by Seal. It returns ErrDecrypt when the value
// is malformed, was sealed under a different key, or was tampered with.
func (b *Box) Open(ciphertext []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(ciphertext) < 1+ns+b.aead.Overhead() || ciphertext[0] != version1 {
		return nil, ErrDecrypt
	}
	pt, err := b.aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], ciphertext[:1])
	if err != nil {
		return nil, ErrDecrypt
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}
