package check

// DKIM (RFC 6376 3.6.1, RFC 8301, RFC 8463): the key record of a selector.

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"sockmail/internal/check/resolve"
)

// maxDKIMLen bounds a DKIM key record (an 8192-bit RSA key fits).
const maxDKIMLen = 4096

// dkimKey is a parsed DKIM key record.
type dkimKey struct {
	// Type is the k= key type: "rsa" (the default) or "ed25519".
	Type string
	// Bits is the key size; 0 for a revoked key.
	Bits int
	// Revoked marks an empty p= (RFC 6376 3.6.1).
	Revoked bool
	// Testing marks t=y: the domain is testing DKIM.
	Testing bool
	// Strict marks t=s: no subdomains in i=.
	Strict bool
	// NotEmail marks a key whose s= service types leave out email ("*"
	// and "email" are the ones that count).
	NotEmail bool
}

// parseDKIMKey parses a DKIM key record and its public key.
func parseDKIMKey(txt string) (*dkimKey, error) {
	if len(txt) > maxDKIMLen {
		return nil, fmt.Errorf("the record is %d bytes long; the limit here is %d", len(txt), maxDKIMLen)
	}
	k := &dkimKey{Type: "rsa"}
	tags := map[string]string{}
	for i, part := range strings.Split(txt, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not a tag=value pair", part)
		}
		name, v = strings.TrimSpace(name), strings.TrimSpace(v)
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("the tag %s= appears twice", name)
		}
		tags[name] = v
		if name == "v" && (i != 0 || v != "DKIM1") {
			return nil, errors.New(`v= must be "DKIM1" and come first`)
		}
	}
	if t, ok := tags["k"]; ok {
		k.Type = strings.ToLower(t)
	}
	for _, fl := range strings.Split(tags["t"], ":") {
		switch strings.TrimSpace(fl) {
		case "y":
			k.Testing = true
		case "s":
			k.Strict = true
		}
	}
	if st, ok := tags["s"]; ok {
		k.NotEmail = true
		for _, v := range strings.Split(st, ":") {
			if v = strings.TrimSpace(v); v == "*" || strings.EqualFold(v, "email") {
				k.NotEmail = false
			}
		}
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("the required tag p= (the public key) is missing")
	}
	p = strings.Join(strings.Fields(p), "")
	if p == "" {
		k.Revoked = true
		return k, nil
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("p= is not base64: %v", err)
	}
	switch k.Type {
	case "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			rk, err2 := x509.ParsePKCS1PublicKey(der)
			if err2 != nil {
				return nil, fmt.Errorf("p= is not an RSA public key: %v", err)
			}
			pub = rk
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("p= holds a %T key, but k=rsa", pub)
		}
		k.Bits = rk.N.BitLen()
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("p= holds %d bytes; an Ed25519 key is %d (RFC 8463)", len(der), ed25519.PublicKeySize)
		}
		k.Bits = 256
	default:
		return nil, fmt.Errorf("k=%s is not a known key type (rsa, ed25519)", k.Type)
	}
	return k, nil
}

// dkim checks the key of selector at <selector>._domainkey.<domain> and
// reports whether it can verify signatures.
func (c *checker) dkim(ctx context.Context, domain, selector string, f finder) bool {
	name := selector + "._domainkey." + domain
	m, l, err := c.res.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key lookup of %s got no answer: %s.", name, l.Err), "Make sure the domain's name servers answer.")
		return false
	}
	var txts []string
	for _, t := range resolve.Records[*dns.TXT](m) {
		txts = append(txts, strings.Join(t.Txt, ""))
	}
	switch {
	case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key lookup of %s failed with %s.", name, l.Rcode), "Fix the domain's name servers.")
		return false
	case len(txts) == 0:
		f("dkim.key", Fail, fmt.Sprintf("There is no DKIM key for the selector %s (%s: %s): signatures with s=%s cannot be verified.", selector, name, l.Rcode, selector),
			fmt.Sprintf("Publish the public key of your signing key as a TXT record at %s (v=DKIM1; k=rsa; p=...), or check the selector name.", name))
		return false
	case len(txts) > 1:
		f("dkim.key", Fail, fmt.Sprintf("%s has %d TXT records; a DKIM key must be the only one.", name, len(txts)), "Keep one key record per selector.")
		return false
	}
	k, err := parseDKIMKey(txts[0])
	if err != nil {
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key record at %s is invalid: %v.", name, err), "Publish the key as your DKIM signer prints it (v=DKIM1; k=rsa; p=<base64 public key>).")
		return false
	}
	ok := true
	switch {
	case k.NotEmail:
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key of selector %s is not for email (its s= service types leave out email): verifiers ignore it.", selector),
			"Remove s= from the key record or set s=email.")
		return false
	case k.Revoked:
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key of selector %s is revoked (empty p=): signatures with it fail.", selector),
			"Sign with a selector whose key is published, or publish the key again.")
		return false
	case k.Type == "rsa" && k.Bits < 1024:
		f("dkim.key", Fail, fmt.Sprintf("The DKIM key of selector %s is RSA with %d bits; verifiers must reject keys under 1024 bits (RFC 8301).", selector, k.Bits),
			"Generate a 2048-bit RSA key and publish it under a new selector.")
		ok = false
	case k.Type == "rsa" && k.Bits < 2048:
		f("dkim.key", Warning, fmt.Sprintf("The DKIM key of selector %s is RSA with %d bits; RFC 8301 asks for 2048 bits, and 1024-bit keys are considered weak.", selector, k.Bits),
			"Generate a 2048-bit RSA key and publish it under a new selector.")
	default:
		f("dkim.key", Pass, fmt.Sprintf("The DKIM key of selector %s is %s with %d bits.", selector, strings.ToUpper(k.Type), k.Bits), "")
	}
	if k.Type == "ed25519" {
		f("dkim.ed25519", Info, "Ed25519 keys (RFC 8463) are not verified by every receiver yet; sign with an RSA key as well.", "")
	}
	if k.Testing {
		f("dkim.testing", Warning, fmt.Sprintf("The key of selector %s has the testing flag (t=y): receivers may treat its signatures as unsigned.", selector),
			"Remove t=y from the key record once signing works.")
	}
	return ok
}
