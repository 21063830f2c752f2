package check

import (
	"context"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// TestPolicyDomains checks the policy.test domains against the real tier:
// Knot and the validating Unbound, the MTA-STS policies served over HTTPS
// with a certificate from the test CA, and Postfix behind a good, an
// expired and an other-name certificate. The correct domain passes every
// policy; each broken variant gets its own finding.
func TestPolicyDomains(t *testing.T) {
	p := testenv.Policy(t)
	if p == nil {
		return
	}
	type want struct {
		host, id string
		status   Status
		text     string
	}
	mx := "mx." + p.Zone
	tests := []struct {
		name   string
		domain string
		port   int
		want   []want
		noFail bool
	}{
		{name: "correct", domain: "good." + p.Zone, port: p.GoodPort, noFail: true, want: []want{
			{"", "dns.dnssec", Pass, "AD bit set"},
			{"", "sts.record", Pass, "announces an MTA-STS policy (id 20261206T000000)"},
			{"", "sts.policy", Pass, "mode enforce, max_age 604800 s, mx " + mx},
			{"", "sts.mode", Pass, "enforced"},
			{mx, "sts.mx", Pass, "matches the MTA-STS policy"},
			{mx, "sts.tls", Pass, "valid for its name"},
			{"", "tlsrpt.record", Pass, "mailto:tlsrpt@" + p.Zone + ", https://report." + p.Zone + "/tlsrpt"},
			{mx, "dane.tlsa", Pass, "TLSA record 3 1 1"},
			{mx, "tls.name", Pass, "valid for " + mx},
			{mx, "tls.chain", Pass, "verifies"},
			{mx, "tls.expiry", Pass, "valid until"},
		}},
		{name: "MTA-STS enforce, MX not in the policy", domain: "stsmismatch." + p.Zone, port: p.GoodPort, want: []want{
			{"", "sts.policy", Pass, "mode enforce"},
			{mx, "sts.mx", Fail, "matches no mx pattern of the MTA-STS policy (mail.elsewhere.test, *.elsewhere.test)"},
			{"", "tlsrpt.record", Info, "no TLS-RPT record"},
		}},
		{name: "MTA-STS testing, MX not in the policy", domain: "testing." + p.Zone, port: p.GoodPort, want: []want{
			{"", "sts.mode", Info, "testing mode"},
			{"", "sts.max_age", Warning, "3600 s, under a day"},
			{mx, "sts.mx", Warning, "matches no mx pattern of the MTA-STS policy (*.elsewhere.test)"},
		}},
		{name: "MTA-STS record without a policy", domain: "nopolicy." + p.Zone, port: p.GoodPort, want: []want{
			{"", "sts.record", Pass, "announces an MTA-STS policy (id 1)"},
			{"", "sts.policy", Fail, "could not be fetched from https://mta-sts.nopolicy." + p.Zone + ":"},
			{"", "sts.policy", Fail, "certificate is valid for"},
		}},
		{name: "TLSA not matching", domain: "badtlsa." + p.Zone, port: p.GoodPort, want: []want{
			{"mxbadtlsa." + p.Zone, "dane.tlsa", Fail, "None of the DNSSEC-validated TLSA records"},
			{"mxbadtlsa." + p.Zone, "tls.name", Pass, "valid for mxbadtlsa." + p.Zone},
			{"", "sts.record", Info, "no MTA-STS policy"},
		}},
		{name: "expired certificate", domain: "expired." + p.Zone, port: p.ExpiredPort, want: []want{
			{mx, "tls.expiry", Fail, "expired on 2020-02-01"},
			{mx, "tls.chain", Fail, "does not verify"},
			{mx, "tls.name", Pass, "valid for " + mx},
			{mx, "dane.tlsa", Info, "no TLSA record"},
			{mx, "sts.mx", Pass, "matches the MTA-STS policy"},
			{mx, "sts.tls", Fail, "expired on 2020-02-01"},
		}},
		{name: "certificate for another name", domain: "othername." + p.Zone, port: p.OtherNamePort, want: []want{
			{mx, "tls.name", Fail, "not valid for " + mx + " (it names mail.elsewhere.test)"},
			{mx, "tls.expiry", Pass, "valid until"},
		}},
		{name: "TLSA without DNSSEC", domain: p.UnsignedZone, port: p.GoodPort, want: []want{
			{"", "dns.dnssec", Info, "not DNSSEC-validated"},
			{"mx." + p.UnsignedZone, "dane.tlsa", Warning, "not DNSSEC-validated (no AD bit): DANE senders do not use them"},
			{"mx." + p.UnsignedZone, "tls.name", Pass, "valid for mx." + p.UnsignedZone},
		}},
		{name: "DNSSEC bogus", domain: p.BogusZone, port: p.GoodPort, want: []want{
			{"", "dns.mx", Fail, "DNSSEC validation failed for " + p.BogusZone + " MX"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := ParseTarget(tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), target, Options{Resolver: p.DNS.Resolver, MXPort: tt.port,
				RootCAs: p.RootCAs, MTASTSPort: p.MTASTSPort})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				f := finding(t, rep, w.host, w.id)
				if f.Status != w.status || !strings.Contains(f.Message, w.text) {
					t.Errorf("%s %s: %s %q; want %s containing %q", w.host, w.id, f.Status, f.Message, w.status, w.text)
				}
			}
			if tt.noFail {
				for _, f := range rep.Findings() {
					if f.Status == Fail {
						t.Errorf("failure in the correct domain: %s %s: %s", f.Host, f.ID, f.Message)
					}
				}
			}
		})
	}
}
