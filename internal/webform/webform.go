// Package webform holds the web app's forms: small structs read from a
// request, each with a Validate method that returns per-field messages
// for inline display. The views render them; the handlers act on them.
package webform

import (
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// Errors maps a form field name to a message saying what to fix.
type Errors map[string]string

// Server choices on the compose form besides a saved profile id.
const (
	ServerBuiltin = "builtin"
	ServerAdhoc   = "adhoc"
)

// Limits on form fields.
const (
	maxShort    = 998     // a header-like field
	maxBody     = 4 << 20 // text or HTML body
	maxHeaders  = 50      // custom header lines
	maxPassword = 1024    // an SMTP password
	maxAddrList = 8 << 10 // a To/Cc/Bcc list
	minPort     = 1       //
	maxPort     = 65535   //
	maxUserPass = 72      // bcrypt's input limit
	minUserPass = 10      // an admin password
)

// AuthMechs are the AUTH choices: "" (no AUTH), "auto" (the strongest the
// server offers) or a named mechanism.
var AuthMechs = []string{"", "auto", "PLAIN", "LOGIN", "CRAM-MD5"}

// TLSModes are the TLS choices, as smtp.ParseTLSMode reads them.
var TLSModes = []string{"none", "starttls", "starttls-optional", "implicit"}

// StopAfters are the "stop after" choices ("" sends the message).
var StopAfters = []string{"", "connect", "ehlo", "starttls", "auth", "mail", "rcpt"}

// DSNNotifies are the DSN NOTIFY choices.
var DSNNotifies = []string{"SUCCESS", "FAILURE", "DELAY", "NEVER"}

// Server is the part of the compose form that says which server to use
// and how; a server profile form has the same fields plus a name.
type Server struct {
	Host              string
	Port              string
	TLS               string
	Verify            bool
	AuthMech          string
	Username          string
	Password          string
	Helo              string
	AllowInsecureAuth bool
}

// Compose is the compose form.
type Compose struct {
	// ServerChoice is ServerBuiltin, ServerAdhoc or a profile id.
	ServerChoice string
	Server
	From, To, Cc, Bcc, ReplyTo string
	Subject                    string
	Text, HTML                 string
	Headers                    string // "Name: value" lines
	DSNNotify                  []string
	DSNReturn                  string // "", "FULL" or "HDRS"
	DSNEnvID                   string
	StopAfter                  string
	ShowBody                   bool
}

// NewCompose returns the form with its defaults: the built-in capture
// server, STARTTLS, certificate verified, no AUTH.
func NewCompose() *Compose {
	return &Compose{
		ServerChoice: ServerBuiltin,
		Server:       Server{TLS: "starttls", Verify: true},
		From:         "sockmail@localhost",
		To:           "test@example.test",
		Subject:      "sockmail test message",
		Text:         "Hello,\n\nthis is a test message sent by sockmail.\n",
	}
}

// ReadServer fills the server fields from a parsed form.
func ReadServer(r *http.Request) Server {
	return Server{
		Host:              strings.TrimSpace(r.PostFormValue("host")),
		Port:              strings.TrimSpace(r.PostFormValue("port")),
		TLS:               r.PostFormValue("tls"),
		Verify:            r.PostFormValue("verify") != "",
		AuthMech:          r.PostFormValue("auth_mech"),
		Username:          r.PostFormValue("username"),
		Password:          r.PostFormValue("password"),
		Helo:              strings.TrimSpace(r.PostFormValue("helo")),
		AllowInsecureAuth: r.PostFormValue("allow_insecure_auth") != "",
	}
}

// ReadCompose reads the compose form from a request whose form is parsed
// (attachments are read separately).
func ReadCompose(r *http.Request) *Compose {
	return &Compose{
		ServerChoice: r.PostFormValue("server"),
		Server:       ReadServer(r),
		From:         strings.TrimSpace(r.PostFormValue("from")),
		To:           strings.TrimSpace(r.PostFormValue("to")),
		Cc:           strings.TrimSpace(r.PostFormValue("cc")),
		Bcc:          strings.TrimSpace(r.PostFormValue("bcc")),
		ReplyTo:      strings.TrimSpace(r.PostFormValue("reply_to")),
		Subject:      r.PostFormValue("subject"),
		Text:         r.PostFormValue("text"),
		HTML:         r.PostFormValue("html"),
		Headers:      r.PostFormValue("headers"),
		DSNNotify:    r.PostForm["dsn_notify"],
		DSNReturn:    r.PostFormValue("dsn_ret"),
		DSNEnvID:     strings.TrimSpace(r.PostFormValue("dsn_envid")),
		StopAfter:    r.PostFormValue("stop_after"),
		ShowBody:     r.PostFormValue("show_body") != "",
	}
}

// Validate checks the server fields; adhoc says whether host and port
// are needed (they are not for the built-in server or a profile).
func (s *Server) Validate(adhoc bool, errs Errors) {
	if adhoc {
		if msg := hostProblem(s.Host); msg != "" {
			errs["host"] = msg
		}
		if msg := portProblem(s.Port); msg != "" {
			errs["port"] = msg
		}
	}
	if _, err := smtp.ParseTLSMode(s.TLS); err != nil {
		errs["tls"] = "TLS mode: " + choiceProblem(s.TLS) + ` Choose "None", "STARTTLS (required)", "STARTTLS if offered" or "Implicit TLS" (port 465).`
	}
	if !contains(AuthMechs, s.AuthMech) {
		errs["auth_mech"] = "AUTH: " + choiceProblem(s.AuthMech) + ` Choose "No AUTH", "Best offered", PLAIN, LOGIN or CRAM-MD5.`
	}
	switch {
	case s.AuthMech != "" && s.Username == "":
		errs["username"] = `User: enter the user name to authenticate as (often the full address, like ` + exampleAddr + `), or choose "No AUTH".`
	case len(s.Username) > maxShort:
		errs["username"] = fmt.Sprintf("User: the user name is %d bytes long; at most %d.", len(s.Username), maxShort)
	case strings.ContainsAny(s.Username, "\r\n\x00"):
		errs["username"] = "User: the user name holds a line break or a NUL character; it must be one line."
	}
	switch {
	case len(s.Password) > maxPassword:
		errs["password"] = fmt.Sprintf("Password: it is %d bytes long; at most %d.", len(s.Password), maxPassword)
	case strings.ContainsAny(s.Password, "\x00"):
		errs["password"] = "Password: it holds a NUL character, which AUTH cannot carry. Type it again."
	}
	if s.Helo != "" {
		switch {
		case len(s.Helo) > 253:
			errs["helo"] = fmt.Sprintf("HELO name: it is %d bytes long; a host name has at most 253.", len(s.Helo))
		case strings.ContainsAny(s.Helo, " \t\r\n\x00"):
			errs["helo"] = "HELO name: " + quote(s.Helo) + " has a space or a line break. Write one host name, like client.example.org, or leave it empty."
		}
	}
}

// hostProblem says what is wrong with a typed host, or "".
func hostProblem(host string) string {
	const how = " Write only the host name or IP address, e.g. smtp.example.org or 192.0.2.10."
	switch {
	case host == "":
		return `Host: enter the server's host name or IP address, e.g. smtp.example.org (needed for "Another server").`
	case len(host) > 253:
		return fmt.Sprintf("Host: it is %d bytes long; a host name has at most 253.", len(host))
	case strings.Contains(host, "://") || strings.Contains(host, "/"):
		return "Host: " + quote(host) + " looks like a web address." + how
	case strings.Contains(host, "@"):
		return "Host: " + quote(host) + ` has an "@": it looks like an email address.` + how
	case strings.ContainsAny(host, " \t\r\n\x00"):
		return "Host: " + quote(host) + " has a space or a control character." + how
	case strings.Count(host, ":") == 1:
		return "Host: " + quote(host) + " includes a port. Write the host here and the port in the Port field."
	}
	return ""
}

// portProblem says what is wrong with a typed port, or "".
func portProblem(port string) string {
	const how = " Enter a port between 1 and 65535: usually 25 (relay), 587 (submission, STARTTLS) or 465 (implicit TLS)."
	if port == "" {
		return "Port: enter the server's port." + how
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil && len(port) > 10:
		return "Port: it is not a number." + how
	case err != nil:
		return "Port: " + quote(port) + " is not a number." + how
	case n < minPort || n > maxPort:
		return "Port: " + port + " is out of range." + how
	}
	return ""
}

// choiceProblem says that a value sent for a select is not one of its
// choices (only a hand-made request sends one).
func choiceProblem(v string) string {
	if v == "" {
		return "nothing was chosen."
	}
	return quote(v) + " is not one of the choices."
}

// Port returns the port as a number (valid after Validate).
func (s *Server) PortNumber() int {
	n, _ := strconv.Atoi(s.Port)
	return n
}

// Validate checks every field and returns what to fix, keyed by field
// name; it is empty when the form is good.
func (f *Compose) Validate() Errors {
	errs := Errors{}
	f.validateServer(errs)
	f.validateAddresses(errs)
	f.validateContent(errs)
	f.validateDSN(errs)
	if !contains(StopAfters, f.StopAfter) {
		errs["stop_after"] = "Stop after: " + choiceProblem(f.StopAfter) + ` Choose "Nothing: send the message" or a step: Connect, EHLO, STARTTLS, AUTH, MAIL FROM, RCPT TO.`
	}
	return errs
}

// validateServer checks the server choice and the server fields.
func (f *Compose) validateServer(errs Errors) {
	adhoc := f.ServerChoice == ServerAdhoc
	if !adhoc && f.ServerChoice != ServerBuiltin {
		if id, err := strconv.ParseInt(f.ServerChoice, 10, 64); err != nil || id <= 0 {
			errs["server"] = "Server: " + choiceProblem(f.ServerChoice) + ` Choose the built-in capture server, a saved profile, or "Another server".`
		}
	}
	f.Server.Validate(adhoc, errs)
}

// validateAddresses checks From, the address lists, and that there is a
// recipient unless a recipient list already has an error.
func (f *Compose) validateAddresses(errs Errors) {
	if _, err := f.FromAddress(); err != nil {
		errs["from"] = err.Error()
	}
	n := 0
	for _, l := range []struct{ name, value string }{{"to", f.To}, {"cc", f.Cc}, {"bcc", f.Bcc}, {"reply_to", f.ReplyTo}} {
		if l.value == "" {
			continue
		}
		list, err := parseList(l.name, l.value)
		if err != nil {
			errs[l.name] = err.Error()
			continue
		}
		if l.name != "reply_to" {
			n += len(list)
		}
	}
	if n == 0 && errs["to"] == "" && errs["cc"] == "" && errs["bcc"] == "" {
		errs["to"] = "To: enter at least one recipient in To, Cc or Bcc, e.g. " + exampleAddr + "."
	}
}

// validateContent checks the subject, the bodies and the custom headers.
func (f *Compose) validateContent(errs Errors) {
	switch {
	case len(f.Subject) > maxShort*4:
		errs["subject"] = fmt.Sprintf("Subject: it is %d bytes long; at most %d.", len(f.Subject), maxShort*4)
	case strings.ContainsAny(f.Subject, "\r\n"):
		errs["subject"] = "Subject: it holds a line break. A subject is one line: remove the break (a line break could add headers to the message). Add headers in Custom headers."
	case strings.ContainsAny(f.Subject, "\x00"):
		errs["subject"] = "Subject: it holds a NUL character. Remove it."
	case !utf8.ValidString(f.Subject):
		errs["subject"] = "Subject: it is not valid UTF-8 text. Type it again."
	}
	if msg := bodyProblem("Text body", f.Text); msg != "" {
		errs["text"] = msg
	}
	if msg := bodyProblem("HTML body", f.HTML); msg != "" {
		errs["html"] = msg
	}
	if _, err := f.HeaderFields(); err != nil {
		errs["headers"] = err.Error()
	}
}

// bodyProblem says what is wrong with a text or HTML body, or "".
func bodyProblem(title, v string) string {
	switch {
	case len(v) > maxBody:
		size, limit := Sizes(int64(len(v)), maxBody)
		return fmt.Sprintf("%s: it is %s; at most %s. Shorten it, or attach the text as a file.", title, size, limit)
	case !utf8.ValidString(v):
		return title + ": it is not valid UTF-8 text. Paste it again from a UTF-8 source."
	}
	return ""
}

// validateDSN checks the DSN fields (RFC 3461): NOTIFY values, RET and
// ENVID.
func (f *Compose) validateDSN(errs Errors) {
	for _, v := range f.DSNNotify {
		if !contains(DSNNotifies, v) {
			errs["dsn_notify"] = "Notify: " + choiceProblem(v) + " Tick SUCCESS, FAILURE, DELAY or NEVER."
		}
	}
	if contains(f.DSNNotify, "NEVER") && len(f.DSNNotify) > 1 {
		errs["dsn_notify"] = "Notify: NEVER cannot be combined with " + strings.Join(slices.DeleteFunc(slices.Clone(f.DSNNotify), func(s string) bool { return s == "NEVER" }), ", ") + " (RFC 3461). Untick NEVER or the others."
	}
	if f.DSNReturn != "" && f.DSNReturn != "FULL" && f.DSNReturn != "HDRS" {
		errs["dsn_ret"] = "Return: " + choiceProblem(f.DSNReturn) + ` Choose "(server default)", FULL or HDRS.`
	}
	if len(f.DSNEnvID) > 100 {
		errs["dsn_envid"] = fmt.Sprintf("Envelope id: it is %d characters long; at most 100.", len(f.DSNEnvID))
	} else {
		for _, r := range f.DSNEnvID {
			if r < 0x21 || r > 0x7e {
				errs["dsn_envid"] = "Envelope id: " + quote(f.DSNEnvID) + fmt.Sprintf(" has %q; use printable ASCII without spaces, like order-2024-17.", r)
				break
			}
		}
	}
}

// FromAddress parses the From field.
func (f *Compose) FromAddress() (*mail.Address, error) {
	if f.From == "" {
		return nil, errorString("From: enter the sender's address, e.g. " + exampleAddr + " or Bob Smith <" + exampleAddr + ">.")
	}
	if len(f.From) > maxShort {
		return nil, errorString(fmt.Sprintf("From: it is %d bytes long; at most %d.", len(f.From), maxShort))
	}
	l, err := parseAddresses("From", f.From)
	if err != nil {
		return nil, err
	}
	if len(l) != 1 {
		return nil, errorString(fmt.Sprintf("From: it holds %d addresses; a message has one sender. Keep one, and put the others in Reply-To if replies should reach them.", len(l)))
	}
	return l[0], nil
}

// Lists returns the parsed To, Cc, Bcc and Reply-To lists (valid after
// Validate).
func (f *Compose) Lists() (to, cc, bcc, replyTo []*mail.Address) {
	parse := func(name, v string) []*mail.Address {
		if v == "" {
			return nil
		}
		l, _ := parseList(name, v)
		return l
	}
	return parse("to", f.To), parse("cc", f.Cc), parse("bcc", f.Bcc), parse("reply_to", f.ReplyTo)
}

// HeaderFields parses the custom header lines ("Name: value", one a line).
func (f *Compose) HeaderFields() ([]message.Field, error) {
	var out []message.Field
	for i, line := range strings.Split(strings.ReplaceAll(f.Headers, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		at := "Custom headers, line " + strconv.Itoa(i+1) + " (" + quote(line) + "): "
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			return nil, errorString(at + `it has no ":". Write each header as Name: value, e.g. X-Campaign: spring.`)
		case name == "":
			return nil, errorString(at + `nothing comes before the ":". Write each header as Name: value, e.g. X-Campaign: spring.`)
		case len(name) > 76:
			return nil, errorString(at + "the name is longer than 76 characters.")
		case !validFieldName(name):
			return nil, errorString(at + "the name " + quote(name) + " may hold only letters, digits and punctuation, without spaces, e.g. X-Campaign.")
		case strings.ContainsAny(value, "\r\x00") || hasControl(value):
			return nil, errorString(at + "the value holds a control character. Remove it.")
		case len(value) > maxShort*4:
			return nil, errorString(at + fmt.Sprintf("the value is %d bytes long; at most %d.", len(value), maxShort*4))
		}
		out = append(out, message.Field{Name: name, Value: strings.TrimSpace(value)})
		if len(out) > maxHeaders {
			return nil, errorString(fmt.Sprintf("Custom headers: there are more than %d. Remove some.", maxHeaders))
		}
	}
	return out, nil
}

// DSN returns the DSN parameters, or nil when none was asked for.
func (f *Compose) DSN() *smtp.DSN {
	if len(f.DSNNotify) == 0 && f.DSNReturn == "" && f.DSNEnvID == "" {
		return nil
	}
	return &smtp.DSN{Notify: f.DSNNotify, Return: f.DSNReturn, EnvID: f.DSNEnvID}
}

func parseList(field, v string) ([]*mail.Address, error) {
	if len(v) > maxAddrList {
		return nil, errorString(fmt.Sprintf("%s: the list is %s long; at most %s. Send to fewer addresses at a time.", fieldTitle(field), Bytes(int64(len(v))), Bytes(maxAddrList)))
	}
	return parseAddresses(fieldTitle(field), v)
}

// hasControl reports a C0 control character other than tab, or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func fieldTitle(name string) string {
	switch name {
	case "to":
		return "To"
	case "cc":
		return "Cc"
	case "bcc":
		return "Bcc"
	case "reply_to":
		return "Reply-To"
	}
	return name
}

type errorString string

func (e errorString) Error() string { return string(e) }

func validFieldName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < 33 || name[i] > 126 || name[i] == ':' {
			return false
		}
	}
	return len(name) <= 76
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Profile is the server profile form.
type Profile struct {
	Name string
	Server
	// ClearPassword removes the stored password; an empty Password keeps it.
	ClearPassword bool
	// Connections is how many connections contact-form delivery keeps
	// open to the server at most; empty for the instance's default.
	Connections string
}

// MaxConnections is the connections field as a number, 0 when empty.
func (p *Profile) MaxConnections() int {
	n, err := strconv.Atoi(p.Connections)
	if err != nil {
		return 0
	}
	return n
}

// ReadProfile reads the profile form from a parsed request.
func ReadProfile(r *http.Request) *Profile {
	return &Profile{
		Name:          strings.TrimSpace(r.PostFormValue("name")),
		Server:        ReadServer(r),
		ClearPassword: r.PostFormValue("clear_password") != "",
		Connections:   strings.TrimSpace(r.PostFormValue("connections")),
	}
}

// Validate checks the profile form.
func (p *Profile) Validate() Errors {
	errs := Errors{}
	switch {
	case p.Name == "":
		errs["name"] = "Name: enter a name for the profile, e.g. Office relay."
	case len(p.Name) > 100:
		errs["name"] = fmt.Sprintf("Name: it is %d bytes long; at most 100.", len(p.Name))
	case strings.ContainsAny(p.Name, "\r\n\x00"):
		errs["name"] = "Name: it holds a line break; a name is one line."
	}
	p.Server.Validate(true, errs)
	if p.Connections != "" {
		if n, err := strconv.Atoi(p.Connections); err != nil || n < 1 || n > 64 {
			errs["connections"] = "Connections: a number from 1 to 64, or empty for the default."
		}
	}
	return errs
}

// Account is the sign-up and sign-in form.
type Account struct {
	Email    string
	Password string
	Confirm  string
}

// ReadAccount reads the account form from a parsed request.
func ReadAccount(r *http.Request) *Account {
	return &Account{
		Email:    strings.TrimSpace(r.PostFormValue("email")),
		Password: r.PostFormValue("password"),
		Confirm:  r.PostFormValue("confirm"),
	}
}

// ValidateSignUp checks a new account: a plausible email address and a
// password of 10 to 72 bytes typed twice.
func (a *Account) ValidateSignUp() Errors {
	errs := Errors{}
	if ad, err := mail.ParseAddress(a.Email); err != nil || ad.Address != a.Email || len(a.Email) > 254 {
		errs["email"] = "Enter an email address like admin@example.org."
	}
	switch {
	case len(a.Password) < minUserPass:
		errs["password"] = "Use at least 10 characters."
	case len(a.Password) > maxUserPass:
		errs["password"] = "Use at most 72 bytes (a bcrypt limit)."
	case a.Password != a.Confirm:
		errs["confirm"] = "The two passwords differ."
	}
	return errs
}

// ValidateSignIn checks that both fields are there.
func (a *Account) ValidateSignIn() Errors {
	errs := Errors{}
	if a.Email == "" || len(a.Email) > 254 {
		errs["email"] = "Enter your email address."
	}
	if a.Password == "" || len(a.Password) > maxUserPass {
		errs["password"] = "Enter your password."
	}
	return errs
}
