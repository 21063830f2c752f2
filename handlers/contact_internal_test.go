package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"sockmail/internal/store"
)

func TestContactFormFormValidate(t *testing.T) {
	good := func() *contactFormForm {
		r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(url.Values{
			"name": {"Home"}, "slug": {"home-page_1"}, "recipients": {"a@example.test, b@example.test\nc@example.test"},
			"profile": {"0"}, "from_addr": {"web@example.test"}, "fields": {"name email\tmessage,phone"},
			"allowed_origins": {"https://example.org\nhttps://example.org/"}, "max_upload_kib": {"100"},
			"max_field_kib": {"8"}, "rate_per_addr": {"0"}, "rate_per_form": {"10"}, "subject_template": {"Hi {{name}}"},
		}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return readContactFormForm(r)
	}
	errs, p := good().Validate(1 << 20)
	if len(errs) != 0 {
		t.Fatalf("good form: %v", errs)
	}
	if len(p.recipients) != 3 || len(p.origins) != 1 || strings.Join(p.fields, ",") != "name,email,message,phone" ||
		p.maxUpload != 100<<10 || p.maxField != 8<<10 || p.ratePerAddr != 0 || p.ratePerForm != 10 {
		t.Errorf("parsed %+v", p)
	}
	for _, c := range []struct {
		field string
		edit  func(f *contactFormForm)
	}{
		{"name", func(f *contactFormForm) { f.Name = "" }},
		{"name", func(f *contactFormForm) { f.Name = "a\nb" }},
		{"slug", func(f *contactFormForm) { f.Slug = "ab" }},
		{"slug", func(f *contactFormForm) { f.Slug = "-abc" }},
		{"slug", func(f *contactFormForm) { f.Slug = "ABC" }},
		{"recipients", func(f *contactFormForm) { f.Recipients = "" }},
		{"recipients", func(f *contactFormForm) { f.Recipients = "Owner <o@example.test>" }},
		{"recipients", func(f *contactFormForm) { f.Recipients = strings.Repeat("a@example.test\n", 51) }},
		{"profile", func(f *contactFormForm) { f.Profile = "x" }},
		{"from_addr", func(f *contactFormForm) { f.FromAddr = "" }},
		{"from_addr", func(f *contactFormForm) { f.FromAddr = "a@b\r\nBcc: c@d" }},
		{"from_name", func(f *contactFormForm) { f.FromName = "a\rb" }},
		{"allowed_origins", func(f *contactFormForm) { f.AllowedOrigins = "example.org" }},
		{"allowed_origins", func(f *contactFormForm) { f.AllowedOrigins = "https://example.org/path" }},
		{"allowed_origins", func(f *contactFormForm) { f.AllowedOrigins = "https://example.org/?q" }},
		{"success_url", func(f *contactFormForm) { f.SuccessURL = "/relative" }},
		{"error_url", func(f *contactFormForm) { f.ErrorURL = "javascript:alert(1)" }},
		{"subject_template", func(f *contactFormForm) { f.SubjectTemplate = "a\nb" }},
		{"subject_template", func(f *contactFormForm) { f.SubjectTemplate = strings.Repeat("x", 201) }},
		{"fields", func(f *contactFormForm) { f.Fields = "" }},
		{"fields", func(f *contactFormForm) { f.Fields = "_token" }},
		{"fields", func(f *contactFormForm) { f.Fields = "na<me" }},
		{"max_upload_kib", func(f *contactFormForm) { f.MaxUploadKiB = "1025" }},
		{"max_upload_kib", func(f *contactFormForm) { f.MaxUploadKiB = "0" }},
		{"max_field_kib", func(f *contactFormForm) { f.MaxFieldKiB = "2048" }},
		{"rate_per_addr", func(f *contactFormForm) { f.RatePerAddr = "-1" }},
		{"rate_per_form", func(f *contactFormForm) { f.RatePerForm = "lots" }},
		{"captcha_provider", func(f *contactFormForm) { f.CaptchaProvider = "recaptcha" }},
		{"captcha_secret", func(f *contactFormForm) { f.CaptchaSecret = "a\nb" }},
		{"captcha_site_key", func(f *contactFormForm) { f.CaptchaProvider = store.CaptchaHCaptcha }},
		{"captcha_site_key", func(f *contactFormForm) { f.CaptchaSiteKey = "key\"><script>" }},
		{"captcha_site_key", func(f *contactFormForm) { f.CaptchaSiteKey = strings.Repeat("k", 201) }},
	} {
		f := good()
		c.edit(f)
		errs, _ := f.Validate(1 << 20)
		if errs[c.field] == "" || len(errs) != 1 {
			t.Errorf("%s: errors %v", c.field, errs)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	for _, c := range []struct {
		ctype, accept string
		want          bool
	}{
		{"application/json", "", true},
		{"application/json; charset=utf-8", "text/html", true},
		{"application/x-www-form-urlencoded", "application/json", true},
		{"multipart/form-data; boundary=x", "application/json, text/plain, */*", true},
		{"application/x-www-form-urlencoded", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"application/x-www-form-urlencoded", "*/*", false},
		{"application/x-www-form-urlencoded", "", false},
		{"application/x-www-form-urlencoded", "text/html, application/json", false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", c.ctype)
		r.Header.Set("Accept", c.accept)
		if got := wantsJSON(r); got != c.want {
			t.Errorf("%q %q: %v", c.ctype, c.accept, got)
		}
	}
}
