package check

import (
	"context"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

// runSender checks the sender side of from through the test resolver,
// with a target whose MX port is closed (only its DNS is looked at).
func runSender(t *testing.T, resolver string, so SenderOptions) *Report {
	t.Helper()
	closed := testenv.ClosedPort(t)
	target, err := ParseTarget("insecure.test")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), target, Options{Resolver: resolver, MXPort: portOf(t, closed), Sender: so})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestSenderDNS checks SPF, DMARC and DKIM findings against the
// sender.test and dmarcorg.test zones of the real DNS tier.
func TestSenderDNS(t *testing.T) {
	d := testenv.DNS(t)
	type want struct {
		id     string
		status Status
		text   string
	}
	tests := []struct {
		name string
		so   SenderOptions
		want []want
		// absent lists finding IDs that must not appear.
		absent []string
	}{
		{name: "spf pass in range", so: SenderOptions{From: "ip.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.record", Pass, `"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"`},
			{"spf.all", Pass, "-all"},
			{"spf.lookups", Pass, "0 of the 10"},
			{"spf.result", Pass, "SPF gives pass for mail from 192.0.2.5"},
		}},
		{name: "spf pass ipv6", so: SenderOptions{From: "ip.sender.test", IP: "2001:db8::25"}, want: []want{
			{"spf.result", Pass, "ip6:2001:db8::/32 matched 2001:db8::25"},
		}},
		{name: "spf fail outside", so: SenderOptions{From: "ip.sender.test", IP: "198.51.100.1"}, want: []want{
			{"spf.result", Fail, "SPF gives fail"},
		}},
		{name: "spf softfail", so: SenderOptions{From: "soft.sender.test", IP: "198.51.100.1"}, want: []want{
			{"spf.all", Pass, "~all"},
			{"spf.result", Warning, "SPF gives softfail"},
		}},
		{name: "spf neutral", so: SenderOptions{From: "neutral.sender.test", IP: "198.51.100.1"}, want: []want{
			{"spf.all", Warning, "?all"},
			{"spf.result", Warning, "SPF gives neutral"},
		}},
		{name: "include chain", so: SenderOptions{From: "inc.sender.test", IP: "203.0.113.7"}, want: []want{
			{"spf.lookups", Pass, "2 of the 10"},
			{"spf.result", Pass, "inc.sender.test: v=spf1 include:inc1.sender.test -all → inc1.sender.test: v=spf1 include:inc2.sender.test ~all → inc2.sender.test: v=spf1 ip4:203.0.113.7 -all → ip4:203.0.113.7 matched 203.0.113.7"},
		}},
		{name: "include chain miss", so: SenderOptions{From: "inc.sender.test", IP: "203.0.113.8"}, want: []want{
			{"spf.result", Fail, "SPF gives fail"},
		}},
		{name: "redirect", so: SenderOptions{From: "redir.sender.test", IP: "203.0.113.7"}, want: []want{
			{"spf.all", Info, "redirecting to inc2.sender.test"},
			{"spf.lookups", Pass, "1 of the 10"},
			{"spf.result", Pass, "redirect to inc2.sender.test"},
		}},
		{name: "a matches", so: SenderOptions{From: "amx.sender.test", IP: "127.0.0.9"}, want: []want{
			{"spf.lookups", Pass, "2 of the 10"},
			{"spf.result", Pass, "a matched 127.0.0.9"},
		}},
		{name: "mx matches", so: SenderOptions{From: "amx.sender.test", IP: "127.0.0.10"}, want: []want{
			{"spf.result", Pass, "mx:amx.sender.test/32 matched 127.0.0.10"},
		}},
		{name: "exists with macros", so: SenderOptions{From: "macro.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.result", Pass, "matched 192.0.2.5"},
		}},
		{name: "exists with macros miss", so: SenderOptions{From: "macro.sender.test", IP: "192.0.2.6"}, want: []want{
			{"spf.result", Fail, "SPF gives fail"},
		}},
		{name: "ptr matches", so: SenderOptions{From: "ptr.sender.test", IP: "127.0.0.1"}, want: []want{
			{"spf.ptr", Warning, "RFC 7208 5.5 says not to use it"},
			{"spf.result", Pass, "ptr:localhost matched 127.0.0.1"},
		}},
		{name: "ptr other name", so: SenderOptions{From: "ptr.sender.test", IP: "127.0.0.2"}, want: []want{
			{"spf.result", Fail, "SPF gives fail"},
		}},
		{name: "spf ok without ptr", so: SenderOptions{From: "soft.sender.test"}, absent: []string{"spf.ptr", "spf.result", "spf.tree"}},
		{name: "include loop", so: SenderOptions{From: "loop.sender.test", IP: "198.51.100.1"}, want: []want{
			{"spf.tree", Fail, "loop.sender.test includes or redirects to itself (loop.sender.test → loop2.sender.test → loop.sender.test): a loop"},
			{"spf.result", Fail, "SPF gives permerror"},
		}},
		{name: "include loop after a match", so: SenderOptions{From: "loop.sender.test", IP: "192.0.2.1"}, want: []want{
			{"spf.result", Pass, "ip4:192.0.2.1 matched"},
		}},
		{name: "same include twice", so: SenderOptions{From: "twice.sender.test", IP: "203.0.113.7"}, want: []want{
			{"spf.lookups", Pass, "6 of the 10"},
			{"spf.result", Pass, "SPF gives pass"},
		}, absent: []string{"spf.tree"}},
		{name: "over ten lookups", so: SenderOptions{From: "many.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.lookups", Fail, "needs 11 DNS-querying terms"},
			{"spf.result", Fail, "SPF gives permerror"},
			{"spf.result", Fail, `"include:n11.sender.test" is DNS-querying term number 11`},
		}},
		{name: "void lookups", so: SenderOptions{From: "void.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.result", Fail, "SPF gives permerror"},
			{"spf.result", Fail, "v3.sender.test is void lookup number 3"},
		}},
		{name: "two records", so: SenderOptions{From: "twospf.sender.test"}, want: []want{
			{"spf.record", Fail, "has 2 SPF records"},
		}, absent: []string{"spf.result", "spf.lookups"}},
		{name: "no record", so: SenderOptions{From: "nospf.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.record", Warning, "has no SPF record"},
		}, absent: []string{"spf.result"}},
		{name: "syntax error", so: SenderOptions{From: "badspf.sender.test"}, want: []want{
			{"spf.record", Fail, `"192.0.2.300" is not an IPv4 address`},
		}},
		{name: "include of no record", so: SenderOptions{From: "incnone.sender.test", IP: "192.0.2.5"}, want: []want{
			{"spf.tree", Fail, "include:nospf.sender.test names a domain without an SPF record"},
			{"spf.result", Fail, "SPF gives permerror"},
		}},
		{name: "dmarc missing", so: SenderOptions{From: "nodmarc.sender.test"}, want: []want{
			{"dmarc.record", Fail, "has no DMARC record (at _dmarc.nodmarc.sender.test or its organisational domain sender.test)"},
		}, absent: []string{"dmarc.policy"}},
		{name: "dmarc p=none", so: SenderOptions{From: "none.sender.test"}, want: []want{
			{"dmarc.record", Pass, "v=DMARC1; p=none"},
			{"dmarc.policy", Warning, "p=none"},
			{"dmarc.reports", Pass, "dmarc@sender.test"},
			{"dmarc.alignment", Info, "adkim=r (relaxed), aspf=r (relaxed)"},
		}},
		{name: "dmarc invalid", so: SenderOptions{From: "bad.sender.test"}, want: []want{
			{"dmarc.record", Fail, "p=maybe is not none, quarantine or reject"},
		}},
		{name: "dmarc p=reject aligned", so: SenderOptions{From: "reject.sender.test", IP: "192.0.2.5", DKIMSelector: "s2048"}, want: []want{
			{"dmarc.policy", Pass, "p=reject"},
			{"dmarc.reports", Pass, "failure reports to forensic@sender.test"},
			{"dkim.key", Pass, "RSA with 2048 bits"},
			{"dmarc.alignment", Pass, "adkim=s (strict), aspf=s (strict)): SPF passes for 192.0.2.5 with an envelope sender in reject.sender.test; signatures with d=reject.sender.test s=s2048 can be verified"},
		}},
		{name: "dmarc p=reject not aligned", so: SenderOptions{From: "reject.sender.test", IP: "198.51.100.1", DKIMSelector: "nosuch"}, want: []want{
			{"dkim.key", Fail, "no DKIM key for the selector nosuch"},
			{"dmarc.alignment", Fail, "would fail DMARC"},
		}},
		{name: "dmarc org fallback", so: SenderOptions{From: "mail.dmarcorg.test"}, want: []want{
			{"dmarc.record", Pass, "organisational domain dmarcorg.test"},
			{"dmarc.policy", Pass, "sp=quarantine"},
			{"dmarc.pct", Warning, "only 50%"},
			{"dmarc.reports", Warning, "no aggregate reports"},
		}},
		{name: "dkim 1024", so: SenderOptions{From: "sender.test", DKIMSelector: "s1024"}, want: []want{
			{"dkim.key", Warning, "RSA with 1024 bits"},
		}, absent: []string{"dkim.testing"}},
		{name: "dkim 2048", so: SenderOptions{From: "sender.test", DKIMSelector: "s2048"}, want: []want{
			{"dkim.key", Pass, "RSA with 2048 bits"},
		}},
		{name: "dkim ed25519", so: SenderOptions{From: "sender.test", DKIMSelector: "ed"}, want: []want{
			{"dkim.key", Pass, "ED25519 with 256 bits"},
			{"dkim.ed25519", Info, "RFC 8463"},
		}},
		{name: "dkim testing", so: SenderOptions{From: "sender.test", DKIMSelector: "testing"}, want: []want{
			{"dkim.key", Pass, "RSA with 2048 bits"},
			{"dkim.testing", Warning, "t=y"},
		}},
		{name: "dkim revoked", so: SenderOptions{From: "sender.test", DKIMSelector: "revoked"}, want: []want{
			{"dkim.key", Fail, "revoked (empty p=)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runSender(t, d.Resolver, tt.so)
			group := SenderGroup(tt.so.From)
			for _, w := range tt.want {
				f := finding(t, rep, group, w.id)
				if f.Status != w.status || !strings.Contains(f.Message, w.text) {
					t.Errorf("%s: %s %q; want %s containing %q", w.id, f.Status, f.Message, w.status, w.text)
				}
				if f.Status != Pass && f.Status != Info && f.Fix == "" {
					t.Errorf("%s: %s without a fix", w.id, f.Status)
				}
			}
			for _, id := range tt.absent {
				for _, f := range rep.Findings() {
					if f.ID == id {
						t.Errorf("unexpected finding %s: %s", id, f.Message)
					}
				}
			}
			var groups []string
			for _, g := range rep.Groups() {
				groups = append(groups, g.Host)
			}
			if !strings.Contains(strings.Join(groups, "|"), group) {
				t.Errorf("groups %v, want one named %q", groups, group)
			}
			for _, l := range rep.Lookups() {
				if l.Server != d.Resolver || l.Err != "" {
					t.Errorf("lookup %s", l)
				}
			}
		})
	}
}
