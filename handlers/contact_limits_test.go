package handlers_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
)

// Rate, size and input limits of the public endpoint.

// TestContactRateLimitsBehindProxy: X-Forwarded-For decides which
// address a submission counts against only when the peer is a configured
// trusted proxy; otherwise a visitor could dodge its limit by inventing
// a new address for every post.
func TestContactRateLimitsBehindProxy(t *testing.T) {
	loopback := []*net.IPNet{{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(32, 32)}}
	other := []*net.IPNet{{IP: net.IPv4(192, 0, 2, 0).To4(), Mask: net.CIDRMask(24, 32)}}
	tests := []struct {
		name    string
		proxies []*net.IPNet
		xff     []string // one post each, after two posts with xff[0]
		want    []int
	}{
		{"no trusted proxy: the header is ignored", nil,
			[]string{"203.0.113.1", "203.0.113.2"}, []int{429, 429}},
		{"peer is not the trusted proxy", other,
			[]string{"203.0.113.1", "203.0.113.2"}, []int{429, 429}},
		{"trusted proxy: each visitor has its own limit", loopback,
			[]string{"203.0.113.1", "203.0.113.2", "203.0.113.3"}, []int{429, 200, 200}},
		{"a forged entry left of the real one does not help", loopback,
			[]string{"203.0.113.1", "198.51.100.9, 203.0.113.1"}, []int{429, 429}},
		{"an address that does not parse falls back to the peer", loopback,
			[]string{"203.0.113.1", "not-an-ip", "not-an-ip"}, []int{429, 200, 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newContactApp(t, contactOptions{trustedProxies: tt.proxies})
			f := a.addForm(t, func(f *store.Form) { f.RatePerAddr = 2 })
			post := func(xff string) *response {
				return a.postJSON(t, f, validPost(a.token(t, f)), "X-Forwarded-For", xff)
			}
			for i := 0; i < 2; i++ {
				wantAnswer(t, post(tt.xff[0]), http.StatusOK, "")
			}
			for i, xff := range tt.xff {
				if r := post(xff); r.status != tt.want[i] {
					t.Errorf("post %d with X-Forwarded-For %q: %d, want %d\n%s", i, xff, r.status, tt.want[i], r.body)
				}
			}
		})
	}
}

// TestContactRateLimitsUnderBurst: forty posts at once from one address
// against a limit of five: exactly five are stored and the rest get 429,
// on both backends.
func TestContactRateLimitsUnderBurst(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newContactApp(t, contactOptions{backend: backend})
			f := a.addForm(t, func(f *store.Form) { f.RatePerAddr = 5 })
			const posts = 40
			bodies := make([]map[string]any, posts)
			for i := range bodies {
				bodies[i] = validPost(a.token(t, f))
			}
			count := burst(posts, func(i int) int { return a.postJSON(t, f, bodies[i]).status })
			if count[http.StatusOK] != 5 || count[http.StatusTooManyRequests] != posts-5 {
				t.Errorf("answers %v, want 5 × 200 and %d × 429", count, posts-5)
			}
			if n := len(a.submissions(t, f)); n != 5 {
				t.Errorf("%d submissions stored, want 5", n)
			}
		})
	}
}

func TestContactRateLimits(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	perAddr := a.addForm(t, func(f *store.Form) { f.RatePerAddr = 2 })
	for i := 0; i < 2; i++ {
		wantAnswer(t, a.postJSON(t, perAddr, validPost(a.token(t, perAddr))), http.StatusOK, "")
	}
	r := a.postJSON(t, perAddr, validPost(a.token(t, perAddr)))
	wantAnswer(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 60 || ra > 3600 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Errorf("Retry-After not exposed to scripts")
	}
	// A plain form gets sockmail's error page with the same status.
	r = a.postForm(t, perAddr, url.Values{"message": {"hi"}})
	if r.status != http.StatusTooManyRequests || r.testid(t, "contact-error").Length() != 1 || r.header.Get("Retry-After") == "" {
		t.Fatalf("plain 429: %d\n%s", r.status, r.body)
	}
	// After the window, posts are taken again.
	a.clock.Advance(time.Hour + time.Second)
	wantAnswer(t, a.postJSON(t, perAddr, validPost(a.token(t, perAddr))), http.StatusOK, "")

	// The per-form limit counts every address; honeypot catches count too.
	perForm := a.addForm(t, func(f *store.Form) { f.RatePerForm = 2 })
	p := validPost(a.token(t, perForm))
	p["_gotcha"] = "robot"
	wantAnswer(t, a.postJSON(t, perForm, p), http.StatusOK, "")
	wantAnswer(t, a.postJSON(t, perForm, validPost(a.token(t, perForm))), http.StatusOK, "")
	wantAnswer(t, a.postJSON(t, perForm, validPost(a.token(t, perForm))), http.StatusTooManyRequests, "rate_limited")
	if n := len(a.submissions(t, perForm)); n != 2 {
		t.Errorf("%d submissions kept, want 2", n)
	}
}

func TestContactSizeLimits(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) { f.MaxFieldBytes = 100; f.AllowUploads = true; f.MaxUploadBytes = 1000 })
	noFiles := a.addForm(t, func(f *store.Form) { f.Name = "no files" })

	p := validPost(a.token(t, f))
	p["message"] = strings.Repeat("x", 101)
	if ans := wantAnswer(t, a.postJSON(t, f, p), http.StatusRequestEntityTooLarge, "field_too_large"); ans.Field != "message" {
		t.Errorf("field %q", ans.Field)
	}
	p["message"] = strings.Repeat("x", 100) // exactly the limit
	wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")

	// An unexpected field is held to the same limit.
	p = validPost(a.token(t, f))
	p["website"] = strings.Repeat("y", 101)
	wantAnswer(t, a.postJSON(t, f, p), http.StatusRequestEntityTooLarge, "field_too_large")

	// Too many fields.
	p = validPost(a.token(t, f))
	for i := 0; i < 60; i++ {
		p["f"+strconv.Itoa(i)] = "v"
	}
	wantAnswer(t, a.postJSON(t, f, p), http.StatusRequestEntityTooLarge, "too_many_fields")

	// Uploads: within the limit, over it, and to a form without uploads.
	tok := a.token(t, f)
	base := url.Values{"_token": {tok}, "name": {"Ann"}, "message": {"see attached"}}
	wantAnswer(t, a.postMultipart(t, f, base, []file{{"a.txt", strings.Repeat("a", 600)}, {"b.txt", strings.Repeat("b", 400)}}), http.StatusOK, "")
	wantAnswer(t, a.postMultipart(t, f, base, []file{{"a.txt", strings.Repeat("a", 600)}, {"b.txt", strings.Repeat("b", 401)}}),
		http.StatusRequestEntityTooLarge, "files_too_large")
	wantAnswer(t, a.postMultipart(t, noFiles, url.Values{"_token": {a.token(t, noFiles)}, "message": {"x"}}, []file{{"a.txt", "a"}}),
		http.StatusBadRequest, "files_not_allowed")
	many := make([]file, 11)
	for i := range many {
		many[i] = file{"f" + strconv.Itoa(i) + ".txt", "x"}
	}
	wantAnswer(t, a.postMultipart(t, f, base, many), http.StatusRequestEntityTooLarge, "too_many_files")

	// A body larger than the form could ever take is refused before it
	// is read, by its Content-Length; one without is cut off as it comes.
	huge := strings.Repeat("z", 400<<10)
	r := a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/x-www-form-urlencoded", strings.NewReader("message="+huge),
		"Accept", "application/json", "Origin", "https://site.example")
	wantAnswer(t, r, http.StatusRequestEntityTooLarge, "too_large")
	r = a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader("message="+huge)),
		"Accept", "application/json", "Origin", "https://site.example")
	wantAnswer(t, r, http.StatusRequestEntityTooLarge, "too_large")
	// A plain form gets the error page with 413.
	r = a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/x-www-form-urlencoded", strings.NewReader("message="+huge),
		"Accept", "text/html", "Origin", "https://site.example")
	if r.status != http.StatusRequestEntityTooLarge || r.testid(t, "contact-error").Length() != 1 {
		t.Fatalf("plain 413: %d\n%s", r.status, r.body)
	}

	items := a.outbox(t, f)
	if len(items) != 2 {
		t.Fatalf("%d items queued, want 2 (the one at the field limit, the one with files)", len(items))
	}
	m, err := mail.ReadMessage(bytes.NewReader(items[0].Message))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	text, files := textOf(t, m, string(body))
	if files["a.txt"] != strings.Repeat("a", 600) || files["b.txt"] != strings.Repeat("b", 400) || !strings.Contains(text, "Attached files:\n    a.txt (600 B)\n") {
		t.Errorf("attachments %v\n%s", len(files), text)
	}
	sub, err := a.store.Submission(context.Background(), *items[0].SubmissionID)
	if err != nil || len(sub.Files) != 2 || string(sub.Files[1].Data) != strings.Repeat("b", 400) {
		t.Errorf("stored files: %v", err)
	}
}

func TestContactPlainFormCarriesFilesThroughTheConfirmation(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, func(f *store.Form) { f.AllowUploads = true; f.MaxUploadBytes = 10 << 10 })
	bin := "\x00\x01binary\xff\r\n"
	r := a.postMultipart(t, f, url.Values{"name": {"Cy"}, "message": {"file attached"}}, []file{{"../../etc/x.bin", bin}},
		"Accept", "text/html")
	if r.status != http.StatusOK || r.testid(t, "contact-files").Text() == "" {
		t.Fatalf("confirmation: %d\n%s", r.status, r.body)
	}
	if enc, _ := r.testid(t, "contact-confirm").Attr("enctype"); enc != "multipart/form-data" {
		t.Errorf("enctype %q", enc)
	}
	_, vals := confirmValues(t, r)
	a.clock.Advance(4 * time.Second)
	r = a.postMultipart(t, f, vals, nil, "Accept", "text/html", "Origin", a.srv.URL)
	if r.status != http.StatusSeeOther {
		t.Fatalf("confirmed: %d\n%s", r.status, r.body)
	}
	_, m, body := a.onlyMessage(t, f)
	_, files := textOf(t, m, body)
	if files["x.bin"] != bin {
		t.Errorf("files %q", files)
	}
}

func TestContactEmptyAndBadInput(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	tok := a.token(t, f)
	wantAnswer(t, a.postJSON(t, f, map[string]any{"_token": tok, "name": " ", "message": ""}), http.StatusUnprocessableEntity, "empty")
	for _, bad := range []string{"not an address", "a@b@c", "Eve <eve@x.test>", "eve@x.test, bob@y.test", "eve@x.test\r\nBcc: z@z.test", "eve@x.test\rX", "eve@x.test\x00"} {
		p := validPost(tok)
		p["email"] = bad
		if ans := wantAnswer(t, a.postJSON(t, f, p), http.StatusUnprocessableEntity, "invalid_email"); ans.Field != "email" {
			t.Errorf("field %q", ans.Field)
		}
	}
	r := a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/json", strings.NewReader(`{"message": {"nested": 1}}`), "Accept", "application/json")
	wantAnswer(t, r, http.StatusBadRequest, "bad_request")
	r = a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/json", strings.NewReader(`[1,2]`))
	wantAnswer(t, r, http.StatusBadRequest, "bad_request")
	r = a.visit(t, http.MethodPost, "/f/"+f.Slug, "text/plain", strings.NewReader(`hello`), "Accept", "application/json")
	wantAnswer(t, r, http.StatusUnsupportedMediaType, "unsupported_type")
	// JSON arrays, numbers and booleans are text.
	wantAnswer(t, a.postJSON(t, f, map[string]any{"_token": tok, "message": "m", "topics": []any{"a", "b"}, "age": 42, "ok": true}), http.StatusOK, "")
	_, m, body := a.onlyMessage(t, f)
	text, _ := textOf(t, m, body)
	for _, want := range []string{"topics:  a\n", "topics:  b\n", "age:     42\n", "ok:      true\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
	// A plain form with a bad address gets the confirmation page with
	// the address to correct.
	r = a.postForm(t, f, url.Values{"email": {"nope"}, "message": {"hi"}})
	if r.status != http.StatusUnprocessableEntity || r.testid(t, "error-email").Length() != 1 {
		t.Fatalf("plain bad email: %d\n%s", r.status, r.body)
	}
	if v, _ := r.testid(t, "input-email").Attr("value"); v != "nope" {
		t.Errorf("email input %q", v)
	}
}
