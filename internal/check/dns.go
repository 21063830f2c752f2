package check

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// mx looks up the domain's MX records and returns the hosts to check, in
// preference order: the MX hosts, the domain itself when it has none
// (RFC 5321 5.1), nothing for a null MX (RFC 7505) or a failed lookup.
func (c *checker) mx(ctx context.Context, domain string) []Host {
	m, l, err := c.res.Query(ctx, domain, dns.TypeMX)
	if err != nil {
		c.rep.add(Finding{ID: "dns.mx", Status: Fail,
			Message: fmt.Sprintf("The MX lookup of %s got no answer from the resolver %s: %s.", domain, c.res.Server(), l.Err),
			Fix:     "Check that the resolver is reachable and that the domain's name servers answer."})
		return nil
	}
	c.dnssec(domain, l)
	switch m.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		c.rep.add(Finding{ID: "dns.mx", Status: Fail,
			Message: fmt.Sprintf("The domain %s does not exist (NXDOMAIN): nobody can send mail to it.", domain),
			Fix:     "Register the domain or correct its spelling, and publish an MX record for it."})
		return nil
	case dns.RcodeServerFailure:
		c.rep.add(c.servfail(ctx, domain, dns.TypeMX, "dns.mx")) // policy.go: tells a DNSSEC failure apart
		return nil
	default:
		c.rep.add(Finding{ID: "dns.mx", Status: Fail,
			Message: fmt.Sprintf("The MX lookup of %s failed with %s: senders cannot find its mail servers.", domain, l.Rcode),
			Fix:     "Fix the domain's name servers (a SERVFAIL from a validating resolver can mean broken DNSSEC signatures)."})
		return nil
	}
	mxs := resolve.Records[*dns.MX](m)
	if len(mxs) == 0 {
		return c.implicitMX(ctx, domain)
	}
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), cmp.Compare(a.Mx, b.Mx))
	})
	var null, real []*dns.MX
	for _, r := range mxs {
		if r.Mx == "." {
			null = append(null, r)
		} else {
			real = append(real, r)
		}
	}
	if len(null) > 0 {
		if len(real) == 0 && len(null) == 1 && null[0].Preference == 0 {
			c.rep.add(Finding{ID: "dns.null-mx", Status: Info,
				Message: fmt.Sprintf("%s publishes a null MX (RFC 7505): it declares that it accepts no mail, and senders give up at once.", domain),
				Fix:     ""})
			return nil
		}
		c.rep.add(Finding{ID: "dns.null-mx", Status: Fail,
			Message: fmt.Sprintf("%s publishes a null MX (\".\") together with other MX records; RFC 7505 forbids the mix, and senders may treat the domain as accepting no mail.", domain),
			Fix:     "Remove the MX record pointing at \".\" if the domain receives mail, or all the others if it does not."})
	}
	var list []string
	var hosts []Host
	for _, r := range real {
		name := strings.ToLower(strings.TrimSuffix(r.Mx, "."))
		list = append(list, fmt.Sprintf("%d %s", r.Preference, name))
		if slices.ContainsFunc(hosts, func(h Host) bool { return h.Name == name }) {
			continue
		}
		if ip := net.ParseIP(name); ip != nil {
			c.rep.add(Finding{ID: "mx.address", Host: name, Status: Fail,
				Message: fmt.Sprintf("The MX record names the address %s instead of a host name; an MX must name a host (RFC 5321 5.1).", name),
				Fix:     "Point the MX record at a host name whose A/AAAA records hold the address."})
			continue
		}
		hosts = append(hosts, Host{Name: name, Preference: int(r.Preference), Port: c.opts.MXPort})
	}
	c.rep.add(Finding{ID: "mx.order", Status: Pass,
		Message: fmt.Sprintf("%s has %d MX record(s), tried by senders in this order: %s.", domain, len(real), strings.Join(list, ", "))})
	if len(hosts) > maxHosts {
		c.rep.add(Finding{ID: "mx.many", Status: Warning,
			Message: fmt.Sprintf("%s has %d MX hosts; only the first %d are checked.", domain, len(hosts), maxHosts),
			Fix:     "Few MX hosts are needed; more add places for a misconfiguration to hide."})
		hosts = hosts[:maxHosts]
	}
	return hosts
}

// implicitMX handles a domain without MX records: senders use the
// domain's own address.
func (c *checker) implicitMX(ctx context.Context, domain string) []Host {
	if len(c.lookupAddrs(ctx, domain)) == 0 {
		c.rep.add(Finding{ID: "mx.implicit", Status: Fail,
			Message: fmt.Sprintf("%s has no MX record and no address: nobody can send mail to it.", domain),
			Fix:     "Publish an MX record naming the domain's mail server (or a null MX, \"MX 0 .\", if it takes no mail)."})
		return nil
	}
	c.rep.add(Finding{ID: "mx.implicit", Status: Warning,
		Message: fmt.Sprintf("%s has no MX record, so senders deliver to the domain's own address (the implicit MX, RFC 5321 5.1).", domain),
		Fix:     "Publish an MX record naming the mail server explicitly (or a null MX, \"MX 0 .\", if the domain takes no mail)."})
	return []Host{{Name: domain, Implicit: true, Port: c.opts.MXPort}}
}

// dnssec reports whether the resolver validated the domain's answer.
func (c *checker) dnssec(domain string, l resolve.Lookup) {
	if l.Rcode == dns.RcodeToString[dns.RcodeServerFailure] {
		return // no answer to judge; mx explains the failure
	}
	if l.AD {
		c.rep.add(Finding{ID: "dns.dnssec", Status: Pass,
			Message: fmt.Sprintf("The resolver validated %s's answer with DNSSEC (AD bit set).", domain)})
		return
	}
	c.rep.add(Finding{ID: "dns.dnssec", Status: Info,
		Message: fmt.Sprintf("The answer for %s is not DNSSEC-validated (no AD bit): the zone is unsigned or the resolver does not validate.", domain),
		Fix:     "Sign the zone with DNSSEC if you want DANE for your MX hosts; check with a validating resolver."})
}

// lookupAddrs returns the A and AAAA addresses of name, and whether the
// answers came through a CNAME.
func (c *checker) lookupAddrs(ctx context.Context, name string) []string {
	addrs, _ := c.lookupAddrsAlias(ctx, name)
	return addrs
}

func (c *checker) lookupAddrsAlias(ctx context.Context, name string) (addrs []string, alias string) {
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m, _, err := c.res.Query(ctx, name, t)
		if err != nil || m.Rcode != dns.RcodeSuccess {
			continue
		}
		for _, cn := range resolve.Records[*dns.CNAME](m) {
			if alias == "" {
				alias = strings.TrimSuffix(cn.Target, ".")
			}
		}
		for _, a := range resolve.Records[*dns.A](m) {
			addrs = append(addrs, a.A.String())
		}
		for _, a := range resolve.Records[*dns.AAAA](m) {
			addrs = append(addrs, a.AAAA.String())
		}
	}
	return addrs, alias
}

// addresses looks up a host's addresses and reports on them.
func (c *checker) addresses(ctx context.Context, host string) []string {
	addrs, alias := c.lookupAddrsAlias(ctx, host)
	if alias != "" {
		c.rep.add(Finding{ID: "host.cname", Host: host, Status: Warning,
			Message: fmt.Sprintf("%s is an alias (CNAME) of %s; an MX host must not be an alias (RFC 2181 10.3), and some senders refuse it.", host, alias),
			Fix:     fmt.Sprintf("Point the MX record at %s itself.", alias)})
	}
	if len(addrs) == 0 {
		c.rep.add(Finding{ID: "host.address", Host: host, Status: Fail,
			Message: fmt.Sprintf("%s has no A or AAAA record: senders cannot reach it.", host),
			Fix:     "Publish the host's address, or remove the MX record that names it."})
		return nil
	}
	c.rep.add(Finding{ID: "host.address", Host: host, Status: Pass,
		Message: fmt.Sprintf("%s has the address(es) %s.", host, strings.Join(addrs, ", "))})
	return addrs
}

// reverse looks up the PTR records of addr and whether any of their names
// resolves back to addr (forward-confirmed reverse DNS). It returns the
// PTR names.
func (c *checker) reverse(ctx context.Context, host, addr string) []string {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil
	}
	m, l, err := c.res.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		c.rep.add(Finding{ID: "addr.ptr", Host: host, Addr: addr, Status: Warning,
			Message: fmt.Sprintf("The reverse DNS lookup of %s got no answer: %s.", addr, l.Err),
			Fix:     "Make sure the address's reverse zone is served."})
		return nil
	}
	var names []string
	for _, p := range resolve.Records[*dns.PTR](m) {
		names = append(names, strings.ToLower(strings.TrimSuffix(p.Ptr, ".")))
	}
	if len(names) == 0 {
		c.rep.add(Finding{ID: "addr.ptr", Host: host, Addr: addr, Status: Warning,
			Message: fmt.Sprintf("%s has no reverse DNS (PTR) record (%s); many receivers distrust mail from an address without one.", addr, l.Rcode),
			Fix:     fmt.Sprintf("Ask whoever runs the address (your hosting provider) for a PTR record naming %s.", host)})
		return nil
	}
	for _, n := range names {
		if slices.Contains(c.lookupAddrs(ctx, n), addr) {
			c.rep.add(Finding{ID: "addr.fcrdns", Host: host, Addr: addr, Status: Pass,
				Message: fmt.Sprintf("%s has the reverse DNS name %s, which resolves back to it (forward-confirmed).", addr, n)})
			return names
		}
	}
	c.rep.add(Finding{ID: "addr.fcrdns", Host: host, Addr: addr, Status: Warning,
		Message: fmt.Sprintf("%s has the reverse DNS name(s) %s, but none resolves back to %s; receivers that check forward-confirmed reverse DNS distrust its mail.", addr, strings.Join(names, ", "), addr),
		Fix:     fmt.Sprintf("Publish an A/AAAA record for %s pointing at %s, or change the PTR record to a name that does.", names[0], addr)})
	return names
}
