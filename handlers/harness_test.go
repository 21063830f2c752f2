package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"sockmail/handlers"
	"sockmail/internal/capture"
	"sockmail/internal/crypt"
	"sockmail/internal/metrics"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// app is a running sockmail web app on a fresh SQLite store, with a real
// capture server, through the real router.
type app struct {
	t       *testing.T
	srv     *httptest.Server
	h       *handlers.Handler
	store   *store.Store
	dbPath  string
	capture *capture.Server
	logs    *syncBuffer
}

type appOptions struct {
	send            handlers.SendFunc
	captureUser     string
	capturePassword string
	rootCAs         *x509.CertPool
	baseURL         string
	// backend is store.BackendSQLite (default) or store.BackendPostgres.
	backend string
	// now is the handler's clock; time.Now if nil.
	now func() time.Time
	// trustedProxies lets tests name the client's address in
	// X-Forwarded-For (the test client connects from loopback).
	trustedProxies []*net.IPNet
	// dir, if set, is the data folder (a small disk in the storage tests).
	dir string
	// capturedPoll is how often the live captured-mail list polls the
	// store (handlers.Deps.CapturedPoll); the default if 0.
	capturedPoll time.Duration
	// checkResolver is the DNS resolver of the Check page
	// (handlers.Deps.CheckResolver).
	checkResolver string
}

// openStore opens a fresh store on backend: a SQLite file in dir, or a
// fresh PostgreSQL database. It returns the store and its DSN.
func openStore(t testing.TB, backend, dir string) (*store.Store, string) {
	t.Helper()
	dsn := filepath.Join(dir, "sockmail.db")
	if backend == store.BackendPostgres {
		dsn = testenv.Postgres(t)
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dsn
}

// debugLogger returns a logger writing everything to the returned buffer.
func debugLogger() (*syncBuffer, *slog.Logger) {
	logs := &syncBuffer{}
	return logs, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newApp(t *testing.T, o appOptions) *app {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	backend := o.backend
	if backend == "" {
		backend = store.BackendSQLite
	}
	st, dbPath := openStore(t, backend, dir)
	logs, log := debugLogger()
	cert, err := capture.LoadOrCreateCertificate(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	notifier := capture.NewNotifier()
	cs, err := capture.Listen(capture.Options{Addr: "127.0.0.1:0", Certificate: cert, Logger: log,
		Username: o.captureUser, Password: o.capturePassword, Notifier: notifier}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Shutdown(context.Background()) })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := crypt.New(key)
	if err != nil {
		t.Fatal(err)
	}
	hk, bk := make([]byte, 64), make([]byte, 32)
	_, _ = rand.Read(hk)
	_, _ = rand.Read(bk)
	reg, err := metrics.NewRegistry(st, o.now)
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.New(handlers.Deps{
		// As serve wires it: sign-in keeps working while writes fail.
		Store: store.NewSignInFallback(st, log), Sealer: box, Logger: log, SessionHashKey: hk, SessionBlockKey: bk,
		SendTimeout: 20 * time.Second, MaxUpload: 1 << 20,
		Capture: handlers.CaptureServer{Addr: cs.Addr(), Certificate: cs.Certificate(), Notifier: notifier},
		Send:    o.send, BcryptCost: bcrypt.MinCost, RootCAs: o.rootCAs, BaseURL: o.baseURL,
		Now: o.now, TrustedProxies: o.trustedProxies, CapturedPoll: o.capturedPoll, CheckResolver: o.checkResolver,
		Monitors: testMonitors(t, st, handlers.CaptureServer{Addr: cs.Addr(), Certificate: cs.Certificate()}, o.rootCAs),
		Metrics:  metrics.Handler(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Routes())
	t.Cleanup(func() { closeApp(srv, h) })
	return &app{t: t, srv: srv, h: h, store: st, dbPath: dbPath, capture: cs, logs: logs}
}

// burst runs do(0) to do(n-1) at once and counts the HTTP statuses they
// return.
func burst(n int, do func(i int) int) map[int]int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = do(i) })
	}
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	return count
}

// closeApp stops a test app as serve does: the handler's shutdown ends
// open event streams (a browser still on a result page holds one), which
// srv.Close would otherwise wait for, and aborts sends still running.
func closeApp(srv *httptest.Server, h *handlers.Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Shutdown(ctx) }()
	srv.Close()
	<-done
}

// client is a browser-like HTTP client with its own cookie jar that does
// not follow redirects (tests look at them).
type client struct {
	a   *app
	hc  *http.Client
	jar *cookiejar.Jar
	// openapi is the app's served OpenAPI document, loaded at the first
	// API exchange (api_validate_test.go).
	openapi *servedDoc
}

func (a *app) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{a: a, jar: jar, openapi: &servedDoc{}, hc: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}}
}

// response is a read response.
type response struct {
	status int
	header http.Header
	body   string
}

func (r *response) doc(t *testing.T) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *response) testid(t *testing.T, id string) *goquery.Selection {
	t.Helper()
	return r.doc(t).Find(`[data-testid="` + id + `"]`)
}

func (c *client) do(req *http.Request) *response {
	c.a.t.Helper()
	var reqBody []byte
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(b)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.a.t.Fatal(err)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(req.URL.Path, "/api/v1/") {
		checkAPIExchange(c.a.t, c, req, reqBody, r) // api_validate_test.go
	}
	return r
}

// head sends req and returns the status and header without reading the
// body, which an event stream never ends.
func (c *client) head(req *http.Request) *response {
	c.a.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.a.t.Fatal(err)
	}
	resp.Body.Close()
	return &response{status: resp.StatusCode, header: resp.Header}
}

func (c *client) get(path string) *response {
	c.a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.a.srv.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	return c.do(req)
}

// csrf fetches a page and returns the CSRF token of its first form.
func (c *client) csrf(path string) string {
	c.a.t.Helper()
	r := c.get(path)
	tok, ok := r.doc(c.a.t).Find(`input[name="_csrf"]`).First().Attr("value")
	if !ok || tok == "" {
		c.a.t.Fatalf("no CSRF token on %s (status %d)", path, r.status)
	}
	return tok
}

// post sends a url-encoded form, like a same-origin browser would.
func (c *client) post(path string, form url.Values, hdr ...string) *response {
	c.a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.a.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.do(req)
}

// file is an attachment to upload.
type file struct{ name, content string }

// postMultipart sends the compose form with attachments.
func (c *client) postMultipart(path string, form url.Values, files ...file) *response {
	c.a.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	for _, f := range files {
		w, _ := mw.CreateFormFile("attachments", f.name)
		_, _ = io.WriteString(w, f.content)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.a.srv.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return c.do(req)
}

const (
	adminEmail    = "admin@example.test"
	adminPassword = "correct-horse-battery"
)

// setupCode returns the first-run setup code that serve would print.
func setupCode(t testing.TB, a *app) string {
	t.Helper()
	code, needed, err := a.h.SetupCode(context.Background())
	if err != nil || !needed {
		t.Fatalf("setup code: %q, needed %v, %v", code, needed, err)
	}
	return code
}

// signUp creates the admin account through the first-visit page, with
// the setup code.
func (c *client) signUp() {
	c.a.t.Helper()
	tok := c.csrf("/signup")
	r := c.post("/signup", url.Values{"_csrf": {tok}, "email": {adminEmail}, "password": {adminPassword}, "confirm": {adminPassword},
		"setup_code": {setupCode(c.a.t, c.a)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/compose" {
		c.a.t.Fatalf("sign-up: %d %s\n%s", r.status, r.header.Get("Location"), r.body)
	}
}

func (c *client) signIn(email, password string) *response {
	c.a.t.Helper()
	tok := c.csrf("/signin")
	return c.post("/signin", url.Values{"_csrf": {tok}, "email": {email}, "password": {password}})
}

// composeForm is a valid compose form to the built-in capture server.
func composeForm(tok string) url.Values {
	return url.Values{
		"_csrf": {tok}, "server": {"builtin"}, "tls": {"starttls"}, "verify": {"on"},
		"from": {"Sender <sender@example.test>"}, "to": {"rcpt@example.test"},
		"subject": {"hello from the test"}, "text": {"Hello,\nworld.\n"},
	}
}

// waitDone polls a send's page until it is no longer running, failing
// only when the transcript has stopped growing for testenv.StallLimit.
func (c *client) waitDone(path string) *response {
	c.a.t.Helper()
	var r *response
	testenv.WaitFor(c.a.t, "the send at "+path+" to end", func() (int, bool) {
		r = c.get(path)
		if r.status != http.StatusOK {
			c.a.t.Fatalf("GET %s: %d", path, r.status)
		}
		running, _ := r.testid(c.a.t, "transcript").Attr("data-running")
		return r.doc(c.a.t).Find(`[data-testid="event"]`).Length(), running == "false"
	})
	return r
}
