package views

import (
	"net/http"
	"strconv"
)

func httpStatusText(code int) string { return http.StatusText(code) }

// describedBy returns the id of a field's error message when it has one.
func describedBy(name string, errs map[string]string) string {
	if _, ok := errs[name]; ok {
		return "err-" + name
	}
	return ""
}

func invalid(name string, errs map[string]string) string {
	if _, ok := errs[name]; ok {
		return "true"
	}
	return "false"
}

func rowsAttr(n int) string { return strconv.Itoa(n) }

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func tlsOptions() []Option {
	return []Option{
		{"none", "None (plain text)"},
		{"starttls", "STARTTLS (required)"},
		{"starttls-optional", "STARTTLS if offered"},
		{"implicit", "Implicit TLS (port 465)"},
	}
}

func authOptions() []Option {
	return []Option{
		{"", "No AUTH"},
		{"auto", "Best offered"},
		{"PLAIN", "PLAIN"},
		{"LOGIN", "LOGIN"},
		{"CRAM-MD5", "CRAM-MD5"},
	}
}

func stopOptions() []Option {
	return []Option{
		{"", "Nothing: send the message"},
		{"connect", "Connect"},
		{"ehlo", "EHLO"},
		{"starttls", "STARTTLS"},
		{"auth", "AUTH"},
		{"mail", "MAIL FROM"},
		{"rcpt", "RCPT TO"},
	}
}
