package main

// The flags of "sockmail send" and their checking into a sendPlan: the
// connection (server, TLS, AUTH, timeouts) and the run (--count,
// --quit-after, output).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// listFlag is a repeatable flag. Address lists are split later, by the
// RFC 5322 parser, so that a comma inside a quoted display name is not a
// separator.
type listFlag struct {
	values []string
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	l.values = append(l.values, v)
	return nil
}

// sendFlags holds the flags as given.
type sendFlags struct {
	server, tls, caFile                        string
	insecureSkipVerify                         bool
	authUser, authPassword, authMech           string
	allowInsecureAuth                          bool
	helo, from                                 string
	to, cc, bcc, attach                        listFlag
	inline, headers, replyTo                   listFlag
	subject, body, bodyFile, data, quitAfter   string
	html, htmlFile                             string
	dkimKey, dkimSelector, dkimDomain          string
	count                                      int
	json, quiet, showBody                      bool
	timeout                                    time.Duration
	subjectSet, bodySet, passwordSet, countSet bool
	storeSend                                  bool   // --store
	database                                   string // --database
	htmlSet                                    bool
}

// newSendFlagSet returns the flag set of "send", filling f.
func newSendFlagSet(f *sendFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.server, "server", "", "server as `host:port`; omitted: deliver to the recipients' MX hosts on port 25")
	fs.StringVar(&f.tls, "tls", "", "TLS `mode`: none, starttls, starttls-optional or implicit\n(default implicit for port 465, starttls-optional otherwise)")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-verify", false, "accept any TLS certificate (shown in the transcript)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of extra CA certificates to trust")
	fs.StringVar(&f.authUser, "auth-user", "", "authenticate as `user`")
	fs.StringVar(&f.authPassword, "auth-password", "", "`password` (or XOAUTH2 token); default $"+passwordEnv+", which keeps it out of ps")
	fs.StringVar(&f.authMech, "auth-mech", "", "SASL `mechanism`: PLAIN, LOGIN, CRAM-MD5 or XOAUTH2 (default: the strongest offered)")
	fs.BoolVar(&f.allowInsecureAuth, "allow-insecure-auth", false, "allow sending credentials without TLS")
	fs.StringVar(&f.helo, "helo", "", "`name` to send with EHLO/HELO (default: the address literal of the local address, [192.0.2.1])")
	fs.StringVar(&f.from, "from", "", "From `address`: local@domain or \"Name <local@domain>\"; required.\nThe envelope sender (MAIL FROM) is the address alone; the header keeps the name,\nRFC 2047-encoded when it is not ASCII")
	fs.Var(&f.to, "to", "recipient `address` (\"Name <local@domain>\" allowed); repeatable, or a comma-separated\nlist (a comma inside a quoted name is not a separator)")
	fs.Var(&f.cc, "cc", "Cc recipient `address` (\"Name <local@domain>\" allowed); repeatable, or a comma-separated list")
	fs.Var(&f.bcc, "bcc", "Bcc recipient `address` (envelope only: a name is accepted and not written);\nrepeatable, or a comma-separated list")
	fs.StringVar(&f.subject, "subject", "", "Subject `text` (default \"sockmail test DATE\")")
	fs.StringVar(&f.body, "body", "", "plain-text body `text` (default a one-line test text)")
	fs.StringVar(&f.bodyFile, "body-file", "", "read the plain-text body from `file` (UTF-8)")
	fs.StringVar(&f.html, "html", "", "HTML body `text`; with a plain-text body too the message is multipart/alternative,\nwithout one the text is derived from the HTML")
	fs.StringVar(&f.htmlFile, "html-file", "", "read the HTML body from `file` (UTF-8)")
	fs.Var(&f.attach, "attach", "attach `file`; repeatable")
	fs.Var(&f.inline, "inline", "add `file` as an inline part for the HTML body, which refers to it as\n\"cid:NAME\" (NAME: the file's base name); repeatable")
	fs.Var(&f.headers, "header", "add the header field `\"Name: value\"`; repeatable")
	fs.Var(&f.replyTo, "reply-to", "Reply-To `address` (\"Name <local@domain>\" allowed); repeatable")
	fs.StringVar(&f.dkimKey, "dkim-key", "", "sign with DKIM (RFC 6376) using the PEM private key in `file` (RSA or Ed25519)")
	fs.StringVar(&f.dkimSelector, "dkim-selector", "", "DKIM `selector` (s=); needed with --dkim-key")
	fs.StringVar(&f.dkimDomain, "dkim-domain", "", "DKIM signing `domain` (d=); default the domain of --from")
	fs.StringVar(&f.data, "data", "", "send `file` as the whole message, as is (line endings normalised);\nthe envelope still comes from --from/--to/--cc/--bcc")
	fs.StringVar(&f.quitAfter, "quit-after", "", "stop politely after `phase`: connect, greeting, ehlo, tls, auth, mail or rcpt")
	fs.IntVar(&f.count, "count", 1, "send `N` messages over one connection, pipelined (needs --server)")
	fs.BoolVar(&f.json, "json", false, "print only a JSON document with the transcript and the results, at the end")
	fs.BoolVar(&f.quiet, "quiet", false, "print only the outcome lines, no transcript")
	fs.BoolVar(&f.showBody, "show-body", false, "show the whole message in the transcript, not only its header")
	fs.BoolVar(&f.storeSend, "store", false, "keep the send (transcript, envelope, message, outcome) in the history of the web app, as source \"cli\"")
	fs.StringVar(&f.database, "database", "", "with --store: SQLite `file` or postgres:// URL\n(default $SOCKMAIL_DATABASE, else $SOCKMAIL_DATA/sockmail.db, else ./data/sockmail.db)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on each network wait; 0 means the RFC 5321 defaults (minutes)")
	return fs
}

// printSendUsage writes the help text.
func printSendUsage(w io.Writer) {
	var f sendFlags
	fs := newSendFlagSet(&f)
	fmt.Fprint(w, `Usage: sockmail send --from ADDRESS --to ADDRESS [flags]
       sockmail send --from ADDRESS --to ADDRESS --data FILE [flags]

Send a test message with sockmail's own SMTP client and print every line of
the conversation as it happens, then one outcome line per message. AUTH
payloads are redacted; the password is never printed.

An ADDRESS is local@domain or an RFC 5322 mailbox with a display name,
"Ada Example <ada@example.org>" (quote the whole argument for the shell).
The SMTP envelope (MAIL FROM, RCPT TO) takes the address alone; the From,
To and Cc header fields keep the name, RFC 2047-encoded when not ASCII.

Flags (one or two dashes):
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\n"+exitCodeTable)
}

// sendPlan is a validated send: everything needed to run it, checked
// before anything goes on the wire.
type sendPlan struct {
	cfg       smtp.Config
	stopAfter smtp.Phase
	count     int
	json      bool
	quiet     bool
	// compose returns message i (1-based) of count.
	compose func(i int) (message.Content, error)
	// first is message 1, composed during validation.
	first message.Content
	// storeDSN, when set, is the database --store writes the send to
	// (sendstore.go); stderr says where it went.
	storeDSN string
	stderr   io.Writer
}

// parseSend parses and validates the arguments of "send". getenv reads
// the environment (os.Getenv). The error wraps flag.ErrHelp when help was
// asked for.
func parseSend(args []string, getenv func(string) string) (*sendPlan, error) {
	var f sendFlags
	fs := newSendFlagSet(&f)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (every option is a flag)", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "subject":
			f.subjectSet = true
		case "body":
			f.bodySet = true
		case "html":
			f.htmlSet = true
		case "auth-password":
			f.passwordSet = true
		case "count":
			f.countSet = true
		}
	})
	if !f.passwordSet {
		f.authPassword = getenv(passwordEnv)
	}
	if f.storeSend {
		f.database = storeDatabase(f.database, getenv)
	}
	return f.plan()
}

// plan validates the flags and builds the plan.
func (f *sendFlags) plan() (*sendPlan, error) {
	p := &sendPlan{count: f.count, json: f.json, quiet: f.quiet}
	if f.json && f.quiet {
		return nil, errors.New("--json and --quiet exclude each other")
	}
	if err := f.connection(&p.cfg); err != nil {
		return nil, err
	}
	if f.quitAfter != "" {
		ph, err := parseQuitAfter(f.quitAfter)
		if err != nil {
			return nil, err
		}
		p.stopAfter = ph
	}
	switch {
	case f.count < 1 || f.count > maxCount:
		return nil, fmt.Errorf("--count %d: want 1 to %d", f.count, maxCount)
	case f.count > 1 && f.server == "":
		return nil, errors.New("--count needs --server: messages to MX hosts are sent one connection each")
	case f.count > 1 && f.quitAfter != "":
		return nil, errors.New("--count and --quit-after exclude each other")
	}
	if err := p.checkStore(f); err != nil {
		return nil, err
	}
	compose, err := f.composer()
	if err != nil {
		return nil, err
	}
	p.compose = compose
	if p.first, err = compose(1); err != nil {
		return nil, err
	}
	return p, nil
}

// connection fills the server, TLS, AUTH and timeout parts of cfg. The
// steps run in order; the first problem is reported.
func (f *sendFlags) connection(cfg *smtp.Config) error {
	steps := []func(*smtp.Config) error{f.serverTLS, f.trust, f.hello, f.authCheck, f.auth, f.timeouts}
	for _, step := range steps {
		if err := step(cfg); err != nil {
			return err
		}
	}
	return nil
}

// serverTLS fills the server address and the TLS mode: implicit for
// port 465, STARTTLS when offered otherwise, unless --tls says.
func (f *sendFlags) serverTLS(cfg *smtp.Config) error {
	port := "25"
	if f.server != "" {
		host, pt, err := net.SplitHostPort(f.server)
		if err != nil || host == "" || pt == "" {
			return fmt.Errorf("--server %q: want host:port", f.server)
		}
		if err := checkLine("--server", f.server); err != nil {
			return err
		}
		port = pt
		cfg.Addr = f.server
	}
	cfg.TLS = smtp.TLSStartTLSOptional
	if port == "465" {
		cfg.TLS = smtp.TLSImplicit
	}
	if f.tls != "" {
		m, err := smtp.ParseTLSMode(f.tls)
		if err != nil {
			return fmt.Errorf("--tls %q: want none, starttls, starttls-optional or implicit", f.tls)
		}
		cfg.TLS = m
	}
	return nil
}

// trust fills the certificates trusted and what the transcript shows.
func (f *sendFlags) trust(cfg *smtp.Config) error {
	if f.caFile != "" {
		pool, err := loadCAFile(f.caFile)
		if err != nil {
			return err
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool}
	}
	cfg.InsecureSkipVerify = f.insecureSkipVerify
	cfg.ShowBody = f.showBody
	return nil
}

// hello fills the EHLO/HELO name.
func (f *sendFlags) hello(cfg *smtp.Config) error {
	if f.helo == "" {
		return nil
	}
	if err := checkLine("--helo", f.helo); err != nil {
		return err
	}
	if strings.ContainsAny(f.helo, " \t") {
		return fmt.Errorf("--helo %q: a HELO name has no spaces", f.helo)
	}
	cfg.LocalName = f.helo
	return nil
}

// authCheck checks the AUTH flags against each other and the TLS mode.
func (f *sendFlags) authCheck(cfg *smtp.Config) error {
	cfg.AllowInsecureAuth = f.allowInsecureAuth
	if f.authUser == "" {
		if f.authMech != "" || f.passwordSet {
			return errors.New("--auth-mech and --auth-password need --auth-user")
		}
		return nil
	}
	if err := checkLine("--auth-user", f.authUser); err != nil {
		return err
	}
	if f.authPassword == "" {
		return fmt.Errorf("--auth-user needs a password: --auth-password or $%s", passwordEnv)
	}
	// The password's own characters are not shown in the error.
	if strings.ContainsAny(f.authPassword, "\r\n\x00") {
		return errors.New("the password contains a line break or NUL")
	}
	if cfg.TLS == smtp.TLSNone && !f.allowInsecureAuth {
		return errors.New("--tls none with --auth-user would send the password in clear: add --allow-insecure-auth to do so anyway")
	}
	return nil
}

// auth fills the credentials and the mechanism, checked by authCheck.
func (f *sendFlags) auth(cfg *smtp.Config) error {
	if f.authUser == "" {
		return nil
	}
	a := &smtp.Auth{Mechanism: strings.ToUpper(f.authMech), Username: f.authUser, Password: f.authPassword}
	switch a.Mechanism {
	case "", "PLAIN", "LOGIN", "CRAM-MD5":
	case "XOAUTH2":
		a.Token, a.Password = a.Password, ""
	default:
		return fmt.Errorf("--auth-mech %q: want PLAIN, LOGIN, CRAM-MD5 or XOAUTH2", f.authMech)
	}
	cfg.Auth = a
	return nil
}

// timeouts fills the bound of each network wait; 0 keeps the RFC 5321
// defaults.
func (f *sendFlags) timeouts(cfg *smtp.Config) error {
	if f.timeout < 0 {
		return fmt.Errorf("--timeout %v: must not be negative", f.timeout)
	}
	if t := f.timeout; t > 0 {
		cfg.Timeouts = smtp.Timeouts{Connect: t, Greeting: t, Command: t, Mail: t, Rcpt: t, DataInit: t, DataBlock: t, DataTerm: t}
	}
	return nil
}

// checkLine refuses CR, LF and NUL in a value that goes into a command.
func checkLine(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s %q: contains a line break or NUL", name, v)
	}
	return nil
}

// loadCAFile returns the system roots plus the certificates in path.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := readLimited(path, maxCAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// readLimited reads a whole file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// parseQuitAfter maps a --quit-after name to its phase.
func parseQuitAfter(s string) (smtp.Phase, error) {
	switch strings.ToLower(s) {
	case "connect":
		return smtp.PhaseConnect, nil
	case "greeting", "banner":
		return smtp.PhaseGreeting, nil
	case "ehlo", "helo":
		return smtp.PhaseEHLO, nil
	case "tls", "starttls":
		return smtp.PhaseStartTLS, nil
	case "auth":
		return smtp.PhaseAuth, nil
	case "mail", "from":
		return smtp.PhaseMail, nil
	case "rcpt", "to":
		return smtp.PhaseRcpt, nil
	}
	return "", fmt.Errorf("--quit-after %q: want connect, greeting, ehlo, tls, auth, mail or rcpt", s)
}
