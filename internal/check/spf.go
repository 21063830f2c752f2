package check

// SPF (RFC 7208): the record parsed, its DNS-querying terms counted, and
// check_host() evaluated for a sending address.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// SPF limits (RFC 7208 4.6.4), and the bounds of this implementation.
const (
	spfMaxLookups   = 10   // DNS-querying terms per check_host
	spfMaxVoid      = 2    // lookups that found nothing
	spfMaxMXNames   = 10   // MX hosts looked at by one mx mechanism
	spfMaxPTRNames  = 10   // PTR names looked at by one ptr mechanism
	spfMaxRecordLen = 4096 // a longer TXT record is refused unparsed
	spfMaxDepth     = 15   // includes and redirects, nested
	spfMaxWalk      = 40   // terms counted when walking a record over the limit
)

// SPFResult is the result of check_host() (RFC 7208 2.6).
type SPFResult string

// The SPF results.
const (
	SPFNone      SPFResult = "none"
	SPFNeutral   SPFResult = "neutral"
	SPFPass      SPFResult = "pass"
	SPFFail      SPFResult = "fail"
	SPFSoftfail  SPFResult = "softfail"
	SPFTemperror SPFResult = "temperror"
	SPFPermerror SPFResult = "permerror"
)

// spfTerm is one directive or modifier of an SPF record.
type spfTerm struct {
	// Qualifier is '+', '-', '~' or '?' for a mechanism, 0 for a modifier.
	Qualifier byte
	// Name is the mechanism ("all", "include", "a", "mx", "ptr", "ip4",
	// "ip6", "exists") or the modifier's name, lower case.
	Name string
	// Domain is the domain-spec, or the network of ip4/ip6, or the
	// modifier's value; empty when none was given.
	Domain string
	// Prefix4 and Prefix6 are the CIDR lengths; -1 when none was given.
	Prefix4, Prefix6 int
	// Modifier marks name=value terms.
	Modifier bool
}

// String renders the term as it was written (qualifier "+" left out).
func (t spfTerm) String() string {
	if t.Modifier {
		return t.Name + "=" + t.Domain
	}
	var b strings.Builder
	if t.Qualifier != '+' {
		b.WriteByte(t.Qualifier)
	}
	b.WriteString(t.Name)
	if t.Domain != "" {
		b.WriteString(":" + t.Domain)
	}
	if t.Prefix4 >= 0 {
		b.WriteString("/" + strconv.Itoa(t.Prefix4))
	}
	if t.Prefix6 >= 0 {
		if t.Name != "ip6" {
			b.WriteString("/")
		}
		b.WriteString("/" + strconv.Itoa(t.Prefix6))
	}
	return b.String()
}

// queries reports whether the term makes DNS lookups that count against
// the limit of ten.
func (t spfTerm) queries() bool {
	switch t.Name {
	case "include", "a", "mx", "ptr", "exists":
		return !t.Modifier
	case "redirect":
		return t.Modifier
	}
	return false
}

// spfRecord is a parsed SPF record.
type spfRecord struct {
	// Terms are the mechanisms in order; modifiers other than redirect
	// and exp are kept for display only.
	Terms []spfTerm
	// Redirect and Exp are the modifiers' values, empty when absent.
	Redirect, Exp string
}

// isSPF reports whether a TXT record is an SPF record: "v=spf1" alone or
// followed by a space (RFC 7208 4.5).
func isSPF(txt string) bool {
	return len(txt) >= 6 && strings.EqualFold(txt[:6], "v=spf1") && (len(txt) == 6 || txt[6] == ' ')
}

// parseSPF parses an SPF record (RFC 7208 4.6, 5, 6, 12).
func parseSPF(txt string) (*spfRecord, error) {
	if len(txt) > spfMaxRecordLen {
		return nil, fmt.Errorf("the record is %d bytes long; the limit here is %d", len(txt), spfMaxRecordLen)
	}
	if !isSPF(txt) {
		return nil, errors.New(`the record does not start with "v=spf1"`)
	}
	rec := &spfRecord{}
	for _, word := range strings.Split(txt[6:], " ") {
		if word == "" {
			continue
		}
		t, err := parseSPFTerm(word)
		if err != nil {
			return nil, fmt.Errorf("term %q: %w", word, err)
		}
		if t.Modifier {
			switch t.Name {
			case "redirect", "exp":
				if (t.Name == "redirect" && rec.Redirect != "") || (t.Name == "exp" && rec.Exp != "") {
					return nil, fmt.Errorf("the modifier %s= appears twice", t.Name)
				}
				if err := checkMacros(t.Domain, t.Name == "exp"); err != nil {
					return nil, fmt.Errorf("term %q: %w", word, err)
				}
				if t.Name == "redirect" {
					rec.Redirect = t.Domain
				} else {
					rec.Exp = t.Domain
				}
			}
		}
		rec.Terms = append(rec.Terms, t)
	}
	return rec, nil
}

// parseSPFTerm parses one directive or modifier.
func parseSPFTerm(w string) (spfTerm, error) {
	t := spfTerm{Qualifier: '+', Prefix4: -1, Prefix6: -1}
	// A modifier: name "=" value, the name starting with a letter.
	if i := strings.IndexByte(w, '='); i > 0 && !strings.ContainsAny(w[:i], ":/") {
		name := strings.ToLower(w[:i])
		for j, c := range name {
			if !(c >= 'a' && c <= 'z' || j > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')) {
				return t, fmt.Errorf("modifier name %q is not valid", w[:i])
			}
		}
		t.Qualifier, t.Modifier, t.Name, t.Domain = 0, true, name, w[i+1:]
		if (name == "redirect" || name == "exp") && t.Domain == "" {
			return t, fmt.Errorf("%s= needs a domain", name)
		}
		return t, nil
	}
	if strings.ContainsRune("+-~?", rune(w[0])) {
		t.Qualifier = w[0]
		w = w[1:]
	}
	name, arg := w, ""
	if i := strings.IndexAny(w, ":/"); i >= 0 {
		name, arg = w[:i], w[i:]
	}
	t.Name = strings.ToLower(name)
	switch t.Name {
	case "all":
		if arg != "" {
			return t, errors.New("all takes no argument")
		}
	case "include", "exists":
		if !strings.HasPrefix(arg, ":") || len(arg) < 2 {
			return t, fmt.Errorf("%s needs a domain (%s:example.org)", t.Name, t.Name)
		}
		t.Domain = arg[1:]
	case "ptr":
		if arg != "" {
			if !strings.HasPrefix(arg, ":") || len(arg) < 2 {
				return t, errors.New("ptr takes only a domain")
			}
			t.Domain = arg[1:]
		}
	case "a", "mx":
		spec := arg
		if strings.HasPrefix(spec, ":") {
			spec = spec[1:]
			if spec == "" || spec[0] == '/' {
				return t, fmt.Errorf("%s: has an empty domain", t.Name)
			}
		}
		var err error
		if t.Domain, t.Prefix4, t.Prefix6, err = splitDualCIDR(spec); err != nil {
			return t, err
		}
	case "ip4", "ip6":
		if !strings.HasPrefix(arg, ":") {
			return t, fmt.Errorf("%s needs an address (%s:192.0.2.0/24)", t.Name, t.Name)
		}
		addr, bits, hasBits := strings.Cut(arg[1:], "/")
		ip, err := netip.ParseAddr(addr)
		if err != nil || (t.Name == "ip4") != ip.Is4() || ip.Zone() != "" {
			return t, fmt.Errorf("%q is not an IPv%s address", addr, t.Name[2:])
		}
		t.Domain = ip.String()
		if hasBits {
			n, err := strconv.Atoi(bits)
			if err != nil || n < 0 || n > ip.BitLen() || bits != strconv.Itoa(n) {
				return t, fmt.Errorf("prefix /%s is not from 0 to %d", bits, ip.BitLen())
			}
			if t.Name == "ip4" {
				t.Prefix4 = n
			} else {
				t.Prefix6 = n
			}
		}
		return t, nil
	default:
		return t, fmt.Errorf("unknown mechanism %q", name)
	}
	if t.Domain != "" {
		if err := checkMacros(t.Domain, false); err != nil {
			return t, err
		}
	}
	return t, nil
}

// splitDualCIDR splits "domain/24//64" into its parts.
func splitDualCIDR(s string) (domain string, p4, p6 int, err error) {
	p4, p6 = -1, -1
	domain = s
	if i := strings.Index(s, "//"); i >= 0 {
		if p6, err = cidrBits(s[i+2:], 128); err != nil {
			return "", 0, 0, err
		}
		s = s[:i]
		domain = s
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		if p4, err = cidrBits(s[i+1:], 32); err != nil {
			return "", 0, 0, err
		}
		domain = s[:i]
	}
	return domain, p4, p6, nil
}

func cidrBits(s string, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max || s != strconv.Itoa(n) {
		return 0, fmt.Errorf("prefix /%s is not from 0 to %d", s, max)
	}
	return n, nil
}

// checkMacros checks the macro syntax of a domain-spec (RFC 7208 7.1);
// exp allows the c, r and t letters as well.
func checkMacros(s string, exp bool) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 >= len(s) {
			return errors.New(`a "%" ends the domain`)
		}
		switch s[i+1] {
		case '%', '_', '-':
			i++
			continue
		case '{':
		default:
			return fmt.Errorf(`"%%%c" is not a macro (write %%%% for a percent sign)`, s[i+1])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return errors.New(`a macro "%{" is not closed`)
		}
		body := s[i+2 : i+end]
		if body == "" || !strings.ContainsRune("slodiphvSLODIPHV"+map[bool]string{true: "crtCRT"}[exp], rune(body[0])) {
			return fmt.Errorf("macro %%{%s} has no valid letter", body)
		}
		rest := strings.TrimLeft(body[1:], "0123456789")
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "r"), "R")
		if strings.Trim(rest, ".-+,/_=") != "" {
			return fmt.Errorf("macro %%{%s} has an invalid transformer", body)
		}
		i += end
	}
	return nil
}

// spfEval runs check_host() (RFC 7208 4) with its limits shared across
// includes and redirects, recording the path taken.
type spfEval struct {
	res    *resolve.Resolver
	ip     netip.Addr
	sender string // local-part@domain
	helo   string
	// walk visits every term of the whole tree without matching any, to
	// count the lookups a record costs; the limits do not stop it.
	walk    bool
	lookups int
	voids   int
	path    []string
	// stack lists the domains being evaluated, outermost first, to tell
	// a loop; a domain included twice side by side costs its lookups
	// twice, as it does a receiver.
	stack []string
}

// spfError ends an evaluation with permerror or temperror, saying why.
type spfError struct {
	result SPFResult
	msg    string
}

func (e *spfError) Error() string { return e.msg }

func permErr(format string, args ...any) error {
	return &spfError{SPFPermerror, fmt.Sprintf(format, args...)}
}

func tempErr(format string, args ...any) error {
	return &spfError{SPFTemperror, fmt.Sprintf(format, args...)}
}

// fetch returns the SPF record of domain, nil (none) if it has none.
func (e *spfEval) fetch(ctx context.Context, domain string) (*spfRecord, string, error) {
	m, l, err := e.res.Query(ctx, domain, dns.TypeTXT)
	if err != nil {
		return nil, "", tempErr("the TXT lookup of %s got no answer: %s", domain, l.Err)
	}
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, "", tempErr("the TXT lookup of %s failed with %s", domain, l.Rcode)
	}
	var found []string
	for _, t := range resolve.Records[*dns.TXT](m) {
		if s := strings.Join(t.Txt, ""); isSPF(s) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, "", nil
	case 1:
	default:
		return nil, "", permErr("%s has %d SPF records; there must be one (RFC 7208 4.5)", domain, len(found))
	}
	rec, err := parseSPF(found[0])
	if err != nil {
		return nil, found[0], permErr("the SPF record of %s is invalid: %v", domain, err)
	}
	return rec, found[0], nil
}

// count counts a DNS-querying term against the limit.
func (e *spfEval) count(t spfTerm) error {
	e.lookups++
	if e.lookups > spfMaxLookups && !e.walk {
		return permErr("%q is DNS-querying term number %d; the limit is %d (RFC 7208 4.6.4)", t.String(), e.lookups, spfMaxLookups)
	}
	if e.walk && e.lookups > spfMaxWalk {
		return permErr("counting stopped after %d DNS-querying terms", spfMaxWalk)
	}
	return nil
}

// void counts a lookup that found nothing against the limit of two.
func (e *spfEval) void(name string) error {
	e.voids++
	if e.voids > spfMaxVoid && !e.walk {
		return permErr("the lookup of %s is void lookup number %d (no such name or no records); the limit is %d (RFC 7208 4.6.4)", name, e.voids, spfMaxVoid)
	}
	return nil
}

// checkHost evaluates domain's SPF record for the sending address.
func (e *spfEval) checkHost(ctx context.Context, domain string, depth int) (SPFResult, error) {
	if depth > spfMaxDepth {
		return SPFPermerror, permErr("includes and redirects nest deeper than %d", spfMaxDepth)
	}
	if slices.Contains(e.stack, domain) {
		return SPFPermerror, permErr("%s includes or redirects to itself (%s → %s): a loop", domain, strings.Join(e.stack, " → "), domain)
	}
	e.stack = append(e.stack, domain)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()
	rec, txt, err := e.fetch(ctx, domain)
	if err != nil {
		return err.(*spfError).result, err
	}
	if rec == nil {
		e.path = append(e.path, domain+": no SPF record")
		return SPFNone, nil
	}
	e.path = append(e.path, domain+": "+txt)
	for _, t := range rec.Terms {
		if t.Modifier {
			continue
		}
		match, err := e.mechanism(ctx, domain, t, depth)
		if err != nil {
			return err.(*spfError).result, err
		}
		if match && !e.walk {
			e.path = append(e.path, fmt.Sprintf("%s matched %s", t, e.ip))
			return qualifierResult(t.Qualifier), nil
		}
	}
	if rec.Redirect != "" {
		t := spfTerm{Modifier: true, Name: "redirect", Domain: rec.Redirect}
		if err := e.count(t); err != nil {
			return SPFPermerror, err
		}
		target, err := e.expand(rec.Redirect, domain)
		if err != nil {
			return SPFPermerror, err
		}
		e.path = append(e.path, "redirect to "+target)
		r, err := e.checkHost(ctx, target, depth+1)
		if r == SPFNone {
			return SPFPermerror, permErr("the redirect target %s has no SPF record", target)
		}
		return r, err
	}
	if !e.walk {
		e.path = append(e.path, "no mechanism matched: neutral")
	}
	return SPFNeutral, nil
}

func qualifierResult(q byte) SPFResult {
	switch q {
	case '-':
		return SPFFail
	case '~':
		return SPFSoftfail
	case '?':
		return SPFNeutral
	}
	return SPFPass
}

// mechanism evaluates one mechanism; in walk mode it never matches.
func (e *spfEval) mechanism(ctx context.Context, domain string, t spfTerm, depth int) (bool, error) {
	if t.queries() {
		if err := e.count(t); err != nil {
			return false, err
		}
	}
	target := domain
	if t.Domain != "" && t.Name != "ip4" && t.Name != "ip6" {
		if e.walk && strings.Contains(t.Domain, "%") {
			e.path = append(e.path, fmt.Sprintf("%s: not followed (macros depend on the sender)", t))
			return false, nil
		}
		var err error
		if target, err = e.expand(t.Domain, domain); err != nil {
			return false, err
		}
	}
	switch t.Name {
	case "all":
		return !e.walk, nil
	case "ip4", "ip6":
		if e.walk {
			return false, nil
		}
		return inNet(e.ip, netip.MustParseAddr(t.Domain), t), nil
	case "include":
		r, err := e.checkHost(ctx, target, depth+1)
		switch r {
		case SPFPass:
			return !e.walk, nil
		case SPFFail, SPFSoftfail, SPFNeutral:
			return false, nil
		case SPFTemperror:
			return false, err
		case SPFNone:
			return false, permErr("include:%s names a domain without an SPF record", target)
		}
		return false, err
	case "a":
		addrs, err := e.addrs(ctx, target, e.walk)
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(addrs, func(a netip.Addr) bool { return inNet(e.ip, a, t) }), nil
	case "mx":
		m, l, err := e.res.Query(ctx, target, dns.TypeMX)
		if err != nil {
			return false, tempErr("the MX lookup of %s got no answer: %s", target, l.Err)
		}
		mxs := resolve.Records[*dns.MX](m)
		if m.Rcode == dns.RcodeNameError || (m.Rcode == dns.RcodeSuccess && len(mxs) == 0) {
			return false, e.void(target)
		}
		if m.Rcode != dns.RcodeSuccess {
			return false, tempErr("the MX lookup of %s failed with %s", target, l.Rcode)
		}
		if len(mxs) > spfMaxMXNames {
			return false, permErr("mx:%s has %d MX hosts; the limit is %d", target, len(mxs), spfMaxMXNames)
		}
		if e.walk {
			return false, nil
		}
		for _, mx := range mxs {
			addrs, err := e.addrs(ctx, mx.Mx, true)
			if err != nil {
				return false, err
			}
			if slices.ContainsFunc(addrs, func(a netip.Addr) bool { return inNet(e.ip, a, t) }) {
				return true, nil
			}
		}
		return false, nil
	case "ptr":
		if e.walk {
			return false, nil
		}
		return e.ptr(ctx, target)
	case "exists":
		m, l, err := e.res.Query(ctx, target, dns.TypeA)
		if err != nil {
			return false, tempErr("the A lookup of %s got no answer: %s", target, l.Err)
		}
		if len(resolve.Records[*dns.A](m)) == 0 {
			if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
				return false, tempErr("the A lookup of %s failed with %s", target, l.Rcode)
			}
			return false, e.void(target)
		}
		return !e.walk, nil
	}
	return false, permErr("unknown mechanism %q", t.Name)
}

// addrs looks up the addresses of name of the sending address's family
// (both in walk mode). A lookup that finds nothing counts as void unless
// noVoid.
func (e *spfEval) addrs(ctx context.Context, name string, noVoid bool) ([]netip.Addr, error) {
	types := []uint16{dns.TypeAAAA}
	if e.walk {
		types = []uint16{dns.TypeA}
	} else if e.ip.Is4() {
		types = []uint16{dns.TypeA}
	}
	var out []netip.Addr
	for _, qt := range types {
		m, l, err := e.res.Query(ctx, name, qt)
		if err != nil {
			return nil, tempErr("the %s lookup of %s got no answer: %s", l.Type, name, l.Err)
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			return nil, tempErr("the %s lookup of %s failed with %s", l.Type, name, l.Rcode)
		}
		for _, a := range resolve.Records[*dns.A](m) {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				out = append(out, ip)
			}
		}
		for _, a := range resolve.Records[*dns.AAAA](m) {
			if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
				out = append(out, ip)
			}
		}
	}
	if len(out) == 0 && !noVoid {
		return nil, e.void(name)
	}
	return out, nil
}

// ptr evaluates the ptr mechanism (RFC 7208 5.5): a validated reverse
// name equal to or under target.
func (e *spfEval) ptr(ctx context.Context, target string) (bool, error) {
	rev, err := dns.ReverseAddr(e.ip.String())
	if err != nil {
		return false, nil
	}
	m, _, err := e.res.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		return false, nil // DNS errors in ptr are no match (RFC 7208 5.5)
	}
	ptrs := resolve.Records[*dns.PTR](m)
	if len(ptrs) == 0 {
		return false, e.void(rev)
	}
	target = strings.ToLower(strings.TrimSuffix(target, "."))
	for i, p := range ptrs {
		if i == spfMaxPTRNames {
			break
		}
		name := strings.ToLower(strings.TrimSuffix(p.Ptr, "."))
		if name != target && !strings.HasSuffix(name, "."+target) {
			continue
		}
		addrs, err := e.addrs(ctx, name, true)
		if err != nil {
			continue
		}
		if slices.Contains(addrs, e.ip) {
			return true, nil
		}
	}
	return false, nil
}

// inNet reports whether ip is in the network of addr with the term's
// prefix length for its family.
func inNet(ip, addr netip.Addr, t spfTerm) bool {
	ip, addr = ip.Unmap(), addr.Unmap()
	if ip.Is4() != addr.Is4() {
		return false
	}
	bits := t.Prefix6
	if addr.Is4() {
		bits = t.Prefix4
	}
	if bits < 0 {
		bits = addr.BitLen()
	}
	p, err := addr.Prefix(bits)
	return err == nil && p.Contains(ip)
}

// expand expands the macros of a domain-spec (RFC 7208 7.3, 7.4) for the
// current domain.
func (e *spfEval) expand(spec, domain string) (string, error) {
	if !strings.Contains(spec, "%") {
		return strings.TrimSuffix(spec, "."), nil
	}
	local, senderDomain, _ := strings.Cut(e.sender, "@")
	var b strings.Builder
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		switch spec[i] {
		case '%':
			b.WriteByte('%')
			continue
		case '_':
			b.WriteByte(' ')
			continue
		case '-':
			b.WriteString("%20")
			continue
		}
		end := strings.IndexByte(spec[i:], '}')
		body := spec[i+1 : i+end]
		i += end
		var v string
		switch body[0] | 0x20 {
		case 's':
			v = e.sender
		case 'l':
			v = local
		case 'o':
			v = senderDomain
		case 'd':
			v = domain
		case 'i':
			v = macroIP(e.ip)
		case 'p':
			v = "unknown"
		case 'v':
			v = "in-addr"
			if e.ip.Is6() && !e.ip.Is4In6() {
				v = "ip6"
			}
		case 'h':
			v = e.helo
		default:
			return "", permErr("macro %%{%s} is allowed only in exp=", body)
		}
		rest := body[1:]
		digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
		keep := 0
		if digits > 0 {
			n, err := strconv.Atoi(rest[:digits])
			if err != nil || n == 0 {
				return "", permErr("macro %%{%s} keeps zero labels", body)
			}
			keep = n
		}
		rest = rest[digits:]
		reverse := strings.HasPrefix(strings.ToLower(rest), "r")
		if reverse {
			rest = rest[1:]
		}
		delims := rest
		if delims == "" {
			delims = "."
		}
		parts := strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(delims, r) })
		if reverse {
			slices.Reverse(parts)
		}
		if keep > 0 && keep < len(parts) {
			parts = parts[len(parts)-keep:]
		}
		v = strings.Join(parts, ".")
		if body[0] >= 'A' && body[0] <= 'Z' {
			v = strings.ReplaceAll(urlEscape(v), "+", "%20")
		}
		b.WriteString(v)
	}
	out := strings.TrimSuffix(b.String(), ".")
	for len(out) > 253 {
		_, after, ok := strings.Cut(out, ".")
		if !ok {
			break
		}
		out = after
	}
	return out, nil
}

// macroIP renders an address for the i macro: dotted quad, or dotted
// nibbles for IPv6 (RFC 7208 7.3).
func macroIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	b := ip.As16()
	var parts []string
	for _, x := range b {
		parts = append(parts, strconv.FormatUint(uint64(x>>4), 16), strconv.FormatUint(uint64(x&15), 16))
	}
	return strings.Join(parts, ".")
}

// urlEscape escapes all but the URI unreserved characters.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// parseIP reads a sending address for an SPF evaluation.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return ip.Unmap(), nil
}
