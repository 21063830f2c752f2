package contact_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/contact"
	"sockmail/internal/crypt"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

type kicker struct{ n atomic.Int64 }

func (k *kicker) Kick() { k.n.Add(1) }

// env is a Service on a real store, with a settable clock and a captcha
// provider that passes the answer "solved", fails any other, and answers
// HTTP 500 to "provider-down".
type env struct {
	st  *store.Store
	svc *contact.Service
	// now is the service's clock; the tests run one goroutine at a time.
	now  time.Time
	kick *kicker
	box  *crypt.Box
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "sockmail.db")
	if backend == store.BackendPostgres {
		dsn = testenv.Postgres(t)
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := crypt.New(key)
	if err != nil {
		t.Fatal(err)
	}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PostFormValue("response") {
		case "provider-down":
			http.Error(w, "down", http.StatusInternalServerError)
		case "solved":
			_, _ = w.Write([]byte(`{"success": true}`))
		default:
			_, _ = w.Write([]byte(`{"success": false, "error-codes": ["invalid-input-response"]}`))
		}
	}))
	t.Cleanup(provider.Close)
	e := &env{st: st, now: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC), kick: &kicker{}, box: box}
	e.svc, err = contact.New(contact.Deps{
		Attempts: st, Settings: st, Queue: st, Sealer: box, Kicker: e.kick, Now: func() time.Time { return e.now },
		VerifyURLs: map[string]string{store.CaptchaTurnstile: provider.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) form(t *testing.T, edit func(f *store.Form)) *store.Form {
	t.Helper()
	f := &store.Form{
		Name: "Contact page", Recipients: []string{"owner@example.test"}, FromAddr: "forms@example.test",
		SubjectTemplate: "Contact from {{name}}", Fields: []string{"name", "email", "message"}, Enabled: true,
	}
	if edit != nil {
		edit(f)
	}
	if f.CaptchaProvider != "" {
		sealed, err := e.box.Seal([]byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		f.CaptchaSecretEnc = sealed
	}
	if err := e.st.SaveForm(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

// token returns a token for f issued now, then moves the clock by age.
func (e *env) token(t *testing.T, f *store.Form, age time.Duration) string {
	t.Helper()
	tok, p := e.svc.NewToken(context.Background(), f)
	if p != nil {
		t.Fatal(p)
	}
	e.now = e.now.Add(age)
	return tok.Value
}

func message(tok string, extra ...string) map[string][]string {
	v := map[string][]string{"name": {"Ada"}, "email": {"ada@visitor.test"}, "message": {"Hello."}}
	if tok != "" {
		v[contact.FieldToken] = []string{tok}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v[extra[i]] = []string{extra[i+1]}
	}
	return v
}

type outcomeCase struct {
	name string
	form func(f *store.Form)
	// values gets a token aged age (none when age is 0).
	age    time.Duration
	values func(tok string) map[string][]string
	// before are that many stored submissions first.
	before   int
	kind     contact.Kind
	code     string
	field    string
	status   int
	stored   store.SubmissionStatus // "" when nothing may be stored
	reason   string
	confirm  bool
	retryMin time.Duration
}

func outcomeCases() []outcomeCase {
	const ok = 5 * time.Second
	same := func(tok string) map[string][]string { return message(tok) }
	return []outcomeCase{
		{name: "stored", age: ok, values: same, kind: contact.Stored, stored: store.SubmissionQueued},
		{name: "honeypot blocks quietly", age: ok, values: func(tok string) map[string][]string { return message(tok, "_gotcha", "x") },
			kind: contact.Blocked, stored: store.SubmissionBlocked, reason: contact.BlockHoneypot},
		{name: "forged token blocks quietly", values: func(string) map[string][]string { return message("v1.1.2.AAAA") },
			kind: contact.Blocked, stored: store.SubmissionBlocked, reason: contact.BlockForged},
		{name: "no token", values: same, kind: contact.TokenMissing, code: "token_missing", status: 422, confirm: true},
		{name: "too fast", age: time.Second, values: same, kind: contact.TooFast, code: "too_fast", status: 422, confirm: true},
		{name: "expired", age: 3 * time.Hour, values: same, kind: contact.Expired, code: "expired", status: 422, confirm: true},
		{name: "bad email", age: ok, values: func(tok string) map[string][]string { return message(tok, "email", "not an address") },
			kind: contact.InvalidField, code: "invalid_email", field: "email", status: 422, confirm: true},
		{name: "empty", age: ok, values: func(tok string) map[string][]string {
			return map[string][]string{contact.FieldToken: {tok}, "message": {"  "}}
		}, kind: contact.Empty, code: "empty", status: 422},
		{name: "field too large", age: ok, form: func(f *store.Form) { f.MaxFieldBytes = 20 },
			values: func(tok string) map[string][]string { return message(tok, "message", strings.Repeat("x", 21)) },
			kind:   contact.TooLarge, code: "field_too_large", field: "message", status: 413},
		{name: "files on a form without uploads", age: ok, values: func(tok string) map[string][]string {
			return message(tok, "_upload_data", "aGVsbG8=")
		}, kind: contact.BadRequest, code: "files_not_allowed", status: 400},
		{name: "disabled", form: func(f *store.Form) { f.Enabled = false }, values: same,
			kind: contact.Disabled, code: "form_disabled", status: 403},
		{name: "rate limited per address", age: ok, form: func(f *store.Form) { f.RatePerAddr = 2 }, values: same, before: 2,
			kind: contact.RateLimited, code: "rate_limited", status: 429, retryMin: 30 * time.Minute},
		{name: "rate limited per form", age: ok, form: func(f *store.Form) { f.RatePerForm = 1 }, values: same, before: 1,
			kind: contact.RateLimited, code: "rate_limited", status: 429, retryMin: time.Hour},
		{name: "captcha solved", age: ok, form: func(f *store.Form) { f.CaptchaProvider = store.CaptchaTurnstile },
			values: func(tok string) map[string][]string { return message(tok, "cf-turnstile-response", "solved") },
			kind:   contact.Stored, stored: store.SubmissionQueued},
		{name: "captcha failed", age: ok, form: func(f *store.Form) { f.CaptchaProvider = store.CaptchaTurnstile },
			values: func(tok string) map[string][]string { return message(tok, "cf-turnstile-response", "wrong") },
			kind:   contact.CaptchaFailed, code: "captcha_failed", field: "cf-turnstile-response", status: 422},
		{name: "captcha provider down", age: ok, form: func(f *store.Form) { f.CaptchaProvider = store.CaptchaTurnstile },
			values: func(tok string) map[string][]string { return message(tok, "cf-turnstile-response", "provider-down") },
			kind:   contact.CaptchaUnavailable, code: "captcha_unavailable", status: 503, retryMin: time.Minute},
	}
}

func TestSubmitOutcomes(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			for i, c := range outcomeCases() {
				t.Run(c.name, func(t *testing.T) { runOutcome(t, e, i, c) })
			}
		})
	}
}

func runOutcome(t *testing.T, e *env, i int, c outcomeCase) {
	ctx := context.Background()
	f := e.form(t, c.form)
	// Each case posts from its own address: the limits of one do not
	// reach another.
	addr := "192.0.2." + string(rune('1'+i%9)) + string(rune('0'+i/9))
	for range c.before {
		if out := e.svc.Submit(ctx, contact.Input{Form: f, Values: message(e.token(t, f, 5*time.Second)), ClientAddr: addr}); out.Kind != contact.Stored {
			t.Fatalf("submission before: %v %v", out.Kind, out.Problem)
		}
	}
	tok := ""
	if c.age > 0 {
		tok = e.token(t, f, c.age)
	}
	kicks := e.kick.n.Load()
	out := e.svc.Submit(ctx, contact.Input{Form: f, Values: c.values(tok), ClientAddr: addr, Origin: "https://site.example"})
	if out.Kind != c.kind {
		t.Fatalf("kind %v, want %v (problem %v)", out.Kind, c.kind, out.Problem)
	}
	checkProblem(t, out, c)
	if (out.Confirm != nil) != c.confirm {
		t.Errorf("confirmation %+v, want one: %v", out.Confirm, c.confirm)
	}
	if c.kind == contact.TooFast && out.Confirm.Token != tok {
		t.Errorf("too fast: the page must keep the token")
	}
	subs, err := e.st.ListSubmissions(ctx, store.SubmissionFilter{FormID: f.ID})
	if err != nil {
		t.Fatal(err)
	}
	if c.stored == "" {
		if len(subs) != c.before {
			t.Errorf("%d submissions stored, want %d", len(subs), c.before)
		}
		return
	}
	if len(subs) != c.before+1 || subs[0].ID != out.SubmissionID || subs[0].Status != c.stored || subs[0].BlockReason != c.reason {
		t.Errorf("stored %+v, want one %s (%q) with id %d", subs, c.stored, c.reason, out.SubmissionID)
	}
	if out.OutboxID == 0 || subs[0].Origin != "https://site.example" {
		t.Errorf("outbox item %d, origin %q", out.OutboxID, subs[0].Origin)
	}
	if wantKick := c.kind == contact.Stored; (e.kick.n.Load() > kicks) != wantKick {
		t.Errorf("kicked: %v, want %v", e.kick.n.Load() > kicks, wantKick)
	}
}

func checkProblem(t *testing.T, out contact.Outcome, c outcomeCase) {
	t.Helper()
	if c.code == "" {
		if out.Problem != nil {
			t.Errorf("problem %v", out.Problem)
		}
		return
	}
	p := out.Problem
	if p == nil || p.Code != c.code || p.Field != c.field || p.Status != c.status || p.Kind != c.kind || p.Message == "" {
		t.Fatalf("problem %+v, want %s/%s %d", p, c.code, c.field, c.status)
	}
	if p.RetryAfter < c.retryMin || c.retryMin == 0 && p.RetryAfter != 0 {
		t.Errorf("retry after %v, want at least %v", p.RetryAfter, c.retryMin)
	}
}

// TestSubmitStorageDown: with the database gone the answer is
// Unavailable with a Retry-After, never a success.
func TestSubmitStorageDown(t *testing.T) {
	e := newEnv(t, store.BackendSQLite)
	f := e.form(t, nil)
	tok := e.token(t, f, 5*time.Second)
	e.st.Close()
	out := e.svc.Submit(context.Background(), contact.Input{Form: f, Values: message(tok), ClientAddr: "192.0.2.1"})
	if out.Kind != contact.Unavailable || out.Problem.Status != http.StatusServiceUnavailable || out.Problem.RetryAfterSeconds() != 60 {
		t.Fatalf("outcome %v %+v", out.Kind, out.Problem)
	}
	if p := e.svc.Precheck(context.Background(), f, "192.0.2.1"); p != nil {
		t.Errorf("precheck without limits asks nothing: %v", p)
	}
	f.RatePerAddr = 5
	if p := e.svc.Precheck(context.Background(), f, "192.0.2.1"); p == nil || p.Kind != contact.Unavailable {
		t.Errorf("precheck with the database down: %v", p)
	}
}

// TestSubmitMisconfiguredForm: a form whose own settings cannot make a
// message refuses with Misconfigured and stores nothing.
func TestSubmitMisconfiguredForm(t *testing.T) {
	e := newEnv(t, store.BackendSQLite)
	f := e.form(t, nil)
	f.FromAddr = "not an address"
	out := e.svc.Submit(context.Background(), contact.Input{Form: f, Values: message(e.token(t, f, 5*time.Second)), ClientAddr: "192.0.2.1"})
	if out.Kind != contact.Misconfigured || out.Problem.Code != "form_misconfigured" || out.Problem.Status != 500 {
		t.Fatalf("outcome %v %+v", out.Kind, out.Problem)
	}
}

func TestKindNames(t *testing.T) {
	for k := contact.Stored; k <= contact.AlreadyReceived; k++ {
		if s := k.String(); s == "" || strings.HasPrefix(s, "kind(") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
	if s := (contact.AlreadyReceived + 1).String(); s != "kind(18)" {
		t.Errorf("unknown kind named %q", s)
	}
}

// TestNewToken: a token is refused for a disabled form; a fresh one is
// too young at once and good once the time trap's minimum age passed.
func TestNewToken(t *testing.T) {
	e := newEnv(t, store.BackendSQLite)
	ctx := context.Background()
	off := e.form(t, func(f *store.Form) { f.Enabled = false })
	if _, p := e.svc.NewToken(ctx, off); p == nil || p.Kind != contact.Disabled || p.Status != http.StatusForbidden {
		t.Errorf("token of a disabled form: %v", p)
	}
	f := e.form(t, nil)
	tok, p := e.svc.NewToken(ctx, f)
	if p != nil || tok.Field != contact.FieldToken || tok.MinWait != 3*time.Second || tok.MaxAge != 2*time.Hour {
		t.Fatalf("token %+v, %v", tok, p)
	}
	in := contact.Input{Form: f, Values: message(tok.Value), ClientAddr: "192.0.2.1"}
	e.now = e.now.Add(tok.MinWait - time.Millisecond)
	if out := e.svc.Submit(ctx, in); out.Kind != contact.TooFast {
		t.Errorf("just before the minimum age: %v", out.Kind)
	}
	e.now = e.now.Add(time.Millisecond)
	if out := e.svc.Submit(ctx, in); out.Kind != contact.Stored {
		t.Errorf("at the minimum age: %v %v", out.Kind, out.Problem)
	}
}

// TestPrecheck: the early check refuses a disabled form and one over a
// limit, and counts nothing itself.
func TestPrecheck(t *testing.T) {
	e := newEnv(t, store.BackendSQLite)
	ctx := context.Background()
	f := e.form(t, func(f *store.Form) { f.RatePerAddr = 1 })
	for range 2 {
		if p := e.svc.Precheck(ctx, f, "192.0.2.1"); p != nil {
			t.Fatalf("precheck under the limit: %v", p)
		}
	}
	if out := e.svc.Submit(ctx, contact.Input{Form: f, Values: message(e.token(t, f, 5*time.Second)), ClientAddr: "192.0.2.1"}); out.Kind != contact.Stored {
		t.Fatalf("submit: %v %v", out.Kind, out.Problem)
	}
	if p := e.svc.Precheck(ctx, f, "192.0.2.1"); p == nil || p.Kind != contact.RateLimited || p.RetryAfter != time.Hour {
		t.Errorf("precheck over the limit: %+v", p)
	}
	if p := e.svc.Precheck(ctx, f, "192.0.2.2"); p != nil {
		t.Errorf("another address: %v", p)
	}
	e.now = e.now.Add(contact.RateWindow + time.Second)
	if p := e.svc.Precheck(ctx, f, "192.0.2.1"); p != nil {
		t.Errorf("after the window: %v", p)
	}
	f.Enabled = false
	if p := e.svc.Precheck(ctx, f, "192.0.2.3"); p == nil || p.Kind != contact.Disabled {
		t.Errorf("disabled: %v", p)
	}
}
