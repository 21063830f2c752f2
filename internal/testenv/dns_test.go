package testenv

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"
)

// TestDNSServers checks, with the standard library's resolver, that the
// test DNS answers as the README says: the test zones through Unbound and
// straight from Knot, reverse DNS for 127.0.0.2, and nothing
// outside them.
func TestDNSServers(t *testing.T) {
	d := DNS(t)
	via := func(server string) *net.Resolver {
		return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, server)
		}}
	}
	for _, server := range []string{d.Resolver, d.Authoritative} {
		t.Run(server, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r := via(server)
			mx, err := r.LookupMX(ctx, d.SignedZone)
			if err != nil {
				t.Fatalf("MX %s: %v", d.SignedZone, err)
			}
			var hosts []string
			for _, m := range mx {
				hosts = append(hosts, m.Host)
			}
			if !slices.Equal(hosts, []string{"mx1.check.test.", "mx2.check.test.", "mx3.check.test."}) {
				t.Errorf("MX %s: %v", d.SignedZone, hosts)
			}
			if mx, err := r.LookupMX(ctx, d.InsecureZone); err != nil || len(mx) != 1 || mx[0].Host != "mx.insecure.test." {
				t.Errorf("MX %s: %v, %v", d.InsecureZone, mx, err)
			}
			// (127.0.0.1 is in /etc/hosts, which this resolver reads first.)
			if names, err := r.LookupAddr(ctx, "127.0.0.2"); err != nil || !slices.Equal(names, []string{"far.check.test."}) {
				t.Errorf("PTR 127.0.0.2: %v, %v; want far.check.test.", names, err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if addrs, err := via(d.Resolver).LookupHost(ctx, "example.com"); err == nil {
		t.Errorf("the test resolver answered example.com with %v: it must answer only the test zones", addrs)
	}
}
