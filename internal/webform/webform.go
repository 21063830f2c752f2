// Package webform holds the web app's forms: small structs read from a
// request, each with a Validate method that returns per-field messages
// for inline display. The views render them; the handlers act on them.
package webform

import (
	"net/http"
	"net/mail"
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
		switch {
		case s.Host == "":
			errs["host"] = "Enter the server's host name or IP address."
		case len(s.Host) > 253 || strings.ContainsAny(s.Host, " \t\r\n\x00/@"):
			errs["host"] = "This is not a host name or IP address."
		}
		if n, err := strconv.Atoi(s.Port); err != nil || n < minPort || n > maxPort {
			errs["port"] = "Enter a port between 1 and 65535 (25, 465 or 587 usually)."
		}
	}
	if _, err := smtp.ParseTLSMode(s.TLS); err != nil {
		errs["tls"] = "Choose a TLS mode."
	}
	if !contains(AuthMechs, s.AuthMech) {
		errs["auth_mech"] = "Choose an AUTH mechanism."
	}
	if s.AuthMech != "" && s.Username == "" {
		errs["username"] = "Enter the user name to authenticate as, or choose no AUTH."
	}
	if len(s.Username) > maxShort || strings.ContainsAny(s.Username, "\r\n\x00") {
		errs["username"] = "The user name must be one line of at most 998 bytes."
	}
	if len(s.Password) > maxPassword || strings.ContainsAny(s.Password, "\x00") {
		errs["password"] = "The password is too long or holds a NUL character."
	}
	if s.Helo != "" && (len(s.Helo) > 253 || strings.ContainsAny(s.Helo, " \t\r\n\x00")) {
		errs["helo"] = "The HELO name must be one word, like mail.example.org."
	}
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
		errs["stop_after"] = "Choose where to stop."
	}
	return errs
}

// validateServer checks the server choice and the server fields.
func (f *Compose) validateServer(errs Errors) {
	adhoc := f.ServerChoice == ServerAdhoc
	if !adhoc && f.ServerChoice != ServerBuiltin {
		if id, err := strconv.ParseInt(f.ServerChoice, 10, 64); err != nil || id <= 0 {
			errs["server"] = "Choose a server."
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
		errs["to"] = "Enter at least one recipient in To, Cc or Bcc."
	}
}

// validateContent checks the subject, the bodies and the custom headers.
func (f *Compose) validateContent(errs Errors) {
	if len(f.Subject) > maxShort*4 || strings.ContainsAny(f.Subject, "\r\n\x00") {
		errs["subject"] = "The subject must be one line."
	}
	if len(f.Text) > maxBody || !utf8.ValidString(f.Text) {
		errs["text"] = "The text body is too long (4 MiB at most)."
	}
	if len(f.HTML) > maxBody || !utf8.ValidString(f.HTML) {
		errs["html"] = "The HTML body is too long (4 MiB at most)."
	}
	if _, err := f.HeaderFields(); err != nil {
		errs["headers"] = err.Error()
	}
}

// validateDSN checks the DSN fields (RFC 3461): NOTIFY values, RET and
// ENVID.
func (f *Compose) validateDSN(errs Errors) {
	for _, v := range f.DSNNotify {
		if !contains(DSNNotifies, v) {
			errs["dsn_notify"] = "Choose SUCCESS, FAILURE, DELAY or NEVER."
		}
	}
	if contains(f.DSNNotify, "NEVER") && len(f.DSNNotify) > 1 {
		errs["dsn_notify"] = "NEVER cannot be combined with the other notifications."
	}
	if f.DSNReturn != "" && f.DSNReturn != "FULL" && f.DSNReturn != "HDRS" {
		errs["dsn_ret"] = "Choose FULL or HDRS."
	}
	if len(f.DSNEnvID) > 100 {
		errs["dsn_envid"] = "The envelope id is at most 100 characters."
	}
	for _, r := range f.DSNEnvID {
		if r < 0x21 || r > 0x7e {
			errs["dsn_envid"] = "The envelope id must be printable ASCII without spaces."
			break
		}
	}
}

// FromAddress parses the From field.
func (f *Compose) FromAddress() (*mail.Address, error) {
	if f.From == "" {
		return nil, errorString("Enter the sender address.")
	}
	a, err := message.ParseAddress("From", f.From)
	if err != nil {
		return nil, friendly(err)
	}
	if err := smtp.CheckAddress(a.Address); err != nil {
		return nil, errorString("From: " + err.Error())
	}
	return a, nil
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
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || !validFieldName(name) {
			return nil, errorString("Line " + strconv.Itoa(i+1) + ": write each header as Name: value.")
		}
		if strings.ContainsAny(value, "\r\x00") || len(value) > maxShort*4 {
			return nil, errorString("Line " + strconv.Itoa(i+1) + ": the value is too long or holds a control character.")
		}
		out = append(out, message.Field{Name: name, Value: strings.TrimSpace(value)})
		if len(out) > maxHeaders {
			return nil, errorString("At most 50 custom headers.")
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
		return nil, errorString("This list is too long.")
	}
	l, err := message.ParseAddressList(fieldTitle(field), v)
	if err != nil {
		return nil, friendly(err)
	}
	for _, a := range l {
		if err := smtp.CheckAddress(a.Address); err != nil {
			return nil, errorString(fieldTitle(field) + ": " + err.Error())
		}
	}
	return l, nil
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

// friendly drops the package prefix of an error for display.
func friendly(err error) error {
	return errorString(strings.TrimPrefix(err.Error(), "message: "))
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
}

// ReadProfile reads the profile form from a parsed request.
func ReadProfile(r *http.Request) *Profile {
	return &Profile{
		Name:          strings.TrimSpace(r.PostFormValue("name")),
		Server:        ReadServer(r),
		ClearPassword: r.PostFormValue("clear_password") != "",
	}
}

// Validate checks the profile form.
func (p *Profile) Validate() Errors {
	errs := Errors{}
	if p.Name == "" || len(p.Name) > 100 || strings.ContainsAny(p.Name, "\r\n\x00") {
		errs["name"] = "Enter a name of at most 100 characters, on one line."
	}
	p.Server.Validate(true, errs)
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
