package handlers_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// profileValues is a valid profile form: STARTTLS, verified, AUTH PLAIN.
func profileValues(tok, name, addr, user, password string) url.Values {
	host, port, _ := strings.Cut(addr, ":")
	return url.Values{"_csrf": {tok}, "name": {name}, "host": {host}, "port": {port}, "tls": {"starttls"},
		"verify": {"on"}, "auth_mech": {"PLAIN"}, "username": {user}, "password": {password}}
}

// saveProfile posts a profile form to path (/profiles or /profiles/ID)
// and returns the flash shown on the list it is sent back to.
func (c *client) saveProfile(path string, form url.Values) string {
	c.a.t.Helper()
	r := c.post(path, form)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/profiles" {
		c.a.t.Fatalf("save profile at %s: %d %q\n%s", path, r.status, r.header.Get("Location"), r.body)
	}
	return c.get("/profiles").testid(c.a.t, "flash").Text()
}

// profileByName returns the stored profile with that name.
func (a *app) profileByName(name string) *store.Profile {
	a.t.Helper()
	p, err := a.store.ProfileByName(a.t.Context(), name)
	if err != nil {
		a.t.Fatal(err)
	}
	return p
}

// sendThrough sends a message through profile id and returns the
// finished result page.
func (c *client) sendThrough(id int64, from, to string) *response {
	c.a.t.Helper()
	form := composeForm(c.csrf("/compose"))
	form.Set("server", strconv.FormatInt(id, 10))
	form.Set("from", from)
	form.Set("to", to)
	form.Set("subject", "profile test "+testenv.UniqueToken())
	return c.waitDone(c.send(form))
}

func statusOf(t *testing.T, r *response) string {
	t.Helper()
	return strings.TrimSpace(r.testid(t, "status").Text())
}

// TestProfileEditPassword edits a profile's stored password every way the
// form allows and proves each outcome by a real send to the test
// Postfix's submission port (STARTTLS, then AUTH before RCPT).
func TestProfileEditPassword(t *testing.T) {
	pf := testenv.Postfix(t)
	a := newApp(t, appOptions{rootCAs: postfixRoots(t)})
	c := a.client()
	c.signUp()
	const wrong = "not-the-Pa55word"
	from, to := pf.User, "rcpt@"+pf.Domain

	c.saveProfile("/profiles", profileValues(c.csrf("/profiles/new"), "submission", pf.SubmissionAddr, pf.User, pf.Password))
	p := a.profileByName("submission")
	edit := "/profiles/" + strconv.FormatInt(p.ID, 10)
	if got := statusOf(t, c.sendThrough(p.ID, from, to)); got != "sent" {
		t.Fatalf("send with the first password: %q", got)
	}

	steps := []struct {
		name     string
		password string // typed in the form
		clear    bool   // "Remove the stored password" ticked
		want     string // "kept", "replaced" or "cleared"
		status   string // of a send through the profile afterwards
		flash    string // in the flash after saving
	}{
		{"empty field keeps it", "", false, "kept", "sent", "saved."},
		{"a wrong password replaces it", wrong, false, "replaced", "permanent failure", "saved."},
		{"the right one replaces it again", pf.Password, false, "replaced", "sent", "saved."},
		{"remove clears it", "", true, "cleared", "permanent failure", "no stored password"},
	}
	for _, st := range steps {
		before := a.profileByName("submission").PasswordEnc
		form := profileValues(c.csrf(edit), "submission", pf.SubmissionAddr, pf.User, st.password)
		form.Set("helo", "step.example.test")
		if st.clear {
			form.Set("clear_password", "on")
		}
		if flash := c.saveProfile(edit, form); !strings.Contains(flash, st.flash) {
			t.Errorf("%s: flash %q, want %q in it", st.name, flash, st.flash)
		}
		after := a.profileByName("submission")
		switch got := after.PasswordEnc; {
		case st.want == "kept" && !bytes.Equal(got, before),
			st.want == "replaced" && (len(got) == 0 || bytes.Equal(got, before)),
			st.want == "cleared" && got != nil:
			t.Errorf("%s: stored password %x (was %x), want it %s", st.name, got, before, st.want)
		}
		if after.HeloName != "step.example.test" {
			t.Errorf("%s: HELO name %q not saved", st.name, after.HeloName)
		}
		r := c.sendThrough(p.ID, from, to)
		if got := statusOf(t, r); got != st.status {
			t.Fatalf("%s: send %q, want %q\n%s", st.name, got, st.status, r.testid(t, "transcript").Text())
		}
		if st.status != "sent" {
			code := strings.TrimSpace(r.testid(t, "explanation-code").Text())
			if !strings.HasPrefix(code, "535") || !strings.Contains(r.testid(t, "explanation").Text(), "credentials") {
				t.Errorf("%s: explanation %q: %q", st.name, code, r.testid(t, "explanation").Text())
			}
		}
		page := c.get(edit)
		if v, _ := page.testid(t, "input-password").Attr("value"); v != "" {
			t.Errorf("%s: password field value %q", st.name, v)
		}
		stored := strings.Contains(page.body, "a password is stored")
		if hasClear := page.testid(t, "input-clear_password").Length() == 1; stored != (st.want != "cleared") || hasClear != stored {
			t.Errorf("%s: edit page says stored %v, offers removal %v", st.name, stored, hasClear)
		}
		list := c.get("/profiles")
		if noPassword := strings.Contains(list.testid(t, "profile").Text(), "(no password)"); noPassword == stored {
			t.Errorf("%s: the list says no password %v, the edit page stored %v", st.name, noPassword, stored)
		}
		for _, body := range []string{page.body, list.body, r.body} {
			if strings.Contains(body, pf.Password) || strings.Contains(body, wrong) {
				t.Fatalf("%s: a page shows the password", st.name)
			}
		}
	}
	if strings.Contains(a.logs.String(), pf.Password) || strings.Contains(a.logs.String(), wrong) {
		t.Error("the password is in the logs")
	}
}

// TestProfileDelete deletes profiles: an unused one goes from the list
// and from compose's server choice; one that contact forms or queued
// outbox messages still go through is kept, and the page says why.
func TestProfileDelete(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		c := a.client()
		c.signUp()
		ctx := t.Context()
		for _, name := range []string{"used", "queued", "free", "other"} {
			c.saveProfile("/profiles", profileValues(c.csrf("/profiles/new"), name, "smtp.example.test:587", "u", "pw"))
		}
		used, queued, free, other := a.profileByName("used"), a.profileByName("queued"), a.profileByName("free"), a.profileByName("other")
		form := func(name string, profile int64) *store.Form {
			f := &store.Form{Name: name, Recipients: []string{"owner@example.test"}, ProfileID: profile,
				FromAddr: "web@example.test", Fields: []string{"message"}, SubjectTemplate: "Contact", Enabled: true}
			if err := a.store.SaveForm(ctx, f); err != nil {
				t.Fatal(err)
			}
			return f
		}
		zeta, alpha := form("Zeta <site>", used.ID), form("Alpha site", used.ID)
		// A message queued through "queued" by a form moved since.
		moved := form("Moved site", queued.ID)
		item := &store.OutboxItem{ProfileID: queued.ID, MailFrom: "web@example.test", Rcpts: []string{"owner@example.test"},
			Message: []byte("From: web@example.test\r\nSubject: waiting\r\nMessage-ID: <w@example.test>\r\n\r\nhi\r\n")}
		sub := &store.Submission{FormID: moved.ID, ClientAddr: "203.0.113.9", Fields: []store.FieldValue{{Name: "message", Value: "hi"}}}
		if err := a.store.EnqueueSubmission(ctx, sub, item); err != nil {
			t.Fatal(err)
		}
		moved.ProfileID = other.ID
		if err := a.store.SaveForm(ctx, moved); err != nil {
			t.Fatal(err)
		}

		del := func(p *store.Profile) *response {
			path := "/profiles/" + strconv.FormatInt(p.ID, 10) + "/delete"
			return c.post(path, url.Values{"_csrf": {c.csrf("/profiles")}})
		}
		link := func(f *store.Form) string { return f.Name + " -> /forms/" + strconv.FormatInt(f.ID, 10) + "/edit" }
		tests := []struct {
			name    string
			p       *store.Profile
			status  int
			forms   []string // named and linked in the refusal, in order
			waiting string   // the refusal's outbox sentence
			gone    bool
		}{
			{"used by two forms", used, http.StatusConflict, []string{link(alpha), link(zeta)}, "", false},
			{"a queued message", queued, http.StatusConflict, nil, "1 message in the outbox still waits", false},
			{"unused", free, http.StatusSeeOther, nil, "", true},
		}
		for _, tt := range tests {
			r := del(tt.p)
			if r.status != tt.status {
				t.Fatalf("%s: delete %d\n%s", tt.name, r.status, r.body)
			}
			if !tt.gone {
				checkRefusal(t, r, tt.p.Name, tt.forms, tt.waiting)
			} else if flash := c.get("/profiles").testid(t, "flash").Text(); !strings.Contains(flash, `"free" deleted`) {
				t.Errorf("%s: flash %q", tt.name, flash)
			}
			if stored, listed, offered := c.profileShown(tt.p); stored == tt.gone || listed == tt.gone || offered == tt.gone {
				t.Errorf("%s: stored %v, listed %v, offered on compose %v; want gone %v", tt.name, stored, listed, offered, tt.gone)
			}
		}

		// Nothing queued was lost; once the forms use another server and
		// the message has gone, the profiles can be deleted.
		if it, err := a.store.OutboxItem(ctx, item.ID); err != nil || it.Status != store.OutboxQueued || it.ProfileID != queued.ID {
			t.Fatalf("queued item after the refusal: %+v, %v", it, err)
		}
		for _, f := range []*store.Form{alpha, zeta} {
			f.ProfileID = other.ID
			if err := a.store.SaveForm(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.store.CancelOutbox(ctx, item.ID); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*store.Profile{used, queued} {
			if r := del(p); r.status != http.StatusSeeOther {
				t.Errorf("delete %s once unused: %d", p.Name, r.status)
			}
		}
		if r := del(free); r.status != http.StatusNotFound {
			t.Errorf("delete a deleted profile: %d", r.status)
		}
	})
}

// checkRefusal checks the page refusing to delete profile name: it
// names the forms using it, each as "name -> link", and says how many
// outbox messages wait (waiting is a part of that sentence, or "").
func checkRefusal(t *testing.T, r *response, name string, forms []string, waiting string) {
	t.Helper()
	if text := r.testid(t, "delete-refused").Text(); !strings.Contains(text, `"`+name+`" was not deleted`) {
		t.Errorf("refusal %q", text)
	}
	var got []string
	r.doc(t).Find(`[data-testid="refused-form"]`).Each(func(_ int, s *goquery.Selection) {
		href, _ := s.Attr("href")
		got = append(got, s.Text()+" -> "+href)
	})
	if strings.Join(got, "|") != strings.Join(forms, "|") {
		t.Errorf("forms named %q, want %q", got, forms)
	}
	if w := r.testid(t, "refused-waiting").Text(); !strings.Contains(w, waiting) || (waiting == "") != (w == "") {
		t.Errorf("waiting %q, want %q", w, waiting)
	}
}

// profileShown says whether p is still stored, in the profiles list and
// among compose's servers.
func (c *client) profileShown(p *store.Profile) (stored, listed, offered bool) {
	c.a.t.Helper()
	_, err := c.a.store.Profile(c.a.t.Context(), p.ID)
	c.get("/profiles").testid(c.a.t, "profile").Find("a").Each(func(_ int, s *goquery.Selection) {
		listed = listed || s.Text() == p.Name
	})
	option := `[data-testid="input-server"] option[value="` + strconv.FormatInt(p.ID, 10) + `"]`
	offered = c.get("/compose").doc(c.a.t).Find(option).Length() == 1
	return err == nil, listed, offered
}

// TestProfileFormValidation: each mistake is refused with its message
// beside its field, what was typed is kept (the password excepted) and
// nothing is stored.
func TestProfileFormValidation(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	c.saveProfile("/profiles", profileValues(c.csrf("/profiles/new"), "existing", "smtp.example.test:587", "u", "old-secret"))
	existing := a.profileByName("existing")
	tests := []struct {
		name  string
		path  string // posted to; empty: a new profile
		set   map[string]string
		field string
		msg   string // the message beside the field starts so
	}{
		{"missing host", "", map[string]string{"host": ""}, "host", "Host: enter the server's host name"},
		{"host with a space", "", map[string]string{"host": "smtp example.test"}, "host", `Host: "smtp example.test" has a space`},
		{"port not a number", "", map[string]string{"port": "smtp"}, "port", `Port: "smtp" is not a number.`},
		{"port 0", "", map[string]string{"port": "0"}, "port", "Port: 0 is out of range."},
		{"port too high", "", map[string]string{"port": "65536"}, "port", "Port: 65536 is out of range."},
		{"unknown TLS mode", "", map[string]string{"tls": "sslv3"}, "tls", `TLS mode: "sslv3" is not one of the choices.`},
		{"missing name", "", map[string]string{"name": ""}, "name", "Name: enter a name for the profile"},
		{"AUTH without a user", "", map[string]string{"username": ""}, "username", "User: enter the user name"},
		{"name taken", "", map[string]string{"name": "existing"}, "name", `Name: another profile is already called "existing".`},
		{"bad port on edit", "/profiles/" + strconv.FormatInt(existing.ID, 10), map[string]string{"port": "99999"}, "port", "Port: 99999 is out of range."},
		{"new password and remove", "/profiles/" + strconv.FormatInt(existing.ID, 10), map[string]string{"clear_password": "on"}, "password", "Password: type a new password or tick"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, name := tt.path, "new one"
			if path == "" {
				path = "/profiles"
			} else {
				name = "existing"
			}
			form := profileValues(c.csrf("/profiles/new"), name, "smtp.example.test:2525", "user@example.test", "typed-S3cret")
			for k, v := range tt.set {
				form.Set(k, v)
			}
			r := c.post(path, form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			errs := r.doc(t).Find(`[data-testid^="error-"]`)
			if got, _ := errs.Last().Attr("data-testid"); got != "error-"+tt.field || errs.Length() != 2 || r.testid(t, "error-summary").Length() != 1 {
				t.Errorf("errors shown: %d, last %q; want the summary and error-%s", errs.Length(), got, tt.field)
			}
			if got := r.testid(t, "error-"+tt.field).Text(); !strings.HasPrefix(got, tt.msg) {
				t.Errorf("message %q, want it to start %q", got, tt.msg)
			}
			field := r.testid(t, "error-"+tt.field).Parent()
			if field.Find(`[name="`+tt.field+`"]`).Length() != 1 || field.Find(`[aria-invalid="true"]`).Length() != 1 {
				t.Errorf("error-%s is not beside its field: %q", tt.field, field.Text())
			}
			if tt.field != "host" {
				if v, _ := r.testid(t, "input-host").Attr("value"); v != "smtp.example.test" {
					t.Errorf("host not kept: %q", v)
				}
			}
			if strings.Contains(r.body, "typed-S3cret") {
				t.Error("the typed password is sent back")
			}
		})
	}
	list, err := a.store.Profiles(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("profiles stored: %d, %v", len(list), err)
	}
	if p := list[0]; p.Port != 587 || p.Host != "smtp.example.test" || len(p.PasswordEnc) == 0 {
		t.Errorf("the existing profile changed: %+v", p)
	}
}
