package handlers_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// send posts the compose form and returns the result page's path.
func (c *client) send(form url.Values, files ...file) string {
	c.a.t.Helper()
	r := c.postMultipart("/compose", form, files...)
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/sends/") {
		c.a.t.Fatalf("compose: %d %q\n%s", r.status, loc, r.body)
	}
	return loc
}

func TestSendToCaptureServer(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tok := c.csrf("/compose")
	form := composeForm(tok)
	form.Set("cc", "cc@example.test")
	form.Set("bcc", "hidden@example.test")
	form.Set("html", "<p>Hello <b>world</b></p>")
	form.Set("headers", "X-Test: yes\nX-Other: two")
	path := c.send(form, file{"notes.txt", "attached text\n"})

	checkSentPage(t, c.waitDone(path))
	checkDownloads(t, c, path)
	checkCapturedSend(t, c)

	// The form is remembered, without the password.
	again := c.get("/compose")
	if v, _ := again.testid(t, "input-cc").Attr("value"); v != "cc@example.test" {
		t.Errorf("cc not remembered: %q", v)
	}
}

// checkSentPage checks the result page of a send to the capture server:
// sent, a queue id, three recipients, every kind of line, verified TLS.
func checkSentPage(t *testing.T, r *response) {
	t.Helper()
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != string(smtp.StatusSent) {
		t.Fatalf("status %q\n%s", got, r.body)
	}
	if q := strings.TrimSpace(r.testid(t, "queue-id").Text()); !strings.HasPrefix(q, "C") {
		t.Errorf("queue id %q", q)
	}
	if n := r.testid(t, "recipient").Length(); n != 3 {
		t.Errorf("%d recipient rows", n)
	}
	events := r.testid(t, "event")
	if events.Length() < 10 {
		t.Fatalf("%d events", events.Length())
	}
	dirs := map[string]bool{}
	r.doc(t).Find(`[data-testid="event"]`).Each(func(_ int, s *goquery.Selection) {
		d, _ := s.Attr("data-dir")
		dirs[d] = true
	})
	for _, d := range []string{"client", "server", "info"} {
		if !dirs[d] {
			t.Errorf("no %s line", d)
		}
	}
	if rounds := r.testid(t, "round"); rounds.Length() < 5 {
		t.Errorf("%d rounds", rounds.Length())
	}
	if !strings.Contains(r.testid(t, "tls-info").Text(), "verified") {
		t.Errorf("TLS info: %q", r.testid(t, "tls-info").Text())
	}
	if r.testid(t, "explanation").Length() != 0 {
		t.Error("explanation shown for a good send")
	}
}

// checkDownloads checks a sent send's transcript and message downloads.
func checkDownloads(t *testing.T, c *client, path string) {
	t.Helper()
	txt := c.get(path + "/transcript.txt")
	if txt.status != http.StatusOK || !strings.Contains(txt.body, "-> EHLO") || !strings.Contains(txt.body, "<- 250") {
		t.Errorf("transcript.txt: %d\n%s", txt.status, txt.body)
	}
	js := c.get(path + "/transcript.json")
	var v struct {
		Status string       `json:"status"`
		Events []smtp.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(js.body), &v); err != nil || v.Status != "sent" || len(v.Events) == 0 {
		t.Errorf("transcript.json: %v %+v", err, v.Status)
	}
	eml := c.get(path + "/message.eml")
	if eml.status != http.StatusOK || !strings.Contains(eml.body, "Subject: hello from the test") || strings.Contains(eml.body, "hidden@example.test") {
		t.Errorf("message.eml: %d\n%s", eml.status, eml.body)
	}
}

// checkCapturedSend checks that the send is in the captured mail, with
// its hidden recipient, bodies and attachment.
func checkCapturedSend(t *testing.T, c *client) {
	t.Helper()
	list := c.get("/captured")
	if list.status != http.StatusOK || !strings.Contains(list.testid(t, "captured-list").Text(), "hello from the test") {
		t.Fatalf("captured list: %d\n%s", list.status, list.body)
	}
	href, _ := list.testid(t, "captured-subject").First().Attr("href")
	view := c.get(href)
	if view.status != http.StatusOK {
		t.Fatalf("captured view: %d", view.status)
	}
	if got := view.testid(t, "envelope-to").Text(); !strings.Contains(got, "hidden@example.test") {
		t.Errorf("envelope to %q", got)
	}
	if !strings.Contains(view.testid(t, "text-body").Text(), "world.") {
		t.Errorf("text body %q", view.testid(t, "text-body").Text())
	}
	frame := view.testid(t, "html-body")
	if sb, _ := frame.Attr("sandbox"); sb != "" || frame.Length() != 1 {
		t.Errorf("iframe sandbox %q (%d)", sb, frame.Length())
	}
	if doc, _ := frame.Attr("srcdoc"); !strings.Contains(doc, "<b>world</b>") || !strings.Contains(doc, "default-src 'none'") {
		t.Errorf("srcdoc %q", doc)
	}
	att := view.testid(t, "attachment")
	if !strings.Contains(att.Text(), "notes.txt") {
		t.Fatalf("attachments %q", att.Text())
	}
	ahref, _ := att.Find("a").Attr("href")
	part := c.get(ahref)
	// Its own type, as a download the browser may not sniff (captured.go).
	if part.status != http.StatusOK || part.body != "attached text\n" || part.header.Get("Content-Type") != "text/plain" ||
		!strings.HasPrefix(part.header.Get("Content-Disposition"), "attachment") || part.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("attachment: %d %q %q", part.status, part.header.Get("Content-Type"), part.body)
	}
	if raw := c.get(strings.Replace(ahref, "/parts/0", "/raw", 1)); raw.status != http.StatusOK || !strings.Contains(raw.body, "X-Test: yes") {
		t.Errorf("raw: %d", raw.status)
	}
}

func TestComposeValidationShowsInlineErrors(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tok := c.csrf("/compose")
	form := composeForm(tok)
	form.Set("from", "not an address")
	form.Set("to", "")
	form.Set("server", "adhoc")
	form.Set("host", "")
	form.Set("port", "99999")
	r := c.postMultipart("/compose", form)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", r.status)
	}
	for _, f := range []string{"from", "to", "host", "port"} {
		if r.testid(t, "error-"+f).Length() != 1 {
			t.Errorf("no error for %s", f)
		}
	}
	if r.testid(t, "error-summary").Length() != 1 {
		t.Error("no error summary")
	}
}

func TestStopAfterEHLO(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	form.Set("stop_after", "ehlo")
	r := c.waitDone(c.send(form))
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != string(smtp.StatusStopped) {
		t.Errorf("status %q", got)
	}
	if strings.Contains(r.testid(t, "transcript").Text(), "MAIL FROM") {
		t.Error("MAIL FROM sent despite stop after EHLO")
	}
}

// fakeSend is a SendFunc that replays scripted events and waits for a
// release before finishing, so that tests can watch a send in flight.
func fakeSend(release <-chan struct{}, lines []smtp.Event, final error) func(context.Context, smtp.Config, smtp.Envelope, smtp.Message, smtp.SendOptions) (*smtp.Result, error) {
	return func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		tr := cfg.Transcript
		tr.Info(smtp.PhaseConnect, "connected (fake)")
		<-release
		for _, ev := range lines {
			tr.Info(ev.Phase, "%s", ev.Line)
		}
		if final != nil {
			return &smtp.Result{Server: cfg.Addr}, final
		}
		return &smtp.Result{Server: cfg.Addr, Recipients: []smtp.RecipientResult{{Address: env.To[0], Accepted: true, Code: 250}}, Final: &smtp.Reply{Code: 250, Lines: []string{"2.0.0 queued as Q1"}}, QueueID: "Q1"}, nil
	}
}

func TestLiveTranscriptOverServerSentEvents(t *testing.T) {
	release := make(chan struct{})
	a := newApp(t, appOptions{send: fakeSend(release, []smtp.Event{{Phase: smtp.PhaseEHLO, Line: "second line"}, {Phase: smtp.PhaseQuit, Line: "third line"}}, nil)})
	c := a.client()
	c.signUp()
	path := c.send(composeForm(c.csrf("/compose")))

	// While running, the page shows what there is and reloads without JS.
	r := c.get(path)
	if running, _ := r.testid(t, "transcript").Attr("data-running"); running != "true" {
		t.Fatalf("not running: %s", r.body)
	}
	if !strings.Contains(r.body, `<noscript><meta http-equiv="refresh"`) {
		t.Error("no <noscript> refresh while running")
	}
	if live, _ := r.testid(t, "transcript").Attr("aria-live"); live != "polite" {
		t.Errorf("aria-live %q", live)
	}

	stream := c.events(path)
	next := stream.next
	// The stream sends the rounds that changed, rendered as the page
	// renders them: here every line is information, all in round 0.
	rounds := func(data string) (from, count int, html string) {
		var v struct {
			From, Count int
			HTML        string
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("rounds event %q: %v", data, err)
		}
		return v.From, v.Count, v.HTML
	}
	ev, data := next()
	if ev != "rounds" {
		t.Fatalf("first event %q %q", ev, data)
	}
	if from, count, html := rounds(data); from != 0 || count != 1 || !strings.Contains(html, "connected (fake)") ||
		!strings.Contains(html, `data-testid="round"`) || !strings.Contains(html, `data-index="0"`) {
		t.Fatalf("first rounds: from %d, count %d, %s", from, count, html)
	}
	close(release)
	var last string
	count := 1
	for {
		ev, data = next()
		if ev == "done" {
			break
		}
		if ev != "rounds" {
			t.Fatalf("event %q %q", ev, data)
		}
		from, n, html := rounds(data)
		if from != 0 || n <= count {
			t.Errorf("rounds from %d with %d lines after %d", from, n, count)
		}
		count, last = n, html
	}
	if count != 3 || !strings.Contains(last, "second line") || !strings.Contains(last, "third line") || !strings.Contains(last, `data-phase="ehlo"`) {
		t.Errorf("last rounds (%d lines): %s", count, last)
	}

	r = c.waitDone(path)
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != "sent" {
		t.Errorf("status %q", got)
	}
	if strings.Contains(r.body, "http-equiv=\"refresh\"") {
		t.Error("finished page still refreshes")
	}
	// A finished send's stream says done at once.
	if ev, _ := c.events(path).next(); ev != "done" {
		t.Errorf("finished stream: %q, want done", ev)
	}
	// A resume point that is no count of lines is refused, naming it.
	for _, after := range []string{"-1", "x", "99999999"} {
		if r := c.get(path + "/events?after=" + after); r.status != http.StatusBadRequest || !strings.Contains(r.body, "after must be") {
			t.Errorf("after=%s: %d %s", after, r.status, r.body)
		}
	}
}

func TestServerReplyWithScriptIsShownAsText(t *testing.T) {
	release := make(chan struct{})
	close(release)
	evil := `250 <script>alert("x")</script><img src=x onerror=alert(1)>`
	a := newApp(t, appOptions{send: fakeSend(release, []smtp.Event{{Phase: smtp.PhaseEHLO, Line: evil}}, &smtp.Error{Phase: smtp.PhaseMail, Code: 550, Message: "<b>no</b><script>alert(2)</script>"})})
	c := a.client()
	c.signUp()
	r := c.waitDone(c.send(composeForm(c.csrf("/compose"))))
	d := r.doc(t)
	if n := d.Find("main script, main img").Length(); n != 0 {
		t.Errorf("%d script/img elements from a server reply", n)
	}
	if !strings.Contains(r.testid(t, "transcript").Text(), evil) {
		t.Errorf("reply not shown as text")
	}
	if strings.Contains(r.body, "<script>alert") {
		t.Error("unescaped script in the page")
	}
}

func TestWrongPasswordShows535Explanation(t *testing.T) {
	a := newApp(t, appOptions{captureUser: "tester", capturePassword: "right-password"})
	c := a.client()
	c.signUp()
	form := composeForm(c.csrf("/compose"))
	form.Set("auth_mech", "PLAIN")
	form.Set("username", "tester")
	form.Set("password", "wrong-password-1234")
	r := c.waitDone(c.send(form))
	if got := strings.TrimSpace(r.testid(t, "explanation-code").Text()); got != "535 5.7.8" {
		t.Fatalf("explanation code %q\n%s", got, r.testid(t, "transcript").Text())
	}
	if !strings.Contains(r.testid(t, "explanation").Text(), "bad credentials") {
		t.Errorf("explanation %q", r.testid(t, "explanation").Text())
	}
}

func TestPasswordAppearsNowhere(t *testing.T) {
	const secret = "S3cret-Pa55word-never-shown"
	a := newApp(t, appOptions{captureUser: "tester", capturePassword: secret})
	c := a.client()
	c.signUp()

	// A send with AUTH: the page, downloads and logs never show it.
	form := composeForm(c.csrf("/compose"))
	form.Set("auth_mech", "LOGIN")
	form.Set("username", "tester")
	form.Set("password", secret)
	path := c.send(form)
	r := c.waitDone(path)
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != "sent" {
		t.Fatalf("status %q\n%s", got, r.testid(t, "transcript").Text())
	}
	pages := []*response{r, c.get(path + "/transcript.txt"), c.get(path + "/transcript.json"), c.get(path + "/message.eml"), c.get("/compose")}

	// A profile with a password: stored sealed, never sent back.
	tok := c.csrf("/profiles/new")
	pr := c.post("/profiles", url.Values{"_csrf": {tok}, "name": {"capture"}, "host": {"127.0.0.1"}, "port": {"2525"},
		"tls": {"starttls"}, "verify": {"on"}, "auth_mech": {"PLAIN"}, "username": {"tester"}, "password": {secret}})
	if pr.status != http.StatusSeeOther {
		t.Fatalf("save profile: %d\n%s", pr.status, pr.body)
	}
	list := c.get("/profiles")
	href, _ := list.testid(t, "profile").Find("a").First().Attr("href")
	edit := c.get(href)
	if edit.status != http.StatusOK || !strings.Contains(edit.body, "a password is stored") {
		t.Errorf("profile edit: %d", edit.status)
	}
	if v, _ := edit.testid(t, "input-password").Attr("value"); v != "" {
		t.Errorf("password field value %q", v)
	}
	pages = append(pages, list, edit)
	for i, p := range pages {
		if strings.Contains(p.body, secret) {
			t.Errorf("page %d shows the password", i)
		}
	}
	if strings.Contains(a.logs.String(), secret) {
		t.Error("the password is in the logs")
	}
	_ = a.store.Close()
	for _, f := range []string{a.dbPath, a.dbPath + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("the password is stored in clear in %s", f)
		}
	}
}

func TestShutdownAbortsRunningSendAndKeepsTranscript(t *testing.T) {
	release := make(chan struct{}) // never released
	a := newApp(t, appOptions{send: func(ctx context.Context, cfg smtp.Config, env smtp.Envelope, msg smtp.Message, opts smtp.SendOptions) (*smtp.Result, error) {
		cfg.Transcript.Info(smtp.PhaseConnect, "waiting for the server")
		select {
		case <-ctx.Done():
			return &smtp.Result{}, ctx.Err()
		case <-release:
		}
		return &smtp.Result{}, nil
	}})
	c := a.client()
	c.signUp()
	path := c.send(composeForm(c.csrf("/compose")))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.h.Shutdown(ctx); err == nil {
		t.Error("shutdown did not report the aborted send")
	}
	r := c.get(path)
	if got := strings.TrimSpace(r.testid(t, "status").Text()); got != string(smtp.StatusAborted) {
		t.Errorf("status %q", got)
	}
	if !strings.Contains(r.testid(t, "transcript").Text(), "waiting for the server") {
		t.Error("transcript lost")
	}
	// No new sends while shutting down.
	if r := c.postMultipart("/compose", composeForm(c.csrf("/compose"))); r.status != http.StatusServiceUnavailable {
		t.Errorf("compose during shutdown: %d", r.status)
	}
}

// TestTranscriptJSONCarriesTheFailure: a send refused at connect exports
// its failure as data beside the error text, and a sent one exports none.
func TestTranscriptJSONCarriesTheFailure(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	host, port, _ := net.SplitHostPort(testenv.ClosedPort(t))
	tests := []struct {
		name, server string
		want         *smtp.Failure
	}{
		{"refused", "adhoc", &smtp.Failure{Phase: smtp.PhaseConnect, Kind: smtp.KindConnRefused}},
		{"sent", "builtin", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := composeForm(c.csrf("/compose"))
			form.Set("server", tt.server)
			form.Set("host", host)
			form.Set("port", port)
			form.Set("tls", "none")
			path := c.send(form)
			c.waitDone(path)
			var v struct {
				Error   string        `json:"error"`
				Failure *smtp.Failure `json:"failure"`
			}
			if err := json.Unmarshal([]byte(c.get(path+"/transcript.json").body), &v); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && v.Failure != nil:
				t.Errorf("failure %+v in a send that did not fail", v.Failure)
			case tt.want != nil && (v.Failure == nil || v.Failure.Kind != tt.want.Kind || v.Failure.Phase != tt.want.Phase || v.Error == ""):
				t.Errorf("failure %+v, error %q; want kind %q at %q with the error text", v.Failure, v.Error, tt.want.Kind, tt.want.Phase)
			}
		})
	}
}
