package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// TestCheckSendForm checks the Check form's sender-side and test message
// fields: each bad value gets a field error and nothing is stored.
func TestCheckSendForm(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tests := []struct {
		name   string
		form   url.Values
		field  string
		wantIn string
	}{
		{"from domain", url.Values{"target": {"example.org"}, "from_domain": {"localhost"}}, "from_domain", `"localhost" is not a domain name`},
		{"ip without from", url.Values{"target": {"example.org"}, "ip": {"192.0.2.1"}}, "from_domain", "give it to check a sending address"},
		{"bad ip", url.Values{"target": {"example.org"}, "from_domain": {"example.org"}, "ip": {"192.0.2.300"}}, "ip", "is not an IP address"},
		{"bad selector", url.Values{"target": {"example.org"}, "from_domain": {"example.org"}, "dkim_selector": {"a b"}}, "dkim_selector", "is not one or more DNS labels"},
		{"bad recipient", url.Values{"target": {"example.org"}, "send_to": {"nobody"}}, "send_to", `"nobody" is not an address`},
		{"sender without recipient", url.Values{"target": {"example.org"}, "send_from": {"a@example.org"}}, "send_to", "needs a recipient"},
		{"bad sender", url.Values{"target": {"example.org"}, "send_to": {"a@example.org"}, "send_from": {"a@b"}}, "send_from", "is not a domain name"},
		{"server needs sender", url.Values{"target": {"192.0.2.1:25"}, "send_to": {"a@example.org"}}, "send_from", "needs a sender address"},
		{"profile word", url.Values{"target": {"example.org"}, "send_to": {"a@example.org"}, "send_profile": {"x"}}, "send_profile", "choose a saved profile"},
		{"profile without recipient", url.Values{"target": {"example.org"}, "send_profile": {"1"}}, "send_to", "give the recipient"},
		{"no such profile", url.Values{"target": {"example.org"}, "send_to": {"a@example.org"}, "send_profile": {"999"}}, "send_profile", "there is no such profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("_csrf", c.csrf("/checks"))
			r := c.post("/checks", tt.form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			if msg := r.testid(t, "error-"+tt.field).Text(); !strings.Contains(msg, tt.wantIn) {
				t.Errorf("error on %s %q, want it to contain %q", tt.field, msg, tt.wantIn)
			}
			if v, _ := r.testid(t, "input-send_to").Attr("value"); v != tt.form.Get("send_to") {
				t.Errorf("send_to shown as %q, want the value given %q", v, tt.form.Get("send_to"))
			}
		})
	}
	if rows, err := a.store.ListChecks(context.Background(), 0, 0); err != nil || len(rows) != 0 {
		t.Errorf("stored checks %v, %v; want none", rows, err)
	}
}

// TestCheckSendProfile runs a check of the test Postfix's port 2525 from
// the Check page with the sender side, the relay test and a test message
// through a saved profile (Postfix 2587, STARTTLS and AUTH): the options
// are stored, the message is delivered, its alignment judged, its
// conversation kept in the history, and Run again repeats it all.
func TestCheckSendProfile(t *testing.T) {
	pf := testenv.Postfix(t)
	d := testenv.DNS(t)
	a := newApp(t, appOptions{rootCAs: pf.RootCAs, checkResolver: d.Resolver})
	c := a.client()
	c.signUp()
	c.saveProfile("/profiles", profileValues(c.csrf("/profiles/new"), "postfix sub", pf.SubmissionAddr, pf.User, pf.Password))
	prof := a.profileByName("postfix sub")
	rcpt := testenv.UniqueAddress()
	form := url.Values{"target": {pf.SMTPAddr}, "from_domain": {"local.sender.test"}, "ip": {"127.0.0.1"}, "relay_test": {"on"},
		"send_to": {rcpt}, "send_from": {"web@local.sender.test"}, "send_profile": {strconv.FormatInt(prof.ID, 10)}}
	want := store.CheckOptions{From: "local.sender.test", IP: "127.0.0.1", RelayTest: true, SendTo: rcpt, SendFrom: "web@local.sender.test", Profile: prof.ID}
	first := c.startCheck(form)
	second := ""
	for i, page := range []string{first, ""} {
		if i == 1 {
			resp := c.post(first+"/rerun", url.Values{"_csrf": {c.csrf(first)}})
			second = resp.header.Get("Location")
			if resp.status != http.StatusSeeOther || second == first || !strings.HasPrefix(second, "/checks/") {
				t.Fatalf("rerun: %d %q", resp.status, second)
			}
			page = second
		}
		r := c.waitCheck(page)
		for _, tt := range []struct{ id, status string }{
			{"send.result", "pass"}, {"align.spf.result", "pass"}, {"align.dmarc", "pass"}, {"align.dkim", "warning"},
			{"smtp.relay", "pass"}, {"spf.result", "pass"},
		} {
			if got := findingStatus(t, r, tt.id); len(got) != 1 || got[0] != tt.status {
				t.Errorf("%s: finding %s: %v, want [%s]", page, tt.id, got, tt.status)
			}
		}
		ck, err := a.store.Check(context.Background(), checkID(t, page))
		if err != nil {
			t.Fatal(err)
		}
		if ck.Options != want {
			t.Errorf("%s: stored options %+v, want %+v", page, ck.Options, want)
		}
		sel := r.doc(t).Find(`[data-testid="finding"][data-id="send.result"]`)
		text := sel.Text()
		if !strings.Contains(text, "accepted by profile postfix sub ("+pf.SubmissionAddr+")") {
			t.Errorf("send.result %q", strings.Join(strings.Fields(text), " "))
		}
		id := text[strings.Index(text, "<sockmail-check-")+1:]
		id = id[:strings.Index(id, ">")]
		testenv.WaitForMessage(t, pf.Maildir, id, 30*time.Second)
		link, ok := sel.Find(`[data-testid="finding-conversation"]`).Attr("href")
		if !ok {
			t.Fatal("the test message finding links no conversation")
		}
		conv := c.get(link)
		if conv.status != http.StatusOK || conv.testid(t, "source").Text() != "check" || !strings.Contains(conv.body, "AUTH PLAIN") || !strings.Contains(conv.body, "queue id") {
			t.Errorf("conversation %s: %d, source %q", link, conv.status, conv.testid(t, "source").Text())
		}
	}
	list := c.get("/checks")
	if !strings.Contains(list.body, "test message to "+rcpt+" through profile #") || !strings.Contains(list.body, "relay test") {
		t.Errorf("the list does not show the options:\n%s", list.testid(t, "check-row").Text())
	}
}
