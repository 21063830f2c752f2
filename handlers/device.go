package handlers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sockmail/internal/store"
)

// Device cookies (OWASP's "device cookie" defence against lock-out): a
// browser that has signed in to an account gets a long-lived cookie
// naming the account and a random device id, signed with HMAC-SHA256. A
// sign-in from such a browser is throttled by its own device id only, so
// that guesses made elsewhere, however many, never refuse it; sign-ins
// from other browsers are throttled per account and client and by an
// account-wide limit (auth.go). Nothing is stored: the signature is the
// proof, and changing the session keys voids every device cookie.
const (
	deviceCookie   = "sockmail_device"
	deviceLifetime = 365 * 24 * time.Hour
	deviceVersion  = "d1"
	maxDeviceValue = 256
)

// deviceKeyFrom derives the device-cookie key from the session hash key,
// so that the two never sign the same thing with the same key.
func deviceKeyFrom(sessionHashKey []byte) []byte {
	m := hmac.New(sha256.New, sessionHashKey)
	m.Write([]byte("sockmail device cookie " + deviceVersion))
	return m.Sum(nil)
}

// deviceMAC signs "d1.<user id>.<device id>".
func (h *Handler) deviceMAC(payload string) []byte {
	m := hmac.New(sha256.New, h.deviceKey)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// knownDevice returns the device id of the browser's device cookie when
// the cookie is genuine and belongs to u.
func (h *Handler) knownDevice(c echo.Context, u *store.User) (string, bool) {
	ck, err := c.Cookie(deviceCookie)
	if err != nil || u == nil || len(ck.Value) > maxDeviceValue {
		return "", false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 4 || parts[0] != deviceVersion || parts[1] != strconv.FormatInt(u.ID, 10) || parts[2] == "" {
		return "", false
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || !hmac.Equal(mac, h.deviceMAC(strings.Join(parts[:3], "."))) {
		return "", false
	}
	return parts[2], true
}

// rememberDevice gives the browser a device cookie for u, unless it has
// a genuine one already.
func (h *Handler) rememberDevice(c echo.Context, u *store.User) {
	if _, ok := h.knownDevice(c, u); ok {
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	payload := deviceVersion + "." + strconv.FormatInt(u.ID, 10) + "." + base64.RawURLEncoding.EncodeToString(b)
	c.SetCookie(&http.Cookie{
		Name:     deviceCookie,
		Value:    payload + "." + base64.RawURLEncoding.EncodeToString(h.deviceMAC(payload)),
		Path:     "/",
		MaxAge:   int(deviceLifetime / time.Second),
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// clientKey is the client a sign-in comes from, for throttling: its
// address, or for IPv6 its /64, which one subscriber usually holds whole.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
