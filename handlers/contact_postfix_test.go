package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/crypt"
	"sockmail/internal/outbox"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// Contact forms delivering through a saved server profile to the test
// Postfix's submission port (STARTTLS, then AUTH), with the real outbox
// worker.

// postfixApp is a contact app whose worker trusts the test CA and
// retries quickly, with a form delivering through a profile of the
// Postfix submission port; sealed seals the profile's password.
func postfixApp(t *testing.T, pf *testenv.PostfixServer, sealed func(a *contactApp) []byte) (*contactApp, *store.Form, string) {
	t.Helper()
	a := newContactApp(t, contactOptions{worker: true, realClock: true, roots: postfixRoots(t),
		backoff: outbox.Backoff{Base: 100 * time.Millisecond, Max: 500 * time.Millisecond}})
	host, port := splitHostPort(t, pf.SubmissionAddr)
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	p := &store.Profile{Name: "Postfix submission", Host: host, Port: n, TLSMode: "starttls",
		AuthMech: "PLAIN", Username: pf.User, PasswordEnc: sealed(a)}
	if err := a.store.SaveProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	rcpt := "contact-" + strings.ToLower(testenv.UniqueToken()) + "@" + pf.Domain
	f := a.addForm(t, func(f *store.Form) {
		f.ProfileID, f.FromAddr, f.Recipients = p.ID, pf.User, []string{rcpt}
	})
	return a, f, rcpt
}

// postToForm posts a valid JSON submission with a token old enough, and
// returns the message's unique subject.
func postToForm(t *testing.T, a *contactApp, f *store.Form) string {
	t.Helper()
	var tok string
	a.issueInPast(t, func() { tok = a.token(t, f) })
	who := "Grace " + testenv.UniqueToken()
	p := validPost(tok)
	p["name"] = who
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
	return "Contact from " + who
}

// maildirHas returns the message in maildir holding needle, or nil.
func maildirHas(t *testing.T, maildir, needle string) []byte {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(maildir, sub, e.Name()))
			if err == nil && bytes.Contains(b, []byte(needle)) {
				return b
			}
		}
	}
	return nil
}

// waitDelivered waits until the form's message is in Postfix's Maildir;
// it fails only when the outbox stops moving for a minute.
func waitDelivered(t *testing.T, a *contactApp, f *store.Form, maildir, subject string) []byte {
	t.Helper()
	var msg []byte
	waitProgress(t, "delivery of "+subject, time.Minute, func() (bool, string) {
		if msg = maildirHas(t, maildir, subject); msg != nil {
			return true, ""
		}
		return false, outboxStates(a.outbox(t, f))
	})
	return msg
}

func TestContactDeliversThroughProfileWithStartTLSAndAuth(t *testing.T) {
	pf := testenv.Postfix(t)
	a, f, rcpt := postfixApp(t, pf, func(a *contactApp) []byte {
		sealed, err := a.box.Seal([]byte(pf.Password))
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	})
	subject := postToForm(t, a, f)
	msg := waitDelivered(t, a, f, pf.Maildir, subject)
	if !bytes.Contains(msg, []byte(rcpt)) || !bytes.Contains(msg, []byte("I would like to know more.")) {
		t.Errorf("delivered message:\n%s", msg)
	}

	// The worker marks the item sent just after Postfix accepts it.
	var it store.OutboxItem
	waitProgress(t, "outbox item sent", time.Minute, func() (bool, string) {
		it = a.outbox(t, f)[0]
		return it.Status == store.OutboxSent, outboxStates([]store.OutboxItem{it})
	})
	if it.LastSendID == nil || it.Attempts != 1 {
		t.Fatalf("sent item %+v", it)
	}
	if subs := a.submissions(t, f); len(subs) != 1 || subs[0].Status != store.SubmissionSent {
		t.Errorf("submission %+v", subs)
	}
	// The history shows the send, with its STARTTLS and AUTH; the
	// password is not in the transcript.
	admin := a.client()
	admin.signUp()
	if h := admin.get("/history"); h.status != http.StatusOK || !strings.Contains(h.body, subject) {
		t.Errorf("history: %d, lacks %q", h.status, subject)
	}
	tr := admin.get("/sends/" + strconv.FormatInt(*it.LastSendID, 10) + "/transcript.txt")
	if tr.status != http.StatusOK || !strings.Contains(tr.body, "STARTTLS") || !strings.Contains(tr.body, "AUTH PLAIN") {
		t.Errorf("transcript %d:\n%s", tr.status, tr.body)
	}
	if strings.Contains(tr.body, pf.Password) {
		t.Error("the transcript holds the password")
	}
	_, port, _ := net.SplitHostPort(pf.SubmissionAddr)
	if send := admin.get("/sends/" + strconv.FormatInt(*it.LastSendID, 10)); !strings.Contains(send.body, port) {
		t.Errorf("send page does not name the server's port %s", port)
	}
}

func TestContactProfilePasswordSealedWithAnotherKey(t *testing.T) {
	pf := testenv.Postfix(t)
	a, f, _ := postfixApp(t, pf, func(*contactApp) []byte {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		other, err := crypt.New(key)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := other.Seal([]byte(pf.Password))
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	})
	subject := postToForm(t, a, f)

	// The worker tries, cannot decrypt the password, and keeps the item
	// queued for another attempt.
	// (The worker retries quickly here: the item is seen between two
	// attempts.)
	var it store.OutboxItem
	waitProgress(t, "a failed attempt, queued again", time.Minute, func() (bool, string) {
		it = a.outbox(t, f)[0]
		return it.Status == store.OutboxQueued && it.Attempts >= 1 && it.LastError != "", outboxStates([]store.OutboxItem{it})
	})
	if !strings.Contains(it.LastError, "cannot be decrypted") {
		t.Fatalf("item %s: %q", it.Status, it.LastError)
	}
	admin := a.client()
	admin.signUp()
	page := admin.get("/outbox?form=" + strconv.FormatInt(f.ID, 10))
	fix := page.testid(t, "outbox-fix").Text()
	if !strings.Contains(fix, "Postfix submission") || !strings.Contains(fix, "enter its password again") || !strings.Contains(fix, "stay queued") {
		t.Errorf("the queue page does not say what to do: %q\n%s", fix, page.body)
	}
	href, _ := page.testid(t, "outbox-fix-profile").Attr("href")
	if href != fmt.Sprintf("/profiles/%d", f.ProfileID) {
		t.Errorf("fix link %q", href)
	}
	if maildirHas(t, pf.Maildir, subject) != nil {
		t.Fatal("delivered without a password")
	}

	// The admin saves the password again; the next attempt delivers.
	host, port := splitHostPort(t, pf.SubmissionAddr)
	vals := url.Values{"_csrf": {admin.csrf(href)}, "name": {"Postfix submission"}, "host": {host}, "port": {port},
		"tls": {"starttls"}, "verify": {"on"}, "auth_mech": {"PLAIN"}, "username": {pf.User}, "password": {pf.Password}}
	if r := admin.post(href, vals); r.status != http.StatusSeeOther {
		t.Fatalf("save profile: %d\n%s", r.status, r.body)
	}
	waitDelivered(t, a, f, pf.Maildir, subject)
	if page := admin.get("/outbox?form=" + strconv.FormatInt(f.ID, 10)); page.testid(t, "outbox-fix").Length() != 0 {
		t.Errorf("the fix is still asked for after saving the password")
	}
}
