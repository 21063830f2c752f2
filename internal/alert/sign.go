package alert

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook headers. The signature is
//
//	X-Sockmail-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// where timestamp is the value of X-Sockmail-Timestamp (Unix seconds of
// the attempt): a receiver recomputes it over the raw body, compares in
// constant time and refuses timestamps far from its clock, so that a
// captured request cannot be replayed later.
const (
	HeaderSignature = "X-Sockmail-Signature"
	HeaderTimestamp = "X-Sockmail-Timestamp"
	HeaderEvent     = "X-Sockmail-Event"
	signaturePrefix = "sha256="
)

// DefaultTolerance is how far from the receiver's clock Verify accepts
// a timestamp.
const DefaultTolerance = 5 * time.Minute

// Sign returns the X-Sockmail-Signature value of body sent at ts.
func Sign(secret string, ts time.Time, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("alert: webhook signature does not match")
	ErrStale        = errors.New("alert: webhook timestamp too far from now")
)

// Verify checks a webhook request as a receiver should: the signature
// header against the timestamp header and the raw body, and the
// timestamp within tolerance of now (DefaultTolerance if 0).
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %v", ErrStale, d)
	}
	got, err := hex.DecodeString(strings.TrimPrefix(signature, signaturePrefix))
	if err != nil || !strings.HasPrefix(signature, signaturePrefix) {
		return fmt.Errorf("%w: malformed", ErrBadSignature)
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrBadSignature
	}
	return nil
}

// NewSecret returns a random webhook secret (64 hex digits).
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("alert: secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
