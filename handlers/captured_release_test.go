package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// saveProfile stores a server profile without AUTH.
func saveProfile(t *testing.T, st *store.Store, name, addr string, tls smtp.TLSMode) int64 {
	t.Helper()
	host, port := splitHostPort(t, addr)
	n, _ := strconv.Atoi(port)
	p := &store.Profile{Name: name, Host: host, Port: n, TLSMode: tls.String()}
	if err := st.SaveProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// stripPostfixTrace removes the fields Postfix puts on top of a delivered
// message (Return-Path, X-Original-To, Delivered-To, Received, folded
// lines included).
func stripPostfixTrace(msg string) string {
	for {
		line, rest, _ := strings.Cut(msg, "\n")
		name, _, _ := strings.Cut(line, ":")
		switch name {
		case "Return-Path", "X-Original-To", "Delivered-To", "Received":
		default:
			return msg
		}
		msg = rest
		for strings.HasPrefix(msg, " ") || strings.HasPrefix(msg, "\t") {
			_, msg, _ = strings.Cut(msg, "\n")
		}
	}
}

// TestCapturedReleaseToPostfix: a captured message released through a
// saved profile to the test Postfix is a send of its own (source
// "release", its transcript on the live result page and in the history)
// and arrives byte for byte (line ends aside) with the recipients given.
func TestCapturedReleaseToPostfix(t *testing.T) {
	pf := testenv.Postfix(t)
	a := newApp(t, appOptions{rootCAs: postfixRoots(t)})
	c := a.client()
	c.signUp()
	profile := saveProfile(t, a.store, "test postfix", pf.SMTPAddr, smtp.TLSStartTLS)
	token := testenv.UniqueToken()
	// With a Date and a Message-ID, which Postfix would otherwise add.
	raw := "From: Sender <a@example.test>\nTo: b@example.test\nSubject: release " + token + "\nMIME-Version: 1.0\n" +
		"Date: Sun, 06 Dec 2026 12:00:00 +0000\nMessage-ID: <" + token + "@example.test>\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, " + token + "\n.leading dot\n.\nend\n"
	path := captureRaw(t, a, raw)

	view := c.get(path + "?q=release")
	if opt := view.testid(t, "input-profile").Find(`option[value="` + strconv.FormatInt(profile, 10) + `"]`); opt.Length() != 1 {
		t.Fatalf("the release form does not offer the profile")
	}
	if got := view.testid(t, "input-rcpts").Text(); got != "b@example.test" {
		t.Errorf("recipients default to %q, want the envelope's", got)
	}
	rcpt := "release-" + token + "@" + pf.Domain
	r := c.post(path+"/release", url.Values{"_csrf": {c.csrf(path)}, "profile": {strconv.FormatInt(profile, 10)}, "rcpts": {rcpt}})
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/sends/") {
		t.Fatalf("release: %d to %q\n%s", r.status, loc, r.body)
	}
	res := c.waitDone(loc)
	if got := strings.TrimSpace(res.testid(t, "status").Text()); got != "sent" {
		t.Fatalf("status %q\n%s", got, res.testid(t, "transcript").Text())
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(loc, "/sends/"), 10, 64)
	snd, err := a.store.Send(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(raw, "\n", "\r\n")
	if snd.Source != "release" || snd.Server != pf.SMTPAddr || snd.MailFrom != "a@example.test" ||
		strings.Join(snd.Rcpts, ",") != rcpt || string(snd.Message) != want || len(snd.Events) == 0 {
		t.Errorf("history: source %q server %q from %q rcpts %q, %d events, message kept %v",
			snd.Source, snd.Server, snd.MailFrom, snd.Rcpts, len(snd.Events), string(snd.Message) == want)
	}
	if row := page(t, c, "/history?source=release").Find(`[data-testid="history-row"][data-id="` + strconv.FormatInt(id, 10) + `"]`); row.Length() != 1 {
		t.Error("the history's source filter does not find the release")
	}

	got := stripPostfixTrace(string(testenv.WaitForMessage(t, pf.Maildir, token, testenv.StallLimit)))
	if got != raw {
		t.Errorf("delivered (trace fields set aside):\n%q\nwant\n%q", got, raw)
	}
}

// TestCapturedReleaseErrors: a release form with a bad profile or bad
// recipients comes back (422) with the error beside the field and what
// was typed; nothing is sent.
func TestCapturedReleaseErrors(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	path := captureRaw(t, a, "Subject: x\n\nbody\n")
	if c.get(path).testid(t, "release-no-profiles").Length() != 1 {
		t.Error("without profiles the page does not say to add one")
	}
	profile := strconv.FormatInt(saveProfile(t, a.store, "somewhere", "127.0.0.1:1", smtp.TLSNone), 10)
	tok := c.csrf(path)
	tests := []struct {
		name, profile, rcpts, field, want string
	}{
		{"no profile", "", "x@example.test", "profile", "Choose a server profile"},
		{"deleted profile", "999", "x@example.test", "profile", "no longer exists"},
		{"no recipient", profile, " \n ", "rcpts", "at least one"},
		{"bad recipient", profile, "ok@example.test\n<evil>@x", "rcpts", `"<evil>@x"`},
		{"not an address", profile, "nobody", "rcpts", "local@domain"},
		{"too many", profile, strings.Repeat("r@example.test,", 101), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcpts := tt.rcpts
			if tt.name == "too many" {
				var b strings.Builder
				for i := range 101 {
					b.WriteString("r" + strconv.Itoa(i) + "@example.test\n")
				}
				rcpts, tt.field, tt.want = b.String(), "rcpts", "at most 100"
			}
			r := c.post(path+"/release", url.Values{"_csrf": {tok}, "profile": {tt.profile}, "rcpts": {rcpts}})
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d", r.status)
			}
			if got := r.testid(t, "error-"+tt.field).Text(); !strings.Contains(got, tt.want) {
				t.Errorf("error %q, want %q", got, tt.want)
			}
			if got := r.testid(t, "input-rcpts").Text(); got != rcpts {
				t.Errorf("recipients came back as %q", got)
			}
		})
	}
	if page, err := a.store.ListSends(context.Background(), store.SendFilter{}); err != nil || len(page.Sends) != 0 {
		t.Errorf("%d sends recorded, %v", len(page.Sends), err)
	}
}
