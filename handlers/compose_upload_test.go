package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestComposeUploadOverLimit posts files over the attachment limit (1 MiB
// in the test app) with every other field typed: the answer is the
// compose form again (422), every typed value in place, the error on the
// attachments field stating the same limit as the form's hint (422, not
// the redirect to a started send). Files far beyond the old body limit (limit + 1 MiB) get
// the same answer instead of a 413 page.
func TestComposeUploadOverLimit(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tests := []struct {
		name  string
		files []file
		want  string // in the attachments error
	}{
		{"two files just over", []file{{"a.bin", strings.Repeat("a", 600<<10)}, {"b.bin", strings.Repeat("b", 600<<10)}},
			"the 2 files chosen add up to 1.2 MiB; together they may be at most 1.0 MiB"},
		{"one file far over the body limit", []file{{"big.bin", strings.Repeat("c", 3<<20)}},
			"the file chosen is 3.0 MiB; together they may be at most 1.0 MiB"},
		{"too many files", manyFiles(21), "21 files were chosen; at most 20 can be attached"},
		// Past what is read at all (text fields' 10 MiB + 4 x the limit):
		// the reading stops, the fields sent before the files are kept.
		{"files past the read bound", []file{{"huge.bin", strings.Repeat("d", 15<<20)}},
			"the file chosen is more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := composeForm(c.csrf("/compose"))
			typed := map[string]string{
				"from": "Ann <ann@example.test>", "to": "bob@example.test, carol@example.test", "cc": "dave@example.test",
				"bcc": "erin@example.test", "reply_to": "ann@example.test", "subject": "Quarterly numbers",
				"html": "<p>Numbers</p>", "headers": "X-Kept: yes", "dsn_envid": "ENV42", "helo": "client.example.test",
				"username": "ann",
			}
			for k, v := range typed {
				form.Set(k, v)
			}
			form.Set("text", "Dear Bob,\nthe numbers.\n")
			form.Set("stop_after", "rcpt")
			form.Set("auth_mech", "PLAIN")
			form.Set("show_body", "on")
			form.Set("dsn_notify", "FAILURE")
			r := c.postMultipart("/compose", form, tt.files...)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", r.status, r.body)
			}
			if r.testid(t, "compose-form").Length() != 1 {
				t.Fatal("the answer is not the compose form")
			}
			for k, v := range typed {
				if got, _ := r.testid(t, "input-"+k).Attr("value"); k != "html" && k != "headers" && got != v {
					t.Errorf("field %s = %q, want %q kept", k, got, v)
				}
			}
			for _, k := range []string{"text", "html", "headers"} {
				if got := r.testid(t, "input-"+k).Text(); got != form.Get(k) {
					t.Errorf("textarea %s = %q, want %q kept", k, got, form.Get(k))
				}
			}
			if v, _ := r.doc(t).Find(`#f-stop_after option[selected]`).Attr("value"); v != "rcpt" {
				t.Errorf("stop after %q, want rcpt kept", v)
			}
			if r.doc(t).Find(`#f-auth_mech option[value="PLAIN"][selected]`).Length() != 1 ||
				r.doc(t).Find(`input[name="show_body"][checked]`).Length() != 1 ||
				r.doc(t).Find(`input[name="dsn_notify"][value="FAILURE"][checked]`).Length() != 1 {
				t.Error("a select or checkbox was not kept")
			}
			msg := r.testid(t, "error-attachments").Text()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "Choose the files again") {
				t.Errorf("attachments error %q, want %q and how to go on", msg, tt.want)
			}
			if !strings.Contains(msg, "1.0 MiB") || !strings.Contains(r.testid(t, "hint-attachments").Text(), "1.0 MiB") {
				t.Errorf("error %q and hint %q do not state the same 1.0 MiB", msg, r.testid(t, "hint-attachments").Text())
			}
			in := r.testid(t, "input-attachments")
			if inv, _ := in.Attr("aria-invalid"); inv != "true" {
				t.Errorf("attachments aria-invalid %q", inv)
			}
			if d, _ := in.Attr("aria-describedby"); !strings.Contains(d, "err-attachments") {
				t.Errorf("attachments aria-describedby %q does not name the error", d)
			}
			if _, ok := in.Attr("autofocus"); !ok {
				t.Error("the attachments field (the only error) has no autofocus")
			}
		})
	}
}

func manyFiles(n int) []file {
	out := make([]file, n)
	for i := range out {
		out[i] = file{name: "f" + strings.Repeat("x", i) + ".txt", content: "x"}
	}
	return out
}

// TestComposeUploadWithinLimit: files that fit are attached and sent.
func TestComposeUploadWithinLimit(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	r := c.waitDone(c.send(form, file{"a.txt", strings.Repeat("a", 500<<10)}, file{"b.txt", strings.Repeat("b", 500<<10)}))
	if got := statusOf(t, r); got != "sent" {
		t.Fatalf("status %q", got)
	}
}

// TestComposeFieldErrorsThroughTheRouter posts the compose form with one
// mistake at a time: the answer is the form (422) with the message beside
// the field, naming it and the value, what was typed kept, and the field
// focused. The custom header case is refused where the message is built
// (prepareSend), after the form's own checks.
func TestComposeFieldErrorsThroughTheRouter(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tests := []struct {
		name  string
		set   map[string]string
		field string
		want  string // the whole message
	}{
		{"a bad recipient among three", map[string]string{"to": "ann@example.test, bob.example.org, carol@example.test"}, "to",
			`To: "bob.example.org" (address 2 of 3) is not an email address: it has no "@". Write it as name@domain, e.g. bob@example.org.`},
		{"Bcc name without brackets", map[string]string{"bcc": "Erin Example erin@example.test"}, "bcc",
			`Bcc: "Erin Example erin@example.test" is a name and an address without angle brackets. Write it as Erin Example <erin@example.test>.`},
		{"host with a port", map[string]string{"server": "adhoc", "host": "smtp.example.test:25", "port": "25"}, "host",
			`Host: "smtp.example.test:25" includes a port. Write the host here and the port in the Port field.`},
		{"subject injection", map[string]string{"subject": "Hi\r\nBcc: victim@example.test"}, "subject",
			`Subject: it holds a line break. A subject is one line: remove the break (a line break could add headers to the message). Add headers in Custom headers.`},
		{"reserved custom header", map[string]string{"headers": "Bcc: victim@example.test"}, "headers",
			`Custom headers: header field Bcc: set by the message itself, not as a custom field. Remove that line: From, To, Cc, Bcc, Reply-To and Subject come from the form's own fields, and sockmail writes Date, Message-ID and the MIME headers.`},
		{"stop after", map[string]string{"stop_after": "body"}, "stop_after",
			`Stop after: "body" is not one of the choices. Choose "Nothing: send the message" or a step: Connect, EHLO, STARTTLS, AUTH, MAIL FROM, RCPT TO.`},
		{"a deleted profile", map[string]string{"server": "999"}, "server", "The server profile 999 no longer exists."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := composeForm(c.csrf("/compose"))
			form.Set("cc", "kept@example.test")
			for k, v := range tt.set {
				form.Set(k, v)
			}
			r := c.postMultipart("/compose", form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			if got := r.testid(t, "error-"+tt.field).Text(); got != tt.want {
				t.Errorf("message\n got %s\nwant %s", got, tt.want)
			}
			if got, _ := r.testid(t, "input-cc").Attr("value"); tt.field != "cc" && got != "kept@example.test" {
				t.Errorf("Cc %q not kept", got)
			}
			if _, ok := r.doc(t).Find("#f-" + tt.field).Attr("autofocus"); !ok {
				t.Errorf("#f-%s has no autofocus", tt.field)
			}
		})
	}
}
