package handlers_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// newPage waits for sel on the page that replaced the one marked by
// markOld: a form shown again looks like the one sent, so the test tells
// them apart by the mark the old document carried.
func newPage(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) ` + sel))
}

var markOld = chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)

// fieldLook is what the browser computed for a form field.
type fieldLook struct {
	ID          string `json:"id"`
	BorderColor string `json:"borderColor"`
	BorderWidth string `json:"borderWidth"`
	Invalid     string `json:"invalid"`
	DescribedBy string `json:"describedBy"`
}

// look returns the computed border of the field with that id, and the
// colour of the error text (the --fail colour) for comparison.
func look(t *testing.T, ctx context.Context, id string) (fieldLook, string) {
	t.Helper()
	f := value(t, ctx, chromedp.Evaluate[fieldLook](`(() => {
		const el = document.getElementById(`+"`"+id+"`"+`), cs = getComputedStyle(el);
		return {id: el.id, borderColor: cs.borderTopColor, borderWidth: cs.borderTopWidth,
			invalid: el.getAttribute("aria-invalid") || "", describedBy: el.getAttribute("aria-describedby") || ""};
	})()`))
	fail := value(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("p.error")).color`))
	return f, fail
}

// TestComposeErrorsInBrowser drives the compose form in Chromium: errors
// show a red border on each invalid field (the computed colour is the
// error colour, a valid field's is not), the first invalid field has the
// focus, the summary links to it; files over the limit are stopped in the
// browser before sending, with the limit the hint states; and the same
// files posted past the script (form.submit() fires no submit event) come
// back as the form in full, typed values kept, focus on the attachments.
func TestComposeErrorsInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx := browser(t)
	a := newApp(t, appOptions{}) // attachments: 1 MiB at most
	signUpInBrowser(t, ctx, a)

	// 1. Bad From and a bad entry among the recipients.
	run(t, ctx, "compose with mistakes",
		chromedp.SetValue(tid("input-from"), "sockmail"),
		chromedp.SetValue(tid("input-to"), "ann@example.test, bob.example.org"),
		chromedp.SetValue(tid("input-subject"), "kept subject"),
		markOld,
		chromedp.Click(tid("send")),
		newPage(`[data-testid="error-summary"]`),
	)
	screenshot(t, ctx, "compose-errors.png")
	if got := value(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); got != "f-from" {
		t.Errorf("focus on %q, want f-from (the first field with an error)", got)
	}
	from, fail := look(t, ctx, "f-from")
	to, _ := look(t, ctx, "f-to")
	subject, _ := look(t, ctx, "f-subject")
	for _, f := range []fieldLook{from, to} {
		if f.BorderColor != fail || f.BorderWidth != "2px" || f.Invalid != "true" || f.DescribedBy != "err-"+strings.TrimPrefix(f.ID, "f-") {
			t.Errorf("%s: border %s %s, aria-invalid %q, aria-describedby %q; want 2px %s, true, its error",
				f.ID, f.BorderWidth, f.BorderColor, f.Invalid, f.DescribedBy, fail)
		}
	}
	if subject.BorderColor == fail || subject.Invalid != "false" {
		t.Errorf("valid subject: border %s (the error colour is %s), aria-invalid %q", subject.BorderColor, fail, subject.Invalid)
	}
	if msg := value(t, ctx, chromedp.Text(tid("error-to"))); !strings.Contains(msg, `"bob.example.org" (address 2 of 2)`) {
		t.Errorf("To error %q does not name the bad entry", msg)
	}
	links := value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-testid="summary-list"] a')].map(a => a.getAttribute("href"))`))
	if strings.Join(links, " ") != "#f-from #f-to" {
		t.Errorf("summary links %v, want #f-from #f-to in form order", links)
	}
	if v := value(t, ctx, chromedp.Value(tid("input-subject"))); v != "kept subject" {
		t.Errorf("subject %q not kept", v)
	}

	// 2. Files over the limit: stopped in the browser.
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"a.bin", "b.bin"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 600<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	run(t, ctx, "choose files over the limit",
		chromedp.SetValue(tid("input-from"), "Ann <ann@example.test>"),
		chromedp.SetValue(tid("input-to"), "bob@example.test"),
		chromedp.SetUploadFiles(tid("input-attachments"), files),
		chromedp.WaitVisible(tid("error-attachments-js")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="compose-form"]').addEventListener("submit",
			e => { window.submitBlocked = e.defaultPrevented; })`),
		chromedp.Click(tid("send")),
		chromedp.Poll[chromedp.Void](`window.submitBlocked !== undefined`, chromedp.WithPollingTimeout(0)),
	)
	screenshot(t, ctx, "compose-upload-refused-in-browser.png")
	if !value(t, ctx, chromedp.Evaluate[bool](`window.submitBlocked`)) {
		t.Error("the submit of files over the limit was not blocked")
	}
	jsMsg := value(t, ctx, chromedp.Text(tid("error-attachments-js")))
	hint := value(t, ctx, chromedp.Text(tid("hint-attachments")))
	want := "the 2 files chosen add up to 1.2 MiB; together they may be at most 1.0 MiB"
	if !strings.Contains(jsMsg, want) || !strings.Contains(hint, "1.0 MiB") {
		t.Errorf("browser message %q, hint %q: want %q and the same 1.0 MiB", jsMsg, hint, want)
	}
	if got := value(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); got != "f-attachments" {
		t.Errorf("focus on %q after the refused submit, want f-attachments", got)
	}
	att, fail := look(t, ctx, "f-attachments")
	if att.Invalid != "true" || !strings.Contains(att.DescribedBy, "err-attachments-js") || att.BorderColor != fail {
		t.Errorf("attachments aria-invalid %q, aria-describedby %q, border %s (error colour %s)", att.Invalid, att.DescribedBy, att.BorderColor, fail)
	}

	// 3. The same files posted past the script: the server answers the
	// form in full.
	run(t, ctx, "post past the script",
		chromedp.SetValue(tid("input-cc"), "carol@example.test"),
		chromedp.SetValue(tid("input-headers"), "X-Kept: yes"),
		chromedp.SetValue(tid("input-stop_after"), "rcpt"),
		markOld,
		chromedp.Evaluate[chromedp.Void](`HTMLFormElement.prototype.submit.call(document.querySelector('[data-testid="compose-form"]'))`),
		newPage(`[data-testid="error-attachments"]`),
	)
	screenshot(t, ctx, "compose-upload-refused-by-server.png")
	kept := map[string]string{"input-from": "Ann <ann@example.test>", "input-to": "bob@example.test", "input-cc": "carol@example.test",
		"input-subject": "kept subject", "input-headers": "X-Kept: yes", "input-stop_after": "rcpt"}
	for id, want := range kept {
		if got := value(t, ctx, chromedp.Value(tid(id))); got != want {
			t.Errorf("%s = %q after the server's answer, want %q kept", id, got, want)
		}
	}
	msg := value(t, ctx, chromedp.Text(tid("error-attachments")))
	if !strings.Contains(msg, "together they may be at most 1.0 MiB") || !strings.Contains(msg, "Choose the files again") {
		t.Errorf("server message %q", msg)
	}
	if got := value(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); got != "f-attachments" {
		t.Errorf("focus on %q, want f-attachments (autofocus on the only error)", got)
	}
	att, fail = look(t, ctx, "f-attachments")
	if att.Invalid != "true" || !strings.Contains(att.DescribedBy, "err-attachments") {
		t.Errorf("attachments aria-invalid %q, aria-describedby %q after the server's answer", att.Invalid, att.DescribedBy)
	}
	if att.BorderColor != fail || att.BorderWidth != "2px" {
		t.Errorf("attachments border %s %s, want 2px %s", att.BorderWidth, att.BorderColor, fail)
	}

	// 4. The profile form: the first mistake has the focus; the option
	// "Allow AUTH without TLS" shows its warning and is listed.
	run(t, ctx, "profile with mistakes",
		chromedp.Navigate(a.srv.URL+"/profiles/new"),
		chromedp.WaitVisible(tid("profile-form")),
		chromedp.SetValue(tid("input-host"), "smtp.example.test:587"),
		chromedp.SetValue(tid("input-port"), "587"),
		markOld,
		chromedp.Click(tid("profile-save")),
		newPage(`[data-testid="error-summary"]`),
	)
	if got := value(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); got != "f-name" {
		t.Errorf("profile form: focus on %q, want f-name", got)
	}
	if msg := value(t, ctx, chromedp.Text(tid("error-host"))); !strings.Contains(msg, `"smtp.example.test:587" includes a port`) {
		t.Errorf("profile host error %q", msg)
	}
	run(t, ctx, "profile allowing AUTH without TLS",
		chromedp.SetValue(tid("input-name"), "lab"),
		chromedp.SetValue(tid("input-host"), "lab.example.test"),
		chromedp.SetValue(tid("input-tls"), "none"),
		chromedp.SetValue(tid("input-auth_mech"), "PLAIN"),
		chromedp.SetValue(tid("input-username"), "lab-user"),
		chromedp.Click(tid("input-allow_insecure_auth")),
		chromedp.WaitVisible(tid("insecure-auth-warning")),
	)
	screenshot(t, ctx, "profile-insecure-auth-form.png")
	run(t, ctx, "save the profile",
		chromedp.Click(tid("profile-save")),
		chromedp.WaitVisible(tid("profile-insecure-auth")),
	)
	screenshot(t, ctx, "profile-insecure-auth-list.png")
	if p := a.profileByName("lab"); !p.AllowInsecureAuth {
		t.Error("the option ticked in the browser was not stored")
	}
}
