package handlers

import (
	"net/url"
	"strings"
)

// maxRedirectTarget bounds a redirect target taken from input.
const maxRedirectTarget = 2048

// localTarget returns target when it is a path on this site that is safe
// to put in a Location header, and fallback otherwise. It is the one check
// for every redirect whose target comes from input (the sign-in "next",
// the "back" of admin actions).
//
// A safe target is at most 2 KiB of printable ASCII without backslash
// that starts with one "/": no scheme, no host, no user, no tab, CR, LF or
// other control byte. Its path (before "?" or "#") is also checked after
// percent-decoding, repeated until nothing changes: it must still start
// with one "/" and hold no backslash or control character, so
// "/%2F%2Fhost", "/%5Chost", "/%09/host" and "/%252F%252Fhost" are
// refused too. Browsers drop tabs and newlines from a URL and read a
// backslash as a slash, so "/\t/host" or "/\\host" would leave the site.
func localTarget(target, fallback string) string {
	if !isLocalTarget(target) {
		return fallback
	}
	return target
}

// isLocalTarget reports whether target passes localTarget's check.
func isLocalTarget(target string) bool {
	if target == "" || len(target) > maxRedirectTarget || !startsLocal(target) {
		return false
	}
	for i := 0; i < len(target); i++ {
		if b := target[i]; b <= ' ' || b >= 0x7f || b == '\\' {
			return false
		}
	}
	path := target
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for range 4 {
		dec, err := url.PathUnescape(path)
		if err != nil {
			return false
		}
		if dec == path {
			break
		}
		if !startsLocal(dec) || strings.ContainsFunc(dec, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }) {
			return false
		}
		path = dec
	}
	if dec, err := url.PathUnescape(path); err != nil || dec != path {
		return false // still encoded after four rounds
	}
	u, err := url.Parse(target)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == ""
}

// startsLocal reports whether s starts with exactly one "/".
func startsLocal(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//")
}
