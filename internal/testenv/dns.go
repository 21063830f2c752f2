package testenv

import (
	"testing"
)

// DNSServer describes the test DNS: Knot serving the test zones and
// Unbound validating them. Both are on 127.0.0.1 (UDP and TCP).
type DNSServer struct {
	// Resolver is Unbound, host:port: a validating resolver that trusts
	// SignedZone's key and answers only the test zones and localhost.
	Resolver string
	// Authoritative is Knot, host:port.
	Authoritative string
	// SignedZone is the DNSSEC-signed test zone ("check.test"): answers
	// from it carry the AD bit through Resolver.
	SignedZone string
	// InsecureZone is an unsigned test zone ("insecure.test").
	InsecureZone string
}

// DNS returns the running test DNS servers, or skips (fails under
// CI=true) when they are not running.
func DNS(t testing.TB) *DNSServer {
	t.Helper()
	env, err := ReadEnv()
	if err != nil {
		unavailable(t, "test DNS (Knot and Unbound)", StartHint, err)
		return nil
	}
	v, err := env.Require("DNS_RESOLVER", "DNS_AUTHORITATIVE", "DNS_SIGNED_ZONE", "DNS_INSECURE_ZONE")
	if err != nil {
		unavailable(t, "test DNS (Knot and Unbound)", StartHint, err)
		return nil
	}
	if err := checkListening(v[0], v[1]); err != nil {
		unavailable(t, "test DNS (Knot and Unbound)", StartHint, err)
		return nil
	}
	return &DNSServer{Resolver: v[0], Authoritative: v[1], SignedZone: v[2], InsecureZone: v[3]}
}
