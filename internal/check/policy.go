package check

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// Limits of the policy checks.
const (
	// maxSTSPolicy bounds an MTA-STS policy file (RFC 8461 3.2 leaves the
	// limit to the sender; 64 KiB is what common senders allow).
	maxSTSPolicy = 64 << 10
	// stsFetchTimeout bounds the whole HTTPS fetch of a policy (RFC 8461
	// 3.3 suggests a minute at most; a checker need not wait that long).
	stsFetchTimeout = 30 * time.Second
	// maxSTSMaxAge is the largest max_age RFC 8461 3.2 allows (a year).
	maxSTSMaxAge = 31557600
	// maxTXTRecords bounds the TXT records of one name that are looked at.
	maxTXTRecords = 20
)

// STSPolicy is an MTA-STS policy (RFC 8461 3.2).
type STSPolicy struct {
	// Mode is enforce, testing or none.
	Mode string
	// MX holds the MX patterns ("mail.example.org", "*.example.org").
	MX []string
	// MaxAge is how long, in seconds, senders may cache the policy.
	MaxAge int
}

// ParseSTSPolicy reads an MTA-STS policy file: "key: value" lines ending in
// CRLF (LF alone is accepted), version STSv1 first, mode, max_age, and mx
// (one per line, needed unless mode is none). Unknown keys are ignored, as
// the RFC requires.
func ParseSTSPolicy(body string) (STSPolicy, error) {
	var p STSPolicy
	var version string
	var seenMode, seenAge bool
	for i, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return p, fmt.Errorf("line %d %q is not \"key: value\"", i+1, clip(line, 60))
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if version == "" && key != "version" {
			return p, fmt.Errorf("line %d: the policy must start with \"version: STSv1\", not %q", i+1, clip(key, 40))
		}
		switch key {
		case "version":
			if val != "STSv1" {
				return p, fmt.Errorf("line %d: version %q is not STSv1", i+1, clip(val, 40))
			}
			version = val
		case "mode":
			if val != "enforce" && val != "testing" && val != "none" {
				return p, fmt.Errorf("line %d: mode %q is not enforce, testing or none", i+1, clip(val, 40))
			}
			if seenMode {
				return p, fmt.Errorf("line %d: a second mode", i+1)
			}
			p.Mode, seenMode = val, true
		case "max_age":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > maxSTSMaxAge || len(val) > 10 {
				return p, fmt.Errorf("line %d: max_age %q is not a number of seconds from 0 to %d", i+1, clip(val, 40), maxSTSMaxAge)
			}
			if seenAge {
				return p, fmt.Errorf("line %d: a second max_age", i+1)
			}
			p.MaxAge, seenAge = n, true
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(val, "."))
			name := strings.TrimPrefix(pat, "*.")
			if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.Contains(name, "*") {
				return p, fmt.Errorf("line %d: mx %q is not a host name or *.domain pattern", i+1, clip(val, 60))
			}
			p.MX = append(p.MX, pat)
		}
	}
	switch {
	case version == "":
		return p, errors.New("the policy is empty (no \"version: STSv1\")")
	case !seenMode:
		return p, errors.New("the policy has no mode")
	case !seenAge:
		return p, errors.New("the policy has no max_age")
	case len(p.MX) == 0 && p.Mode != "none":
		return p, fmt.Errorf("the policy (mode %s) names no mx", p.Mode)
	}
	return p, nil
}

// STSMatch reports whether an MX host matches a policy pattern (RFC 8461
// 4.1): equal names, or "*.domain" matching exactly one more label on
// the left.
func STSMatch(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(host, ".")
		return found && label != "" && parent == rest
	}
	return pattern == host
}

// tagList parses "k=v; k=v" records (MTA-STS and TLS-RPT TXT records,
// RFC 8461 3.1 and RFC 8460 3): version tag first, as want names it.
func tagList(rec, versionKey, version string) (map[string]string, error) {
	tags := map[string]string{}
	for i, part := range strings.Split(rec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", clip(part, 40))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if i == 0 && (k != versionKey || v != version) {
			return nil, fmt.Errorf("the record must start with %s=%s", versionKey, version)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("%s= appears twice", k)
		}
		tags[k] = v
	}
	if len(tags) == 0 {
		return nil, errors.New("the record is empty")
	}
	return tags, nil
}

// ParseSTSRecord reads an MTA-STS TXT record ("v=STSv1; id=20190429T010101")
// and returns its id: 1 to 32 letters and digits.
func ParseSTSRecord(rec string) (string, error) {
	tags, err := tagList(rec, "v", "STSv1")
	if err != nil {
		return "", err
	}
	id, ok := tags["id"]
	if !ok {
		return "", errors.New("the record has no id=")
	}
	if id == "" || len(id) > 32 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return "", fmt.Errorf("id %q is not 1 to 32 letters and digits", clip(id, 40))
	}
	return id, nil
}

// ParseTLSRPT reads a TLS-RPT TXT record ("v=TLSRPTv1; rua=mailto:a@b,
// https://...") and returns its report addresses.
func ParseTLSRPT(rec string) ([]string, error) {
	tags, err := tagList(rec, "v", "TLSRPTv1")
	if err != nil {
		return nil, err
	}
	rua, ok := tags["rua"]
	if !ok || rua == "" {
		return nil, errors.New("the record has no rua= (where reports go)")
	}
	var out []string
	for _, u := range strings.Split(rua, ",") {
		u = strings.TrimSpace(u)
		switch {
		case strings.HasPrefix(u, "mailto:") && strings.Contains(u, "@"):
		case strings.HasPrefix(u, "https://") && len(u) > len("https://"):
		default:
			return nil, fmt.Errorf("report address %q is not mailto:address or https://URL", clip(u, 60))
		}
		out = append(out, u)
	}
	return out, nil
}

// txt looks up name's TXT records and returns those starting with prefix,
// each record's strings joined. ok is false when the lookup failed (a
// finding with id then says so).
func (c *checker) txt(ctx context.Context, name, prefix, id string) (recs []string, ok bool) {
	m, l, err := c.res.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		c.rep.add(Finding{ID: id, Status: Warning,
			Message: fmt.Sprintf("The TXT lookup of %s got no answer: %s.", name, l.Err),
			Fix:     "Make sure the domain's name servers answer."})
		return nil, false
	}
	if m.Rcode == dns.RcodeServerFailure {
		c.rep.add(c.servfail(ctx, name, dns.TypeTXT, id))
		return nil, false
	}
	for i, t := range resolve.Records[*dns.TXT](m) {
		if i >= maxTXTRecords {
			break
		}
		s := strings.Join(t.Txt, "")
		if strings.HasPrefix(strings.ToLower(s), strings.ToLower(prefix)) {
			recs = append(recs, s)
		}
	}
	return recs, true
}

// servfail explains a SERVFAIL for name: asked again with checking
// disabled, an answer means DNSSEC validation failed.
func (c *checker) servfail(ctx context.Context, name string, qtype uint16, id string) Finding {
	if c.validationFailed(ctx, name, qtype) {
		return Finding{ID: id, Status: Fail,
			Message: fmt.Sprintf("DNSSEC validation failed for %s %s: the resolver answers only with validation turned off (CD bit), so the zone's signatures or its DS record in the parent are wrong; validating senders cannot use the domain at all.", name, dns.TypeToString[qtype]),
			Fix:     "Re-sign the zone, or make the DS record at the registrar match the zone's current key (or remove the DS to turn DNSSEC off)."}
	}
	return Finding{ID: id, Status: Fail,
		Message: fmt.Sprintf("The lookup of %s %s failed with SERVFAIL, with or without DNSSEC validation: the domain's name servers do not answer properly.", name, dns.TypeToString[qtype]),
		Fix:     "Check that the domain's name servers run and serve the zone."}
}

// validationFailed reports whether name's qtype, which got SERVFAIL,
// resolves with checking disabled: the mark of a DNSSEC validation
// failure (RFC 4035 5.5).
func (c *checker) validationFailed(ctx context.Context, name string, qtype uint16) bool {
	m, _, err := c.res.QueryUnchecked(ctx, name, qtype)
	return err == nil && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError)
}

// startPolicies looks up the domain's MTA-STS and TLS-RPT records and
// fetches its MTA-STS policy while the hosts are checked; the function it
// returns waits for that and then judges the hosts against the policy
// (which needs their TLS findings).
func (c *checker) startPolicies(ctx context.Context, domain string, hosts []Host) (finish func()) {
	if len(hosts) == 0 {
		return func() {}
	}
	done := make(chan *STSPolicy, 1)
	go func() {
		p := c.mtaSTS(ctx, domain)
		c.tlsRPT(ctx, domain)
		done <- p
	}()
	return func() {
		if p := <-done; p != nil && p.Mode != "none" && ctx.Err() == nil {
			c.stsHosts(*p, hosts)
		}
	}
}

// mtaSTS checks the MTA-STS record and policy (RFC 8461) and returns the
// policy, nil when there is none to apply.
func (c *checker) mtaSTS(ctx context.Context, domain string) *STSPolicy {
	name := "_mta-sts." + domain
	recs, ok := c.txt(ctx, name, "v=STSv1", "sts.record")
	if !ok {
		return nil
	}
	switch {
	case len(recs) == 0:
		c.rep.add(Finding{ID: "sts.record", Status: Info,
			Message: fmt.Sprintf("%s publishes no MTA-STS policy (no v=STSv1 TXT record at %s): senders deliver to it over TLS only if they choose to, and accept any certificate.", domain, name),
			Fix:     fmt.Sprintf("Publish a policy at https://mta-sts.%s/.well-known/mta-sts.txt and a TXT record \"v=STSv1; id=<date>\" at %s (RFC 8461).", domain, name)})
		return nil
	case len(recs) > 1:
		c.rep.add(Finding{ID: "sts.record", Status: Fail,
			Message: fmt.Sprintf("%s has %d MTA-STS TXT records; RFC 8461 3.1 makes senders ignore the policy when there is more than one.", name, len(recs)),
			Fix:     "Keep exactly one \"v=STSv1; id=...\" record."})
		return nil
	}
	id, err := ParseSTSRecord(recs[0])
	if err != nil {
		c.rep.add(Finding{ID: "sts.record", Status: Fail,
			Message: fmt.Sprintf("The MTA-STS record of %s (%q) is invalid: %v; senders ignore the policy.", domain, clip(recs[0], 100), err),
			Fix:     fmt.Sprintf("Publish \"v=STSv1; id=%s\" at %s (the id changes whenever the policy does).", c.now().UTC().Format("20060102T150405"), name)})
		return nil
	}
	c.rep.add(Finding{ID: "sts.record", Status: Pass,
		Message: fmt.Sprintf("%s announces an MTA-STS policy (id %s).", domain, id)})

	policyHost := "mta-sts." + domain
	body, err := c.fetchSTS(ctx, policyHost)
	url := c.stsURL(policyHost)
	if err != nil {
		c.rep.add(Finding{ID: "sts.policy", Status: Fail,
			Message: fmt.Sprintf("The MTA-STS policy could not be fetched from %s: %v; senders that cached no policy deliver without it.", url, err),
			Fix:     fmt.Sprintf("Serve the policy at %s over HTTPS, with a certificate valid for %s, answering 200 without a redirect.", url, policyHost)})
		return nil
	}
	p, err := ParseSTSPolicy(body)
	if err != nil {
		c.rep.add(Finding{ID: "sts.policy", Status: Fail,
			Message: fmt.Sprintf("The MTA-STS policy at %s is invalid: %v.", url, err),
			Fix:     "Write the policy as RFC 8461 3.2 says: \"version: STSv1\", \"mode: enforce\", one \"mx:\" line per MX host (or *.domain), \"max_age: 604800\", each line ending in CRLF."})
		return nil
	}
	c.rep.add(Finding{ID: "sts.policy", Status: Pass,
		Message: fmt.Sprintf("The MTA-STS policy at %s: mode %s, max_age %d s, mx %s.", url, p.Mode, p.MaxAge, strings.Join(p.MX, ", "))})
	switch p.Mode {
	case "enforce":
		c.rep.add(Finding{ID: "sts.mode", Status: Pass, Message: "The policy is enforced: senders that support MTA-STS deliver only over TLS to the listed MX hosts, with a valid certificate."})
	case "testing":
		c.rep.add(Finding{ID: "sts.mode", Status: Info, Message: "The policy is in testing mode: senders report failures (TLS-RPT) but deliver anyway.",
			Fix: "Switch to mode: enforce once the TLS reports show no failures."})
	default:
		c.rep.add(Finding{ID: "sts.mode", Status: Warning, Message: "The policy's mode is none: it tells senders to drop any cached policy and protects nothing.",
			Fix: "Use mode: testing or enforce, or remove the MTA-STS record."})
	}
	if p.Mode != "none" && p.MaxAge < 86400 {
		c.rep.add(Finding{ID: "sts.max_age", Status: Warning,
			Message: fmt.Sprintf("The policy's max_age is %d s, under a day: senders forget it quickly, which leaves room for a downgrade attack.", p.MaxAge),
			Fix:     "Use a max_age of weeks (RFC 8461 3.2 suggests 604800 or more)."})
	}
	return &p
}

// stsHosts judges each MX host against the policy: its name must match a
// pattern and, from the host's own TLS findings, its certificate must be
// valid for that name.
func (c *checker) stsHosts(p STSPolicy, hosts []Host) {
	bad := Fail
	if p.Mode == "testing" {
		bad = Warning
	}
	findings := c.rep.Findings()
	for _, h := range hosts {
		if !slices.ContainsFunc(p.MX, func(pat string) bool { return STSMatch(pat, h.Name) }) {
			c.rep.add(Finding{ID: "sts.mx", Host: h.Name, Status: bad,
				Message: fmt.Sprintf("The MX host %s matches no mx pattern of the MTA-STS policy (%s): senders that apply the policy refuse to deliver to it.", h.Name, strings.Join(p.MX, ", ")),
				Fix:     fmt.Sprintf("Add \"mx: %s\" to the policy (and change its id), or correct the MX record.", h.Name)})
			continue
		}
		c.rep.add(Finding{ID: "sts.mx", Host: h.Name, Status: Pass,
			Message: fmt.Sprintf("The MX host %s matches the MTA-STS policy.", h.Name)})
		var failed []string
		checked := false
		for _, f := range findings {
			if f.Host != h.Name {
				continue
			}
			switch f.ID {
			case "tls.starttls", "tls.name", "tls.chain", "tls.expiry":
				checked = true
				if f.Status == Fail {
					failed = append(failed, f.Message)
				}
			}
		}
		switch {
		case len(failed) > 0:
			c.rep.add(Finding{ID: "sts.tls", Host: h.Name, Status: bad,
				Message: fmt.Sprintf("Under the MTA-STS policy (mode %s) senders need STARTTLS with a valid certificate for %s, and this host fails that: %s", p.Mode, h.Name, strings.Join(failed, " ")),
				Fix:     fmt.Sprintf("Give %s a certificate valid for its name from a public CA, with its full chain.", h.Name)})
		case checked:
			c.rep.add(Finding{ID: "sts.tls", Host: h.Name, Status: Pass,
				Message: fmt.Sprintf("%s offers STARTTLS with a certificate valid for its name, as the MTA-STS policy requires.", h.Name)})
		}
	}
}

// stsURL is the policy's address: port 443 unless MTASTSPort says.
func (c *checker) stsURL(host string) string {
	if c.opts.MTASTSPort != 0 && c.opts.MTASTSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(c.opts.MTASTSPort))
	}
	return "https://" + host + "/.well-known/mta-sts.txt"
}

// fetchSTS fetches the policy from host over HTTPS (RFC 8461 3.3): the
// host's address from the check's resolver, the certificate verified for
// host, no redirects, 200 with text/plain, at most maxSTSPolicy bytes.
func (c *checker) fetchSTS(ctx context.Context, host string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, stsFetchTimeout)
	defer cancel()
	port := c.opts.MTASTSPort
	if port == 0 {
		port = 443
	}
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addrs := c.lookupAddrs(ctx, host)
			if len(addrs) == 0 {
				return nil, fmt.Errorf("%s has no A or AAAA record", host)
			}
			var errs []error
			for _, a := range addrs {
				conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(a, strconv.Itoa(port)))
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:       &tls.Config{RootCAs: c.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   stsFetchTimeout,
		ResponseHeaderTimeout: stsFetchTimeout,
		DisableKeepAlives:     true,
		Proxy:                 nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.stsURL(host), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return "", fmt.Errorf("the server answered %s, redirecting to %s; RFC 8461 3.3 forbids following redirects", resp.Status, clip(loc, 100))
		}
		return "", fmt.Errorf("the server answered %s", resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return "", fmt.Errorf("the policy's Content-Type is %q, not text/plain (RFC 8461 3.2)", clip(resp.Header.Get("Content-Type"), 60))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSTSPolicy+1))
	if err != nil {
		return "", fmt.Errorf("reading the policy: %w", err)
	}
	if len(b) > maxSTSPolicy {
		return "", fmt.Errorf("the policy is larger than %d KiB", maxSTSPolicy>>10)
	}
	return string(b), nil
}

// tlsRPT checks the TLS reporting record (RFC 8460).
func (c *checker) tlsRPT(ctx context.Context, domain string) {
	name := "_smtp._tls." + domain
	recs, ok := c.txt(ctx, name, "v=TLSRPTv1", "tlsrpt.record")
	if !ok {
		return
	}
	switch len(recs) {
	case 0:
		c.rep.add(Finding{ID: "tlsrpt.record", Status: Info,
			Message: fmt.Sprintf("%s has no TLS-RPT record (%s): senders cannot tell you when TLS to your MX hosts fails.", domain, name),
			Fix:     fmt.Sprintf("Publish \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\" at %s (RFC 8460).", domain, name)})
		return
	case 1:
	default:
		c.rep.add(Finding{ID: "tlsrpt.record", Status: Fail,
			Message: fmt.Sprintf("%s has %d TLS-RPT records; RFC 8460 3 makes senders ignore them all.", name, len(recs)),
			Fix:     "Keep exactly one \"v=TLSRPTv1; rua=...\" record."})
		return
	}
	rua, err := ParseTLSRPT(recs[0])
	if err != nil {
		c.rep.add(Finding{ID: "tlsrpt.record", Status: Fail,
			Message: fmt.Sprintf("The TLS-RPT record of %s (%q) is invalid: %v.", domain, clip(recs[0], 100), err),
			Fix:     fmt.Sprintf("Publish \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\" at %s.", domain, name)})
		return
	}
	c.rep.add(Finding{ID: "tlsrpt.record", Status: Pass,
		Message: fmt.Sprintf("TLS failure reports for %s go to %s.", domain, strings.Join(rua, ", "))})
}
