package outbox

import (
	"crypto/x509"

	"sockmail/internal/delivery"
)

// ErrNoCaptureServer is returned for profile 0 when the built-in capture
// server is off. It is temporary: turning the capture server on, or
// pointing the form at a profile, lets the queued messages go. It is
// delivery.ErrCaptureOff.
var ErrNoCaptureServer = delivery.ErrCaptureOff

// StoreProfiles returns the ProfileFunc of a sockmail whose profiles are
// in ps, their passwords decrypted with box, with the capture server at
// captureAddr ("" when it is off) and certificates verified against
// roots (the system pool if nil). It is (*delivery.Resolver).Profile,
// where profiles are resolved for every kind of send; serve builds that
// resolver itself and shares it with the web app.
func StoreProfiles(ps delivery.ProfileStore, box delivery.Opener, captureAddr string, roots *x509.CertPool) ProfileFunc {
	r := delivery.NewResolver(delivery.ResolverDeps{Profiles: ps, Opener: box, Capture: delivery.Capture{Addr: captureAddr}, RootCAs: roots})
	return r.Profile
}
