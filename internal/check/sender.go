package check

// The sender side of a check: the From domain's SPF (RFC 7208), DMARC
// (RFC 7489) and a DKIM selector's key (RFC 6376), in a group of their
// own ("sender: example.org").

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// maxSelectorLength bounds a DKIM selector.
const maxSelectorLength = 128

// SenderOptions says what to check of the sender side; the zero value
// checks nothing.
type SenderOptions struct {
	// From is the domain mail is sent from (the From header's and the
	// envelope sender's domain).
	From string
	// IP, if set, is a sending address to evaluate SPF for.
	IP string
	// DKIMSelector, if set, is the selector whose key is checked.
	DKIMSelector string
}

// Validate checks the options, naming what is wrong, and normalises the
// domain and the address.
func (o *SenderOptions) Validate() error {
	if o.From == "" {
		if o.IP != "" || o.DKIMSelector != "" {
			return errors.New("check: a sending address or DKIM selector needs the From domain (--from example.org)")
		}
		return nil
	}
	d, err := checkDomain(o.From, true)
	if err != nil {
		return fmt.Errorf("check: From domain: %s", strings.TrimPrefix(err.Error(), "check: "))
	}
	o.From = d
	if o.IP != "" {
		ip, err := parseIP(o.IP)
		if err != nil {
			return fmt.Errorf("check: sending address: %w", err)
		}
		o.IP = ip.String()
	}
	if s := o.DKIMSelector; s != "" {
		if len(s) > maxSelectorLength {
			return fmt.Errorf("check: DKIM selector is %d bytes long; the limit is %d", len(s), maxSelectorLength)
		}
		if _, err := checkDomain(s, false); err != nil {
			return fmt.Errorf("check: DKIM selector %q is not one or more DNS labels (letters, digits, hyphens)", s)
		}
		o.DKIMSelector = strings.ToLower(s)
	}
	return nil
}

// SenderGroup returns the group name of the sender findings of domain.
func SenderGroup(domain string) string { return "sender: " + domain }

// sender checks the sender side of o.From.
func (c *checker) sender(ctx context.Context, o SenderOptions) {
	group := SenderGroup(o.From)
	f := func(id string, st Status, msg, fix string) {
		c.rep.add(Finding{ID: id, Host: group, Status: st, Message: msg, Fix: fix})
	}
	spf := c.spf(ctx, o, f)
	if ctx.Err() != nil {
		return
	}
	dkimOK := false
	if o.DKIMSelector != "" {
		dkimOK = c.dkim(ctx, o.From, o.DKIMSelector, f)
	}
	if ctx.Err() != nil {
		return
	}
	rec := c.dmarc(ctx, o.From, f)
	if rec == nil {
		return
	}
	c.alignment(o, rec, spf, dkimOK, f)
}

// alignment says whether mail from o.IP signed with o.DKIMSelector would
// pass DMARC: SPF for the From domain itself is aligned in either mode
// (the envelope sender is taken to be in the From domain), and so is a
// key under the From domain (signatures with d= the From domain).
func (c *checker) alignment(o SenderOptions, rec *dmarcRecord, spf SPFResult, dkimOK bool, f finder) {
	modes := fmt.Sprintf("adkim=%c (%s), aspf=%c (%s)", rec.ADKIM, alignMode(rec.ADKIM), rec.ASPF, alignMode(rec.ASPF))
	if o.IP == "" && o.DKIMSelector == "" {
		f("dmarc.alignment", Info, fmt.Sprintf("Alignment modes: %s. Give a sending address and a DKIM selector to learn whether your mail aligns.", modes), "")
		return
	}
	var ok, not []string
	if o.IP != "" {
		if spf == SPFPass {
			ok = append(ok, fmt.Sprintf("SPF passes for %s with an envelope sender in %s", o.IP, o.From))
		} else {
			not = append(not, fmt.Sprintf("SPF gives %s for %s", spf, o.IP))
		}
	}
	if o.DKIMSelector != "" {
		if dkimOK {
			ok = append(ok, fmt.Sprintf("signatures with d=%s s=%s can be verified", o.From, o.DKIMSelector))
		} else {
			not = append(not, fmt.Sprintf("the key of selector %s is unusable", o.DKIMSelector))
		}
	}
	switch {
	case len(ok) > 0:
		msg := fmt.Sprintf("Mail from %s would pass DMARC (%s): %s", o.From, modes, strings.Join(ok, "; "))
		if len(not) > 0 {
			msg += "; though " + strings.Join(not, "; ")
		}
		f("dmarc.alignment", Pass, msg+".", "")
	default:
		f("dmarc.alignment", Fail, fmt.Sprintf("Mail from %s would fail DMARC (%s): %s; nothing aligned passes.", o.From, modes, strings.Join(not, "; ")),
			"Send through a host the SPF record lists, and sign with a published key under the From domain.")
	}
}

// spf checks the From domain's SPF record: found and valid, its DNS cost,
// its default, and (with o.IP) the result for the sending address.
func (c *checker) spf(ctx context.Context, o SenderOptions, f finder) SPFResult {
	sender := "postmaster@" + o.From
	top := &spfEval{res: c.res, sender: sender, helo: o.From}
	rec, txt, err := top.fetch(ctx, o.From)
	var se *spfError
	switch {
	case errors.As(err, &se) && se.result == SPFTemperror:
		f("spf.record", Warning, fmt.Sprintf("The SPF record of %s could not be read: %s.", o.From, se.msg), "Make sure the domain's name servers answer.")
		return SPFTemperror
	case err != nil:
		f("spf.record", Fail, fmt.Sprintf("%s: receivers treat the domain's SPF as a permanent error.", strings.TrimSuffix(err.Error(), ".")),
			"Publish exactly one valid TXT record starting with v=spf1.")
		return SPFPermerror
	case rec == nil:
		f("spf.record", Warning, fmt.Sprintf("%s has no SPF record: receivers cannot tell its mail servers from forgers (SPF result none).", o.From),
			fmt.Sprintf(`Publish a TXT record at %s listing your sending hosts: "v=spf1 mx -all" (or include: your provider).`, o.From))
		return SPFNone
	}
	f("spf.record", Pass, fmt.Sprintf("%s publishes the SPF record %q.", o.From, txt), "")
	c.spfDefault(rec, f)

	walk := &spfEval{res: c.res, sender: sender, helo: o.From, walk: true}
	if _, err := walk.checkHost(ctx, o.From, 0); err != nil {
		f("spf.tree", Fail, fmt.Sprintf("Following the SPF record's includes and redirects: %v.", err), "Fix or remove the term named.")
	}
	switch {
	case walk.lookups > spfMaxLookups:
		f("spf.lookups", Fail, fmt.Sprintf("The SPF record needs %d DNS-querying terms (include, a, mx, ptr, exists, redirect, counted through every include); the limit is %d, so receivers stop with permerror (RFC 7208 4.6.4).", walk.lookups, spfMaxLookups),
			"Replace includes and a/mx terms by ip4:/ip6: ranges, or drop services that no longer send for you.")
	default:
		f("spf.lookups", Pass, fmt.Sprintf("The SPF record needs %d of the %d DNS-querying terms allowed.", walk.lookups, spfMaxLookups), "")
	}
	if o.IP == "" {
		return SPFNone
	}
	ip, err := netip.ParseAddr(o.IP)
	if err != nil {
		return SPFNone // Validate parsed it already
	}
	ev := &spfEval{res: c.res, ip: ip, sender: sender, helo: o.From}
	res, err := ev.checkHost(ctx, o.From, 0)
	path := strings.Join(ev.path, " → ")
	msg := fmt.Sprintf("SPF gives %s for mail from %s with the envelope sender %s (%d DNS-querying terms, %d void lookups): %s", res, o.IP, sender, ev.lookups, ev.voids, path)
	if err != nil {
		msg += ": " + err.Error()
	}
	msg += "."
	switch res {
	case SPFPass:
		f("spf.result", Pass, msg, "")
	case SPFFail:
		f("spf.result", Fail, msg, fmt.Sprintf("Add %s to the SPF record (ip4:/ip6:, or the include: of the service sending from it) if it sends for %s.", o.IP, o.From))
	case SPFPermerror:
		f("spf.result", Fail, msg, "Fix the SPF record: receivers treat a permerror like a missing or broken record, and DMARC fails.")
	default:
		f("spf.result", Warning, msg, fmt.Sprintf("List %s in the SPF record if it sends for %s, and end the record with -all or ~all.", o.IP, o.From))
	}
	return res
}

// spfDefault reports what the record says of hosts it does not list, and
// a ptr mechanism, which RFC 7208 5.5 says not to use.
func (c *checker) spfDefault(rec *spfRecord, f finder) {
	for _, t := range rec.Terms {
		if !t.Modifier && t.Name == "ptr" {
			f("spf.ptr", Warning, fmt.Sprintf("The SPF record uses %q: the ptr mechanism is slow and unreliable, RFC 7208 5.5 says not to use it, and some receivers ignore it.", t.String()),
				"Replace ptr by the ip4:/ip6: ranges or a/mx terms of your sending hosts.")
			break
		}
	}
	var all *spfTerm
	for i, t := range rec.Terms {
		if !t.Modifier && t.Name == "all" {
			all = &rec.Terms[i]
			break
		}
	}
	switch {
	case all == nil && rec.Redirect != "":
		f("spf.all", Info, fmt.Sprintf("The record ends by redirecting to %s, whose record decides for unlisted hosts.", rec.Redirect), "")
	case all == nil:
		f("spf.all", Warning, "The SPF record has no \"all\" term: hosts it does not list get neutral, as if there were no record.", "End the record with -all (or ~all while testing).")
	case all.Qualifier == '+':
		f("spf.all", Fail, "The SPF record ends with +all: it authorises every host on the Internet to send as the domain.", "End the record with -all (or ~all).")
	case all.Qualifier == '?':
		f("spf.all", Warning, "The SPF record ends with ?all: hosts it does not list get neutral, which protects nothing.", "End the record with -all (or ~all).")
	case all.Qualifier == '~':
		f("spf.all", Pass, "The SPF record ends with ~all: unlisted hosts softfail (their mail is suspect, not refused).", "")
	default:
		f("spf.all", Pass, "The SPF record ends with -all: unlisted hosts fail.", "")
	}
}
