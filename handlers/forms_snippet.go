package handlers

import (
	"fmt"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"sockmail/internal/contact"
	"sockmail/internal/store"
)

// The embed snippets shown on a form's page, ready to paste into a site.
// Both carry the honeypot field, hidden from people; the captcha widget
// when the form uses one; a file input when it accepts uploads.

// textareaField reports whether a field of this name (lower case) gets a
// multi-line input. A switch, not a package-level map: nothing to build
// when the program starts.
func textareaField(name string) bool {
	switch name {
	case "message", "comment", "comments", "body", "text",
		"details", "description", "question", "enquiry", "inquiry":
		return true
	}
	return false
}

// fieldLabel turns a field name into a label: "first_name" is "First name".
func fieldLabel(name string) string {
	s := strings.NewReplacer("_", " ", "-", " ", ".", " ").Replace(name)
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// snippetFields writes the inputs of the form's expected fields.
func snippetFields(b *strings.Builder, f *store.Form, indent string) {
	for _, name := range f.Fields {
		n := html.EscapeString(name)
		label := html.EscapeString(fieldLabel(name))
		switch {
		case textareaField(strings.ToLower(name)):
			fmt.Fprintf(b, "%s<p><label>%s<br><textarea name=\"%s\" rows=\"6\" required></textarea></label></p>\n", indent, label, n)
		case strings.EqualFold(name, contact.FieldEmail):
			fmt.Fprintf(b, "%s<p><label>%s<br><input type=\"email\" name=\"%s\" autocomplete=\"email\" required></label></p>\n", indent, label, n)
		case strings.EqualFold(name, contact.FieldName):
			fmt.Fprintf(b, "%s<p><label>%s<br><input type=\"text\" name=\"%s\" autocomplete=\"name\" required></label></p>\n", indent, label, n)
		case strings.EqualFold(name, "phone") || strings.EqualFold(name, "tel"):
			fmt.Fprintf(b, "%s<p><label>%s<br><input type=\"tel\" name=\"%s\" autocomplete=\"tel\"></label></p>\n", indent, label, n)
		default:
			fmt.Fprintf(b, "%s<p><label>%s<br><input type=\"text\" name=\"%s\"></label></p>\n", indent, label, n)
		}
	}
	if f.AllowUploads {
		fmt.Fprintf(b, "%s<p><label>Files<br><input type=\"file\" name=\"files\" multiple></label></p>\n", indent)
	}
	fmt.Fprintf(b, "%s<!-- Spam trap: people do not see this field and leave it empty. Keep it. -->\n", indent)
	fmt.Fprintf(b, "%s<p style=\"position:absolute;left:-9999px\" aria-hidden=\"true\"><label>Leave this empty <input type=\"text\" name=\"%s\" tabindex=\"-1\" autocomplete=\"off\"></label></p>\n", indent, contact.FieldHoneypot)
	switch f.CaptchaProvider {
	case store.CaptchaTurnstile:
		fmt.Fprintf(b, "%s<div class=\"cf-turnstile\" data-sitekey=\"%s\"></div>\n", indent, html.EscapeString(f.CaptchaSiteKey))
	case store.CaptchaHCaptcha:
		fmt.Fprintf(b, "%s<div class=\"h-captcha\" data-sitekey=\"%s\"></div>\n", indent, html.EscapeString(f.CaptchaSiteKey))
	}
}

// captchaScript is the provider's widget script, or "".
func captchaScript(f *store.Form) string {
	switch f.CaptchaProvider {
	case store.CaptchaTurnstile:
		return "<script src=\"https://challenges.cloudflare.com/turnstile/v0/api.js\" async defer></script>\n"
	case store.CaptchaHCaptcha:
		return "<script src=\"https://js.hcaptcha.com/1/api.js\" async defer></script>\n"
	}
	return ""
}

// plainSnippet is a plain HTML form that works without JavaScript: it
// posts to the endpoint, sockmail shows its one-click confirmation page
// (which carries the time-trap token), then the thank-you page or the
// form's success URL.
func plainSnippet(f *store.Form, endpoint string) string {
	var b strings.Builder
	enctype := ""
	if f.AllowUploads {
		enctype = ` enctype="multipart/form-data"`
	}
	b.WriteString(captchaScript(f))
	fmt.Fprintf(&b, "<form action=\"%s\" method=\"post\"%s accept-charset=\"utf-8\">\n", html.EscapeString(endpoint), enctype)
	snippetFields(&b, f, "  ")
	b.WriteString("  <p><button type=\"submit\">Send</button></p>\n</form>\n")
	return b.String()
}

// fetchSnippet is the same form sent with fetch(): it gets a time-trap
// token when the page loads, posts JSON (multipart when the form takes
// files) with Accept: application/json, and shows the answer's message
// in place.
func fetchSnippet(f *store.Form, endpoint string) string {
	var b strings.Builder
	b.WriteString(captchaScript(f))
	enctype := ""
	if f.AllowUploads {
		enctype = ` enctype="multipart/form-data"`
	}
	fmt.Fprintf(&b, "<form id=\"contact-form\" action=\"%s\" method=\"post\"%s>\n", html.EscapeString(endpoint), enctype)
	snippetFields(&b, f, "  ")
	b.WriteString("  <p><button type=\"submit\">Send</button></p>\n")
	b.WriteString("  <p class=\"contact-status\" role=\"status\" aria-live=\"polite\"></p>\n</form>\n")
	b.WriteString("<script>\n(function () {\n")
	b.WriteString("  var form = document.getElementById(\"contact-form\");\n")
	b.WriteString("  var status = form.querySelector(\".contact-status\");\n")
	b.WriteString("  var token = \"\";\n")
	b.WriteString("  function getToken() {\n")
	b.WriteString("    return fetch(form.action + \"/token\", { headers: { Accept: \"application/json\" } })\n")
	b.WriteString("      .then(function (r) { return r.json(); })\n")
	b.WriteString("      .then(function (d) { token = d.token || \"\"; });\n")
	b.WriteString("  }\n  getToken();\n")
	b.WriteString("  form.addEventListener(\"submit\", function (ev) {\n")
	b.WriteString("    ev.preventDefault();\n")
	b.WriteString("    var data = new FormData(form), body, headers = { Accept: \"application/json\" };\n")
	b.WriteString("    data.set(\"" + contact.FieldToken + "\", token);\n")
	if f.AllowUploads {
		b.WriteString("    body = data; // multipart, with the files\n")
	} else {
		b.WriteString("    var obj = {};\n")
		b.WriteString("    data.forEach(function (v, k) { obj[k] = k in obj ? [].concat(obj[k], v) : v; });\n")
		b.WriteString("    body = JSON.stringify(obj);\n")
		b.WriteString("    headers[\"Content-Type\"] = \"application/json\";\n")
	}
	b.WriteString("    status.textContent = \"Sending\\u2026\";\n")
	b.WriteString("    fetch(form.action, { method: \"POST\", headers: headers, body: body })\n")
	b.WriteString("      .then(function (r) { return r.json(); })\n")
	b.WriteString("      .then(function (d) {\n")
	b.WriteString("        status.textContent = d.message;\n")
	b.WriteString("        if (d.ok) { form.reset(); }\n")
	b.WriteString("        if (d.ok || d.error === \"expired\") { getToken(); }\n")
	b.WriteString("      })\n")
	b.WriteString("      .catch(function () { status.textContent = \"Sorry, your message could not be sent. Please try again.\"; });\n")
	b.WriteString("  });\n})();\n</script>\n")
	return b.String()
}
