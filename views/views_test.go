package views_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"sockmail/internal/webform"
	"sockmail/smtp"
	"sockmail/views"
)

// get serves a component through templ's handler and returns the status
// and the parsed document.
func get(t *testing.T, c templ.Component) (int, *goquery.Document) {
	t.Helper()
	rec := httptest.NewRecorder()
	templ.Handler(c).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, doc
}

func byID(d *goquery.Document, id string) *goquery.Selection {
	return d.Find(`[data-testid="` + id + `"]`)
}

func page() views.Page {
	return views.Page{Title: "T", User: "admin@example.test", CSRF: "tok", Flashes: []string{"saved <b>ok</b>"}}
}

func TestLayout(t *testing.T) {
	code, d := get(t, views.ErrorPage(page(), 404, "There is no such send."))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if d.Find("a.skip[href='#main']").Length() != 1 || d.Find("main#main").Length() != 1 {
		t.Error("no skip link or main")
	}
	if got := byID(d, "flash").Text(); got != "saved <b>ok</b>" {
		t.Errorf("flash %q", got)
	}
	if v, _ := d.Find(`form[action="/signout"] input[name="_csrf"]`).Attr("value"); v != "tok" {
		t.Errorf("sign-out CSRF %q", v)
	}
	if got := byID(d, "error-code").Text(); !strings.HasPrefix(got, "404 Not Found") {
		t.Errorf("error code %q", got)
	}
	if d.Find("noscript").Length() != 0 {
		t.Error("refresh on a page that does not need it")
	}
}

func result() views.Result {
	ev := func(ms float64, dir smtp.Direction, phase smtp.Phase, line string) smtp.Event {
		return smtp.Event{Offset: time.Duration(ms * float64(time.Millisecond)), Dir: dir, Phase: phase, Line: line}
	}
	return views.Result{
		ID: 7, Status: "permanent failure", StatusClass: "fail", Server: "mx.example.org:25", TLSMode: "starttls",
		MailFrom: "a@example.test", Rcpts: []string{"b@example.test"}, QueueID: "4AbC",
		Recipients: []views.RecipientRow{{RecipientResult: smtp.RecipientResult{Address: "b@example.test", Code: 550, EnhancedCode: "5.1.1", Message: "<unknown>"}}},
		Events: []smtp.Event{
			ev(0.5, smtp.DirInfo, smtp.PhaseConnect, "connected"),
			ev(1.25, smtp.DirServer, smtp.PhaseGreeting, `220 <script>alert(1)</script>`),
			ev(1.5, smtp.DirClient, smtp.PhaseEHLO, "EHLO x"),
			ev(2.75, smtp.DirServer, smtp.PhaseEHLO, "250 ok\x1b[31m"),
			{Offset: 3 * time.Millisecond, Dir: smtp.DirClient, Phase: smtp.PhaseAuth, Line: "AUTH PLAIN ********", Secret: true},
		},
		Explanation: &views.Explanation{Title: "The recipient does not exist", Detail: "d", Try: []string{"t"}, Code: "550 5.1.1"},
		HasMessage:  true,
	}
}

func TestResultPage(t *testing.T) {
	code, d := get(t, views.ResultPage(page(), result()))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if got := strings.TrimSpace(byID(d, "status").Text()); got != "permanent failure" {
		t.Errorf("status %q", got)
	}
	if got := byID(d, "queue-id").Text(); got != "4AbC" {
		t.Errorf("queue id %q", got)
	}
	events := byID(d, "event")
	if events.Length() != 5 {
		t.Fatalf("%d events", events.Length())
	}
	// Direction is told by a marker as well as a class.
	wantMarkers := []string{"i", "S:", "C:", "S:", "C:"}
	events.Each(func(i int, s *goquery.Selection) {
		if m := s.Find(".marker").Text(); m != wantMarkers[i] {
			t.Errorf("event %d marker %q, want %q", i, m, wantMarkers[i])
		}
		if s.Find(".sr-only").Text() == "" {
			t.Errorf("event %d has no screen-reader direction", i)
		}
	})
	if ms := byID(d, "event-ms").Eq(1).Text(); ms != "1.250" {
		t.Errorf("elapsed ms %q", ms)
	}
	if line := byID(d, "event-line").Eq(1).Text(); line != `220 <script>alert(1)</script>` {
		t.Errorf("escaped line %q", line)
	}
	if d.Find("main script").Length() != 0 {
		t.Error("a server line became a script element")
	}
	if line := byID(d, "event-line").Eq(3).Text(); line != `250 ok\x1b[31m` {
		t.Errorf("control characters not escaped: %q", line)
	}
	if s := events.Eq(4).Find(".secret").Length(); s != 1 {
		t.Error("secret line not marked")
	}
	// Round by round: connect and greeting, EHLO with its reply, AUTH
	// with none; each reply beside its command with the round trip.
	rounds := byID(d, "round")
	if rounds.Length() != 3 {
		t.Errorf("%d rounds, want connect and greeting, EHLO, AUTH", rounds.Length())
	}
	ehlo := rounds.Eq(1).Find(`[data-testid="exchange"]`)
	if ehlo.Length() != 1 || ehlo.Find(`.x-client [data-testid="event-line"]`).Text() != "EHLO x" ||
		ehlo.Find(`.x-server [data-testid="event-line"]`).Text() != `250 ok\x1b[31m` {
		t.Errorf("EHLO exchange: %q", ehlo.Text())
	}
	if got := ehlo.Find(`[data-testid="exchange-wait"]`).Text(); got != "round trip 1.250 ms" {
		t.Errorf("EHLO round trip %q", got)
	}
	if rounds.Eq(2).Find(`[data-testid="no-reply"]`).Length() != 1 {
		t.Error("the AUTH without a reply is not marked")
	}
	if byID(d, "recipient").Length() != 1 || byID(d, "explanation-code").Text() != "550 5.1.1" {
		t.Error("recipient or explanation missing")
	}
	tr := byID(d, "transcript")
	if r, _ := tr.Attr("data-running"); r != "false" {
		t.Errorf("data-running %q", r)
	}
	if l, _ := tr.Attr("aria-live"); l != "polite" {
		t.Errorf("aria-live %q", l)
	}
	for _, id := range []string{"download-txt", "download-json", "download-eml"} {
		if byID(d, id).Length() != 1 {
			t.Errorf("no %s", id)
		}
	}
}

func TestResultPageRunning(t *testing.T) {
	r := result()
	r.Running, r.StatusClass = true, "running"
	p := page()
	p.RefreshSeconds = 2
	code, d := get(t, views.ResultPage(p, r))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if running, _ := byID(d, "transcript").Attr("data-running"); running != "true" {
		t.Error("not marked running")
	}
	if n, _ := byID(d, "transcript").Attr("data-count"); n != "5" {
		t.Errorf("data-count %q", n)
	}
	if byID(d, "downloads").Length() != 0 {
		t.Error("downloads offered while running")
	}
	if d.Find("noscript").Length() != 1 {
		t.Error("no <noscript> refresh while running")
	}
}

func TestComposePageShowsErrorsInline(t *testing.T) {
	f := webform.NewCompose()
	f.From = "bad"
	errs := webform.Errors{"from": "Enter the sender <address>."}
	code, d := get(t, views.ComposePage(page(), views.Compose{Form: f, Errors: errs, BuiltinAddr: "127.0.0.1:1025", MaxUpload: 1 << 20,
		Profiles: []views.Option{{Value: "3", Label: "relay"}}}))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if byID(d, "error-summary").Length() != 1 {
		t.Error("no error summary")
	}
	in := byID(d, "input-from")
	if v, _ := in.Attr("aria-invalid"); v != "true" {
		t.Errorf("aria-invalid %q", v)
	}
	if v, _ := in.Attr("aria-describedby"); v != "err-from" {
		t.Errorf("aria-describedby %q", v)
	}
	if got := d.Find("#err-from").Text(); got != "Enter the sender <address>." {
		t.Errorf("message %q", got)
	}
	if n := byID(d, "input-server").Find("option").Length(); n != 3 {
		t.Errorf("%d server options", n)
	}
	if v, _ := byID(d, "input-password").Attr("value"); v != "" {
		t.Errorf("password value %q", v)
	}
	// Every visible input has a label.
	d.Find("input[id], select[id], textarea[id]").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if d.Find(`label[for="`+id+`"]`).Length() == 0 {
			t.Errorf("no label for #%s", id)
		}
	})
}

func TestCapturedView(t *testing.T) {
	m := views.CapturedMessage{
		CapturedRow: views.CapturedRow{ID: 3, Subject: "hi", MailFrom: "a@example.test", Rcpts: []string{"b@example.test"}},
		Headers:     []views.Header{{Name: "Subject", Value: "hi"}},
		Text:        "plain <text>",
		HTMLDoc:     `<p onclick="x()">html</p><img src="https://tracker.example/x.png">`,
		Attachments: []views.Part{{Index: 0, Filename: "a.pdf", ContentType: "application/pdf", Size: 10}},
		Raw:         "Subject: hi\r\n\r\nplain",
	}
	code, d := get(t, views.CapturedView(page(), m))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	f := byID(d, "html-body")
	if sb, ok := f.Attr("sandbox"); !ok || sb != "" {
		t.Errorf("sandbox %q %v", sb, ok)
	}
	if doc, _ := f.Attr("srcdoc"); doc != m.HTMLDoc {
		t.Errorf("srcdoc %q", doc)
	}
	if d.Find("main img, main p[onclick]").Length() != 0 {
		t.Error("HTML body leaked into the page")
	}
	if byID(d, "text-body").Text() != "plain <text>" {
		t.Error("text body")
	}
	if href, _ := byID(d, "attachment").Find("a").Attr("href"); href != "/captured/3/parts/0" {
		t.Errorf("attachment href %q", href)
	}
}
