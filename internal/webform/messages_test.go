package webform

import (
	"strings"
	"testing"
)

// TestComposeErrorText: every compose field's message names the field,
// quotes the offending value (the bad entry among several) and says how
// to fix it. The whole message is compared, so a vague rewording fails.
func TestComposeErrorText(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *Compose)
		field  string
		want   string
	}{
		{"To without @", func(f *Compose) { f.To = "bob.example.org" }, "to",
			`To: "bob.example.org" is not an email address: it has no "@". Write it as name@domain, e.g. bob@example.org.`},
		{"the bad entry among several", func(f *Compose) { f.To = "ann@example.org, bob.example.org, carol@example.org" }, "to",
			`To: "bob.example.org" (address 2 of 3) is not an email address: it has no "@". Write it as name@domain, e.g. bob@example.org.`},
		{"a comma inside a quoted name is no separator", func(f *Compose) { f.Cc = `"Smith, Ann" <ann@example.org>, bob@` }, "cc",
			`Cc: "bob@" (address 2 of 2) is not an email address: nothing comes after the "@". Write the domain after it, as in bob@example.org.`},
		{"name without angle brackets", func(f *Compose) { f.To = "Bob Smith bob@example.org" }, "to",
			`To: "Bob Smith bob@example.org" is a name and an address without angle brackets. Write it as Bob Smith <bob@example.org>.`},
		{"unclosed angle bracket", func(f *Compose) { f.Bcc = "Bob <bob@example.org" }, "bcc",
			`Bcc: "Bob <bob@example.org" is not an email address: it has "<" but no closing ">". Write a name and an address as Bob Smith <bob@example.org>.`},
		{"semicolon separator", func(f *Compose) { f.To = "ann@example.org; bob@example.org" }, "to",
			`To: "ann@example.org; bob@example.org" is not an email address: it has ";". Separate addresses with commas, as in bob@example.org, carol@example.org.`},
		{"two @", func(f *Compose) { f.To = "bob@@example.org" }, "to",
			`To: "bob@@example.org" is not an email address: it has 2 "@". An address has exactly one, as in bob@example.org; separate several addresses with commas.`},
		{"nothing before @", func(f *Compose) { f.ReplyTo = "@example.org" }, "reply_to",
			`Reply-To: "@example.org" is not an email address: nothing comes before the "@". Write the mailbox name before it, as in bob@example.org.`},
		{"empty domain label", func(f *Compose) { f.To = "bob@example..org" }, "to",
			`To: "bob@example..org" is not an email address: the domain "example..org" has an empty part between dots. Write it as example.org.`},
		{"dot at the end of the local part", func(f *Compose) { f.To = "bob.@example.org" }, "to",
			`To: "bob.@example.org" is not an email address: the part before "@" starts or ends with a dot, or has two dots in a row. Write it as bob.smith@example.org.`},
		{"bad domain character", func(f *Compose) { f.To = "bob@exa!mple.org" }, "to",
			`To: "bob@exa!mple.org" is not an email address: domain has '!'. Write it as name@domain, e.g. bob@example.org.`},
		{"no From", func(f *Compose) { f.From = "" }, "from",
			`From: enter the sender's address, e.g. bob@example.org or Bob Smith <bob@example.org>.`},
		{"From without @", func(f *Compose) { f.From = "sockmail" }, "from",
			`From: "sockmail" is not an email address: it has no "@". Write it as name@domain, e.g. bob@example.org.`},
		{"two senders", func(f *Compose) { f.From = "ann@example.org, bob@example.org" }, "from",
			`From: it holds 2 addresses; a message has one sender. Keep one, and put the others in Reply-To if replies should reach them.`},
		{"From with a header injected", func(f *Compose) { f.From = "a@example.test\r\nBcc: x@example.test" }, "from",
			`From: "a@example.test\r\nBcc: x@example.test" holds a line break. Write each address on one line, separated by commas.`},
		{"no recipient", func(f *Compose) { f.To = "" }, "to",
			`To: enter at least one recipient in To, Cc or Bcc, e.g. bob@example.org.`},
		{"subject with a header injected", func(f *Compose) { f.Subject = "Hi\nBcc: x@example.org" }, "subject",
			`Subject: it holds a line break. A subject is one line: remove the break (a line break could add headers to the message). Add headers in Custom headers.`},
		{"header without colon", func(f *Compose) { f.Headers = "X-Ok: 1\nX-Test yes" }, "headers",
			`Custom headers, line 2 ("X-Test yes"): it has no ":". Write each header as Name: value, e.g. X-Campaign: spring.`},
		{"header name with a space", func(f *Compose) { f.Headers = "X Test: yes" }, "headers",
			`Custom headers, line 1 ("X Test: yes"): the name "X Test" may hold only letters, digits and punctuation, without spaces, e.g. X-Campaign.`},
		{"text far too long", func(f *Compose) { f.Text = strings.Repeat("x", 5<<20) }, "text",
			`Text body: it is 5.0 MiB; at most 4.0 MiB. Shorten it, or attach the text as a file.`},
		{"text not UTF-8", func(f *Compose) { f.Text = "caf\xe9" }, "text",
			`Text body: it is not valid UTF-8 text. Paste it again from a UTF-8 source.`},
		{"HTML too long", func(f *Compose) { f.HTML = strings.Repeat("x", maxBody+1) }, "html",
			`HTML body: it is 4194305 bytes; at most 4194304 bytes. Shorten it, or attach the text as a file.`},
		{"host with a port", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "smtp.example.org:587", "587" }, "host",
			`Host: "smtp.example.org:587" includes a port. Write the host here and the port in the Port field.`},
		{"host is a URL", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "https://smtp.example.org", "587" }, "host",
			`Host: "https://smtp.example.org" looks like a web address. Write only the host name or IP address, e.g. smtp.example.org or 192.0.2.10.`},
		{"host with a space", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "smtp example.org", "25" }, "host",
			`Host: "smtp example.org" has a space or a control character. Write only the host name or IP address, e.g. smtp.example.org or 192.0.2.10.`},
		{"port not a number", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "h.example", "smtp" }, "port",
			`Port: "smtp" is not a number. Enter a port between 1 and 65535: usually 25 (relay), 587 (submission, STARTTLS) or 465 (implicit TLS).`},
		{"port out of range", func(f *Compose) { f.ServerChoice, f.Host, f.Port = ServerAdhoc, "h.example", "99999" }, "port",
			`Port: 99999 is out of range. Enter a port between 1 and 65535: usually 25 (relay), 587 (submission, STARTTLS) or 465 (implicit TLS).`},
		{"TLS mode", func(f *Compose) { f.TLS = "sslv3" }, "tls",
			`TLS mode: "sslv3" is not one of the choices. Choose "None", "STARTTLS (required)", "STARTTLS if offered" or "Implicit TLS" (port 465).`},
		{"AUTH mechanism", func(f *Compose) { f.AuthMech, f.Username = "NTLM", "u" }, "auth_mech",
			`AUTH: "NTLM" is not one of the choices. Choose "No AUTH", "Best offered", PLAIN, LOGIN or CRAM-MD5.`},
		{"AUTH without user", func(f *Compose) { f.AuthMech = "PLAIN" }, "username",
			`User: enter the user name to authenticate as (often the full address, like bob@example.org), or choose "No AUTH".`},
		{"HELO with a space", func(f *Compose) { f.Helo = "my host" }, "helo",
			`HELO name: "my host" has a space or a line break. Write one host name, like client.example.org, or leave it empty.`},
		{"server choice", func(f *Compose) { f.ServerChoice = "x" }, "server",
			`Server: "x" is not one of the choices. Choose the built-in capture server, a saved profile, or "Another server".`},
		{"stop after", func(f *Compose) { f.StopAfter = "data" }, "stop_after",
			`Stop after: "data" is not one of the choices. Choose "Nothing: send the message" or a step: Connect, EHLO, STARTTLS, AUTH, MAIL FROM, RCPT TO.`},
		{"DSN NEVER with others", func(f *Compose) { f.DSNNotify = []string{"SUCCESS", "NEVER"} }, "dsn_notify",
			`Notify: NEVER cannot be combined with SUCCESS (RFC 3461). Untick NEVER or the others.`},
		{"DSN envelope id", func(f *Compose) { f.DSNEnvID = "a b" }, "dsn_envid",
			`Envelope id: "a b" has ' '; use printable ASCII without spaces, like order-2024-17.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := validCompose()
			tt.change(f)
			errs := f.Validate()
			if got := errs[tt.field]; got != tt.want {
				t.Errorf("%s:\n got %s\nwant %s\n(all: %v)", tt.field, got, tt.want, errs)
			}
		})
	}
}

// TestProfileErrorText: the profile form's messages name the field too.
func TestProfileErrorText(t *testing.T) {
	tests := []struct {
		name  string
		p     Profile
		field string
		want  string
	}{
		{"no name", Profile{Server: Server{Host: "h.example", Port: "25", TLS: "none"}}, "name",
			"Name: enter a name for the profile, e.g. Office relay."},
		{"no host", Profile{Name: "n", Server: Server{Port: "25", TLS: "none"}}, "host",
			`Host: enter the server's host name or IP address, e.g. smtp.example.org (needed for "Another server").`},
		{"host is an address", Profile{Name: "n", Server: Server{Host: "bob@example.org", Port: "25", TLS: "none"}}, "host",
			`Host: "bob@example.org" has an "@": it looks like an email address. Write only the host name or IP address, e.g. smtp.example.org or 192.0.2.10.`},
		{"no port", Profile{Name: "n", Server: Server{Host: "h.example", TLS: "none"}}, "port",
			"Port: enter the server's port. Enter a port between 1 and 65535: usually 25 (relay), 587 (submission, STARTTLS) or 465 (implicit TLS)."},
		{"no TLS mode", Profile{Name: "n", Server: Server{Host: "h.example", Port: "25"}}, "tls",
			`TLS mode: nothing was chosen. Choose "None", "STARTTLS (required)", "STARTTLS if offered" or "Implicit TLS" (port 465).`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.p.Validate()
			if got := errs[tt.field]; got != tt.want {
				t.Errorf("%s:\n got %s\nwant %s\n(all: %v)", tt.field, got, tt.want, errs)
			}
		})
	}
}
