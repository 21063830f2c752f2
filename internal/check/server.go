package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"sockmail/smtp"
)

// certWarnDays is how close to its expiry a certificate draws a warning.
const certWarnDays = 21

// smtpTimeouts returns the conversation timeouts: the options', with
// shorter defaults than a sender's.
func (c *checker) smtpTimeouts() smtp.Timeouts {
	t := c.opts.Timeouts
	if t.Connect <= 0 {
		t.Connect = 30 * time.Second
	}
	for _, d := range []*time.Duration{&t.Greeting, &t.Command, &t.Mail, &t.Rcpt, &t.DataInit, &t.DataBlock, &t.DataTerm} {
		if *d <= 0 {
			*d = 60 * time.Second
		}
	}
	return t
}

// config returns the SMTP configuration for one conversation with addr.
// Certificates are not verified by the client (the transcript says so):
// the check verifies them itself, so that it learns the chain of a server
// whose certificate is bad.
func (c *checker) config(h Host, addr string, conv *Conversation, tc *tls.Config) smtp.Config {
	mode := smtp.TLSStartTLSOptional
	if c.implicit(h) {
		mode = smtp.TLSImplicit
	}
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.ServerName = h.Name
	return smtp.Config{
		Addr: net.JoinHostPort(addr, strconv.Itoa(h.Port)), TLS: mode, TLSConfig: tc,
		InsecureSkipVerify: true, LocalName: c.opts.LocalName, Timeouts: c.smtpTimeouts(),
		Transcript: conv.Transcript,
	}
}

// server checks one address of a host: the main conversation, then a
// probe for each TLS version.
func (c *checker) server(ctx context.Context, h Host, addr string, ptrs []string) {
	conv := c.rep.newConversation(h.Name, net.JoinHostPort(addr, strconv.Itoa(h.Port)), "check")
	f := func(id string, st Status, msg, fix string) {
		c.rep.add(Finding{ID: id, Host: h.Name, Addr: addr, Status: st, Message: msg, Fix: fix, Conversation: conv.ID})
	}
	cfg := c.config(h, addr, conv, nil)
	start := time.Now()
	cl, err := smtp.Dial(ctx, cfg)
	if err != nil {
		c.rep.setConversationErr(conv, err)
		f("smtp.connect", Fail, fmt.Sprintf("Could not open an SMTP session with %s: %v.", conv.Addr, err),
			fmt.Sprintf("Make sure the server runs, listens on port %d of this address and is not blocked by a firewall.", h.Port))
		return
	}
	defer cl.Close()
	f("smtp.connect", Pass, fmt.Sprintf("%s answered in %s.", conv.Addr, connectTime(conv.Transcript, time.Since(start))), "")
	c.greeting(h, addr, ptrs, conv, f)

	if err := cl.Hello(ctx); err != nil {
		c.rep.setConversationErr(conv, err)
		f("smtp.ehlo", Fail, fmt.Sprintf("The server refused EHLO and HELO: %v.", err), "Let the server answer EHLO (RFC 5321 4.1.1.1).")
		return
	}
	f("smtp.ehlo", Info, "The server offers: "+formatExtensions(cl.Extensions())+".", "")
	tlsOn := c.implicit(h)
	if !tlsOn {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			f("tls.starttls", Fail, "The server does not offer STARTTLS: mail to it travels unencrypted.",
				"Give the server a certificate and enable STARTTLS (Postfix: smtpd_tls_security_level = may).")
		} else if err := cl.StartTLS(ctx); err != nil {
			c.rep.setConversationErr(conv, err)
			f("tls.starttls", Fail, fmt.Sprintf("The server offers STARTTLS but the TLS handshake failed: %v.", err),
				"Check the server's TLS configuration, certificate and key.")
			return
		} else if _, on := cl.TLS(); on {
			f("tls.starttls", Pass, "The server offers STARTTLS and the TLS handshake succeeded.", "")
			tlsOn = true
		} else {
			f("tls.starttls", Fail, "The server offers STARTTLS but refused it: mail to it travels unencrypted.",
				"Check the server's TLS configuration: STARTTLS must be answered with 220.")
		}
	}
	if st, ok := cl.TLS(); ok {
		c.tlsState(h, st, f)
		c.dane(ctx, h, st.PeerCertificates, f) // dane.go
	}
	c.size(cl, f)
	c.auth(cl, tlsOn, f) // suggest.go: what a suggested profile authenticates with
	if err := cl.Quit(ctx); err != nil {
		conv.Transcript.Info(smtp.PhaseQuit, "QUIT failed: %v", err)
	}
	if tlsOn {
		c.versions(ctx, h, addr)
	}
}

// implicit reports whether h is talked to in TLS from the start.
func (c *checker) implicit(h Host) bool {
	return h.Port == 465 || h.Service == "submissions" || c.opts.ImplicitTLS
}

// finder adds a finding about the current address.
type finder func(id string, st Status, msg, fix string)

// connectTime returns how long the TCP connect took, from the transcript,
// or all of dial when it is not there.
func connectTime(tr *smtp.Transcript, dial time.Duration) string {
	var took time.Duration = -1
	for _, ev := range tr.Events() {
		if ev.Span == smtp.SpanConnect {
			took = ev.Took
		}
	}
	if took < 0 {
		return fmt.Sprintf("%.1f ms", smtp.Millis(dial))
	}
	return fmt.Sprintf("%.1f ms (TCP connect), %.1f ms with its greeting", smtp.Millis(took), smtp.Millis(dial))
}

// greeting compares the name in the 220 greeting with the address's
// reverse DNS.
func (c *checker) greeting(h Host, addr string, ptrs []string, conv *Conversation, f finder) {
	var line string
	for _, ev := range conv.Transcript.Events() {
		if ev.Dir == smtp.DirServer && ev.Phase == smtp.PhaseGreeting {
			line = ev.Line
			break
		}
	}
	fields := strings.Fields(strings.TrimLeft(line, "0123456789-"))
	if len(fields) == 0 {
		f("smtp.greeting", Warning, "The server's greeting names no host.", "Let the greeting start with the server's host name (RFC 5321 4.3.1).")
		return
	}
	name := clip(strings.ToLower(strings.TrimSuffix(fields[0], ".")), 255)
	switch {
	case slices.Contains(ptrs, name):
		f("smtp.greeting", Pass, fmt.Sprintf("The server greets as %s, the reverse DNS name of %s.", name, addr), "")
	case len(ptrs) == 0:
		f("smtp.greeting", Info, fmt.Sprintf("The server greets as %s; %s has no reverse DNS name to compare it with.", name, addr), "")
	default:
		f("smtp.greeting", Warning, fmt.Sprintf("The server greets as %s, but the reverse DNS name of %s is %s; some senders and spam filters expect them to agree.", name, addr, strings.Join(ptrs, ", ")),
			fmt.Sprintf("Set the server's host name (Postfix: myhostname) to %s, or change the PTR record.", ptrs[0]))
	}
}

// maxExtensionsShown bounds the EHLO keywords a finding lists (the
// transcript keeps them all).
const maxExtensionsShown = 40

// formatExtensions lists EHLO keywords with their parameters, sorted, each
// cut at 100 bytes.
func formatExtensions(ext map[string]string) string {
	var out []string
	for k, v := range ext {
		out = append(out, clip(strings.TrimSpace(k+" "+v), 100))
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "no extensions"
	}
	if n := len(out); n > maxExtensionsShown {
		out = append(out[:maxExtensionsShown], fmt.Sprintf("and %d more (see the transcript)", n-maxExtensionsShown))
	}
	return strings.Join(out, ", ")
}

// clip cuts s, text from a server, to at most n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// size reports the SIZE extension (RFC 1870).
func (c *checker) size(cl *smtp.Client, f finder) {
	ok, v := cl.Extension("SIZE")
	if !ok {
		f("smtp.size", Info, "The server does not announce a message size limit (SIZE): senders learn of one only after sending.", "Announce the limit with SIZE (Postfix does so by default).")
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case v == "" || (err == nil && n == 0):
		f("smtp.size", Info, "The server announces SIZE without a fixed limit.", "")
	case err != nil:
		f("smtp.size", Warning, fmt.Sprintf("The server announces SIZE %q, which is not a number.", v), "Announce SIZE with the limit in bytes (RFC 1870).")
	case n < 10<<20:
		f("smtp.size", Warning, fmt.Sprintf("The server accepts messages up to %s only; attachments of a few MB will be refused.", mb(n)), "Raise the limit to 25 MB or more (Postfix: message_size_limit).")
	default:
		f("smtp.size", Pass, fmt.Sprintf("The server accepts messages up to %s.", mb(n)), "")
	}
}

func mb(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }

// tlsState reports the cipher and the certificate chain.
func (c *checker) tlsState(h Host, st tls.ConnectionState, f finder) {
	cipher := tls.CipherSuiteName(st.CipherSuite)
	weak := slices.ContainsFunc(tls.InsecureCipherSuites(), func(s *tls.CipherSuite) bool { return s.ID == st.CipherSuite })
	if weak {
		f("tls.cipher", Warning, fmt.Sprintf("The server chose %s with %s, a cipher known to be weak.", tls.VersionName(st.Version), cipher), "Prefer AEAD ciphers (AES-GCM, ChaCha20-Poly1305) on the server.")
	} else {
		f("tls.cipher", Pass, fmt.Sprintf("The server chose %s with %s.", tls.VersionName(st.Version), cipher), "")
	}
	chain := st.PeerCertificates
	if len(chain) == 0 {
		f("tls.certificate", Fail, "The server presented no certificate.", "Configure a certificate for the server.")
		return
	}
	leaf := chain[0]
	now := c.now()
	soonest := leaf
	for _, cert := range chain[1:] {
		if cert.NotAfter.Before(soonest.NotAfter) {
			soonest = cert
		}
	}
	left := soonest.NotAfter.Sub(now)
	which := "The server's certificate"
	if soonest != leaf {
		which = fmt.Sprintf("The certificate %q in the server's chain", soonest.Subject.CommonName)
	}
	switch {
	case now.Before(leaf.NotBefore):
		f("tls.expiry", Fail, fmt.Sprintf("The server's certificate is not valid before %s.", leaf.NotBefore.UTC().Format(time.DateOnly)), "Check the server's clock and the certificate's dates.")
	case left <= 0:
		f("tls.expiry", Fail, fmt.Sprintf("%s expired on %s; senders that verify certificates refuse it.", which, soonest.NotAfter.UTC().Format(time.DateOnly)), "Renew the certificate and reload the server.")
	case left < certWarnDays*24*time.Hour:
		f("tls.expiry", Warning, fmt.Sprintf("%s expires on %s, in %d day(s).", which, soonest.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)), "Renew the certificate now (and check that automatic renewal works).")
	default:
		f("tls.expiry", Pass, fmt.Sprintf("The certificate chain is valid until %s (%d days).", soonest.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)), "")
	}
	if err := leaf.VerifyHostname(h.Name); err != nil {
		f("tls.name", Fail, fmt.Sprintf("The certificate is not valid for %s (it names %s); senders that verify names (MTA-STS, DANE, submission clients) refuse it.", h.Name, certNames(leaf)),
			fmt.Sprintf("Get a certificate whose names include %s.", h.Name))
	} else {
		f("tls.name", Pass, fmt.Sprintf("The certificate is valid for %s.", h.Name), "")
	}
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.opts.RootCAs, Intermediates: inter, CurrentTime: now}); err != nil {
		f("tls.chain", Fail, fmt.Sprintf("The certificate chain does not verify: %v.", err),
			"Serve the full chain (certificate and intermediates) from a CA that senders trust.")
	} else {
		f("tls.chain", Pass, fmt.Sprintf("The certificate chain verifies (issuer %q).", leaf.Issuer.CommonName), "")
	}
}

// certNames lists the names a certificate is valid for.
func certNames(cert *x509.Certificate) string {
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && cert.Subject.CommonName != "" {
		names = append(names, cert.Subject.CommonName)
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}

// tlsVersions are the versions probed, oldest first.
var tlsVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// versions probes each TLS version on a fresh connection, up to STARTTLS.
func (c *checker) versions(ctx context.Context, h Host, addr string) {
	var accepted []string
	var convs []int
	for _, v := range tlsVersions {
		if ctx.Err() != nil {
			return
		}
		name := tls.VersionName(v)
		conv := c.rep.newConversation(h.Name, net.JoinHostPort(addr, strconv.Itoa(h.Port)), "probe "+name)
		convs = append(convs, conv.ID)
		suites := []uint16{}
		for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
			suites = append(suites, s.ID)
		}
		cfg := c.config(h, addr, conv, &tls.Config{MinVersion: v, MaxVersion: v, CipherSuites: suites})
		if cfg.TLS == smtp.TLSStartTLSOptional {
			cfg.TLS = smtp.TLSStartTLS
		}
		ok, err := c.probe(ctx, cfg, v)
		c.rep.setConversationErr(conv, err)
		if ok {
			accepted = append(accepted, name)
		}
		status, msg, fix := Pass, "", ""
		switch {
		case ok && v < tls.VersionTLS12:
			status, msg, fix = Warning, fmt.Sprintf("The server accepts %s, which RFC 8996 deprecates.", name), fmt.Sprintf("Disable %s (Postfix: smtpd_tls_protocols = >=TLSv1.2).", name)
		case ok:
			msg = fmt.Sprintf("The server accepts %s.", name)
		case v < tls.VersionTLS12:
			msg = fmt.Sprintf("The server refuses %s, as it should (RFC 8996).", name)
		case v == tls.VersionTLS12:
			status, msg = Info, "The server refuses TLS 1.2; senders that lack TLS 1.3 fall back to clear text."
		default:
			status, msg, fix = Warning, "The server does not accept TLS 1.3.", "Enable TLS 1.3 (OpenSSL 1.1.1 or later)."
		}
		c.rep.add(Finding{ID: "tls.version." + strings.TrimPrefix(name, "TLS "), Host: h.Name, Addr: addr, Status: status, Message: msg, Fix: fix, Conversation: conv.ID})
	}
	if len(accepted) > 0 && !slices.Contains(accepted, "TLS 1.2") && !slices.Contains(accepted, "TLS 1.3") {
		c.rep.add(Finding{ID: "tls.versions", Host: h.Name, Addr: addr, Status: Fail,
			Message: "The server accepts only deprecated TLS versions (" + strings.Join(accepted, ", ") + ").",
			Fix:     "Enable TLS 1.2 and 1.3.", Conversation: convs[0]})
	}
}

// probe holds one conversation up to a TLS handshake limited to version
// v, and reports whether the server accepted it.
func (c *checker) probe(ctx context.Context, cfg smtp.Config, v uint16) (bool, error) {
	cl, err := smtp.Dial(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	if cfg.TLS != smtp.TLSImplicit {
		if err := cl.Hello(ctx); err != nil {
			return false, err
		}
		if err := cl.StartTLS(ctx); err != nil {
			return false, err
		}
	}
	st, ok := cl.TLS()
	if !ok || st.Version != v {
		return false, fmt.Errorf("check: negotiated %s instead of %s", tls.VersionName(st.Version), tls.VersionName(v))
	}
	if err := cl.Quit(ctx); err != nil {
		cfg.Transcript.Info(smtp.PhaseQuit, "QUIT failed: %v", err)
	}
	return true, nil
}
