package contact

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The time trap. A contact form carries a token that sockmail signed when
// the form was shown: the fetch() variant asks GET /f/{slug}/token when the
// page loads; the plain HTML variant, which cannot run code, gets one on
// sockmail's confirmation page (see handlers/contact.go). A submission is refused
// when its token is younger than tokenMinAge (a script filling the form
// at once) or older than tokenMaxAge (a token harvested and replayed
// later), and kept as blocked when the signature is wrong (forged).
//
// A token is "v2." and, base64url, a random 96-bit nonce followed by the
// AES-256-GCM sealing of the issue time (Unix ms) with the form's id as
// additional data: opaque to the page (neither the form's internal id nor
// the server's clock can be read from it), unique even when two visitors
// load a page in the same millisecond, and bound to its form. The AES key
// is derived from a 32-byte key kept in the settings table, so that every
// instance behind a load balancer accepts the tokens of the others. The
// earlier "v1.<form id>.<issued, Unix ms>.<HMAC-SHA256, 128 bits>" is
// still accepted (it was issued at most tokenMaxAge before an upgrade).
//
// A token is used once: a stored submission keeps its digest
// (tokenDigest), and a post with a used token is answered "already
// received" without storing anything.
const (
	tokenMinAge = 3 * time.Second
	tokenMaxAge = 2 * time.Hour
	// tokenSkew tolerates clocks of instances a little apart.
	tokenSkew = 30 * time.Second
	// tokenKeySetting names the signing key in the settings table.
	tokenKeySetting = "contact.token_key"
	tokenVersion    = "v2"
	tokenVersionV1  = "v1"
)

// tokenVerdict is what checking a token found.
type tokenVerdict int

const (
	tokenOK      tokenVerdict = iota
	tokenMissing              // no token: a plain form posted directly
	tokenForged               // does not parse, or the signature is wrong
	tokenTooFast              // younger than tokenMinAge
	tokenExpired              // older than tokenMaxAge
)

func (v tokenVerdict) String() string {
	switch v {
	case tokenOK:
		return "ok"
	case tokenMissing:
		return "missing"
	case tokenForged:
		return "forged"
	case tokenTooFast:
		return "too fast"
	case tokenExpired:
		return "expired"
	}
	return "unknown"
}

// tokenKeys loads the signing key once from the store, creating it on
// first use. A failure (database down) is not cached.
type tokenKeys struct {
	mu  sync.Mutex
	key []byte
}

// get returns the key, loading it from st (creating it there on first
// use) when it is not known yet.
func (k *tokenKeys) get(ctx context.Context, st Settings) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil {
		return k.key, nil
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // crypto/rand.Read never fails
	got, err := st.SetSettingIfAbsent(ctx, tokenKeySetting, fresh)
	if err != nil {
		return nil, fmt.Errorf("contact: time-trap key: %w", err)
	}
	if len(got) < 32 {
		return nil, fmt.Errorf("contact: time-trap key: stored key has %d bytes, want 32", len(got))
	}
	k.key = got
	return got, nil
}

func tokenMAC(key []byte, formID int64, issuedMS int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "sockmail contact token\x00%d\x00%d", formID, issuedMS)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// tokenAEAD is the AES-256-GCM of v2 tokens, its key derived from the
// stored signing key.
func tokenAEAD(key []byte) cipher.AEAD {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sockmail contact token v2 aes key"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic("contact: token cipher: " + err.Error()) // a 32-byte key never fails
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("contact: token cipher: " + err.Error())
	}
	return aead
}

// tokenAD is the additional data binding a v2 token to its form.
func tokenAD(formID int64) []byte { return []byte("form " + strconv.FormatInt(formID, 10)) }

// signToken returns a token for form formID issued at now.
func signToken(key []byte, formID int64, now time.Time) string {
	aead := tokenAEAD(key)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+8+aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	return tokenVersion + "." + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, ms[:], tokenAD(formID)))
}

// tokenDigest is what a stored submission keeps of its token: hex
// SHA-256, so the token itself is not stored.
func tokenDigest(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// openToken returns when a well-formed, authentic token for formID was
// issued.
func openToken(key []byte, formID int64, tok string) (time.Time, bool) {
	version, rest, _ := strings.Cut(tok, ".")
	switch version {
	case tokenVersion:
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		aead := tokenAEAD(key)
		if err != nil || len(raw) != aead.NonceSize()+8+aead.Overhead() {
			return time.Time{}, false
		}
		ms, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], tokenAD(formID))
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(int64(binary.BigEndian.Uint64(ms))), true
	case tokenVersionV1:
		parts := strings.Split(rest, ".")
		if len(parts) != 3 {
			return time.Time{}, false
		}
		id, err1 := strconv.ParseInt(parts[0], 10, 64)
		ms, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil || id != formID || !hmac.Equal([]byte(parts[2]), []byte(tokenMAC(key, id, ms))) {
			return time.Time{}, false
		}
		return time.UnixMilli(ms), true
	}
	return time.Time{}, false
}

// checkToken checks tok for form formID at now. It returns the verdict and,
// for a well-signed token, when it was issued.
func checkToken(key []byte, formID int64, tok string, now time.Time) (tokenVerdict, time.Time) {
	if tok == "" {
		return tokenMissing, time.Time{}
	}
	if len(tok) > 128 {
		return tokenForged, time.Time{}
	}
	issued, ok := openToken(key, formID, tok)
	if !ok {
		return tokenForged, time.Time{}
	}
	age := now.Sub(issued)
	switch {
	case age < -tokenSkew:
		// Signed by us, yet from the future: a clock far off. Treat it as
		// too fast rather than as forged; it becomes valid in time.
		return tokenTooFast, issued
	case age < tokenMinAge:
		return tokenTooFast, issued
	case age > tokenMaxAge:
		return tokenExpired, issued
	}
	return tokenOK, issued
}
