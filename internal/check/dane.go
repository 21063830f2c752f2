package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// maxTLSA bounds the TLSA records of one name that are compared.
const maxTLSA = 20

// TLSA is one TLSA record (RFC 6698 2.1), as DANE for SMTP uses it.
type TLSA struct {
	// Usage is 2 (DANE-TA: a trust anchor in the chain) or 3 (DANE-EE:
	// the server's own certificate); 0 and 1 are not for SMTP (RFC 7672
	// 3.1.3).
	Usage uint8
	// Selector is 0 (the whole certificate) or 1 (its public key).
	Selector uint8
	// MatchingType is 0 (exact), 1 (SHA-256) or 2 (SHA-512).
	MatchingType uint8
	// Data is the certificate data, its key, or their digest.
	Data []byte
}

// String renders the record as in a zone file.
func (t TLSA) String() string {
	return fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, clip(hex.EncodeToString(t.Data), 64))
}

// ParseTLSA reads a TLSA record's data in presentation form ("3 1 1
// <hex>"), checking the parameters DANE for SMTP can use.
func ParseTLSA(s string) (TLSA, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return TLSA{}, fmt.Errorf("TLSA %q: want usage, selector, matching type and data", clip(s, 80))
	}
	var nums [3]uint8
	for i, name := range []string{"usage", "selector", "matching type"} {
		n, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return TLSA{}, fmt.Errorf("TLSA %s %q is not a number from 0 to 255", name, clip(f[i], 20))
		}
		nums[i] = uint8(n)
	}
	data, err := hex.DecodeString(strings.Join(f[3:], ""))
	if err != nil {
		return TLSA{}, fmt.Errorf("TLSA data is not hexadecimal: %v", err)
	}
	t := TLSA{Usage: nums[0], Selector: nums[1], MatchingType: nums[2], Data: data}
	return t, t.usable()
}

// usable says why DANE for SMTP cannot use the record, nil if it can.
func (t TLSA) usable() error {
	switch {
	case t.Usage != 2 && t.Usage != 3:
		return fmt.Errorf("TLSA usage %d is not for SMTP (RFC 7672 3.1.3: only 2, DANE-TA, and 3, DANE-EE)", t.Usage)
	case t.Selector > 1:
		return fmt.Errorf("TLSA selector %d is unknown (0: certificate, 1: public key)", t.Selector)
	case t.MatchingType > 2:
		return fmt.Errorf("TLSA matching type %d is unknown (0: exact, 1: SHA-256, 2: SHA-512)", t.MatchingType)
	case t.MatchingType == 1 && len(t.Data) != sha256.Size, t.MatchingType == 2 && len(t.Data) != sha512.Size:
		return fmt.Errorf("TLSA data is %d bytes long, wrong for matching type %d", len(t.Data), t.MatchingType)
	}
	return nil
}

// Matches reports whether the record matches the certificate chain a
// server presented (leaf first): DANE-EE the leaf, DANE-TA any certificate
// of the chain above the leaf.
func (t TLSA) Matches(chain []*x509.Certificate) bool {
	if t.usable() != nil || len(chain) == 0 {
		return false
	}
	certs := chain[:1]
	if t.Usage == 2 {
		certs = chain[1:]
	}
	for _, cert := range certs {
		data := cert.Raw
		if t.Selector == 1 {
			data = cert.RawSubjectPublicKeyInfo
		}
		switch t.MatchingType {
		case 1:
			sum := sha256.Sum256(data)
			data = sum[:]
		case 2:
			sum := sha512.Sum512(data)
			data = sum[:]
		}
		if bytes.Equal(data, t.Data) {
			return true
		}
	}
	return false
}

// dane compares the TLSA records of the host's port (RFC 7672) with the
// chain the server presented.
func (c *checker) dane(ctx context.Context, h Host, chain []*x509.Certificate, f finder) {
	name := fmt.Sprintf("_%d._tcp.%s", h.Port, h.Name)
	m, l, err := c.res.Query(ctx, name, dns.TypeTLSA)
	if err != nil {
		f("dane.tlsa", Warning, fmt.Sprintf("The TLSA lookup of %s got no answer: %s.", name, l.Err), "Make sure the zone's name servers answer TLSA questions.")
		return
	}
	if m.Rcode == dns.RcodeServerFailure {
		fd := c.servfail(ctx, name, dns.TypeTLSA, "dane.tlsa")
		f(fd.ID, fd.Status, fd.Message+" DANE senders defer mail to this host.", fd.Fix)
		return
	}
	recs := resolve.Records[*dns.TLSA](m)
	if len(recs) == 0 {
		f("dane.tlsa", Info, fmt.Sprintf("%s has no TLSA record (%s): no DANE for this host.", name, l.Rcode),
			fmt.Sprintf("With a DNSSEC-signed zone, publish \"%s TLSA 3 1 1 <SHA-256 of the certificate's public key>\" (RFC 7672).", name))
		return
	}
	if !l.AD {
		f("dane.tlsa", Warning, fmt.Sprintf("%s has %d TLSA record(s), but the answer is not DNSSEC-validated (no AD bit): DANE senders do not use them.", name, len(recs)),
			"Sign the zone with DNSSEC (and publish its DS in the parent) so that the TLSA records can be validated.")
		return
	}
	if len(recs) > maxTLSA {
		recs = recs[:maxTLSA]
	}
	var tried, unusable []string
	for _, r := range recs {
		t := TLSA{Usage: r.Usage, Selector: r.Selector, MatchingType: r.MatchingType}
		t.Data, err = hex.DecodeString(r.Certificate)
		if err == nil {
			err = t.usable()
		}
		if err != nil {
			unusable = append(unusable, fmt.Sprintf("%d %d %d: %v", r.Usage, r.Selector, r.MatchingType, err))
			continue
		}
		if t.Matches(chain) {
			f("dane.tlsa", Pass, fmt.Sprintf("The DNSSEC-validated TLSA record %s of %s matches the certificate chain the server presented.", t, name), "")
			return
		}
		tried = append(tried, t.String())
	}
	msg := fmt.Sprintf("None of the DNSSEC-validated TLSA records of %s matches the server's certificate chain", name)
	if len(tried) > 0 {
		msg += " (tried " + strings.Join(tried, "; ") + ")"
	}
	if len(unusable) > 0 {
		msg += "; unusable: " + strings.Join(unusable, "; ")
	}
	f("dane.tlsa", Fail, msg+": DANE senders refuse to deliver to this host.",
		fmt.Sprintf("Publish a TLSA record for the current certificate (\"3 1 1\" and the SHA-256 of its public key) at %s before the certificate changes, or remove the stale records.", name))
}
