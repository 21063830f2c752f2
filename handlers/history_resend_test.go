package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
	"sockmail/smtp"
)

// recordingSend records the sends it is asked for and answers like a server
// that accepts everything.
type recordingSend struct {
	mu    sync.Mutex
	calls []fakeCall
}

type fakeCall struct {
	cfg smtp.Config
	env smtp.Envelope
	msg []byte
}

func (f *recordingSend) send(_ context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, _ smtp.SendOptions) (*smtp.Result, error) {
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{cfg, env, b.Bytes()})
	f.mu.Unlock()
	cfg.Transcript.Info(smtp.PhaseConnect, "connected to %s (fake)", cfg.Addr)
	res := &smtp.Result{Server: cfg.Addr, QueueID: "FAKE1", Final: &smtp.Reply{Code: 250, Lines: []string{"2.0.0 Ok: queued as FAKE1"}}}
	for _, r := range env.To {
		res.Recipients = append(res.Recipients, smtp.RecipientResult{Address: r, Accepted: true, Code: 250, Message: "Ok"})
	}
	return res, nil
}

func (f *recordingSend) last() fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

// waitStored waits until the send id has ended, following its event
// stream to its "done" (sent once the outcome is stored), and returns
// the stored send.
func (c *client) waitStored(id int64) *store.Send {
	c.a.t.Helper()
	stream := c.events("/sends/" + strconv.FormatInt(id, 10))
	for {
		ev, _ := stream.next()
		if ev == "done" {
			break
		}
		if ev == "" {
			c.a.t.Fatalf("the event stream of send %d ended without done", id)
		}
	}
	s, err := c.a.store.Send(context.Background(), id)
	if err != nil {
		c.a.t.Fatal(err)
	}
	if s.Status == store.StatusRunning {
		c.a.t.Fatalf("send %d ended but is stored as running", id)
	}
	return s
}

// resendFixture is a stored send to re-send, a signed-in admin and the
// send function that records what is sent.
type resendFixture struct {
	a    *app
	c    *client
	fake *recordingSend
	orig *store.Send
	msg  []byte
	id   string
	tok  string
}

func newResendFixture(t *testing.T) *resendFixture {
	fake := &recordingSend{}
	a := newHistoryApp(t, historyOptions{send: fake.send})
	c := a.client()
	c.signUp()
	msg := []byte("From: <sender@example.test>\r\nTo: <a@example.net>\r\nSubject: Grüße\r\n\r\nBody \xc3\xa9.\r\n")
	orig := a.seedSend(store.Send{Subject: "Grüße", Rcpts: []string{"a@example.net", "b@example.net"}, Message: msg,
		Headers: "Subject: Grüße", Server: "mx.example.org:2525", TLSMode: "starttls-optional", Status: smtp.StatusTempFail})
	f := &resendFixture{a: a, c: c, fake: fake, orig: orig, msg: msg, id: strconv.FormatInt(orig.ID, 10)}
	r := c.get("/history/" + f.id)
	form := r.testid(t, "resend-form")
	if v, _ := form.Find(`[data-testid="input-host"]`).Attr("value"); v != "mx.example.org" {
		t.Errorf("host prefilled %q", v)
	}
	if v, _ := form.Find(`[data-testid="input-tls"] option[selected]`).Attr("value"); v != "starttls-optional" {
		t.Errorf("TLS mode preselected %q", v)
	}
	f.tok, _ = r.doc(t).Find(`[data-testid="resend-form"] input[name="_csrf"]`).Attr("value")
	return f
}

// resend posts the re-send form and returns the new send once stored.
func (f *resendFixture) resend(t *testing.T, form url.Values) *store.Send {
	t.Helper()
	form.Set("_csrf", f.tok)
	r := f.c.post("/history/"+f.id+"/resend", form)
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/history/") {
		t.Fatalf("resend: %d %q\n%s", r.status, loc, r.body)
	}
	nid, _ := strconv.ParseInt(strings.TrimPrefix(loc, "/history/"), 10, 64)
	return f.c.waitStored(nid)
}

func TestHistoryResend(t *testing.T) {
	f := newResendFixture(t)
	a := f.a
	prof := &store.Profile{Name: "relay", Host: "smtp.example.test", Port: 465, TLSMode: "implicit", AuthMech: "PLAIN", Username: "u1", HeloName: "me.example"}
	if err := a.store.SaveProfile(context.Background(), prof); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		form url.Values
		// addr and tls are what the send was given; insecure its
		// verification; user the AUTH username ("" for no AUTH).
		addr     string
		tls      smtp.TLSMode
		insecure bool
		user     string
		helo     string
	}{
		{"same server", url.Values{"server": {"same"}, "tls": {"starttls-optional"}, "verify": {"on"}}, "mx.example.org:2525", smtp.TLSStartTLSOptional, false, "", ""},
		{"another server, verification off", url.Values{"server": {"adhoc"}, "host": {"relay.example.test"}, "port": {"587"}, "tls": {"starttls"}}, "relay.example.test:587", smtp.TLSStartTLS, true, "", ""},
		{"built-in capture server", url.Values{"server": {"builtin"}, "tls": {"starttls"}, "verify": {"on"}}, a.capture.Addr(), smtp.TLSStartTLS, false, "", ""},
		{"profile with its credentials", url.Values{"server": {strconv.FormatInt(prof.ID, 10)}, "tls": {"none"}}, "smtp.example.test:465", smtp.TLSImplicit, false, "u1", "me.example"},
	}
	var first *store.Send
	for _, tt := range tests {
		s := f.resend(t, tt.form)
		call := f.fake.last()
		user := ""
		if call.cfg.Auth != nil {
			user = call.cfg.Auth.Username
		}
		if call.cfg.Addr != tt.addr || call.cfg.TLS != tt.tls || call.cfg.InsecureSkipVerify != tt.insecure || user != tt.user || call.cfg.LocalName != tt.helo {
			t.Errorf("%s: cfg %+v auth %+v", tt.name, call.cfg, call.cfg.Auth)
		}
		if s.Server != tt.addr || s.TLSMode != tt.tls.String() {
			t.Errorf("%s: stored with server %q %q", tt.name, s.Server, s.TLSMode)
		}
		f.checkResent(t, call, s)
		if first == nil {
			first = s
		}
	}

	// Both ways: the resend names its parent, the parent lists its resends.
	r := f.c.get("/history/" + strconv.FormatInt(first.ID, 10))
	if href, _ := r.testid(t, "parent").Find("a").First().Attr("href"); href != "/history/"+f.id {
		t.Errorf("resend's parent link %q", href)
	}
	r = f.c.get("/history/" + f.id)
	if n := r.testid(t, "resend-item").Length(); n != len(tests) {
		t.Errorf("parent lists %d resends, want %d", n, len(tests))
	}
	if got := rowIDs(t, f.c.get("/history")); len(got) != len(tests)+1 {
		t.Errorf("%d sends in the list, want %d", len(got), len(tests)+1)
	}
}

// checkResent checks that a re-send sent the stored message with its
// envelope, and was stored as a child of the original.
func (f *resendFixture) checkResent(t *testing.T, call fakeCall, s *store.Send) {
	t.Helper()
	if call.env.From != "sender@example.test" || !slices.Equal(call.env.To, f.orig.Rcpts) || !call.env.EightBit || !call.env.SMTPUTF8 || call.env.Size != int64(len(f.msg)) {
		t.Errorf("envelope %+v", call.env)
	}
	if !bytes.Equal(call.msg, f.msg) {
		t.Errorf("message sent %q, want the stored one", call.msg)
	}
	if s.ParentID == nil || *s.ParentID != f.orig.ID || s.Status != "sent" || s.QueueID != "FAKE1" || s.Source != "web" ||
		!bytes.Equal(s.Message, f.msg) || len(s.Events) == 0 || s.UserID == nil || s.Subject != "Grüße" {
		t.Errorf("resend stored as %+v", s)
	}
}

// TestHistoryResendRefused: invalid forms, a missing profile, no CSRF
// token and a truncated message send nothing.
func TestHistoryResendRefused(t *testing.T) {
	f := newResendFixture(t)
	c := f.c
	bad := []struct {
		form  url.Values
		field string
	}{
		{url.Values{"server": {"adhoc"}, "port": {"25"}, "tls": {"none"}}, "host"},
		{url.Values{"server": {"adhoc"}, "host": {"a b"}, "port": {"25"}, "tls": {"none"}}, "host"},
		{url.Values{"server": {"adhoc"}, "host": {"relay.example"}, "port": {"70000"}, "tls": {"none"}}, "port"},
		{url.Values{"server": {"same"}, "tls": {"sometimes"}}, "tls"},
		{url.Values{"server": {"nowhere"}, "tls": {"none"}}, "server"},
		{url.Values{"server": {"99999"}, "tls": {"none"}}, "server"},
	}
	for _, tt := range bad {
		tt.form.Set("_csrf", f.tok)
		r := c.post("/history/"+f.id+"/resend", tt.form)
		if r.status != http.StatusUnprocessableEntity || r.testid(t, "error-"+tt.field).Length() != 1 {
			t.Errorf("%v: %d, error on %s %q", tt.form, r.status, tt.field, r.testid(t, "error-"+tt.field).Text())
		}
	}
	if r := c.post("/history/"+f.id+"/resend", url.Values{"server": {"same"}, "tls": {"none"}}); r.status != http.StatusForbidden {
		t.Errorf("resend without CSRF token: %d", r.status)
	}
	truncated := f.a.seedSend(store.Send{MessageTruncated: true})
	r := c.get("/history/" + strconv.FormatInt(truncated.ID, 10))
	if r.testid(t, "resend-impossible").Length() != 1 || r.testid(t, "truncated").Length() != 1 {
		t.Errorf("truncated message offered for re-sending")
	}
	if r := c.post("/history/"+strconv.FormatInt(truncated.ID, 10)+"/resend", url.Values{"_csrf": {f.tok}, "server": {"same"}, "tls": {"none"}}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("resend of a truncated message: %d", r.status)
	}
	f.fake.mu.Lock()
	defer f.fake.mu.Unlock()
	if len(f.fake.calls) != 0 {
		t.Errorf("a refused resend was sent")
	}
}

// TestHistoryResendToCaptureServer re-sends a message sent from the web
// form, for real, to the built-in capture server, and compares the two.
func TestHistoryResendToCaptureServer(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	path := c.send(composeForm(c.csrf("/compose")))
	c.waitDone(path)
	id := strings.TrimPrefix(path, "/sends/")
	tok := c.csrf("/history/" + id)
	r := c.post("/history/"+id+"/resend", url.Values{"_csrf": {tok}, "server": {"builtin"}, "tls": {"starttls"}, "verify": {"on"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("resend: %d\n%s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	nid, _ := strconv.ParseInt(strings.TrimPrefix(loc, "/history/"), 10, 64)
	resent := c.waitStored(nid)
	if resent.Status != "sent" || resent.QueueID == "" {
		t.Fatalf("resend: %s %q", resent.Status, resent.Error)
	}
	list, err := a.store.ListCaptured(context.Background(), 10, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("%d captured messages, %v", len(list), err)
	}
	first, _ := a.store.Captured(context.Background(), list[1].ID)
	second, _ := a.store.Captured(context.Background(), list[0].ID)
	if !bytes.Equal(first.Raw, second.Raw) {
		t.Errorf("the resent message differs from the first")
	}
	r = c.get("/history/compare?a=" + id + "&b=" + strconv.FormatInt(nid, 10))
	if r.status != http.StatusOK {
		t.Fatalf("compare: %d", r.status)
	}
	var phases []string
	r.testid(t, "compare-row").Each(func(_ int, s *goquery.Selection) {
		p, _ := s.Attr("data-phase")
		phases = append(phases, p)
		if s.Find(`td[data-testid="compare-left"] [data-testid="event"]`).Length() == 0 || s.Find(`td[data-testid="compare-right"] [data-testid="event"]`).Length() == 0 {
			t.Errorf("phase %s not on both sides", p)
		}
	})
	if !slices.Contains(phases, "starttls") || !slices.Contains(phases, "body") {
		t.Errorf("compared phases %v", phases)
	}
}
