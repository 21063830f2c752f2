package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/store"
)

// fakeCaptcha is a siteverify endpoint: it accepts the answer "good" for
// the secret it was given and records what it was sent.
type fakeCaptcha struct {
	secret string
	mu     sync.Mutex
	got    []url.Values
	status int
	reply  string
}

func (f *fakeCaptcha) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.got = append(f.got, r.PostForm)
	status, reply := f.status, f.reply
	f.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if reply != "" {
		_, _ = w.Write([]byte(reply))
		return
	}
	ok := r.PostForm.Get("secret") == f.secret && r.PostForm.Get("response") == "good"
	_ = json.NewEncoder(w).Encode(map[string]any{"success": ok, "error-codes": []string{}})
}

func TestContactCaptcha(t *testing.T) {
	for _, provider := range []struct{ name, field string }{{"turnstile", "cf-turnstile-response"}, {"hcaptcha", "h-captcha-response"}} {
		t.Run(provider.name, func(t *testing.T) {
			fc := &fakeCaptcha{secret: "s3cret"}
			srv := httptest.NewServer(fc)
			defer srv.Close()
			a := newContactApp(t, contactOptions{captchaURLs: map[string]string{provider.name: srv.URL}})
			sealed, err := a.box.Seal([]byte("s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			f := a.addForm(t, func(f *store.Form) { f.CaptchaProvider, f.CaptchaSecretEnc = provider.name, sealed })

			p := validPost(a.token(t, f))
			wantAnswer(t, a.postJSON(t, f, p), http.StatusUnprocessableEntity, "captcha_failed")
			p[provider.field] = "bad"
			wantAnswer(t, a.postJSON(t, f, p), http.StatusUnprocessableEntity, "captcha_failed")
			p[provider.field] = "good"
			wantAnswer(t, a.postJSON(t, f, p), http.StatusOK, "")
			fc.mu.Lock()
			last := fc.got[len(fc.got)-1]
			n := len(fc.got)
			fc.mu.Unlock()
			if last.Get("secret") != "s3cret" || last.Get("response") != "good" || last.Get("remoteip") != "127.0.0.1" {
				t.Errorf("siteverify got %v", last)
			}
			// No answer at all is not worth asking the provider.
			if n != 2 {
				t.Errorf("provider asked %d times, want 2", n)
			}
			// The captcha answer is not part of the message.
			_, m, body := a.onlyMessage(t, f)
			if text, _ := textOf(t, m, body); strings.Contains(text, provider.field) {
				t.Errorf("captcha answer in the message:\n%s", text)
			}

			// The provider down or refusing the secret: 503, not a pass.
			for _, c := range []struct {
				status int
				reply  string
			}{{http.StatusBadGateway, ""}, {0, "not json"}, {0, `{"success":false,"error-codes":["invalid-input-secret"]}`}} {
				fc.mu.Lock()
				fc.status, fc.reply = c.status, c.reply
				fc.mu.Unlock()
				p["_token"] = a.token(t, f) // a token is used once
				wantAnswer(t, a.postJSON(t, f, p), http.StatusServiceUnavailable, "captcha_unavailable")
			}
			if n := len(a.outbox(t, f)); n != 1 {
				t.Errorf("%d queued, want 1", n)
			}
			// A plain form carries the widget's answer through the
			// confirmation page.
			fc.mu.Lock()
			fc.status, fc.reply = 0, ""
			fc.mu.Unlock()
			r := a.postForm(t, f, url.Values{"message": {"hi"}, provider.field: {"good"}})
			_, vals := confirmValues(t, r)
			if vals.Get(provider.field) != "good" {
				t.Fatalf("captcha answer not carried: %v", vals)
			}
			a.clock.Advance(4 * time.Second)
			r = a.postForm(t, f, vals, "Origin", a.srv.URL)
			if r.status != http.StatusSeeOther {
				t.Fatalf("confirmed with captcha: %d\n%s", r.status, r.body)
			}
		})
	}
}
