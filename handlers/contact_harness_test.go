package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sockmail/handlers"
	"sockmail/internal/capture"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/outbox"
	"sockmail/internal/store"
)

// clock is the app's clock for the time trap and the rate limits: a
// fixed time that a test moves with Advance or, with real set, the real
// time plus an offset (the outbox worker runs on real time, so the app's
// clock must stay near it, yet a test can issue a token in the past).
type clock struct {
	mu     sync.Mutex
	t      time.Time
	real   bool
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.offset)
	}
	return c.t
}

// Advance moves the clock by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t, c.offset = c.t.Add(d), c.offset+d
}

// Shift sets a real clock to the real time plus d.
func (c *clock) Shift(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// issueInPast runs issue (which gets a time-trap token) with the clock
// set back past the time trap's minimum age, then puts the clock right:
// the token is old enough at once, and what is stored afterwards is due
// at the real time.
func (a *contactApp) issueInPast(t testing.TB, issue func()) {
	t.Helper()
	if !a.clock.real {
		t.Fatal("issueInPast needs contactOptions.realClock")
	}
	a.clock.Shift(-10 * time.Second)
	defer a.clock.Shift(0)
	issue()
}

// waitProgress polls check until it reports done. It fails only when
// progress stops: when what check reports as its state has not changed
// for stall. It never fails on a total time.
func waitProgress(t testing.TB, what string, stall time.Duration, check func() (done bool, state string)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last, since := "", time.Now()
	for {
		done, state := check()
		if done {
			return
		}
		if state != last {
			last, since = state, time.Now()
		} else if time.Since(since) > stall {
			t.Fatalf("%s: no progress for %v (state %q)", what, stall, state)
		}
		<-tick.C
	}
}

// kicker counts Kick calls.
type kicker struct{ n atomic.Int64 }

func (k *kicker) Kick() { k.n.Add(1) }

// contactApp is the web app with contact forms: a fake clock, a kick
// counter and the captcha endpoints pointed wherever a test wants.
type contactApp struct {
	*app
	clock *clock
	kick  *kicker
	box   *crypt.Box
}

type contactOptions struct {
	backend       string // store.BackendSQLite (default) or store.BackendPostgres
	captchaURLs   map[string]string
	baseURL       string
	realClock     bool
	kicker        handlers.Kicker
	captureServer bool
	// worker runs the real outbox worker, delivering to the capture
	// server (captureServer is implied), as the Kicker.
	worker bool
	// roots verify the servers of saved profiles (the test CA).
	roots *x509.CertPool
	// backoff is the worker's retry schedule; its default if zero.
	backoff outbox.Backoff
	// trustedProxies are believed about X-Forwarded-For.
	trustedProxies []*net.IPNet
	retention      handlers.Retention
}

func newContactApp(t testing.TB, o contactOptions) *contactApp {
	t.Helper()
	dir := t.TempDir()
	st, dsn := openStore(t, o.backend, dir)
	logs, log := debugLogger()
	var capInfo handlers.CaptureServer
	var cs *capture.Server
	if o.captureServer || o.worker {
		cert, err := capture.LoadOrCreateCertificate(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cs, err = capture.Listen(capture.Options{Addr: "127.0.0.1:0", Certificate: cert, Logger: log}, st)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.Shutdown(context.Background()) })
		capInfo = handlers.CaptureServer{Addr: cs.Addr(), Certificate: cs.Certificate()}
	}
	key, hk, bk := make([]byte, 32), make([]byte, 64), make([]byte, 32)
	for _, b := range [][]byte{key, hk, bk} {
		_, _ = rand.Read(b)
	}
	box, err := crypt.New(key)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now(), real: o.realClock}
	k := &kicker{}
	var kick handlers.Kicker = k
	if o.kicker != nil {
		kick = o.kicker
	}
	if o.worker {
		w, err := outbox.New(outbox.Deps{
			Store: st, Profiles: delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Opener: box, Capture: delivery.Capture{Addr: cs.Addr()}, RootCAs: o.roots}).Profile, Logger: log,
			PollInterval: 200 * time.Millisecond, Lease: 30 * time.Second, Backoff: o.backoff, Intake: st.IntakeCount, Storing: st.IntakeStoring,
		})
		if err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(wctx) }()
		t.Cleanup(func() { stop(); <-done })
		kick = w
	}
	h, err := handlers.New(handlers.Deps{
		Store: st, Sealer: box, Logger: log, SessionHashKey: hk, SessionBlockKey: bk,
		MaxUpload: 1 << 20, BcryptCost: bcrypt.MinCost, Now: clk.Now, Capture: capInfo,
		Kicker: kick, CaptchaVerifyURLs: o.captchaURLs, BaseURL: o.baseURL,
		TrustedProxies: o.trustedProxies, Retention: o.retention,
		Monitors: testMonitors(t, st, capInfo, o.roots),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Routes())
	t.Cleanup(func() { closeApp(srv, h) })
	tt, _ := t.(*testing.T)
	return &contactApp{
		app:   &app{t: tt, srv: srv, h: h, store: st, dbPath: dsn, capture: cs, logs: logs},
		clock: clk, kick: k, box: box,
	}
}

// testForm is a form as most tests want it: JSON and plain posts from
// https://site.example, no limits in the way.
func testForm() *store.Form {
	return &store.Form{
		Name: "Contact page", Recipients: []string{"owner@example.test", "second@example.test"},
		FromAddr: "forms@example.test", FromName: "Example site", AllowedOrigins: []string{"https://site.example"},
		SubjectTemplate: "Contact from {{name}}", Fields: []string{"name", "email", "message"},
		MaxFieldBytes: 4 << 10, MaxUploadBytes: 64 << 10, RatePerAddr: 0, RatePerForm: 0, Enabled: true,
	}
}

// addForm stores a form, after edit changes it.
func (a *contactApp) addForm(t testing.TB, edit func(f *store.Form)) *store.Form {
	t.Helper()
	f := testForm()
	if edit != nil {
		edit(f)
	}
	if err := a.store.SaveForm(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

// publicClient is a visitor's HTTP client: no cookie jar, no redirects.
func (a *contactApp) publicClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// visit sends a request as a visitor and reads the answer.
func (a *contactApp) visit(t testing.TB, method, path, ctype string, body io.Reader, hdr ...string) *response {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.publicClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		t.Errorf("%s %s: the public endpoint set a cookie: %q", method, path, resp.Header.Values("Set-Cookie"))
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// token gets a time-trap token for the form, then moves the clock past
// the minimum age.
func (a *contactApp) token(t testing.TB, f *store.Form) string {
	t.Helper()
	r := a.visit(t, http.MethodGet, "/f/"+f.Slug+"/token", "", nil, "Accept", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	var out struct {
		Token string `json:"token"`
		Field string `json:"field"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || out.Token == "" || out.Field != "_token" {
		t.Fatalf("token answer %q: %v", r.body, err)
	}
	a.clock.Advance(5 * time.Second)
	return out.Token
}

// postJSON posts fields as JSON with Origin https://site.example.
func (a *contactApp) postJSON(t testing.TB, f *store.Form, fields map[string]any, hdr ...string) *response {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	hdr = append([]string{"Accept", "application/json", "Origin", "https://site.example"}, hdr...)
	return a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/json", bytes.NewReader(b), hdr...)
}

// postForm posts url-encoded fields as a browser on https://site.example.
func (a *contactApp) postForm(t testing.TB, f *store.Form, form url.Values, hdr ...string) *response {
	t.Helper()
	hdr = append([]string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8", "Origin", "https://site.example"}, hdr...)
	return a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), hdr...)
}

// postMultipart posts fields and files as multipart/form-data.
func (a *contactApp) postMultipart(t testing.TB, f *store.Form, form url.Values, files []file, hdr ...string) *response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	for _, fl := range files {
		w, _ := mw.CreateFormFile("files", fl.name)
		_, _ = io.WriteString(w, fl.content)
	}
	_ = mw.Close()
	hdr = append([]string{"Accept", "application/json", "Origin", "https://site.example"}, hdr...)
	return a.visit(t, http.MethodPost, "/f/"+f.Slug, mw.FormDataContentType(), &body, hdr...)
}

// jsonAnswer decodes the endpoint's JSON answer.
type jsonAnswer struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func decodeAnswer(t testing.TB, r *response) jsonAnswer {
	t.Helper()
	var out jsonAnswer
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %q", r.status, r.body)
	}
	if out.Message == "" {
		t.Errorf("answer without a message: %q", r.body)
	}
	return out
}

// wantAnswer checks a JSON answer's status and error code ("" for ok).
func wantAnswer(t testing.TB, r *response, status int, code string) jsonAnswer {
	t.Helper()
	ans := decodeAnswer(t, r)
	if r.status != status || ans.Error != code || ans.OK != (code == "") {
		t.Fatalf("answer %d %+v, want %d %q", r.status, ans, status, code)
	}
	return ans
}

// outbox returns every outbox item of the form, newest first, with its
// message.
func (a *contactApp) outbox(t testing.TB, f *store.Form) []store.OutboxItem {
	t.Helper()
	ctx := context.Background()
	list, err := a.store.ListOutbox(ctx, store.OutboxFilter{FormID: f.ID, Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list {
		it, err := a.store.OutboxItem(ctx, list[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		list[i] = *it
	}
	return list
}

// submissions returns every submission of the form, newest first.
func (a *contactApp) submissions(t testing.TB, f *store.Form) []store.Submission {
	t.Helper()
	list, err := a.store.ListSubmissions(context.Background(), store.SubmissionFilter{FormID: f.ID, Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// onlyMessage returns the one message queued for the form, parsed.
func (a *contactApp) onlyMessage(t testing.TB, f *store.Form) (*store.OutboxItem, *mail.Message, string) {
	t.Helper()
	items := a.outbox(t, f)
	if len(items) != 1 {
		t.Fatalf("%d outbox items, want 1", len(items))
	}
	m, err := mail.ReadMessage(bytes.NewReader(items[0].Message))
	if err != nil {
		t.Fatalf("enqueued message does not parse: %v\n%s", err, items[0].Message)
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &items[0], m, string(body)
}

// newHandlerWithForms builds another handler on a's store and clock whose
// contact form persistence is forms.
func newHandlerWithForms(t testing.TB, a *contactApp, forms handlers.FormStore) *handlers.Handler {
	t.Helper()
	hk, bk := make([]byte, 64), make([]byte, 32)
	_, _ = rand.Read(hk)
	_, _ = rand.Read(bk)
	h, err := handlers.New(handlers.Deps{
		Store: a.store, Forms: forms, Sealer: a.box, SessionHashKey: hk, SessionBlockKey: bk,
		BcryptCost: bcrypt.MinCost, Now: a.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newServer serves h's routes until the test ends and returns its URL.
func newServer(t testing.TB, h *handlers.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h.Routes())
	t.Cleanup(srv.Close)
	return srv.URL
}
