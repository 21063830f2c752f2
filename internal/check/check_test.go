package check

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"sockmail/internal/testenv"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string
	}{
		{in: "example.org", want: Target{Kind: KindDomain, Host: "example.org"}},
		{in: "Example.ORG.", want: Target{Kind: KindDomain, Host: "example.org"}},
		{in: "mail.example.org:587", want: Target{Kind: KindServer, Host: "mail.example.org", Port: 587}},
		{in: "192.0.2.1:25", want: Target{Kind: KindServer, Host: "192.0.2.1", Port: 25}},
		{in: "[2001:db8::1]:465", want: Target{Kind: KindServer, Host: "2001:db8::1", Port: 465}},
		{in: "", wantErr: "no target"},
		{in: "localhost", wantErr: "needs a dot"},
		{in: "localhost:2525", want: Target{Kind: KindServer, Host: "localhost", Port: 2525}},
		{in: "192.0.2.1", wantErr: "give a port"},
		{in: "example.org:0", wantErr: "port \"0\""},
		{in: "example.org:smtp", wantErr: "port \"smtp\""},
		{in: "https://example.org", wantErr: "no scheme"},
		{in: "user@example.org", wantErr: "no scheme"},
		{in: "exa mple.org", wantErr: "character ' '"},
		{in: "bücher.example", wantErr: "A-labels"},
		{in: "-bad.example", wantErr: "hyphen"},
		{in: "a..example", wantErr: "label is empty"},
		{in: strings.Repeat("a", 64) + ".example", wantErr: "over 63"},
		{in: strings.Repeat("a.", 128) + "example", wantErr: "the limit is 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, err := ParseTarget(got.String()); err != nil || back != got {
				t.Errorf("ParseTarget(%q.String() = %q) = %+v, %v", tt.in, got.String(), back, err)
			}
		})
	}
}

// finding returns the one finding with id about host (empty: the domain).
func finding(t *testing.T, rep *Report, host, id string) Finding {
	t.Helper()
	var found []Finding
	for _, f := range rep.Findings() {
		if f.Host == host && f.ID == id {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d findings %s about %q, want 1; all findings:\n%s", len(found), id, host, dump(rep))
	}
	return found[0]
}

func dump(rep *Report) string {
	var b strings.Builder
	for _, f := range rep.Findings() {
		b.WriteString("  " + f.Host + " " + f.Addr + " " + f.ID + " " + string(f.Status) + ": " + f.Message + "\n")
	}
	return b.String()
}

func hostNames(rep *Report) []string {
	var out []string
	for _, h := range rep.Hosts() {
		out = append(out, h.Name)
	}
	return out
}

// TestDomainDNS checks the test zones through the real validating
// resolver: MX order, implicit and null MX, hosts without address or
// behind an alias, reverse DNS that does or does not resolve back, and
// the AD bit of signed and unsigned zones. The MX port is closed, so the
// SMTP part fails fast and only the DNS findings are asserted.
func TestDomainDNS(t *testing.T) {
	d := testenv.DNS(t)
	closed := testenv.ClosedPort(t)
	type want struct {
		host, id string
		status   Status
		text     string
	}
	tests := []struct {
		domain string
		hosts  []string
		want   []want
		ad     bool
	}{
		{domain: "check.test", hosts: []string{"mx1.check.test", "mx2.check.test", "mx3.check.test"}, ad: true, want: []want{
			{"", "dns.dnssec", Pass, "AD bit set"},
			{"", "mx.order", Pass, "10 mx1.check.test, 20 mx2.check.test, 30 mx3.check.test"},
			{"mx1.check.test", "addr.fcrdns", Pass, "localhost, which resolves back"},
		}},
		{domain: "insecure.test", hosts: []string{"mx.insecure.test"}, ad: false, want: []want{
			{"", "dns.dnssec", Info, "not DNSSEC-validated"},
			{"", "mx.order", Pass, "10 mx.insecure.test"},
		}},
		{domain: "implicit.check.test", hosts: []string{"implicit.check.test"}, ad: true, want: []want{
			{"", "mx.implicit", Warning, "implicit MX"},
			{"implicit.check.test", "host.address", Pass, "127.0.0.1"},
		}},
		{domain: "nullmx.check.test", ad: true, want: []want{
			{"", "dns.null-mx", Info, "accepts no mail"},
		}},
		{domain: "nullmix.check.test", hosts: []string{"mx1.check.test"}, ad: true, want: []want{
			{"", "dns.null-mx", Fail, "forbids the mix"},
		}},
		{domain: "nohost.check.test", hosts: []string{"nowhere.check.test"}, ad: true, want: []want{
			{"nowhere.check.test", "host.address", Fail, "no A or AAAA"},
		}},
		{domain: "alias.check.test", hosts: []string{"mxalias.check.test"}, ad: true, want: []want{
			{"mxalias.check.test", "host.cname", Warning, "alias (CNAME) of mx1.check.test"},
		}},
		{domain: "fcrdns.check.test", hosts: []string{"mxfar.check.test"}, ad: true, want: []want{
			{"mxfar.check.test", "addr.fcrdns", Warning, "far.check.test, but none resolves back to 127.0.0.2"},
		}},
		{domain: "noptr.check.test", hosts: []string{"mxnoptr.check.test"}, ad: true, want: []want{
			{"mxnoptr.check.test", "addr.ptr", Warning, "no reverse DNS (PTR) record (NXDOMAIN)"},
		}},
		{domain: "missing.check.test", ad: true, want: []want{
			{"", "dns.mx", Fail, "does not exist (NXDOMAIN)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			target, err := ParseTarget(tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), target, Options{Resolver: d.Resolver, MXPort: portOf(t, closed)})
			if err != nil {
				t.Fatal(err)
			}
			if got := hostNames(rep); !slices.Equal(got, tt.hosts) {
				t.Errorf("hosts %v, want %v", got, tt.hosts)
			}
			for _, w := range tt.want {
				f := finding(t, rep, w.host, w.id)
				if f.Status != w.status || !strings.Contains(f.Message, w.text) {
					t.Errorf("%s %s: %s %q; want %s containing %q", w.host, w.id, f.Status, f.Message, w.status, w.text)
				}
			}
			lookups := rep.Lookups()
			if len(lookups) == 0 || lookups[0].Type != "MX" || lookups[0].Name != tt.domain+"." {
				t.Fatalf("first lookup %+v, want the MX lookup of %s", lookups, tt.domain)
			}
			if lookups[0].AD != tt.ad {
				t.Errorf("AD bit of %s MX: %v, want %v", tt.domain, lookups[0].AD, tt.ad)
			}
			for _, l := range lookups {
				if l.Server != d.Resolver || l.Err != "" || l.Rcode == "" {
					t.Errorf("lookup %s", l)
				}
			}
		})
	}
}

func TestFormatExtensions(t *testing.T) {
	many := map[string]string{}
	for i := range 45 {
		many[fmt.Sprintf("X-%02d", i)] = ""
	}
	tests := []struct {
		name string
		ext  map[string]string
		want string
	}{
		{name: "none", ext: nil, want: "no extensions"},
		{name: "sorted", ext: map[string]string{"SIZE": "100", "PIPELINING": "", "AUTH": "PLAIN LOGIN"}, want: "AUTH PLAIN LOGIN, PIPELINING, SIZE 100"},
		{name: "long parameter cut", ext: map[string]string{"X": strings.Repeat("p", 200)}, want: "X " + strings.Repeat("p", 98) + "..."},
		{name: "many keywords", ext: many, want: "X-39, and 5 more (see the transcript)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatExtensions(tt.ext); !strings.HasSuffix(got, tt.want) {
				t.Errorf("formatExtensions = %q, want it to end with %q", got, tt.want)
			}
		})
	}
}
