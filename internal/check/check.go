package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"sockmail/internal/check/resolve"
	"sockmail/smtp"
)

// Limits of a check: a domain with more MX hosts or a host with more
// addresses gets a warning and only the first ones are checked.
const (
	maxTargetLength = 255
	maxHosts        = 10
	maxAddrs        = 4
	defaultParallel = 4
)

// Options tunes a check. The zero value checks with the system's resolver,
// on port 25, against the system's certificate roots.
type Options struct {
	// Resolver is the DNS resolver, host:port; empty: the first nameserver
	// of ResolvConf.
	Resolver string
	// ResolvConf is the resolv.conf file read when Resolver is empty;
	// default /etc/resolv.conf.
	ResolvConf string
	// DNSTimeout bounds each lookup; resolve.DefaultTimeout if zero.
	DNSTimeout time.Duration
	// MXPort is the port a domain's MX hosts are checked on; 25 if zero.
	MXPort int
	// ImplicitTLS says a server speaks TLS from its first byte (RFC 8314),
	// as servers on port 465 always are taken to.
	ImplicitTLS bool
	// Timeouts bounds the SMTP conversations; zero fields take 30 s to
	// connect and 60 s for each reply (a checker need not wait the five
	// minutes RFC 5321 gives a sender).
	Timeouts smtp.Timeouts
	// LocalName is the EHLO name; empty: the address literal of the local
	// address.
	LocalName string
	// RootCAs verifies certificate chains; the system's roots if nil.
	RootCAs *x509.CertPool
	// Now is the clock for certificate expiry; time.Now if nil.
	Now func() time.Time
	// MTASTSPort is the port the MTA-STS policy is fetched from
	// (https://mta-sts.<domain>:port/...); 443 if zero. The certificate is
	// verified against RootCAs.
	MTASTSPort int
	// Parallel is how many hosts are checked at once; 4 if zero.
	Parallel int
	// Sender, if its From is set, checks the sender side of that domain
	// (SPF, DMARC, DKIM; sender.go).
	Sender SenderOptions
	// RelayTest tries to relay through each MX host (or the server):
	// MAIL FROM and RCPT TO foreign addresses, never DATA (relay.go).
	RelayTest bool
	// TestSend, if its To is set, sends one real test message after the
	// checks and judges its alignment (testsend.go, align.go).
	TestSend TestSendOptions
	// OnEvent, if set, is called with each step as it happens, one call
	// at a time; it must be quick and must not call back into the report.
	OnEvent func(Event)
}

// Target is what a check is of: a domain, or one server.
type Target struct {
	// Kind is domain or server.
	Kind Kind
	// Host is the domain (without a final dot) or the server's host name
	// or IP address.
	Host string
	// Port is the server's port; 0 for a domain.
	Port int
}

// String returns the target as ParseTarget reads it.
func (t Target) String() string {
	if t.Kind == KindServer {
		return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	}
	return t.Host
}

// ParseTarget reads "example.org" (a domain) or "mail.example.org:587",
// "192.0.2.1:25", "[2001:db8::1]:25" (a server).
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("check: no target: give a domain (example.org) or a server (mail.example.org:587)")
	}
	if len(s) > maxTargetLength {
		return Target{}, fmt.Errorf("check: target is %d bytes long; the limit is %d", len(s), maxTargetLength)
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/@") {
		return Target{}, fmt.Errorf("check: target %q is not a domain or host:port (no scheme, path or user part)", s)
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			if net.ParseIP(s) != nil {
				return Target{}, fmt.Errorf("check: %q is an address: give a port to check a server (%s:25)", s, s)
			}
			d, err := checkDomain(s, true)
			if err != nil {
				return Target{}, err
			}
			return Target{Kind: KindDomain, Host: d}, nil
		}
		return Target{}, fmt.Errorf("check: target %q: %v", s, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return Target{}, fmt.Errorf("check: target %q: port %q is not a number from 1 to 65535", s, portText)
	}
	if ip := net.ParseIP(host); ip != nil {
		return Target{Kind: KindServer, Host: ip.String(), Port: port}, nil
	}
	d, err := checkDomain(host, false)
	if err != nil {
		return Target{}, err
	}
	return Target{Kind: KindServer, Host: d, Port: port}, nil
}

// checkDomain validates a host name: ASCII letters, digits and hyphens in
// labels of 1 to 63 octets, at least two labels for a mail domain; a final
// dot is dropped.
func checkDomain(s string, mailDomain bool) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	labels := strings.Split(d, ".")
	if mailDomain && len(labels) < 2 {
		return "", fmt.Errorf("check: %q is not a domain name (it needs a dot: example.org)", s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("check: %q is not a domain name (a label is empty or over 63 octets)", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return "", fmt.Errorf("check: %q is not a domain name (character %q; give an internationalised name in A-labels, xn--...)", s, c)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("check: %q is not a domain name (a label starts or ends with a hyphen)", s)
		}
	}
	return d, nil
}

// checker runs one check.
type checker struct {
	opts   Options
	rep    *Report
	res    *resolve.Resolver
	now    func() time.Time
	target Target
}

// Run checks target and returns its report, with every finding. The error
// is for a check that could not start (no usable resolver); everything
// found about the target, failures included, is in the report. Cancelling
// ctx ends the check early with what was found so far.
func Run(ctx context.Context, target Target, opts Options) (*Report, error) {
	if target.Kind != KindDomain && target.Kind != KindServer {
		return nil, fmt.Errorf("check: unknown target kind %q", target.Kind)
	}
	if err := opts.Sender.Validate(); err != nil {
		return nil, err
	}
	if err := opts.TestSend.Validate(opts.Sender.From, target); err != nil {
		return nil, err
	}
	rep := &Report{Target: target.String(), Kind: target.Kind, Started: time.Now(), onEvent: opts.OnEvent}
	server := opts.Resolver
	if server == "" {
		conf := opts.ResolvConf
		if conf == "" {
			conf = "/etc/resolv.conf"
		}
		var err error
		if server, err = resolve.SystemServer(conf); err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
	}
	res, err := resolve.New(server, opts.DNSTimeout, rep.addLookup)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	rep.Resolver = server
	c := &checker{opts: opts, rep: rep, res: res, now: opts.Now, target: target}
	if c.now == nil {
		c.now = time.Now
	}
	if c.opts.MXPort == 0 {
		c.opts.MXPort = 25
	}
	if c.opts.Parallel <= 0 {
		c.opts.Parallel = defaultParallel
	}
	start := time.Now()
	// Sender side (sender.go): SPF, DMARC and DKIM of the From domain.
	if opts.Sender.From != "" {
		c.sender(ctx, opts.Sender)
	}
	var hosts []Host
	if target.Kind == KindDomain {
		hosts = c.mx(ctx, target.Host)
		// RFC 6186 submission servers (srv.go), checked like the MX hosts.
		hosts = append(hosts, c.srv(ctx, target.Host)...)
	} else {
		hosts = []Host{{Name: target.Host, Port: target.Port}}
	}
	for _, h := range hosts {
		rep.addHost(h)
	}
	// Policies (policy.go): MTA-STS and TLS-RPT are looked up while the
	// hosts are checked; MTA-STS then judges the hosts' TLS findings.
	finishPolicies := func() {}
	if target.Kind == KindDomain {
		finishPolicies = c.startPolicies(ctx, target.Host, hosts)
	}
	c.hosts(ctx, hosts)
	finishPolicies()
	// The real test message (testsend.go), opt-in, after every check.
	if c.opts.TestSend.To != "" && ctx.Err() == nil {
		c.testSend(ctx, c.opts.TestSend, hosts)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// hosts checks each host, Parallel at a time, so a domain's check takes
// about as long as its slowest host.
func (c *checker) hosts(ctx context.Context, hosts []Host) {
	sem := make(chan struct{}, c.opts.Parallel)
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			c.host(ctx, h)
		}()
	}
	wg.Wait()
}

// host checks one host: its addresses, their reverse DNS, and an SMTP
// check of each address.
func (c *checker) host(ctx context.Context, h Host) {
	var addrs []string
	if ip := net.ParseIP(h.Name); ip != nil {
		addrs = []string{ip.String()}
	} else {
		addrs = c.addresses(ctx, h.Name)
	}
	if len(addrs) > maxAddrs {
		c.rep.add(Finding{ID: "host.addresses.many", Host: h.Name, Status: Info,
			Message: fmt.Sprintf("%s has %d addresses; the first %d are checked.", h.Name, len(addrs), maxAddrs)})
		addrs = addrs[:maxAddrs]
	}
	for _, a := range addrs {
		if ctx.Err() != nil {
			return
		}
		ptrs := c.reverse(ctx, h.Name, a)
		c.server(ctx, h, a, ptrs)
		// Open relay test (relay.go), opt-in, on MX hosts and servers.
		if c.opts.RelayTest && h.Service == "" {
			c.relay(ctx, h, a)
		}
	}
}
