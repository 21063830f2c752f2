package message

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// minRSABits is the smallest RSA key accepted for signing (RFC 8301 3.2).
const minRSABits = 1024

// DKIMOptions configures a DKIM signature (RFC 6376). Canonicalization is
// always relaxed/relaxed; the algorithm follows the key: rsa-sha256 for an
// RSA key, ed25519-sha256 (RFC 8463) for an Ed25519 key.
type DKIMOptions struct {
	// Domain is the signing domain (d=), whose DNS holds the public key at
	// Selector._domainkey.Domain.
	Domain string
	// Selector is the key selector (s=).
	Selector string
	// Signer is the private key: *rsa.PrivateKey (at least 1024 bits) or
	// ed25519.PrivateKey. ParsePrivateKeyPEM reads one.
	Signer crypto.Signer
	// Identifier is the optional agent or user identifier (i=), an address
	// at Domain or a subdomain.
	Identifier string
	// HeaderKeys lists the header fields to sign (h=). Nil means
	// DefaultDKIMHeaderKeys.
	HeaderKeys []string
	// Expiration, when not zero, is how long the signature stays valid
	// (x=).
	Expiration time.Duration
}

// DefaultDKIMHeaderKeys returns the header fields signed by default: the
// RFC 6376 5.4.1 recommendations plus the MIME fields. From, Subject, To,
// Cc, Reply-To, Date and Message-ID are listed twice ("oversigned", RFC 6376
// 8.15), so that adding another instance of them breaks the signature.
func DefaultDKIMHeaderKeys() []string {
	return []string{
		"From", "From", "Reply-To", "Reply-To", "Subject", "Subject",
		"Date", "Date", "To", "To", "Cc", "Cc", "Message-ID", "Message-ID",
		"Sender", "In-Reply-To", "References", "MIME-Version",
		"Content-Type", "Content-Transfer-Encoding",
		"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	}
}

// ParsePrivateKeyPEM reads a DKIM private key from PEM: PKCS #1 ("RSA
// PRIVATE KEY") or PKCS #8 ("PRIVATE KEY") holding an RSA or Ed25519 key.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("message: dkim: no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("message: dkim: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("message: dkim: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("message: dkim: RSA key of %d bits, at least %d needed", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("message: dkim: unsupported key type %T", key)
}

// Signed is a [Content] with a DKIM-Signature field prepended. WriteTo
// writes the field, then the content again: the content must write the same
// bytes as when it was signed (a prepared [Message] or a [Raw] does, as long
// as its sources do not change).
type Signed struct {
	content   Content
	signature string
}

// SignDKIM signs c. It writes c once through the signer, which hashes it
// as it streams (memory does not grow with the message), and returns the
// signed content, which writes c a second time after the signature. A
// [Message] is prepared first, so that both passes see the same Date,
// Message-ID and boundaries.
func SignDKIM(c Content, opts DKIMOptions) (*Signed, error) {
	if err := checkDKIMOptions(&opts); err != nil {
		return nil, err
	}
	if m, ok := c.(*Message); ok {
		if err := m.Prepare(); err != nil {
			return nil, err
		}
	}
	keys := opts.HeaderKeys
	if keys == nil {
		keys = DefaultDKIMHeaderKeys()
	}
	so := &dkim.SignOptions{
		Domain:                 opts.Domain,
		Selector:               opts.Selector,
		Identifier:             opts.Identifier,
		Signer:                 opts.Signer,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	}
	if opts.Expiration > 0 {
		so.Expiration = time.Now().Add(opts.Expiration)
	}
	s, err := dkim.NewSigner(so)
	if err != nil {
		return nil, fmt.Errorf("message: %w", err) // go-msgauth says "dkim: ..."
	}
	if _, err := c.WriteTo(s); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	sig, err := refoldSignature(s.Signature())
	if err != nil {
		return nil, err
	}
	return &Signed{content: c, signature: sig}, nil
}

// refoldSignature folds the DKIM-Signature field go-msgauth formats to
// lines of at most 78 characters where possible. It only breaks lines at
// white space the field already has (CRLF inserted before it), which
// relaxed header canonicalization (RFC 6376 3.4.2) maps back to the same
// form the signer hashed, so the signature stays valid. The h= tag has no
// white space to break at and may stay longer; no line exceeds 998.
func refoldSignature(sig string) (string, error) {
	name, value, ok := strings.Cut(strings.ReplaceAll(strings.TrimSuffix(sig, "\r\n"), "\r\n", ""), ":")
	if !ok {
		return "", errors.New("message: dkim: malformed signature field")
	}
	f := newField(name)
	for i, tok := range strings.Split(value, " ") {
		switch {
		case tok == "" && i == 0:
		case tok == "":
			f.glue(" ")
		default:
			f.token(" ", tok, false)
		}
	}
	return f.result()
}

func checkDKIMOptions(o *DKIMOptions) error {
	if o.Signer == nil {
		return errors.New("message: dkim: no signer")
	}
	d, err := checkDomain(o.Domain)
	if err != nil || !isASCII(d) || strings.HasPrefix(d, "[") {
		return fmt.Errorf("message: dkim: invalid domain %q", o.Domain)
	}
	o.Domain = d
	if _, err := checkDomain(o.Selector); err != nil || !isASCII(o.Selector) {
		return fmt.Errorf("message: dkim: invalid selector %q", o.Selector)
	}
	if o.Identifier != "" {
		if _, err := checkSpec(o.Identifier); err != nil {
			return fmt.Errorf("message: dkim: identifier %q: %w", o.Identifier, err)
		}
	}
	for _, k := range o.HeaderKeys {
		if k == "" || strings.ContainsAny(k, ":; \t\r\n") {
			return fmt.Errorf("message: dkim: invalid header key %q", k)
		}
	}
	if rk, ok := o.Signer.Public().(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
		return fmt.Errorf("message: dkim: RSA key of %d bits, at least %d needed", rk.N.BitLen(), minRSABits)
	}
	return nil
}

// Signature returns the DKIM-Signature header field, with its final CRLF.
func (s *Signed) Signature() string { return s.signature }

// EnvelopeFrom returns the envelope sender of the signed content.
func (s *Signed) EnvelopeFrom() string { return s.content.EnvelopeFrom() }

// Recipients returns the recipients of the signed content.
func (s *Signed) Recipients() []string { return s.content.Recipients() }

// NeedsSMTPUTF8 reports whether the signed content needs SMTPUTF8.
func (s *Signed) NeedsSMTPUTF8() bool { return s.content.NeedsSMTPUTF8() }

// Needs8BitMIME reports whether the signed content needs 8BITMIME.
func (s *Signed) Needs8BitMIME() bool { return s.content.Needs8BitMIME() }

// Size returns the size of the signature field plus the content.
func (s *Signed) Size() (int64, error) {
	n, err := s.content.Size()
	if err != nil {
		return 0, err
	}
	return int64(len(s.signature)) + n, nil
}

// WriteTo writes the signature field, then the content.
func (s *Signed) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, s.signature)
	if err != nil {
		return int64(n), fmt.Errorf("message: write: %w", err)
	}
	m, err := s.content.WriteTo(w)
	return int64(n) + m, err
}
