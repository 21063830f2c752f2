package check

// DMARC (RFC 7489): the policy record of a From domain, found at
// _dmarc.<domain> or, failing that, at its organisational domain.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// maxDMARCLen bounds a DMARC record; a longer one is refused unparsed.
const maxDMARCLen = 2048

// dmarcRecord is a parsed DMARC record.
type dmarcRecord struct {
	// P is the policy (none, quarantine, reject); SP the subdomain
	// policy, P when absent.
	P, SP string
	// Pct is the percentage of failing mail the policy applies to.
	Pct int
	// ADKIM and ASPF are the alignment modes: 'r' (relaxed) or 's'
	// (strict).
	ADKIM, ASPF byte
	// RUA and RUF are the aggregate and failure report addresses.
	RUA, RUF []string
}

// isDMARC reports whether a TXT record is a DMARC record.
func isDMARC(txt string) bool {
	tag, _, _ := strings.Cut(txt, ";")
	k, v, ok := strings.Cut(tag, "=")
	return ok && strings.TrimSpace(k) == "v" && strings.TrimSpace(v) == "DMARC1"
}

// parseDMARC parses a DMARC record (RFC 7489 6.3, 6.4).
func parseDMARC(txt string) (*dmarcRecord, error) {
	if len(txt) > maxDMARCLen {
		return nil, fmt.Errorf("the record is %d bytes long; the limit here is %d", len(txt), maxDMARCLen)
	}
	if !isDMARC(txt) {
		return nil, errors.New(`the record does not start with "v=DMARC1"`)
	}
	r := &dmarcRecord{Pct: 100, ADKIM: 'r', ASPF: 'r'}
	seen := map[string]bool{}
	for i, part := range strings.Split(txt, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not a tag=value pair", part)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if seen[k] {
			return nil, fmt.Errorf("the tag %s= appears twice", k)
		}
		seen[k] = true
		switch k {
		case "v":
			if i != 0 {
				return nil, errors.New("v=DMARC1 must come first")
			}
		case "p", "sp":
			pol := strings.ToLower(v)
			if pol != "none" && pol != "quarantine" && pol != "reject" {
				return nil, fmt.Errorf("%s=%s is not none, quarantine or reject", k, v)
			}
			if k == "p" {
				r.P = pol
			} else {
				r.SP = pol
			}
		case "pct":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 100 {
				return nil, fmt.Errorf("pct=%s is not a number from 0 to 100", v)
			}
			r.Pct = n
		case "adkim", "aspf":
			if v != "r" && v != "s" {
				return nil, fmt.Errorf("%s=%s is not r (relaxed) or s (strict)", k, v)
			}
			if k == "adkim" {
				r.ADKIM = v[0]
			} else {
				r.ASPF = v[0]
			}
		case "rua", "ruf":
			var list []string
			for _, u := range strings.Split(v, ",") {
				u = strings.TrimSpace(u)
				addr, _, _ := strings.Cut(u, "!") // a size limit may follow
				if !strings.HasPrefix(strings.ToLower(addr), "mailto:") || !strings.Contains(addr, "@") {
					return nil, fmt.Errorf("%s address %q is not a mailto: URI", k, u)
				}
				list = append(list, addr[len("mailto:"):])
			}
			if k == "rua" {
				r.RUA = list
			} else {
				r.RUF = list
			}
		}
	}
	if r.P == "" {
		return nil, errors.New("the required tag p= (the policy) is missing")
	}
	if r.SP == "" {
		r.SP = r.P
	}
	return r, nil
}

// orgDomain returns the organisational domain by the simple rule: the
// last two labels (a public suffix list would do better for co.uk and
// the like).
func orgDomain(domain string) string {
	labels := strings.Split(domain, ".")
	if len(labels) <= 2 {
		return domain
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

// dmarcLookup fetches the DMARC record at _dmarc.<domain>. It returns
// the record's text ("" when there is none) and why it could not tell.
func (c *checker) dmarcLookup(ctx context.Context, domain string) (string, error) {
	name := "_dmarc." + domain
	m, l, err := c.res.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return "", fmt.Errorf("the TXT lookup of %s got no answer: %s", name, l.Err)
	}
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return "", fmt.Errorf("the TXT lookup of %s failed with %s", name, l.Rcode)
	}
	var found []string
	for _, t := range resolve.Records[*dns.TXT](m) {
		if s := strings.Join(t.Txt, ""); isDMARC(s) {
			found = append(found, s)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("%s has %d DMARC records; receivers ignore them all (RFC 7489 6.6.3)", name, len(found))
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// dmarc checks the From domain's DMARC policy and returns it (nil when
// there is none).
func (c *checker) dmarc(ctx context.Context, domain string, f finder) *dmarcRecord {
	txt, err := c.dmarcLookup(ctx, domain)
	at := domain
	if err == nil && txt == "" {
		if org := orgDomain(domain); org != domain {
			at = org
			txt, err = c.dmarcLookup(ctx, org)
		}
	}
	fix := fmt.Sprintf(`Publish a TXT record at _dmarc.%s: "v=DMARC1; p=none; rua=mailto:dmarc-reports@%s", read the reports, then move to p=quarantine and p=reject.`, domain, domain)
	if err != nil {
		f("dmarc.record", Fail, fmt.Sprintf("The DMARC record of %s could not be read: %v.", domain, err), "Publish exactly one DMARC record and make sure the name servers answer.")
		return nil
	}
	if txt == "" {
		f("dmarc.record", Fail, fmt.Sprintf("%s has no DMARC record (at _dmarc.%s or its organisational domain %s): receivers apply no policy to forged mail, and large mailbox providers demand one of bulk senders.", domain, domain, orgDomain(domain)), fix)
		return nil
	}
	rec, err := parseDMARC(txt)
	if err != nil {
		f("dmarc.record", Fail, fmt.Sprintf("The DMARC record of %s (%q) is invalid: %v; receivers ignore it.", at, txt, err), fix)
		return nil
	}
	pol, which := rec.P, "p"
	if at != domain {
		pol, which = rec.SP, "sp"
		f("dmarc.record", Pass, fmt.Sprintf("%s has no DMARC record of its own; its organisational domain %s publishes %q, whose subdomain policy (sp=%s) applies.", domain, at, txt, rec.SP), "")
	} else {
		f("dmarc.record", Pass, fmt.Sprintf("%s publishes the DMARC record %q.", domain, txt), "")
	}
	switch pol {
	case "none":
		f("dmarc.policy", Warning, fmt.Sprintf("The DMARC policy is %s=none: receivers only report mail that fails, and deliver it anyway.", which),
			"Once the reports show all your own mail passing, move to p=quarantine, then p=reject.")
	case "quarantine":
		f("dmarc.policy", Pass, fmt.Sprintf("The DMARC policy is %s=quarantine: mail that fails goes to spam.", which), "")
	case "reject":
		f("dmarc.policy", Pass, fmt.Sprintf("The DMARC policy is %s=reject: mail that fails is refused.", which), "")
	}
	if rec.Pct < 100 && pol != "none" {
		f("dmarc.pct", Warning, fmt.Sprintf("The policy applies to only %d%% of failing mail (pct=%d).", rec.Pct, rec.Pct), "Raise pct to 100 once the policy is known to be safe.")
	}
	if len(rec.RUA) == 0 {
		f("dmarc.reports", Warning, "The DMARC record asks for no aggregate reports (rua=): you will not learn who sends mail in your name, nor whether your own mail passes.",
			fmt.Sprintf("Add rua=mailto:dmarc-reports@%s (or a report service's address).", domain))
	} else {
		msg := "Aggregate reports go to " + strings.Join(rec.RUA, ", ")
		if len(rec.RUF) > 0 {
			msg += "; failure reports to " + strings.Join(rec.RUF, ", ")
		}
		f("dmarc.reports", Pass, msg+".", "")
	}
	return rec
}

// alignMode names an alignment mode.
func alignMode(m byte) string {
	if m == 's' {
		return "strict"
	}
	return "relaxed"
}
