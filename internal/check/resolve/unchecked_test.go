package resolve

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"sockmail/internal/testenv"
)

// TestQueryUnchecked asks the validating test resolver about the bogus
// zone (its trust anchor does not match its key), the signed policy zone
// and the unsigned one, with and without checking disabled: only the bogus
// zone's answer depends on the CD bit, and only the signed zone's carries
// AD when validated.
func TestQueryUnchecked(t *testing.T) {
	p := testenv.Policy(t)
	if p == nil {
		return
	}
	tests := []struct {
		zone                 string
		rcode, uncheckedCode int
		ad                   bool
	}{
		{zone: p.BogusZone, rcode: dns.RcodeServerFailure, uncheckedCode: dns.RcodeSuccess},
		{zone: p.Zone, rcode: dns.RcodeSuccess, uncheckedCode: dns.RcodeSuccess, ad: true},
		{zone: p.UnsignedZone, rcode: dns.RcodeSuccess, uncheckedCode: dns.RcodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			var lookups []Lookup
			r, err := New(p.DNS.Resolver, 0, func(l Lookup) { lookups = append(lookups, l) })
			if err != nil {
				t.Fatal(err)
			}
			m, l, err := r.Query(context.Background(), tt.zone, dns.TypeSOA)
			if err != nil || m.Rcode != tt.rcode || l.AD != tt.ad || l.CD {
				t.Fatalf("Query %s SOA: %v, %s; want %s, AD %v, no CD", tt.zone, err, l, dns.RcodeToString[tt.rcode], tt.ad)
			}
			m, l, err = r.QueryUnchecked(context.Background(), tt.zone, dns.TypeSOA)
			if err != nil || m.Rcode != tt.uncheckedCode || !l.CD || len(l.Answer) == 0 {
				t.Fatalf("QueryUnchecked %s SOA: %v, %s; want %s with an answer, CD", tt.zone, err, l, dns.RcodeToString[tt.uncheckedCode])
			}
			if !strings.Contains(l.String(), "(CD)") {
				t.Errorf("lookup %q does not show the CD bit", l)
			}
			if len(lookups) != 2 {
				t.Errorf("%d lookups recorded, want 2", len(lookups))
			}
		})
	}
}
