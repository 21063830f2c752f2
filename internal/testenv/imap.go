package testenv

import (
	"net"
	"testing"
)

// IMAPServer describes the test Dovecot's IMAP service and its one
// mailbox. The test Postfix delivers mail for Address into that mailbox
// (its own Maildir, apart from PostfixServer.Maildir); its certificate is
// the test CA's server certificate (valid for localhost).
type IMAPServer struct {
	// Addr (port 2143) is IMAP with STARTTLS offered.
	Addr string
	// TLSAddr (port 2993) is IMAP in implicit TLS.
	TLSAddr string
	// User and Password log in to the mailbox.
	User, Password string
	// Address is the mail address Postfix delivers into the mailbox (the
	// same as User).
	Address string
	// Maildir is the mailbox on disk, for tests that look behind IMAP.
	Maildir string
	// CA is the test CA the server certificate verifies against.
	CA
}

// IMAP returns the running test IMAP server, or skips (fails under
// CI=true) when it is not running.
func IMAP(t testing.TB) *IMAPServer {
	t.Helper()
	const what = "IMAP test server (Dovecot)"
	env, err := ReadEnv()
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	v, err := env.Require("IMAP_HOST", "IMAP_PORT", "IMAPS_PORT", "IMAP_USER", "IMAP_PASSWORD", "IMAP_MAILDIR")
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	ca, err := loadTLS(env)
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	s := &IMAPServer{Addr: net.JoinHostPort(v[0], v[1]), TLSAddr: net.JoinHostPort(v[0], v[2]),
		User: v[3], Password: v[4], Address: v[3], Maildir: v[5], CA: ca}
	if err := checkListening(s.Addr, s.TLSAddr); err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	return s
}

// CertSoonServer is the test Postfix listener whose certificate (from
// the test CA, for Name) expires in 4 to 5 days: a server a monitor with
// a certificate threshold of a week or more judges degraded.
type CertSoonServer struct {
	// Addr is its host:port (port 2540), plain SMTP with STARTTLS offered.
	Addr string
	// Name is the name its certificate is valid for ("localhost").
	Name string
	// CA is the test CA the certificate verifies against.
	CA
}

// CertSoon returns the Postfix listener with the certificate that expires
// in 5 days, or skips (fails under CI=true) when it is not running.
func CertSoon(t testing.TB) *CertSoonServer {
	t.Helper()
	const what = "Postfix listener with a certificate expiring in 5 days"
	env, err := ReadEnv()
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	v, err := env.Require("POSTFIX_HOST", "CERT_SOON_PORT", "CERT_SOON_NAME")
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	ca, err := loadTLS(env)
	if err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	s := &CertSoonServer{Addr: net.JoinHostPort(v[0], v[1]), Name: v[2], CA: ca}
	if err := checkListening(s.Addr); err != nil {
		unavailable(t, what, StartHint, err)
		return nil
	}
	return s
}
