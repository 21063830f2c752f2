package contact

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
// A token is "v1.<form id>.<issued, Unix ms>.<HMAC-SHA256, 128 bits>",
// signed with a 32-byte key kept in the settings table, so that every
// instance behind a load balancer accepts the tokens of the others.
const (
	tokenMinAge = 3 * time.Second
	tokenMaxAge = 2 * time.Hour
	// tokenSkew tolerates clocks of instances a little apart.
	tokenSkew = 30 * time.Second
	// tokenKeySetting names the signing key in the settings table.
	tokenKeySetting = "contact.token_key"
	tokenVersion    = "v1"
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

// signToken returns a token for form formID issued at now.
func signToken(key []byte, formID int64, now time.Time) string {
	ms := now.UnixMilli()
	return tokenVersion + "." + strconv.FormatInt(formID, 10) + "." + strconv.FormatInt(ms, 10) + "." + tokenMAC(key, formID, ms)
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
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != tokenVersion {
		return tokenForged, time.Time{}
	}
	id, err1 := strconv.ParseInt(parts[1], 10, 64)
	ms, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || id != formID {
		return tokenForged, time.Time{}
	}
	if !hmac.Equal([]byte(parts[3]), []byte(tokenMAC(key, id, ms))) {
		return tokenForged, time.Time{}
	}
	issued := time.UnixMilli(ms)
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
