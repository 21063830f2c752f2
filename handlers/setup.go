package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"sockmail/internal/store"
)

// The first-run setup code. While no account exists, the first visitor
// of /signup becomes the administrator; so that this is the person
// running sockmail (and not a page that reached it through DNS rebinding,
// or another user of the machine), the sign-up needs a one-time code that
// "sockmail serve" prints at start. The code is stored (so that every
// instance sharing a database prints the same one) and deleted with the
// first account, however it is made (store.CreateUser); an account made
// with "sockmail user add" never needs it.

// setupCodeAlphabet has no 0/O or 1/I, so the code reads well from a
// log; 20 characters of it are 100 bits.
const (
	setupCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	setupCodeLength   = 20
	maxSetupCodeInput = 64
)

// Wrong setup codes are throttled per client and overall, over
// setupCodeWindow: guessing 100 bits is hopeless anyway, and the limits
// keep the log quiet. A client over its limit waits; everyone over the
// overall limit can still use "sockmail user add".
const (
	setupCodeWindow     = 15 * time.Minute
	maxSetupCodesClient = 5
	maxSetupCodesAll    = 50
)

// newSetupCode returns a random code, in groups of four: ABCD-EFGH-...
func newSetupCode() string {
	b := make([]byte, setupCodeLength)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	var out strings.Builder
	for i, v := range b {
		if i > 0 && i%4 == 0 {
			out.WriteByte('-')
		}
		out.WriteByte(setupCodeAlphabet[int(v)%len(setupCodeAlphabet)]) // 256 is a multiple of 32: no bias
	}
	return out.String()
}

// normSetupCode is a typed code as compared: upper case, without spaces
// and dashes.
func normSetupCode(s string) string {
	if len(s) > maxSetupCodeInput {
		s = s[:maxSetupCodeInput]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			return -1
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// SetupCode returns the one-time code the first sign-up needs, making and
// storing one when there is none. needed is false (and code empty) once
// an account exists. "sockmail serve" calls it at start and prints the
// code.
func (h *Handler) SetupCode(ctx context.Context) (code string, needed bool, err error) {
	n, err := h.accounts.CountUsers(ctx)
	if err != nil {
		return "", false, fmt.Errorf("handlers: setup code: %w", err)
	}
	if n > 0 {
		return "", false, nil
	}
	stored, err := h.accounts.SetSettingIfAbsent(ctx, store.SettingSetupCode, []byte(newSetupCode()))
	if err != nil {
		return "", false, fmt.Errorf("handlers: setup code: %w", err)
	}
	return string(stored), true, nil
}

// setupCodeMatches compares a typed code with the stored one in constant
// time (for codes of the same length).
func setupCodeMatches(typed, stored string) bool {
	return stored != "" && subtle.ConstantTimeCompare([]byte(normSetupCode(typed)), []byte(normSetupCode(stored))) == 1
}
