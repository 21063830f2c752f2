package check

// RFC 6186 (and RFC 8314 7.1) SRV records: the submission servers a
// domain announces to mail clients.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// srvServices are the submission services looked up, with what each
// speaks.
var srvServices = [...]struct{ service, tls string }{
	{"submission", "STARTTLS"},
	{"submissions", "implicit TLS"},
}

// srv looks up the domain's submission SRV records and returns their
// servers, to be checked like the MX hosts (on their own ports).
func (c *checker) srv(ctx context.Context, domain string) []Host {
	var hosts []Host
	for _, s := range srvServices {
		name := "_" + s.service + "._tcp." + domain
		m, l, err := c.res.Query(ctx, name, dns.TypeSRV)
		if err != nil {
			c.rep.add(Finding{ID: "srv." + s.service, Status: Warning,
				Message: fmt.Sprintf("The SRV lookup of %s got no answer: %s.", name, l.Err),
				Fix:     "Make sure the domain's name servers answer."})
			continue
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			c.rep.add(Finding{ID: "srv." + s.service, Status: Warning,
				Message: fmt.Sprintf("The SRV lookup of %s failed with %s.", name, l.Rcode),
				Fix:     "Fix the domain's name servers."})
			continue
		}
		recs := resolve.Records[*dns.SRV](m)
		if len(recs) == 0 {
			c.rep.add(Finding{ID: "srv." + s.service, Status: Info,
				Message: fmt.Sprintf("%s has no %s SRV record (%s): mail clients cannot discover its %s server (RFC 6186).", domain, name, l.Rcode, s.tls),
				Fix:     ""})
			continue
		}
		slices.SortStableFunc(recs, func(a, b *dns.SRV) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight))
		})
		if len(recs) == 1 && recs[0].Target == "." {
			c.rep.add(Finding{ID: "srv." + s.service, Status: Info,
				Message: fmt.Sprintf("%s says it offers no %s service (SRV target \".\", RFC 6186 3.4).", domain, s.service)})
			continue
		}
		var list []string
		for _, r := range recs {
			target := strings.ToLower(strings.TrimSuffix(r.Target, "."))
			list = append(list, fmt.Sprintf("%s:%d (priority %d, weight %d)", target, r.Port, r.Priority, r.Weight))
			if target == "" || r.Port == 0 {
				continue
			}
			h := Host{Name: target, Port: int(r.Port), Service: s.service}
			if !slices.ContainsFunc(hosts, func(o Host) bool { return o.Name == h.Name && o.Port == h.Port }) {
				hosts = append(hosts, h)
			}
		}
		c.rep.add(Finding{ID: "srv." + s.service, Status: Pass,
			Message: fmt.Sprintf("%s announces its %s server (%s) in %s: %s.", domain, s.service, s.tls, name, strings.Join(list, ", "))})
	}
	if len(hosts) > maxHosts {
		hosts = hosts[:maxHosts]
	}
	return hosts
}
