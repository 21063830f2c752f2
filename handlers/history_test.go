package handlers_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"sockmail/handlers"
	"sockmail/internal/capture"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/monitor"
	"sockmail/internal/store"
	"sockmail/smtp"
)

// historyOptions configures newHistoryApp.
type historyOptions struct {
	backend   string // store.BackendSQLite (default) or store.BackendPostgres
	send      handlers.SendFunc
	retention handlers.Retention
	maxStored int64
}

// newHistoryApp is newApp on either backend, with the history options.
func newHistoryApp(t *testing.T, o historyOptions) *app {
	t.Helper()
	dir := t.TempDir()
	st, dsn := openStore(t, o.backend, dir)
	logs, log := debugLogger()
	cert, err := capture.LoadOrCreateCertificate(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := capture.Listen(capture.Options{Addr: "127.0.0.1:0", Certificate: cert, Logger: log}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Shutdown(context.Background()) })
	key, hk, bk := make([]byte, 32), make([]byte, 64), make([]byte, 32)
	for _, b := range [][]byte{key, hk, bk} {
		_, _ = rand.Read(b)
	}
	box, err := crypt.New(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.New(handlers.Deps{
		Store: st, Sealer: box, Logger: log, SessionHashKey: hk, SessionBlockKey: bk,
		SendTimeout: 20 * time.Second, MaxUpload: 1 << 20,
		Capture: handlers.CaptureServer{Addr: cs.Addr(), Certificate: cs.Certificate()},
		Send:    o.send, BcryptCost: bcrypt.MinCost, Retention: o.retention, MaxStoredMessage: o.maxStored,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Routes())
	t.Cleanup(func() { closeApp(srv, h) })
	return &app{t: t, srv: srv, h: h, store: st, dbPath: dsn, capture: cs, logs: logs}
}

// onBothBackends runs fn on SQLite and on PostgreSQL.
func onBothBackends(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// ev builds a transcript event.
func ev(ms float64, dir smtp.Direction, phase smtp.Phase, line string) smtp.Event {
	return smtp.Event{Offset: time.Duration(ms * float64(time.Millisecond)), Dir: dir, Phase: phase, Line: line}
}

// plainTranscript is a short successful conversation; extra lines go
// after the greeting.
func plainTranscript(rcpt, queueID string, extra ...smtp.Event) []smtp.Event {
	evs := []smtp.Event{
		ev(0.1, smtp.DirInfo, smtp.PhaseConnect, "connected to 192.0.2.1:25"),
		ev(1.0, smtp.DirServer, smtp.PhaseGreeting, "220 mx.example.org ESMTP"),
	}
	evs = append(evs, extra...)
	return append(evs,
		ev(1.5, smtp.DirClient, smtp.PhaseEHLO, "EHLO client.example"),
		ev(2.0, smtp.DirServer, smtp.PhaseEHLO, "250 mx.example.org"),
		ev(2.5, smtp.DirClient, smtp.PhaseMail, "MAIL FROM:<sender@example.test>"),
		ev(3.0, smtp.DirServer, smtp.PhaseMail, "250 2.1.0 Ok"),
		ev(3.5, smtp.DirClient, smtp.PhaseRcpt, "RCPT TO:<"+rcpt+">"),
		ev(4.0, smtp.DirServer, smtp.PhaseRcpt, "250 2.1.5 Ok"),
		ev(4.5, smtp.DirClient, smtp.PhaseData, "DATA"),
		ev(5.0, smtp.DirServer, smtp.PhaseData, "354 go ahead"),
		ev(5.5, smtp.DirClient, smtp.PhaseBody, "[body: 120 bytes]"),
		ev(7.0, smtp.DirServer, smtp.PhaseBody, "250 2.0.0 Ok: queued as "+queueID),
		ev(7.5, smtp.DirClient, smtp.PhaseQuit, "QUIT"),
		ev(8.0, smtp.DirServer, smtp.PhaseQuit, "221 2.0.0 Bye"),
	)
}

// seedSend stores a finished send and returns it.
func (a *app) seedSend(s store.Send) *store.Send {
	a.t.Helper()
	if s.Source == "" {
		s.Source = "web"
	}
	if s.Status == "" {
		s.Status = smtp.StatusSent
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = time.Now().Add(-time.Hour)
	}
	if s.FinishedAt == nil && s.Status != store.StatusRunning {
		f := s.CreatedAt.Add(8 * time.Millisecond)
		s.FinishedAt = &f
	}
	if s.MailFrom == "" {
		s.MailFrom = "sender@example.test"
	}
	if s.Rcpts == nil {
		s.Rcpts = []string{"rcpt@example.test"}
	}
	if s.Server == "" {
		s.Server = "mx.example.org:25"
	}
	if s.TLSMode == "" {
		s.TLSMode = "starttls"
	}
	if s.Events == nil && s.Status != store.StatusRunning {
		s.Events = plainTranscript(s.Rcpts[0], s.QueueID)
	}
	if s.Message == nil {
		s.Message = []byte("From: <" + s.MailFrom + ">\r\nTo: <" + s.Rcpts[0] + ">\r\nSubject: " + s.Subject + "\r\n\r\nHello.\r\n")
	}
	if s.Headers == "" {
		s.Headers = "From: <" + s.MailFrom + ">\r\nTo: <" + s.Rcpts[0] + ">\r\nSubject: " + s.Subject
	}
	if err := a.store.CreateSend(context.Background(), &s); err != nil {
		a.t.Fatal(err)
	}
	return &s
}

// rowIDs returns the send ids of a history list page, in order.
func rowIDs(t *testing.T, r *response) []int64 {
	t.Helper()
	var ids []int64
	r.doc(t).Find(`[data-testid="history-row"]`).Each(func(_ int, s *goquery.Selection) {
		v, _ := s.Attr("data-id")
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("row id %q", v)
		}
		ids = append(ids, id)
	})
	return ids
}

func TestHistoryNeedsSignIn(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	anon := a.client()
	for _, path := range []string{"/history", "/history/1", "/history/compare?a=1&b=2"} {
		if r := anon.get(path); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin?next=") {
			t.Errorf("GET %s signed out: %d %s", path, r.status, r.header.Get("Location"))
		}
	}
	for _, path := range []string{"/history/1/delete", "/history/1/resend", "/history/retention"} {
		tok := anon.csrf("/signin")
		if r := anon.post(path, url.Values{"_csrf": {tok}}); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s signed out: %d", path, r.status)
		}
	}
	if r := c.get("/history"); r.status != http.StatusOK || r.doc(t).Find(`nav a[href="/history"][aria-current="page"]`).Length() != 1 {
		t.Errorf("history page %d, or not current in the navigation", r.status)
	}
}

func TestHistoryListFiltersAndSearch(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		c := a.client()
		c.signUp()
		day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 0, 0, 0, time.Local) }
		greylist := ev(1.2, smtp.DirServer, smtp.PhaseGreeting, "220-greylisting in use, be patient")
		s1 := a.seedSend(store.Send{CreatedAt: day(1), Subject: "Invoice March", Rcpts: []string{"alice@example.net"}, QueueID: "QA1"})
		s2 := a.seedSend(store.Send{CreatedAt: day(2), Source: "cli", Status: smtp.StatusPermFail, Rcpts: []string{"bob@example.net"},
			Server: "relay.example.com:587", Error: "550 5.1.1 no such user",
			Recipients: []smtp.RecipientResult{{Address: "bob@example.net", Code: 550, EnhancedCode: "5.1.1", Message: "no such user"}}})
		s3 := a.seedSend(store.Send{CreatedAt: day(3), Source: "contact", Status: smtp.StatusTempFail, Rcpts: []string{"carol@example.org"},
			MailFrom: "forms@example.test", Events: plainTranscript("carol@example.org", "", greylist)})
		s4 := a.seedSend(store.Send{CreatedAt: day(4), Subject: "Report", Rcpts: []string{"Alice.Smith@Example.NET"}, MailFrom: "boss@example.test", QueueID: "QA4"})
		s5 := a.seedSend(store.Send{CreatedAt: day(5), Source: "cli", Rcpts: []string{"dave@example.com"}, Server: "relay.example.com:587", QueueID: "QA5"})
		s6 := a.seedSend(store.Send{CreatedAt: day(6), Source: delivery.SourceAlert, Rcpts: []string{"oncall@example.net"}})
		s7 := a.seedSend(store.Send{CreatedAt: day(7), Source: monitor.SourceMonitor, Rcpts: []string{"probe@example.net"}})

		r := c.get("/history")
		if r.status != http.StatusOK {
			t.Fatalf("GET /history: %d", r.status)
		}
		if got, want := rowIDs(t, r), []int64{s7.ID, s6.ID, s5.ID, s4.ID, s3.ID, s2.ID, s1.ID}; !slices.Equal(got, want) {
			t.Fatalf("rows %v, want newest first %v", got, want)
		}
		if got := strings.TrimSpace(r.testid(t, "history-total").Text()); got != "7 sends match." {
			t.Errorf("total %q", got)
		}
		tests := []struct {
			query string
			want  []int64
		}{
			{"status=permanent+failure", []int64{s2.ID}},
			{"source=cli", []int64{s5.ID, s2.ID}},
			{"source=contact", []int64{s3.ID}},
			{"source=alert", []int64{s6.ID}},           // a monitor's alert email, delivered by the outbox
			{"source=monitor", []int64{s7.ID}},         // a monitor's run
			{"recipient=alice", []int64{s4.ID, s1.ID}}, // case-insensitive substring
			{"sender=boss%40", []int64{s4.ID}},
			{"server=relay.example", []int64{s5.ID, s2.ID}},
			{"q=greylisting", []int64{s3.ID}}, // a transcript line
			{"q=queued+QA4", []int64{s4.ID}},  // every word
			{"q=no+such+user", []int64{s2.ID}},
			{"q=Invoice", []int64{s1.ID}},
			{"q=nothing-like-this", nil},
			{"since=2025-03-02&until=2025-03-04", []int64{s4.ID, s3.ID, s2.ID}}, // both days included
			{"since=2025-03-05", []int64{s7.ID, s6.ID, s5.ID}},
			{"until=2025-03-01", []int64{s1.ID}},
			{"source=cli&server=relay&since=2025-03-03", []int64{s5.ID}},
			{"q=%00%FF%E2%80%AE", nil}, // hostile search text finds nothing, harmlessly
			{"recipient=%00", nil},
		}
		for _, tt := range tests {
			r := c.get("/history?" + tt.query)
			if r.status != http.StatusOK {
				t.Errorf("%s: status %d\n%s", tt.query, r.status, r.testid(t, "history-filter").Text())
				continue
			}
			if got := rowIDs(t, r); !slices.Equal(got, tt.want) {
				t.Errorf("%s: rows %v, want %v", tt.query, got, tt.want)
			}
			if len(tt.want) == 0 && r.testid(t, "no-sends").Length() != 1 {
				t.Errorf("%s: no 'no send' message", tt.query)
			}
		}
		// The form shows the filter as given.
		r = c.get("/history?source=cli&q=relay&since=2025-03-01")
		if v, _ := r.testid(t, "input-q").Attr("value"); v != "relay" {
			t.Errorf("search field %q", v)
		}
		if v, _ := r.doc(t).Find(`[data-testid="input-source"] option[selected]`).Attr("value"); v != "cli" {
			t.Errorf("source selected %q", v)
		}
		if v, _ := r.testid(t, "input-since").Attr("value"); v != "2025-03-01" {
			t.Errorf("since field %q", v)
		}
		bad := []struct{ query, field string }{
			{"status=bogus", "status"},
			{"source=ftp", "source"},
			{"since=yesterday", "since"},
			{"until=2025-13-01", "until"},
			{"since=2025-03-05&until=2025-03-01", "until"},
			{"q=" + strings.Repeat("x", 501), "q"},
			{"recipient=" + strings.Repeat("x", 201), "recipient"},
		}
		for _, tt := range bad {
			r := c.get("/history?" + tt.query)
			if r.status != http.StatusUnprocessableEntity || r.testid(t, "error-"+tt.field).Length() != 1 {
				t.Errorf("%s: status %d, error on %s: %q", tt.query, r.status, tt.field, r.testid(t, "error-"+tt.field).Text())
			}
		}
	})
}

func TestHistoryPagination(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	var web []int64
	base := time.Now().Add(-48 * time.Hour)
	for i := range 130 {
		src := "web"
		if i%2 == 1 {
			src = "cli"
		}
		s := a.seedSend(store.Send{CreatedAt: base.Add(time.Duration(i) * time.Minute), Source: src, Subject: fmt.Sprintf("page test %d", i),
			Events: []smtp.Event{ev(0, smtp.DirInfo, smtp.PhaseConnect, "x")}})
		if src == "web" {
			web = append(web, s.ID)
		}
	}
	slices.Reverse(web)

	walk := func(start string) (ids []int64, pages int) {
		t.Helper()
		next := start
		for next != "" {
			r := c.get(next)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d", next, r.status)
			}
			pages++
			ids = append(ids, rowIDs(t, r)...)
			if pages > 1 && r.testid(t, "first-page").Length() != 1 {
				t.Errorf("page %d has no link to the newest", pages)
			}
			next, _ = r.testid(t, "next-page").Attr("href")
			if next != "" && !strings.Contains(next, "before=") {
				t.Fatalf("next link %q has no cursor", next)
			}
		}
		return ids, pages
	}
	all, pages := walk("/history")
	if pages != 3 || len(all) != 130 {
		t.Fatalf("%d pages, %d sends; want 3 pages of 130", pages, len(all))
	}
	if !slices.IsSortedFunc(all, func(x, y int64) int { return int(y - x) }) || len(slices.Compact(slices.Clone(all))) != 130 {
		t.Errorf("pages are not newest first without repeats: %v", all)
	}
	// The filter stays on every page.
	got, pages := walk("/history?source=web")
	if pages != 2 || !slices.Equal(got, web) {
		t.Errorf("source=web: %d pages, %d sends; want 2 pages and %d sends in order", pages, len(got), len(web))
	}
	r := c.get("/history?source=web&before=" + strconv.FormatInt(web[49], 10))
	if got := strings.TrimSpace(r.testid(t, "history-total").Text()); got != "65 sends match." {
		t.Errorf("total on a later page %q", got)
	}
	if href, _ := r.testid(t, "first-page").Attr("href"); href != "/history?source=web" {
		t.Errorf("first page link %q", href)
	}
}

func TestHistoryDetail(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	u, err := a.store.UserByEmail(context.Background(), adminEmail)
	if err != nil {
		t.Fatal(err)
	}
	parent := a.seedSend(store.Send{Subject: "first"})
	snd := a.seedSend(store.Send{
		Subject: "Quarterly numbers", UserID: &u.ID, ClientAddr: "198.51.100.9", ParentID: &parent.ID,
		Status: smtp.StatusPartial, QueueID: "4XyZ", Rcpts: []string{"ok@example.net", "gone@example.net"},
		Recipients: []smtp.RecipientResult{
			{Address: "ok@example.net", Accepted: true, Code: 250, EnhancedCode: "2.1.5", Message: "Ok"},
			{Address: "gone@example.net", Code: 550, EnhancedCode: "5.1.1", Message: "User unknown"},
		},
		DurationMS: 8.25,
	})
	r := c.get("/history/" + strconv.FormatInt(snd.ID, 10))
	if r.status != http.StatusOK {
		t.Fatalf("detail: %d", r.status)
	}
	checks := map[string]string{
		"status": "partly sent", "server": "mx.example.org:25", "queue-id": "4XyZ", "source": "web",
		"started-by": adminEmail, "duration": "8.2 ms",
	}
	for id, want := range checks {
		if got := strings.TrimSpace(r.testid(t, id).Text()); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if href, _ := r.testid(t, "parent").Find("a").First().Attr("href"); href != "/history/"+strconv.FormatInt(parent.ID, 10) {
		t.Errorf("parent link %q", href)
	}
	if n := r.testid(t, "recipient").Length(); n != 2 {
		t.Errorf("%d recipient rows", n)
	}
	if acc, _ := r.testid(t, "recipient").Eq(1).Attr("data-accepted"); acc != "false" {
		t.Errorf("second recipient accepted=%s", acc)
	}
	if n := r.testid(t, "event").Length(); n != len(snd.Events) {
		t.Errorf("%d transcript lines, want %d", n, len(snd.Events))
	}
	if running, _ := r.testid(t, "transcript").Attr("data-running"); running != "false" {
		t.Errorf("stored send shown running")
	}
	// Where the time went: the result page's timing summary, from the
	// paired exchanges (EHLO 1.5 ms to its reply at 2.0 ms).
	parts := map[string]string{}
	r.testid(t, "timing-part").Each(func(_ int, s *goquery.Selection) {
		k, _ := s.Attr("data-key")
		parts[k] = strings.TrimSpace(s.Find(`[data-testid="timing-ms"]`).Text())
	})
	if parts["hello"] == "" || !strings.HasPrefix(parts["hello"], "0.5") {
		t.Errorf("timing summary %v, want EHLO 0.5 ms", parts)
	}
	if r.testid(t, "timing").Length() != 0 {
		t.Errorf("the old per-phase timings table is still shown beside the summary")
	}
	if got := r.testid(t, "headers").Text(); !strings.Contains(got, "Subject: Quarterly numbers") {
		t.Errorf("headers %q", got)
	}
	for _, id := range []string{"download-txt", "download-json", "download-eml", "resend-form", "delete-form", "compare-form"} {
		if r.testid(t, id).Length() != 1 {
			t.Errorf("no %s", id)
		}
	}
	// The parent lists it as a resend, with a comparison.
	r = c.get("/history/" + strconv.FormatInt(parent.ID, 10))
	if id, _ := r.testid(t, "resend-item").Attr("data-id"); id != strconv.FormatInt(snd.ID, 10) {
		t.Errorf("parent's resends: %q", r.testid(t, "resends").Text())
	}
	if r.testid(t, "resend-item").Find(`a[href="/history/compare?a=`+strconv.FormatInt(parent.ID, 10)+`&b=`+strconv.FormatInt(snd.ID, 10)+`"]`).Length() != 1 {
		t.Errorf("no compare link from the parent")
	}
	for _, path := range []string{"/history/999999", "/history/abc", "/history/-1", "/history/0"} {
		if r := c.get(path); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, r.status)
		}
	}
	// A running send not running here, and recent, is running elsewhere;
	// an old one was interrupted. Neither can be re-sent or deleted while
	// it may run.
	elsewhere := a.seedSend(store.Send{Status: store.StatusRunning, CreatedAt: time.Now()})
	r = c.get("/history/" + strconv.FormatInt(elsewhere.ID, 10))
	if r.status != http.StatusOK || r.testid(t, "remote-running").Length() != 1 || r.testid(t, "delete-form").Length() != 0 {
		t.Errorf("send running elsewhere: %d %q", r.status, r.testid(t, "status").Text())
	}
	old := a.seedSend(store.Send{Status: store.StatusRunning, CreatedAt: time.Now().Add(-time.Hour)})
	r = c.get("/history/" + strconv.FormatInt(old.ID, 10))
	if got := r.testid(t, "status").Text(); !strings.Contains(got, "interrupted") || r.testid(t, "delete-form").Length() != 1 {
		t.Errorf("interrupted send: %q", got)
	}
}

func TestHistoryExports(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	snd := a.seedSend(store.Send{Subject: "export me", QueueID: "QEXP", Source: "cli"})
	id := strconv.FormatInt(snd.ID, 10)
	get := func(path string) *response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+path, nil)
		return c.do(req)
	}
	r := get("/sends/" + id + "/transcript.txt")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") ||
		r.header.Get("Content-Disposition") != `attachment; filename="sockmail-send-`+id+`.txt"` {
		t.Fatalf("txt: %d %v", r.status, r.header)
	}
	for _, want := range []string{"queue id QEXP", "<- 220 mx.example.org ESMTP", "-> EHLO client.example"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("txt lacks %q:\n%s", want, r.body)
		}
	}
	r = get("/sends/" + id + "/transcript.json")
	var doc struct {
		ID           int64        `json:"id"`
		QueueID      string       `json:"queue_id"`
		Status       string       `json:"status"`
		Source       string       `json:"source"`
		Events       []smtp.Event `json:"events"`
		PhaseTimings []struct {
			Phase string  `json:"phase"`
			MS    float64 `json:"ms"`
		} `json:"phase_timings"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &doc) != nil {
		t.Fatalf("json: %d %s", r.status, r.body)
	}
	if doc.ID != snd.ID || doc.QueueID != "QEXP" || doc.Status != "sent" || doc.Source != "cli" || len(doc.Events) != len(snd.Events) {
		t.Errorf("json %+v", doc)
	}
	if len(doc.PhaseTimings) != 8 || doc.PhaseTimings[2].Phase != "ehlo" || doc.PhaseTimings[2].MS != 1 {
		t.Errorf("phase timings %+v", doc.PhaseTimings)
	}
	r = get("/sends/" + id + "/message.eml")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "message/rfc822" || r.body != string(snd.Message) {
		t.Errorf("eml: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	noMsg := a.seedSend(store.Send{Message: []byte{}})
	if r := get("/sends/" + strconv.FormatInt(noMsg.ID, 10) + "/message.eml"); r.status != http.StatusNotFound {
		t.Errorf("eml of a send without message: %d", r.status)
	}
}

// hostileEvents are server lines a hostile server could send.
func hostileEvents() []smtp.Event {
	long := "250-" + strings.Repeat("A", 4096) + "END"
	return []smtp.Event{
		ev(0.1, smtp.DirInfo, smtp.PhaseConnect, "connected"),
		ev(1, smtp.DirServer, smtp.PhaseGreeting, "220 nul\x00here invalid\xff\xfeutf8 esc\x1b[2J\x1b[31mred bidi\u202eevil\u202c <script>alert(1)</script>"),
		ev(2, smtp.DirClient, smtp.PhaseEHLO, "EHLO x"),
		ev(3, smtp.DirServer, smtp.PhaseEHLO, long),
		ev(4, smtp.DirServer, smtp.PhaseEHLO, "250 bell\x07 del\x7f c1\u0085 lre\u202a isolate\u2066"),
	}
}

// checkHarmless fails if a page carries a raw hostile byte.
func checkHarmless(t *testing.T, what, body string) {
	t.Helper()
	if !utf8.ValidString(body) {
		t.Errorf("%s: invalid UTF-8 in the page", what)
	}
	for _, bad := range []string{"\x00", "\x1b", "\x07", "\x7f", "\u0085", "\u202e", "\u202a", "\u2066", "<script>alert"} {
		if strings.Contains(body, bad) {
			t.Errorf("%s: raw %q in the page", what, bad)
		}
	}
}

func TestHistoryHostileBytes(t *testing.T) {
	onBothBackends(t, func(t *testing.T, backend string) {
		a := newHistoryApp(t, historyOptions{backend: backend})
		c := a.client()
		c.signUp()
		hostile := "x\x00y\xff\x1b[31m\u202eevil"
		snd := a.seedSend(store.Send{
			Subject: "subject " + hostile, Server: "mx.example.org:25", QueueID: "Q\u202e1", Error: "550 " + hostile,
			Status: smtp.StatusPermFail, Events: hostileEvents(), Headers: "Subject: " + hostile + "\r\nX-A: b",
			Recipients: []smtp.RecipientResult{{Address: "rcpt@example.test", Code: 550, Message: "no " + hostile}},
		})
		other := a.seedSend(store.Send{Subject: "plain"})
		id := strconv.FormatInt(snd.ID, 10)
		pages := map[string]string{
			"detail":  "/history/" + id,
			"list":    "/history",
			"search":  "/history?q=evil",
			"compare": "/history/compare?a=" + id + "&b=" + strconv.FormatInt(other.ID, 10),
		}
		for name, path := range pages {
			r := c.get(path)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d", name, r.status)
			}
			checkHarmless(t, name, r.body)
		}
		r := c.get(pages["detail"])
		lines := r.testid(t, "event-line")
		if got := lines.Eq(1).Text(); got != `220 nul\x00here invalid\xff\xfeutf8 esc\x1b[2J\x1b[31mred bidi\u202eevil\u202c <script>alert(1)</script>` {
			t.Errorf("greeting shown as %q", got)
		}
		if got := lines.Eq(3).Text(); got != "250-"+strings.Repeat("A", 4096)+"END" {
			t.Errorf("4 KB line cut or changed: %d bytes", len(got))
		}
		if got := lines.Eq(4).Text(); got != `250 bell\x07 del\x7f c1\u0085 lre\u202a isolate\u2066` {
			t.Errorf("control line shown as %q", got)
		}
		if got := r.testid(t, "queue-id").Text(); got != `Q\u202e1` {
			t.Errorf("queue id shown as %q", got)
		}
		if got := r.testid(t, "headers").Text(); got != "Subject: x\\x00y\\xff\\x1b[31m\\u202eevil\nX-A: b" {
			t.Errorf("headers shown as %q", got)
		}
		if got := rowIDs(t, c.get("/history?q=evil")); !slices.Equal(got, []int64{snd.ID}) {
			t.Errorf("search in hostile text: %v", got)
		}
		// The text download escapes control characters too.
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/sends/"+id+"/transcript.txt", nil)
		txt := c.do(req)
		if strings.ContainsAny(txt.body, "\x00\x1b\u202e") || !utf8.ValidString(txt.body) {
			t.Errorf("text export carries raw hostile bytes")
		}
		// The stored bytes themselves are kept exactly.
		got, err := a.store.Send(context.Background(), snd.ID)
		if err != nil || got.Events[1].Line != hostileEvents()[1].Line || got.Subject != snd.Subject {
			t.Errorf("stored hostile bytes changed: %v", err)
		}
	})
}

func TestHistoryCompare(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	tlsAuth := []smtp.Event{
		ev(0.1, smtp.DirInfo, smtp.PhaseConnect, "connected to 192.0.2.7:587"),
		ev(1, smtp.DirServer, smtp.PhaseGreeting, "220 relay ESMTP"),
		ev(2, smtp.DirClient, smtp.PhaseEHLO, "EHLO c"),
		ev(3, smtp.DirServer, smtp.PhaseEHLO, "250 STARTTLS"),
		ev(4, smtp.DirClient, smtp.PhaseStartTLS, "STARTTLS"),
		ev(5, smtp.DirServer, smtp.PhaseStartTLS, "220 go"),
		ev(6, smtp.DirClient, smtp.PhaseEHLO, "EHLO c"),
		ev(7, smtp.DirServer, smtp.PhaseEHLO, "250 AUTH PLAIN"),
		ev(8, smtp.DirClient, smtp.PhaseAuth, "AUTH PLAIN ********"),
		ev(9, smtp.DirServer, smtp.PhaseAuth, "235 ok"),
		ev(10, smtp.DirClient, smtp.PhaseMail, "MAIL FROM:<sender@example.test>"),
		ev(11, smtp.DirServer, smtp.PhaseMail, "250 2.1.0 Ok"),
		ev(12, smtp.DirClient, smtp.PhaseRcpt, "RCPT TO:<rcpt@example.test>"),
		ev(13, smtp.DirServer, smtp.PhaseRcpt, "550 5.1.1 unknown"),
		ev(14, smtp.DirClient, smtp.PhaseQuit, "QUIT"),
		ev(15, smtp.DirServer, smtp.PhaseQuit, "221 bye"),
	}
	left := a.seedSend(store.Send{Events: plainTranscript("rcpt@example.test", "Q1"), QueueID: "Q1"})
	right := a.seedSend(store.Send{Events: tlsAuth, Status: smtp.StatusPermFail, Server: "relay.example:587", Error: "550 5.1.1 unknown"})
	r := c.get(fmt.Sprintf("/history/compare?a=%d&b=%d", left.ID, right.ID))
	if r.status != http.StatusOK {
		t.Fatalf("compare: %d", r.status)
	}
	type row struct {
		phase              string
		left, right, diffs bool
	}
	var got []row
	r.testid(t, "compare-row").Each(func(_ int, s *goquery.Selection) {
		p, _ := s.Attr("data-phase")
		d, _ := s.Attr("data-differs")
		got = append(got, row{p, s.Find(`td[data-testid="compare-left"] li`).Length() > 0,
			s.Find(`td[data-testid="compare-right"] li`).Length() > 0, d == "true"})
	})
	want := []row{
		{"connect", true, true, false}, // information lines only: times and addresses differ, not the wire
		{"greeting", true, true, true},
		{"ehlo", true, true, true},
		{"starttls", false, true, false},
		{"ehlo", false, true, false},
		{"auth", false, true, false},
		{"mail", true, true, false},
		{"rcpt", true, true, true},
		{"data", true, false, false},
		{"body", true, false, false},
		{"quit", true, true, true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("aligned rows\n got %v\nwant %v", got, want)
	}
	// Where the time went, stretch by stretch: only the right send has
	// TLS and AUTH, so they cost it time the left did not spend.
	timings := map[string]string{}
	r.testid(t, "compare-timing").Each(func(_ int, s *goquery.Selection) {
		k, _ := s.Attr("data-key")
		timings[k] = strings.TrimSpace(s.Find(`[data-testid="compare-timing-diff"]`).Text())
	})
	for _, k := range []string{"tls", "auth", "total"} {
		if _, ok := timings[k]; !ok {
			t.Errorf("compare timings have no %q row: %v", k, timings)
		}
	}
	if d := timings["tls"]; !strings.HasPrefix(d, "+") || timings["auth"] != "+1.000 ms" {
		t.Errorf("TLS difference %q and AUTH %q: want the right send's extra time (+…, +1.000 ms)", d, timings["auth"])
	}
	if got := r.testid(t, "compare-b").Text(); !strings.Contains(got, "permanent failure") || !strings.Contains(got, "relay.example:587") {
		t.Errorf("right header %q", got)
	}
	for path, status := range map[string]int{
		"/history/compare":                                          http.StatusBadRequest,
		"/history/compare?a=1":                                      http.StatusBadRequest,
		"/history/compare?a=x&b=1":                                  http.StatusBadRequest,
		fmt.Sprintf("/history/compare?a=%d&b=99999", left.ID):       http.StatusNotFound,
		fmt.Sprintf("/history/compare?a=%d&b=%d", left.ID, left.ID): http.StatusOK,
	} {
		if r := c.get(path); r.status != status {
			t.Errorf("GET %s: %d, want %d", path, r.status, status)
		}
	}
}

func TestHistoryDelete(t *testing.T) {
	a := newHistoryApp(t, historyOptions{})
	c := a.client()
	c.signUp()
	parent := a.seedSend(store.Send{Subject: "delete me"})
	child := a.seedSend(store.Send{ParentID: &parent.ID})
	id := strconv.FormatInt(parent.ID, 10)
	r := c.get("/history/" + id)
	tok, _ := r.doc(t).Find(`[data-testid="delete-form"] input[name="_csrf"]`).Attr("value")
	if r := c.post("/history/"+id+"/delete", url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("delete without CSRF token: %d", r.status)
	}
	if r := c.post("/history/"+id+"/delete", url.Values{"_csrf": {tok}}, "Sec-Fetch-Site", "cross-site"); r.status != http.StatusForbidden {
		t.Errorf("cross-site delete: %d", r.status)
	}
	if _, err := a.store.Send(context.Background(), parent.ID); err != nil {
		t.Fatalf("refused delete deleted: %v", err)
	}
	r = c.post("/history/"+id+"/delete", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/history" {
		t.Fatalf("delete: %d %s", r.status, r.header.Get("Location"))
	}
	r = c.get("/history")
	if got := r.testid(t, "flash").Text(); got != "Send #"+id+" and its transcript were deleted." {
		t.Errorf("flash %q", got)
	}
	if got := rowIDs(t, r); !slices.Equal(got, []int64{child.ID}) {
		t.Errorf("left %v", got)
	}
	if r := c.get("/history/" + id); r.status != http.StatusNotFound {
		t.Errorf("deleted send: %d", r.status)
	}
	if r := c.get("/sends/" + id + "/transcript.txt"); r.status != http.StatusNotFound {
		t.Errorf("deleted send's transcript: %d", r.status)
	}
	if r := c.post("/history/"+id+"/delete", url.Values{"_csrf": {tok}}); r.status != http.StatusNotFound {
		t.Errorf("delete again: %d", r.status)
	}
	// The resend stays, unlinked.
	r = c.get("/history/" + strconv.FormatInt(child.ID, 10))
	if r.status != http.StatusOK || r.testid(t, "parent").Length() != 0 {
		t.Errorf("orphaned resend: %d", r.status)
	}
	running := a.seedSend(store.Send{Status: store.StatusRunning, CreatedAt: time.Now()})
	if r := c.post("/history/"+strconv.FormatInt(running.ID, 10)+"/delete", url.Values{"_csrf": {tok}}); r.status != http.StatusConflict {
		t.Errorf("delete of a running send: %d", r.status)
	}
}

func TestHistoryRetention(t *testing.T) {
	a := newHistoryApp(t, historyOptions{retention: handlers.Retention{MaxAge: 30 * 24 * time.Hour, MaxSends: 4}})
	c := a.client()
	c.signUp()
	var ids []int64
	for i := range 8 {
		age := time.Duration(8-i) * time.Hour
		if i < 2 {
			age = time.Duration(40-i) * 24 * time.Hour
		}
		ids = append(ids, a.seedSend(store.Send{CreatedAt: time.Now().Add(-age)}).ID)
	}
	r := c.get("/history")
	if got := r.testid(t, "retention").Text(); !strings.Contains(got, "Sends older than 30 days are deleted, with captured mail and the contact messages that were delivered, cancelled or blocked of that age, and only the newest 4 sends are kept.") {
		t.Errorf("policy shown as %q", got)
	}
	tok, _ := r.doc(t).Find(`form[action="/history/retention"] input[name="_csrf"]`).Attr("value")
	r = c.post("/history/retention", url.Values{"_csrf": {tok}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("apply: %d", r.status)
	}
	r = c.get("/history")
	if got := r.testid(t, "flash").Text(); got != "Retention policy applied: 4 sends deleted." {
		t.Errorf("flash %q", got)
	}
	if got, want := rowIDs(t, r), []int64{ids[7], ids[6], ids[5], ids[4]}; !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	// The method serve runs hourly.
	a.seedSend(store.Send{CreatedAt: time.Now().Add(-45 * 24 * time.Hour)})
	a.seedSend(store.Send{})
	// Count goes by id, newest first: the two new rows push out two more.
	if n, err := a.h.ApplyRetention(context.Background()); err != nil || n != 3 {
		t.Errorf("ApplyRetention = %d, %v; want 3 (one too old, two beyond 4)", n, err)
	}

	// Without a policy nothing is deleted, and there is nothing to apply.
	b := newHistoryApp(t, historyOptions{})
	bc := b.client()
	bc.signUp()
	b.seedSend(store.Send{CreatedAt: time.Now().Add(-10 * 365 * 24 * time.Hour)})
	r = bc.get("/history")
	if !strings.Contains(r.testid(t, "retention").Text(), "kept until deleted") || r.testid(t, "apply-retention").Length() != 0 {
		t.Errorf("no policy shown as %q", r.testid(t, "retention").Text())
	}
	tok, _ = r.doc(t).Find(`input[name="_csrf"]`).Attr("value")
	if r := bc.post("/history/retention", url.Values{"_csrf": {tok}}); r.status != http.StatusConflict {
		t.Errorf("apply without a policy: %d", r.status)
	}
	if n, err := b.h.ApplyRetention(context.Background()); err != nil || n != 0 {
		t.Errorf("ApplyRetention without a policy = %d, %v", n, err)
	}
}
