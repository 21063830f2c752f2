// Package api holds what the HTTP API under /api/v1 needs besides its
// handlers: tokens (made, hashed, their scopes parsed), RFC 9457 problem
// details and the per-token rate limit.
package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// TokenPrefix starts every token, so that a token found in a log or a
// repository is recognisable as sockmail's.
const TokenPrefix = "smk_"

// MaxTokenLen bounds what is read from an Authorization header.
const MaxTokenLen = 128

// Scopes a token may hold.
const (
	ScopeSend     = "send"
	ScopeRead     = "read"
	ScopeCaptured = "captured"
	// ScopeMetrics may only scrape /metrics.
	ScopeMetrics = "metrics"
	ScopeAdmin   = "admin"
)

// AllScopes returns the scopes in the order they are shown.
func AllScopes() []string {
	return []string{ScopeSend, ScopeRead, ScopeCaptured, ScopeMetrics, ScopeAdmin}
}

// NewToken returns a new token (TokenPrefix and 32 random bytes,
// base64url) and its hash, the only form of it that is stored.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("api: new token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken returns the SHA-256 of token, hex: the key a token is stored
// and looked up by.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ParseScopes reads a comma-separated list of scopes ("send,read"): each
// must be one of AllScopes; duplicates are dropped; at least one is
// needed. The result is in AllScopes order.
func ParseScopes(s string) ([]string, error) {
	seen := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(AllScopes(), f) {
			return nil, fmt.Errorf("unknown scope %q (the scopes are %s)", f, strings.Join(AllScopes(), ", "))
		}
		seen[f] = true
	}
	var out []string
	for _, sc := range AllScopes() {
		if seen[sc] {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scope given (the scopes are %s)", strings.Join(AllScopes(), ", "))
	}
	return out, nil
}

// HasScope reports whether scopes grant want: the scope itself, or admin,
// which grants every scope.
func HasScope(scopes []string, want string) bool {
	return slices.Contains(scopes, want) || slices.Contains(scopes, ScopeAdmin)
}

// BearerToken reads the token of an "Authorization: Bearer <token>"
// header value; ok is false when the header is not of that form or the
// token is longer than MaxTokenLen.
func BearerToken(header string) (token string, ok bool) {
	scheme, tok, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > MaxTokenLen {
		return "", false
	}
	return tok, true
}
