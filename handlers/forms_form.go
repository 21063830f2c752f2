package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"sockmail/internal/contact"
	"sockmail/internal/store"
	"sockmail/internal/webform"
	"sockmail/smtp/message"
	"sockmail/views"
)

// Limits of the contact form settings.
const (
	formMaxName        = 100
	formMaxRecipients  = 50
	formMaxOrigins     = 20
	formMaxFields      = 30
	formMaxURL         = 2000
	formMaxSubject     = 200
	formMaxSecret      = 1024
	formMaxRate        = 100000
	formMaxFieldKiB    = 1024 // a field's limit: up to 1 MiB
	formDefaultRateIP  = 5
	formDefaultRate    = 200
	formDefaultFields  = "name, email, message"
	formDefaultSubject = "Message from {{name}} via the {{_form}} form"
)

// slugRE and fieldNameRE are compiled at first use, not when the program
// starts: every start of the binary ("sockmail send" too) would pay for
// them, and their counted repetitions make large programs.
var (
	slugRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{2,63}$`) })
	fieldNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`) })
)

// validSlug reports whether an admin may give a form this slug (the part
// of its public address after /f/): 3 to 64 lower-case letters, digits,
// "-" or "_". The store's random slugs are of this kind.
func validSlug(s string) bool { return slugRE().MatchString(s) }

// contactFormForm is the admin form that creates or edits a contact form.
type contactFormForm struct {
	views.FormFields
}

// newContactFormForm returns the defaults of a new form.
func newContactFormForm(maxUpload int64) *contactFormForm {
	return &contactFormForm{views.FormFields{
		Slug: store.NewSlug(), Profile: "0", SubjectTemplate: formDefaultSubject, Fields: formDefaultFields,
		MaxUploadKiB: strconv.FormatInt(min(contact.DefaultMaxUploadBytes, maxUpload)>>10, 10),
		MaxFieldKiB:  strconv.Itoa(contact.DefaultMaxFieldBytes >> 10),
		RatePerAddr:  strconv.Itoa(formDefaultRateIP), RatePerForm: strconv.Itoa(formDefaultRate),
		Enabled: true,
	}}
}

// readContactFormForm reads the admin form from a parsed request.
func readContactFormForm(r *http.Request) *contactFormForm {
	v := r.PostFormValue
	return &contactFormForm{views.FormFields{
		Name: strings.TrimSpace(v("name")), Slug: strings.ToLower(strings.TrimSpace(v("slug"))),
		Recipients: v("recipients"), Profile: v("profile"),
		FromAddr: strings.TrimSpace(v("from_addr")), FromName: strings.TrimSpace(v("from_name")),
		AllowedOrigins: v("allowed_origins"),
		SuccessURL:     strings.TrimSpace(v("success_url")), ErrorURL: strings.TrimSpace(v("error_url")),
		SubjectTemplate: strings.TrimSpace(v("subject_template")), Fields: v("fields"),
		AllowUploads: v("allow_uploads") != "", MaxUploadKiB: strings.TrimSpace(v("max_upload_kib")),
		MaxFieldKiB: strings.TrimSpace(v("max_field_kib")),
		RatePerAddr: strings.TrimSpace(v("rate_per_addr")), RatePerForm: strings.TrimSpace(v("rate_per_form")),
		CaptchaProvider: v("captcha_provider"), CaptchaSiteKey: strings.TrimSpace(v("captcha_site_key")), CaptchaSecret: strings.TrimSpace(v("captcha_secret")),
		ClearSecret: v("clear_secret") != "", Enabled: v("enabled") != "",
	}}
}

// fromStoreForm fills the admin form from a stored form. The captcha
// secret is never put back into the page.
func fromStoreForm(f *store.Form) *contactFormForm {
	return &contactFormForm{views.FormFields{
		Name: f.Name, Slug: f.Slug, Recipients: strings.Join(f.Recipients, "\n"),
		Profile: strconv.FormatInt(f.ProfileID, 10), FromAddr: f.FromAddr, FromName: f.FromName,
		AllowedOrigins: strings.Join(f.AllowedOrigins, "\n"), SuccessURL: f.SuccessURL, ErrorURL: f.ErrorURL,
		SubjectTemplate: f.SubjectTemplate, Fields: strings.Join(f.Fields, ", "), AllowUploads: f.AllowUploads,
		MaxUploadKiB: strconv.FormatInt(f.MaxUploadBytes>>10, 10), MaxFieldKiB: strconv.FormatInt(f.MaxFieldBytes>>10, 10),
		RatePerAddr: strconv.Itoa(f.RatePerAddr), RatePerForm: strconv.Itoa(f.RatePerForm),
		CaptchaProvider: f.CaptchaProvider, CaptchaSiteKey: f.CaptchaSiteKey, Enabled: f.Enabled,
	}}
}

// splitList splits on newlines and commas, dropping empty entries.
func splitList(s string, commas bool) []string {
	sep := func(r rune) bool { return r == '\n' || r == '\r' || commas && r == ',' }
	var out []string
	for _, p := range strings.FieldsFunc(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parsedForm holds the values Validate has checked, ready to store.
type parsedForm struct {
	recipients, origins, fields []string
	profileID                   int64
	maxUpload, maxField         int64
	ratePerAddr, ratePerForm    int
}

// Validate checks every field; maxUpload is the largest upload limit a
// form may have. It returns what to fix, keyed by field name, and the
// parsed values.
func (f *contactFormForm) Validate(maxUpload int64) (webform.Errors, parsedForm) {
	errs := webform.Errors{}
	var p parsedForm
	for _, r := range formRules(maxUpload) {
		if msg := r.check(f, &p); msg != "" {
			errs[r.field] = msg
		}
	}
	return errs, p
}

// formRule checks one field of the admin form, keeping what it parsed in
// p; it returns what to fix, or "".
type formRule struct {
	field string
	check func(f *contactFormForm, p *parsedForm) string
}

// formRules are the rules of the admin form, in the order of its fields.
func formRules(maxUpload int64) []formRule {
	maxUpKiB := int(maxUpload >> 10)
	perHour := "Enter a number of messages per hour (0 for no limit)."
	return []formRule{
		{"name", func(f *contactFormForm, _ *parsedForm) string { return checkFormName(f.Name) }},
		{"slug", func(f *contactFormForm, _ *parsedForm) string {
			return unless(validSlug(f.Slug), "The address name must be 3 to 64 lower-case letters, digits, \u201c-\u201d or \u201c_\u201d, starting with a letter or digit.")
		}},
		{"recipients", checkRecipients},
		{"profile", func(f *contactFormForm, p *parsedForm) string {
			id, err := strconv.ParseInt(f.Profile, 10, 64)
			p.profileID = id
			return unless(err == nil && id >= 0, "Choose the server that delivers the messages.")
		}},
		{"from_addr", func(f *contactFormForm, _ *parsedForm) string {
			a, err := message.ParseAddress("From", f.FromAddr)
			return unless(err == nil && a.Address == f.FromAddr, "Enter the address messages come from, an address of your own site, like contact@example.org.")
		}},
		{"from_name", func(f *contactFormForm, _ *parsedForm) string {
			return unless(len(f.FromName) <= formMaxName && !hasControl(f.FromName), "The sender name must be one line of at most 100 characters.")
		}},
		{"allowed_origins", checkOrigins},
		{"success_url", func(f *contactFormForm, _ *parsedForm) string { return checkRedirectURL(f.SuccessURL) }},
		{"error_url", func(f *contactFormForm, _ *parsedForm) string { return checkRedirectURL(f.ErrorURL) }},
		{"subject_template", func(f *contactFormForm, _ *parsedForm) string {
			return unless(len([]rune(f.SubjectTemplate)) <= formMaxSubject && !hasControl(f.SubjectTemplate), "The subject must be one line of at most 200 characters.")
		}},
		{"fields", checkFieldNames},
		{"max_upload_kib", func(f *contactFormForm, p *parsedForm) string {
			n, ok := bounded(f.MaxUploadKiB, 1, maxUpKiB)
			p.maxUpload = int64(n) << 10
			return unless(ok, "The upload limit must be between 1 and "+strconv.Itoa(maxUpKiB)+" KiB.")
		}},
		{"max_field_kib", func(f *contactFormForm, p *parsedForm) string {
			n, ok := bounded(f.MaxFieldKiB, 1, formMaxFieldKiB)
			p.maxField = int64(n) << 10
			return unless(ok, "The field limit must be between 1 and 1024 KiB.")
		}},
		{"rate_per_addr", func(f *contactFormForm, p *parsedForm) string {
			n, ok := bounded(f.RatePerAddr, 0, formMaxRate)
			p.ratePerAddr = n
			return unless(ok, perHour)
		}},
		{"rate_per_form", func(f *contactFormForm, p *parsedForm) string {
			n, ok := bounded(f.RatePerForm, 0, formMaxRate)
			p.ratePerForm = n
			return unless(ok, perHour)
		}},
		{"captcha_provider", func(f *contactFormForm, _ *parsedForm) string {
			return unless(f.CaptchaProvider == "" || captchaProvider(f.CaptchaProvider), "Choose a captcha provider, or none.")
		}},
		{"captcha_site_key", func(f *contactFormForm, _ *parsedForm) string {
			if captchaProvider(f.CaptchaProvider) && f.CaptchaSiteKey == "" {
				return "Enter the site key the captcha provider gave you (it goes into the snippet), or choose no captcha."
			}
			return unless(validSiteKey(f.CaptchaSiteKey), "A site key is at most 200 letters, digits, dashes and underscores.")
		}},
		{"captcha_secret", func(f *contactFormForm, _ *parsedForm) string {
			return unless(len(f.CaptchaSecret) <= formMaxSecret && !hasControl(f.CaptchaSecret), "The secret key is one line of at most 1024 characters.")
		}},
	}
}

// unless returns msg when ok is false, else "".
func unless(ok bool, msg string) string {
	if ok {
		return ""
	}
	return msg
}

func captchaProvider(p string) bool { return p == store.CaptchaTurnstile || p == store.CaptchaHCaptcha }

func checkFormName(name string) string {
	switch {
	case name == "":
		return "Give the form a name, like \u201cContact page of example.org\u201d."
	case len(name) > formMaxName || hasControl(name):
		return "The name must be one line of at most 100 characters."
	}
	return ""
}

func checkRecipients(f *contactFormForm, p *parsedForm) string {
	for _, r := range splitList(f.Recipients, true) {
		a, err := message.ParseAddress("recipient", r)
		if err != nil || a.Address != r {
			return "\u201c" + r + "\u201d is not an email address. Write bare addresses, like owner@example.org, one per line."
		}
		p.recipients = append(p.recipients, a.Address)
	}
	switch n := len(p.recipients); {
	case n == 0:
		return "Enter at least one recipient: who receives the messages."
	case n > formMaxRecipients:
		return "At most 50 recipients, please."
	}
	return ""
}

func checkOrigins(f *contactFormForm, p *parsedForm) string {
	for _, o := range splitList(f.AllowedOrigins, true) {
		n, err := contact.NormalizeOrigin(o)
		if err != nil || !bareOrigin(o) {
			return "\u201c" + o + "\u201d is not an origin. Write the site's scheme and host, like https://www.example.org, one per line."
		}
		if !slices.Contains(p.origins, n) {
			p.origins = append(p.origins, n)
		}
	}
	return unless(len(p.origins) <= formMaxOrigins, "At most 20 origins, please.")
}

// checkRedirectURL checks a success or error page address ("" is
// sockmail's own page).
func checkRedirectURL(v string) string {
	if v == "" {
		return ""
	}
	pu, err := url.Parse(v)
	ok := err == nil && (pu.Scheme == "https" || pu.Scheme == "http") && pu.Host != "" && len(v) <= formMaxURL && !hasControl(v)
	return unless(ok, "Enter a full address starting with https://, or leave it empty for sockmail's own page.")
}

func checkFieldNames(f *contactFormForm, p *parsedForm) string {
	for _, n := range strings.FieldsFunc(f.Fields, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if !fieldNameRE().MatchString(n) {
			return "\u201c" + n + "\u201d cannot be a field name: use letters, digits, \u201c_\u201d, \u201c.\u201d or \u201c-\u201d, not starting with \u201c_\u201d."
		}
		if !slices.Contains(p.fields, n) {
			p.fields = append(p.fields, n)
		}
	}
	return unless(len(p.fields) > 0 && len(p.fields) <= formMaxFields, "List between 1 and 30 fields, like \u201cname, email, message\u201d.")
}

// bounded parses an integer between lo and hi; 0 and false when it is
// not one.
func bounded(s string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// bareOrigin reports whether s is an origin, without path (but "/"),
// query or fragment.
func bareOrigin(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	return err == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}

// validSiteKey reports whether s looks like a captcha site key
// (Turnstile's "0x4AAA…", hCaptcha's UUIDs): it is pasted into an HTML
// attribute, so nothing else is taken.
func validSiteKey(s string) bool {
	return len(s) <= 200 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// apply copies the checked values into f. The captcha secret is handled
// by the caller, which seals it.
func (f *contactFormForm) apply(dst *store.Form, p parsedForm) {
	dst.Name, dst.Slug, dst.Recipients, dst.ProfileID = f.Name, f.Slug, p.recipients, p.profileID
	dst.FromAddr, dst.FromName, dst.AllowedOrigins = f.FromAddr, f.FromName, p.origins
	dst.SuccessURL, dst.ErrorURL, dst.SubjectTemplate, dst.Fields = f.SuccessURL, f.ErrorURL, f.SubjectTemplate, p.fields
	dst.AllowUploads, dst.MaxUploadBytes, dst.MaxFieldBytes = f.AllowUploads, p.maxUpload, p.maxField
	dst.RatePerAddr, dst.RatePerForm, dst.CaptchaProvider, dst.Enabled = p.ratePerAddr, p.ratePerForm, f.CaptchaProvider, f.Enabled
	dst.CaptchaSiteKey = ""
	if f.CaptchaProvider != "" {
		dst.CaptchaSiteKey = f.CaptchaSiteKey
	}
}
