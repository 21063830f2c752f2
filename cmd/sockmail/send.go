package main

// The "send" subcommand: a command-line test send in the spirit of swaks.
// It composes a message (or takes a raw one), runs the SMTP conversation
// with sockmail's own client, prints the transcript as it happens and one
// outcome line per message, and exits with a status that says which phase
// failed.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// Exit statuses of "sockmail send". Each failing phase has its own, so a
// script can tell a refused recipient from an unreachable server.
const (
	exitOK          = 0   // sent, or stopped where --quit-after asked
	exitInternal    = 1   // an unexpected failure of sockmail itself
	exitUsage       = 2   // bad flags or input: nothing was sent
	exitConnect     = 10  // DNS, TCP connect or implicit TLS failed
	exitGreeting    = 11  // no 220 greeting
	exitEHLO        = 12  // EHLO (and HELO) refused
	exitStartTLS    = 13  // STARTTLS missing, refused, or TLS failed
	exitAuth        = 14  // AUTH failed or impossible
	exitMail        = 15  // MAIL FROM refused (or RSET between messages)
	exitRcpt        = 16  // every recipient refused
	exitData        = 17  // DATA, the message or its final reply refused
	exitUnknown     = 18  // connection lost after the message was sent
	exitPartial     = 20  // sent to some recipients, others refused
	exitInterrupted = 130 // interrupted (the context was cancelled)
)

// exitCodeTable is the table --help prints.
const exitCodeTable = `Exit status:
    0  sent (or stopped where --quit-after asked)
    1  unexpected internal error, or --store could not store the send
    2  usage or bad input; nothing was sent
   10  connect failed (DNS, TCP connect, implicit TLS handshake)
   11  greeting: the server did not say 220
   12  ehlo: EHLO (and HELO) refused
   13  starttls: STARTTLS not offered when required, refused, or TLS failed
   14  auth: authentication refused or impossible
   15  mail: MAIL FROM refused (or RSET between messages)
   16  rcpt: every recipient was refused
   17  data: DATA, the message, or its final reply refused
   18  unknown outcome: the connection was lost after the end of the message
       was sent and before the server answered: it may have been delivered
   20  partial: delivered to some recipients, others were refused
  130  interrupted
With --count, each message's outcome is its own (a failed connection ends
the run); the status is that of the first message that failed, or 20 if
every message went but some recipients were refused.
`

// Input limits.
const (
	maxBodyFile = 25 << 20 // --body-file, --html-file
	maxKeyFile  = 64 << 10 // --dkim-key
	maxCount    = 10000    // --count
	maxCAFile   = 1 << 20  // --ca-file
)

// passwordEnv is the environment variable read when --auth-password is
// not given. It keeps the password out of the process list.
const passwordEnv = "SOCKMAIL_AUTH_PASSWORD"

// runSend runs "sockmail send ARGS", printing to stdout and stderr, and
// returns the exit status.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	plan, err := parseSend(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		printSendUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail send: %v\nRun 'sockmail send --help' for usage.\n", err)
		return exitUsage
	}
	plan.stderr = stderr
	return plan.run(ctx, stdout)
}

// listFlag is a repeatable flag. With split set, each value may also be a
// comma-separated list.
type listFlag struct {
	values []string
	split  bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	if !l.split {
		l.values = append(l.values, v)
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		p = strings.Trim(p, " \t")
		if p == "" {
			return errors.New("empty address in list")
		}
		l.values = append(l.values, p)
	}
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
	f.to.split, f.cc.split, f.bcc.split = true, true, true
	fs.StringVar(&f.server, "server", "", "server as `host:port`; omitted: deliver to the recipients' MX hosts on port 25")
	fs.StringVar(&f.tls, "tls", "", "TLS `mode`: none, starttls, starttls-optional or implicit\n(default implicit for port 465, starttls-optional otherwise)")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-verify", false, "accept any TLS certificate (shown in the transcript)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of extra CA certificates to trust")
	fs.StringVar(&f.authUser, "auth-user", "", "authenticate as `user`")
	fs.StringVar(&f.authPassword, "auth-password", "", "`password` (or XOAUTH2 token); default $"+passwordEnv+", which keeps it out of ps")
	fs.StringVar(&f.authMech, "auth-mech", "", "SASL `mechanism`: PLAIN, LOGIN, CRAM-MD5 or XOAUTH2 (default: the strongest offered)")
	fs.BoolVar(&f.allowInsecureAuth, "allow-insecure-auth", false, "allow sending credentials without TLS")
	fs.StringVar(&f.helo, "helo", "", "`name` to send with EHLO/HELO (default localhost)")
	fs.StringVar(&f.from, "from", "", "envelope sender and From `address` (local@domain); required")
	fs.Var(&f.to, "to", "recipient `address`; repeatable, or a comma-separated list")
	fs.Var(&f.cc, "cc", "Cc recipient `address`; repeatable, or a comma-separated list")
	fs.Var(&f.bcc, "bcc", "Bcc recipient `address` (envelope only); repeatable, or a comma-separated list")
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

// connection fills the server, TLS, AUTH and timeout parts of cfg.
func (f *sendFlags) connection(cfg *smtp.Config) error {
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
	if f.caFile != "" {
		pool, err := loadCAFile(f.caFile)
		if err != nil {
			return err
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool}
	}
	cfg.InsecureSkipVerify = f.insecureSkipVerify
	cfg.ShowBody = f.showBody
	if f.helo != "" {
		if err := checkLine("--helo", f.helo); err != nil {
			return err
		}
		if strings.ContainsAny(f.helo, " \t") {
			return fmt.Errorf("--helo %q: a HELO name has no spaces", f.helo)
		}
		cfg.LocalName = f.helo
	}
	cfg.AllowInsecureAuth = f.allowInsecureAuth
	if f.authUser == "" && (f.authMech != "" || f.passwordSet) {
		return errors.New("--auth-mech and --auth-password need --auth-user")
	}
	if f.authUser != "" {
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
		a := &smtp.Auth{Mechanism: strings.ToUpper(f.authMech), Username: f.authUser, Password: f.authPassword}
		switch a.Mechanism {
		case "", "PLAIN", "LOGIN", "CRAM-MD5":
		case "XOAUTH2":
			a.Token, a.Password = a.Password, ""
		default:
			return fmt.Errorf("--auth-mech %q: want PLAIN, LOGIN, CRAM-MD5 or XOAUTH2", f.authMech)
		}
		cfg.Auth = a
	}
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

// envelopeAddress checks one address given on the command line: a plain
// local@domain, nothing the SMTP envelope cannot carry.
func envelopeAddress(flagName, s string) (*mail.Address, error) {
	if err := smtp.CheckAddress(s); err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	a, err := message.ParseAddress(flagName, s)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: %w", flagName, s, err)
	}
	return a, nil
}

func envelopeAddresses(flagName string, list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range list {
		a, err := envelopeAddress(flagName, s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// composer validates the message flags and returns the function that
// composes message i of the run. Files are checked now (attachments must
// exist, --data must be a valid message), so a bad file fails before
// anything is sent; they are read again, streaming, while sending.
func (f *sendFlags) composer() (func(int) (message.Content, error), error) {
	if f.from == "" {
		return nil, errors.New("--from is required")
	}
	from, err := envelopeAddress("from", f.from)
	if err != nil {
		return nil, err
	}
	to, err := envelopeAddresses("to", f.to.values)
	if err != nil {
		return nil, err
	}
	cc, err := envelopeAddresses("cc", f.cc.values)
	if err != nil {
		return nil, err
	}
	bcc, err := envelopeAddresses("bcc", f.bcc.values)
	if err != nil {
		return nil, err
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return nil, errors.New("no recipient: give --to, --cc or --bcc")
	}
	sign, err := f.signer(from)
	if err != nil {
		return nil, err
	}
	if f.data != "" {
		if f.subjectSet || f.bodySet || f.bodyFile != "" || f.htmlSet || f.htmlFile != "" ||
			len(f.attach.values)+len(f.inline.values)+len(f.headers.values)+len(f.replyTo.values) > 0 {
			return nil, errors.New("--data sends a complete message: it excludes --subject, --body, --body-file, --html, --html-file, --attach, --inline, --header and --reply-to")
		}
		var rcpts []string
		for _, l := range [][]*mail.Address{to, cc, bcc} {
			for _, a := range l {
				rcpts = append(rcpts, a.Address)
			}
		}
		raw, err := message.RawFile(from.Address, rcpts, f.data)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", f.data, err)
		}
		return func(int) (message.Content, error) { return sign(raw) }, nil
	}
	if f.bodySet && f.bodyFile != "" {
		return nil, errors.New("--body and --body-file exclude each other")
	}
	if f.htmlSet && f.htmlFile != "" {
		return nil, errors.New("--html and --html-file exclude each other")
	}
	html := f.html
	if f.htmlFile != "" {
		data, err := readLimited(f.htmlFile, maxBodyFile)
		if err != nil {
			return nil, fmt.Errorf("--html-file: %w", err)
		}
		html = string(data)
	}
	body := "This is a test message sent by sockmail.\n"
	if html != "" {
		body = "" // derived from the HTML unless given
	}
	if f.bodySet {
		body = f.body
	}
	if f.bodyFile != "" {
		data, err := readLimited(f.bodyFile, maxBodyFile)
		if err != nil {
			return nil, fmt.Errorf("--body-file: %w", err)
		}
		body = string(data)
	}
	var atts, inline []*message.Attachment
	for _, path := range f.attach.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, fmt.Errorf("--attach %s: %w", path, err)
		}
		atts = append(atts, a)
	}
	if len(f.inline.values) > 0 && html == "" {
		return nil, errors.New("--inline needs an HTML body (--html or --html-file) to refer to it")
	}
	for _, path := range f.inline.values {
		a, err := message.FileAttachment(path)
		if err != nil {
			return nil, fmt.Errorf("--inline %s: %w", path, err)
		}
		a.ContentID = a.Filename
		inline = append(inline, a)
	}
	var fields []message.Field
	for _, h := range f.headers.values {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		fields = append(fields, message.Field{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	var replyTo []*mail.Address
	for _, r := range f.replyTo.values {
		list, err := message.ParseAddressList("Reply-To", r)
		if err != nil {
			return nil, fmt.Errorf("--reply-to: %w", err)
		}
		replyTo = append(replyTo, list...)
	}
	subject := f.subject
	if !f.subjectSet {
		subject = "sockmail test " + time.Now().Format(time.RFC1123Z)
	}
	count := f.count
	compose := func(i int) (message.Content, error) {
		m := &message.Message{
			From: from, To: to, Cc: cc, Bcc: bcc, ReplyTo: replyTo,
			Subject: subject, Headers: fields, Text: body, HTML: html,
			Attachments: atts, Inline: inline,
		}
		if count > 1 {
			m.Subject = fmt.Sprintf("%s [%d/%d]", subject, i, count)
		}
		if err := m.Prepare(); err != nil {
			return nil, err
		}
		return sign(m)
	}
	return compose, nil
}

// signer returns the function that DKIM-signs a message as the --dkim-*
// flags ask, or returns it unchanged when they are not given.
func (f *sendFlags) signer(from *mail.Address) (func(message.Content) (message.Content, error), error) {
	if f.dkimKey == "" {
		if f.dkimSelector != "" || f.dkimDomain != "" {
			return nil, errors.New("--dkim-selector and --dkim-domain need --dkim-key")
		}
		return func(c message.Content) (message.Content, error) { return c, nil }, nil
	}
	if f.dkimSelector == "" {
		return nil, errors.New("--dkim-key needs --dkim-selector")
	}
	pem, err := readLimited(f.dkimKey, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--dkim-key: %w", err)
	}
	key, err := message.ParsePrivateKeyPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("--dkim-key %s: %w", f.dkimKey, err)
	}
	domain := f.dkimDomain
	if domain == "" {
		domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	opts := message.DKIMOptions{Domain: domain, Selector: f.dkimSelector, Signer: key}
	return func(c message.Content) (message.Content, error) {
		s, err := message.SignDKIM(c, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}, nil
}

// envelopeOf returns the SMTP envelope a message asks for.
func envelopeOf(c message.Content) smtp.Envelope {
	env := smtp.Envelope{
		From:     c.EnvelopeFrom(),
		To:       c.Recipients(),
		SMTPUTF8: c.NeedsSMTPUTF8(),
		EightBit: c.Needs8BitMIME(),
	}
	if n, err := c.Size(); err == nil {
		env.Size = n
	}
	return env
}

// outcome is what happened to one message.
type outcome struct {
	n      int
	result *smtp.Result
	err    error
}

// run carries out the plan and returns the exit status.
func (p *sendPlan) run(ctx context.Context, stdout io.Writer) int {
	tr := smtp.NewTranscript()
	out := &lockedWriter{w: stdout}
	if !p.json && !p.quiet {
		// Printed as it happens: the subscriber is called synchronously
		// for every event, in order.
		tr.Subscribe(func(ev smtp.Event) { fmt.Fprintln(out, smtp.FormatEvent(ev)) })
	}
	cfg := p.cfg
	cfg.Transcript = tr
	var rec *sendRecorder
	var first smtp.Message = p.first
	if p.storeDSN != "" {
		var err error
		if rec, err = openRecorder(ctx, p.storeDSN); err != nil {
			fmt.Fprintf(p.stderr, "sockmail send: %v\n", err)
			return exitInternal
		}
		defer rec.Close()
		first = rec.tee(p.first)
	}
	var outs []outcome
	if p.count == 1 {
		res, err := smtp.SendMail(ctx, cfg, envelopeOf(p.first), first, smtp.SendOptions{StopAfter: p.stopAfter})
		outs = append(outs, outcome{n: 1, result: res, err: err})
	} else {
		outs = p.sendMany(ctx, cfg)
	}
	code := exitStatus(outs)
	if rec != nil {
		id, err := rec.record(context.WithoutCancel(ctx), cfg, p.first, tr, outs[0])
		if err != nil {
			fmt.Fprintf(p.stderr, "sockmail send: %v\n", err)
			code = exitInternal
		} else {
			fmt.Fprintf(p.stderr, "stored as send #%d\n", id)
		}
	}
	if p.json {
		if err := writeJSON(out, cfg.Addr, tr, outs, p.count, code); err != nil {
			return exitInternal
		}
		return code
	}
	for _, o := range outs {
		fmt.Fprintln(out, outcomeLine(o, p.count, p.stopAfter))
	}
	if len(outs) < p.count {
		fmt.Fprintf(out, "messages %d to %d of %d: not sent\n", len(outs)+1, p.count, p.count)
	}
	return code
}

// batchSize is how many messages sendMany composes ahead and hands to
// one SendBatch.
const batchSize = 100

// sendMany sends p.count messages over one connection with SendBatch:
// with PIPELINING each message's envelope goes with the end of the one
// before, one wait per message. Each message's outcome is its own; a
// failed connection, or a message that cannot be composed, ends the run.
func (p *sendPlan) sendMany(ctx context.Context, cfg smtp.Config) []outcome {
	c, err := smtp.Open(ctx, cfg)
	if err != nil {
		return []outcome{{n: 1, result: &smtp.Result{Server: cfg.Addr}, err: err}}
	}
	defer c.Close()
	var outs []outcome
	for start := 1; start <= p.count; start += batchSize {
		end := min(start+batchSize-1, p.count)
		var msgs []smtp.BatchMessage
		var bad *outcome
		for i := start; i <= end; i++ {
			msg := p.first
			if i > 1 {
				if msg, err = p.compose(i); err != nil {
					bad = &outcome{n: i, err: err}
					break
				}
			}
			msgs = append(msgs, smtp.BatchMessage{Envelope: envelopeOf(msg), Message: msg})
		}
		last := end == p.count && bad == nil
		results, err := c.SendBatch(ctx, msgs, last)
		for k, r := range results {
			outs = append(outs, outcome{n: start + k, result: r.Result, err: r.Err})
		}
		if err != nil {
			return outs
		}
		if bad != nil {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = c.Quit(qctx)
			cancel()
			return append(outs, *bad)
		}
	}
	return outs
}

// exitStatus returns the exit status of a run.
func exitStatus(outs []outcome) int {
	partial := false
	for _, o := range outs {
		if o.err != nil {
			return exitCodeOf(o.err)
		}
		if smtp.StatusOf(o.result, nil) == smtp.StatusPartial {
			partial = true
		}
	}
	if partial {
		return exitPartial
	}
	return exitOK
}

// exitCodeOf maps a send error to its exit status.
func exitCodeOf(err error) int {
	var e *smtp.Error
	switch {
	case errors.As(err, &e) && e.OutcomeUnknown:
		return exitUnknown
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case !errors.As(err, &e):
		return exitInternal
	}
	switch e.Phase {
	case smtp.PhaseConnect:
		return exitConnect
	case smtp.PhaseGreeting:
		return exitGreeting
	case smtp.PhaseEHLO:
		return exitEHLO
	case smtp.PhaseStartTLS:
		return exitStartTLS
	case smtp.PhaseAuth:
		return exitAuth
	case smtp.PhaseMail, smtp.PhaseReset:
		return exitMail
	case smtp.PhaseRcpt:
		return exitRcpt
	case smtp.PhaseData, smtp.PhaseBody:
		return exitData
	}
	return exitInternal
}

// outcomeLine describes one message in one line, for example
// "message 1/1: sent; queue id 4Xyz; accepted: a@example.org (250 2.1.5 Ok)".
// Server text is made safe to print.
func outcomeLine(o outcome, count int, stopAfter smtp.Phase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "message %d/%d: ", o.n, count)
	st := smtp.StatusOf(o.result, o.err)
	switch {
	case o.err != nil:
		var e *smtp.Error
		phase := ""
		if errors.As(o.err, &e) {
			phase = " in " + string(e.Phase)
		}
		fmt.Fprintf(&b, "%s%s: %s", st, phase, smtp.SafeText(o.err.Error()))
	case st == smtp.StatusStopped && stopAfter != "":
		fmt.Fprintf(&b, "stopped after %s, as asked", stopAfter)
	default:
		b.WriteString(string(st))
		if r := o.result; r != nil && r.Final != nil {
			fmt.Fprintf(&b, " (%d %s)", r.Final.Code, smtp.SafeText(oneLine(r.Final.Text())))
		}
	}
	r := o.result
	if r == nil {
		return b.String()
	}
	if r.QueueID != "" {
		fmt.Fprintf(&b, "; queue id %s", smtp.SafeText(r.QueueID))
	}
	var acc, ref []string
	for _, rc := range r.Recipients {
		s := fmt.Sprintf("%s (%d %s)", smtp.SafeText(rc.Address), rc.Code, smtp.SafeText(oneLine(rc.Message)))
		if rc.Accepted {
			acc = append(acc, s)
		} else {
			ref = append(ref, s)
		}
	}
	if len(acc) > 0 {
		fmt.Fprintf(&b, "; accepted: %s", strings.Join(acc, ", "))
	}
	if len(ref) > 0 {
		fmt.Fprintf(&b, "; refused: %s", strings.Join(ref, ", "))
	}
	return b.String()
}

// oneLine joins the lines of a reply text.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " / ") }

// jsonError is an error in the JSON output.
type jsonError struct {
	Phase          smtp.Phase `json:"phase,omitempty"`
	Code           int        `json:"code,omitempty"`
	EnhancedCode   string     `json:"enhanced_code,omitempty"`
	Message        string     `json:"message"`
	Temporary      bool       `json:"temporary"`
	OutcomeUnknown bool       `json:"outcome_unknown,omitempty"`
}

// jsonMessage is one message in the JSON output.
type jsonMessage struct {
	N          int                    `json:"n"`
	Status     smtp.Status            `json:"status"`
	QueueID    string                 `json:"queue_id,omitempty"`
	FinalCode  int                    `json:"final_code,omitempty"`
	FinalText  string                 `json:"final_text,omitempty"`
	Recipients []smtp.RecipientResult `json:"recipients"`
	Error      *jsonError             `json:"error,omitempty"`
}

// writeJSON prints the whole run as one JSON document.
func writeJSON(w io.Writer, server string, tr *smtp.Transcript, outs []outcome, count, code int) error {
	doc := struct {
		Server     string           `json:"server,omitempty"`
		Count      int              `json:"count"`
		ExitCode   int              `json:"exit_code"`
		Messages   []jsonMessage    `json:"messages"`
		Transcript *smtp.Transcript `json:"transcript"`
	}{Server: server, Count: count, ExitCode: code, Messages: []jsonMessage{}, Transcript: tr}
	for _, o := range outs {
		m := jsonMessage{N: o.n, Status: smtp.StatusOf(o.result, o.err), Recipients: []smtp.RecipientResult{}}
		if r := o.result; r != nil {
			m.QueueID = r.QueueID
			if r.Recipients != nil {
				m.Recipients = r.Recipients
			}
			if r.Final != nil {
				m.FinalCode, m.FinalText = r.Final.Code, r.Final.Text()
			}
			if doc.Server == "" {
				doc.Server = r.Server
			}
		}
		if o.err != nil {
			je := &jsonError{Message: o.err.Error()}
			var e *smtp.Error
			if errors.As(o.err, &e) {
				je.Phase, je.Code, je.EnhancedCode = e.Phase, e.Code, e.EnhancedCode
				je.Temporary, je.OutcomeUnknown = e.Temporary(), e.OutcomeUnknown
			}
			m.Error = je
		}
		doc.Messages = append(doc.Messages, m)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("send: write JSON: %w", err)
	}
	return nil
}

// lockedWriter serialises writes from the transcript subscriber and the
// outcome lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
