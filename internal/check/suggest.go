package check

import (
	"slices"
	"strings"

	"sockmail/smtp"
)

// authPrefix starts the message of the smtp.auth finding; Suggest reads
// the mechanisms back from it.
const authPrefix = "The server offers AUTH "

// auth records the AUTH mechanisms the server offers at the end of the
// conversation (after STARTTLS, when there was one), as an Info finding.
func (c *checker) auth(cl *smtp.Client, tlsOn bool, f finder) {
	ok, v := cl.Extension("AUTH")
	if !ok || strings.TrimSpace(v) == "" {
		f("smtp.auth", Info, "The server offers no AUTH: it takes mail without a sign-in (a relay for its own domains).", "")
		return
	}
	where := "without TLS"
	if tlsOn {
		where = "over TLS"
	}
	f("smtp.auth", Info, authPrefix+clip(strings.ToUpper(strings.Join(strings.Fields(v), " ")), 200)+" ("+where+").", "")
}

// Suggestion is a server profile that works with a checked server.
type Suggestion struct {
	// Host and Port are the server checked.
	Host string
	Port int
	// TLSMode is "implicit", "starttls" or "none", as sockmail's profiles
	// name them.
	TLSMode string
	// AuthMech is the strongest AUTH mechanism offered that sockmail
	// speaks (CRAM-MD5, PLAIN, LOGIN); empty when none is.
	AuthMech string
}

// preferredMechs are the mechanisms sockmail speaks, strongest first.
var preferredMechs = []string{"CRAM-MD5", "PLAIN", "LOGIN"}

// Suggest derives a working profile from a server check: the first
// address the check talked to, with the TLS mode that worked and the
// AUTH mechanism offered. ok is false for a domain check, or when no
// conversation got as far as EHLO.
func Suggest(r *Report, implicitTLS bool) (s Suggestion, ok bool) {
	if r.Kind != KindServer {
		return Suggestion{}, false
	}
	hosts := r.Hosts()
	if len(hosts) != 1 {
		return Suggestion{}, false
	}
	s = Suggestion{Host: hosts[0].Name, Port: hosts[0].Port}
	ehlo := false
	s.TLSMode = "none"
	if implicitTLS || s.Port == 465 {
		s.TLSMode = "implicit"
	}
	for _, f := range r.Findings() {
		switch {
		case f.ID == "smtp.ehlo" && f.Status != Fail:
			ehlo = true
		case f.ID == "tls.starttls" && f.Status == Pass:
			s.TLSMode = "starttls"
		case f.ID == "smtp.auth" && strings.HasPrefix(f.Message, authPrefix):
			offered := strings.Fields(strings.TrimPrefix(f.Message, authPrefix))
			for _, m := range preferredMechs {
				if slices.Contains(offered, m) {
					s.AuthMech = m
					break
				}
			}
		}
	}
	return s, ehlo
}
