package views

import (
	"slices"
	"strings"
)

// fieldOrder lists the form fields in the order the forms show them, so
// that the error summary lists problems top to bottom and the first
// field with an error gets the focus (autofocus, without JavaScript).
// Names the list lacks come after, in alphabetical order.
func fieldOrder() []string {
	return []string{
		// sign-up and sign-in
		"setup_code", "email",
		// profile and contact forms
		"name", "slug", "fields", "subject_template", "recipients", "profile", "from_addr", "from_name",
		"allowed_origins", "success_url", "error_url", "max_field_kib", "rate_per_addr", "rate_per_form",
		"max_upload_kib", "captcha_provider", "captcha_site_key", "captcha_secret",
		// history filter (its "server" is compose's), compare
		"q", "status", "source", "recipient", "sender",
		// compose, profile and resend: the server
		"server", "since", "until", "a", "b", "host", "port", "tls", "auth_mech", "username", "password", "confirm", "helo",
		// compose: the message
		"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers",
		"dsn_notify", "dsn_ret", "dsn_envid", "stop_after",
		// check: the sender side and the test message
		"target", "from_domain", "ip", "dkim_selector", "send_to", "send_from", "send_profile",
	}
}

// errorFields returns the names of the fields with an error, in the
// order the form shows them; "form" (a form-wide problem) is left out.
func errorFields(errs map[string]string) []string {
	order := fieldOrder()
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	var names []string
	for name := range errs {
		if name != "form" {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return names
}

// autofocus reports whether name is the first field with an error: the
// one the browser focuses when the page loads.
func autofocus(name string, errs map[string]string) bool {
	f := errorFields(errs)
	return len(f) > 0 && f[0] == name
}

// join2 joins two space-separated id lists, either of which may be empty.
func join2(a, b string) string {
	return strings.TrimSpace(a + " " + b)
}
