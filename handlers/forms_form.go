package handlers

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

var (
	slugRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{2,63}$`)
	fieldNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// validSlug reports whether an admin may give a form this slug (the part
// of its public address after /f/): 3 to 64 lower-case letters, digits,
// "-" or "_". The store's random slugs are of this kind.
func validSlug(s string) bool { return slugRE.MatchString(s) }

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
	switch {
	case f.Name == "":
		errs["name"] = "Give the form a name, like \u201cContact page of example.org\u201d."
	case len(f.Name) > formMaxName || hasControl(f.Name):
		errs["name"] = "The name must be one line of at most 100 characters."
	}
	if !validSlug(f.Slug) {
		errs["slug"] = "The address name must be 3 to 64 lower-case letters, digits, \u201c-\u201d or \u201c_\u201d, starting with a letter or digit."
	}

	for _, r := range splitList(f.Recipients, true) {
		a, err := message.ParseAddress("recipient", r)
		if err != nil || a.Address != r {
			errs["recipients"] = "\u201c" + r + "\u201d is not an email address. Write bare addresses, like owner@example.org, one per line."
			break
		}
		p.recipients = append(p.recipients, a.Address)
	}
	switch n := len(p.recipients); {
	case errs["recipients"] != "":
	case n == 0:
		errs["recipients"] = "Enter at least one recipient: who receives the messages."
	case n > formMaxRecipients:
		errs["recipients"] = "At most 50 recipients, please."
	}

	id, err := strconv.ParseInt(f.Profile, 10, 64)
	if err != nil || id < 0 {
		errs["profile"] = "Choose the server that delivers the messages."
	}
	p.profileID = id

	if a, err := message.ParseAddress("From", f.FromAddr); err != nil || a.Address != f.FromAddr {
		errs["from_addr"] = "Enter the address messages come from, an address of your own site, like contact@example.org."
	}
	if len(f.FromName) > formMaxName || hasControl(f.FromName) {
		errs["from_name"] = "The sender name must be one line of at most 100 characters."
	}

	for _, o := range splitList(f.AllowedOrigins, true) {
		n, err := contact.NormalizeOrigin(o)
		if err != nil || !bareOrigin(o) {
			errs["allowed_origins"] = "\u201c" + o + "\u201d is not an origin. Write the site's scheme and host, like https://www.example.org, one per line."
			break
		}
		if !slices.Contains(p.origins, n) {
			p.origins = append(p.origins, n)
		}
	}
	if len(p.origins) > formMaxOrigins {
		errs["allowed_origins"] = "At most 20 origins, please."
	}

	for _, u := range []struct{ name, value string }{{"success_url", f.SuccessURL}, {"error_url", f.ErrorURL}} {
		if u.value == "" {
			continue
		}
		pu, err := url.Parse(u.value)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || len(u.value) > formMaxURL || hasControl(u.value) {
			errs[u.name] = "Enter a full address starting with https://, or leave it empty for sockmail's own page."
		}
	}

	if len([]rune(f.SubjectTemplate)) > formMaxSubject || hasControl(f.SubjectTemplate) {
		errs["subject_template"] = "The subject must be one line of at most 200 characters."
	}

	for _, n := range strings.FieldsFunc(f.Fields, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if !fieldNameRE.MatchString(n) {
			errs["fields"] = "\u201c" + n + "\u201d cannot be a field name: use letters, digits, \u201c_\u201d, \u201c.\u201d or \u201c-\u201d, not starting with \u201c_\u201d."
			break
		}
		if !slices.Contains(p.fields, n) {
			p.fields = append(p.fields, n)
		}
	}
	if errs["fields"] == "" && (len(p.fields) == 0 || len(p.fields) > formMaxFields) {
		errs["fields"] = "List between 1 and 30 fields, like \u201cname, email, message\u201d."
	}

	maxUpKiB := maxUpload >> 10
	p.maxUpload = int64(kib(f.MaxUploadKiB, 1, int(maxUpKiB), "max_upload_kib", "The upload limit must be between 1 and "+strconv.FormatInt(maxUpKiB, 10)+" KiB.", errs)) << 10
	p.maxField = int64(kib(f.MaxFieldKiB, 1, formMaxFieldKiB, "max_field_kib", "The field limit must be between 1 and 1024 KiB.", errs)) << 10
	p.ratePerAddr = kib(f.RatePerAddr, 0, formMaxRate, "rate_per_addr", "Enter a number of messages per hour (0 for no limit).", errs)
	p.ratePerForm = kib(f.RatePerForm, 0, formMaxRate, "rate_per_form", "Enter a number of messages per hour (0 for no limit).", errs)

	switch f.CaptchaProvider {
	case "", store.CaptchaTurnstile, store.CaptchaHCaptcha:
	default:
		errs["captcha_provider"] = "Choose a captcha provider, or none."
	}
	switch {
	case (f.CaptchaProvider == store.CaptchaTurnstile || f.CaptchaProvider == store.CaptchaHCaptcha) && f.CaptchaSiteKey == "":
		errs["captcha_site_key"] = "Enter the site key the captcha provider gave you (it goes into the snippet), or choose no captcha."
	case !validSiteKey(f.CaptchaSiteKey):
		errs["captcha_site_key"] = "A site key is at most 200 letters, digits, dashes and underscores."
	}
	if len(f.CaptchaSecret) > formMaxSecret || hasControl(f.CaptchaSecret) {
		errs["captcha_secret"] = "The secret key is one line of at most 1024 characters."
	}
	return errs, p
}

// kib parses a bounded integer, setting errs[name] to msg when it is not.
func kib(s string, lo, hi int, name, msg string, errs webform.Errors) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		errs[name] = msg
		return 0
	}
	return n
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
