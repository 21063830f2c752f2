package check

// Alignment of the test message as sent (issue 14 item 4, RFC 7489 3.1):
// the From header's domain against the envelope sender's (SPF identifier
// alignment), SPF check_host() of the envelope sender's domain for the
// address sockmail connected from, DKIM (the test message is not signed),
// and the DMARC verdict under the From domain's policy.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// aligned reports whether domain a aligns with the From domain from in
// mode m: strict needs the same name, relaxed the same organisational
// domain.
func aligned(from, a string, m byte) bool {
	if m == 's' {
		return strings.EqualFold(from, a)
	}
	return strings.EqualFold(orgDomain(from), orgDomain(a))
}

// align judges the accepted test message: its From header and envelope
// sender are both o.From; local is the address the server saw; group
// and at are the findings' host and address.
func (c *checker) align(ctx context.Context, o TestSendOptions, local, group, at string) {
	f := func(id string, st Status, msg, fix string) {
		c.rep.add(Finding{ID: id, Host: group, Addr: at, Status: st, Message: msg, Fix: fix})
	}
	fromDomain := domainOfAddr(o.From) // the From header's domain
	mailFrom := domainOfAddr(o.From)   // the envelope sender's domain
	quiet := func(string, Status, string, string) {}
	rec := c.dmarc(ctx, fromDomain, quiet)
	aspf, adkim := byte('r'), byte('r')
	if rec != nil {
		aspf, adkim = rec.ASPF, rec.ADKIM
	}

	spfAligned := aligned(fromDomain, mailFrom, aspf)
	if spfAligned {
		f("align.spf.identifier", Pass, fmt.Sprintf("The envelope sender's domain %s aligns with the From header's domain %s (aspf=%c, %s).", mailFrom, fromDomain, aspf, alignMode(aspf)), "")
	} else {
		f("align.spf.identifier", Fail, fmt.Sprintf("The envelope sender's domain %s does not align with the From header's domain %s (aspf=%c, %s): SPF cannot make this message pass DMARC.", mailFrom, fromDomain, aspf, alignMode(aspf)),
			fmt.Sprintf("Send with an envelope sender in %s.", fromDomain))
	}

	spf := SPFNone
	relays := "a submission server relays the message from its own address, so this is what a direct delivery from here would be judged by"
	if o.Via == nil {
		relays = "this is the address the receiving server judges"
	}
	ip, err := netip.ParseAddr(local)
	if err != nil {
		f("align.spf.result", Warning, fmt.Sprintf("The address sockmail sent from is unknown (%q), so SPF could not be evaluated.", local), "")
	} else {
		ev := &spfEval{res: c.res, ip: ip, sender: o.From, helo: mailFrom}
		var serr error
		spf, serr = ev.checkHost(ctx, mailFrom, 0)
		msg := fmt.Sprintf("SPF gives %s for %s sending as %s (%s): %s", spf, ip, o.From, relays, strings.Join(ev.path, " → "))
		if serr != nil {
			msg += ": " + serr.Error()
		}
		if spf == SPFPass {
			f("align.spf.result", Pass, msg+".", "")
		} else {
			f("align.spf.result", Fail, msg+".", fmt.Sprintf("List the sending server's address in the SPF record of %s (ip4:/ip6:, or your provider's include:).", mailFrom))
		}
	}

	// The test message carries no DKIM-Signature: sockmail does not sign
	// it (adkim decides only whether a provider's signature would align).
	f("align.dkim", Warning, fmt.Sprintf("The test message carried no DKIM-Signature, so DKIM cannot make it pass DMARC (a signature aligns with d=%s, adkim=%c, %s). sockmail's web sends are not signed.", fromDomain, adkim, alignMode(adkim)),
		fmt.Sprintf("Let your provider sign mail from %s with d=%s (or sign with the CLI's --dkim-* flags of sockmail send).", fromDomain, fromDomain))

	pass := spfAligned && spf == SPFPass
	switch {
	case rec == nil:
		f("align.dmarc", Warning, fmt.Sprintf("%s publishes no usable DMARC record, so receivers apply no DMARC policy to this message (aligned SPF: %t).", fromDomain, pass),
			fmt.Sprintf(`Publish a TXT record at _dmarc.%s ("v=DMARC1; p=none; rua=mailto:...").`, fromDomain))
	case pass:
		f("align.dmarc", Pass, fmt.Sprintf("The message as sent would pass DMARC: SPF passes for %s and aligns with %s.", ip, fromDomain), "")
	default:
		pol := rec.P
		if orgDomain(fromDomain) != fromDomain && rec.SP != "" {
			// The record may be the organisational domain's; its sp
			// then applies, which equals p when absent.
			pol = c.policyFor(ctx, fromDomain, rec)
		}
		f("align.dmarc", Fail, fmt.Sprintf("The message as sent would fail DMARC: nothing aligned passes (SPF %s, no DKIM signature); %s's policy p=%s says what receivers do with it.", spf, fromDomain, pol),
			"Send through a server listed in the SPF record of the From domain, and have the message signed with d= the From domain.")
	}
}

// policyFor returns the policy that applies to domain: p of its own
// record, sp when rec is its organisational domain's.
func (c *checker) policyFor(ctx context.Context, domain string, rec *dmarcRecord) string {
	txt, err := c.dmarcLookup(ctx, domain)
	if err == nil && txt != "" {
		return rec.P
	}
	return rec.SP
}
