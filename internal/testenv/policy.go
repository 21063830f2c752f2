package testenv

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// PolicyServers describes the test tier of sockmail check's policy checks
// (MTA-STS, TLS-RPT, DANE, DNSSEC failures, bad certificates), all on
// 127.0.0.1 and answered by the test DNS (see DNS).
type PolicyServers struct {
	// CA is the test CA that signed every certificate below.
	CA
	// DNS is the test DNS that serves Zone and BogusZone.
	DNS *DNSServer
	// Zone is the signed, trusted zone of the policy domains
	// ("policy.test"): good.Zone passes everything, the others each break
	// one thing (stsmismatch, badtlsa, expired, othername).
	Zone string
	// BogusZone is a signed zone whose trust anchor does not match its key:
	// every answer from it fails DNSSEC validation (SERVFAIL).
	BogusZone string
	// UnsignedZone is an unsigned zone ("nodnssec.test") whose MX host has
	// a TLSA record that matches GoodPort's certificate but comes without
	// the AD bit.
	UnsignedZone string
	// GoodPort is a Postfix listener whose certificate is valid for
	// mx.Zone (and matches its TLSA record).
	GoodPort int
	// ExpiredPort is a Postfix listener with an expired certificate for
	// mx.Zone.
	ExpiredPort int
	// OtherNamePort is a Postfix listener whose certificate names
	// another host (mail.elsewhere.test).
	OtherNamePort int
	// MTASTSPort is the HTTPS server of the MTA-STS policies
	// (https://mta-sts.<domain>:MTASTSPort/.well-known/mta-sts.txt).
	MTASTSPort int
	// MTASTSCertFile and MTASTSKeyFile are the HTTPS server's certificate
	// (valid for mta-sts.good.Zone and mta-sts.stsmismatch.Zone) and key,
	// for tests that serve policies of their own under those names.
	MTASTSCertFile, MTASTSKeyFile string
}

// Policy returns the running policy test tier, or skips (fails under
// CI=true) when it is not running.
func Policy(t testing.TB) *PolicyServers {
	t.Helper()
	const what = "policy test servers (MTA-STS HTTPS, Postfix policy ports, policy.test zones)"
	d := DNS(t)
	if d == nil {
		return nil
	}
	env, err := ReadEnv()
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	v, err := env.Require("POLICY_ZONE", "POLICY_BOGUS_ZONE", "POLICY_GOOD_PORT", "POLICY_EXPIRED_PORT", "POLICY_OTHERNAME_PORT", "MTASTS_PORT", "MTASTS_CERT", "MTASTS_KEY", "POLICY_UNSIGNED_ZONE")
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	ca, err := loadTLS(env)
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	ports := make([]int, 4)
	var addrs []string
	for i, s := range v[2:6] {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			unavailable(t, what, StartHint, fmt.Errorf("%s: port %q is not a number from 1 to 65535", EnvFile(), s))
			return nil
		}
		ports[i] = n
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", s))
	}
	if err := checkListening(addrs...); err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	return &PolicyServers{CA: ca, DNS: d, Zone: v[0], BogusZone: v[1],
		GoodPort: ports[0], ExpiredPort: ports[1], OtherNamePort: ports[2], MTASTSPort: ports[3],
		MTASTSCertFile: v[6], MTASTSKeyFile: v[7], UnsignedZone: v[8]}
}
