package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
)

// TestContactTokenUsedOnce: a token is used once. A JSON retry with the
// same token, a browser pressing Send again, and a post whose connection
// dropped before the answer then sent again are each answered as a
// success ("already received" for a script) without a second
// submission; the real outbox worker then delivers exactly one mail per
// submission to the capture server.
func TestContactTokenUsedOnce(t *testing.T) {
	a := newContactApp(t, contactOptions{worker: true, realClock: true})
	f := a.addForm(t, nil)
	ctx := context.Background()

	t.Run("json retry", func(t *testing.T) {
		var tok string
		a.issueInPast(t, func() { tok = a.token(t, f) })
		wantAnswer(t, a.postJSON(t, f, validPost(tok)), http.StatusOK, "")
		r := a.postJSON(t, f, validPost(tok))
		ans := wantAnswer(t, r, http.StatusOK, "")
		var raw map[string]any
		if err := json.Unmarshal([]byte(r.body), &raw); err != nil || raw["already_received"] != true || !strings.Contains(ans.Message, "already") {
			t.Errorf("retry answer %s, want ok with already_received", r.body)
		}
	})
	t.Run("browser resend", func(t *testing.T) {
		var tok string
		a.issueInPast(t, func() { tok = a.token(t, f) })
		form := url.Values{"_token": {tok}, "name": {"Ann"}, "email": {"ann@visitor.test"}, "message": {"browser"}}
		first, again := a.postForm(t, f, form), a.postForm(t, f, form)
		for _, r := range []*response{first, again} {
			if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "/thanks") {
				t.Errorf("answer %d %s, want the thank-you page", r.status, r.header.Get("Location"))
			}
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		var tok string
		a.issueInPast(t, func() { tok = a.token(t, f) })
		body, _ := json.Marshal(validPost(tok))
		before := len(a.submissions(t, f))
		// Send the whole post; once it is stored, hang up without reading
		// the answer: the answer is lost on the way, as on a dropped
		// connection.
		u, _ := url.Parse(a.srv.URL)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /f/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\n"+
			"Origin: https://site.example\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", f.Slug, u.Host, len(body), body)
		waitProgress(t, "the post stored", 10*time.Second, func() (bool, string) {
			n := len(a.submissions(t, f))
			return n == before+1, fmt.Sprint(n)
		})
		conn.Close()
		// The visitor presses Send again: the same token.
		r := a.postJSON(t, f, validPost(tok))
		wantAnswer(t, r, http.StatusOK, "")
		if !strings.Contains(r.body, "already_received") {
			t.Errorf("resend answer %s", r.body)
		}
	})

	subs := a.submissions(t, f)
	items := a.outbox(t, f)
	if len(subs) != 3 || len(items) != 3 {
		t.Fatalf("%d submissions, %d outbox items; want 3 each (one per token)", len(subs), len(items))
	}
	ids := map[string]int64{}
	for _, it := range items {
		ids[fmt.Sprint(it.ID)] = it.ID
	}
	waitAllSent(t, a.store, ids)
	list, err := a.store.ListCaptured(ctx, 100, 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("%d messages delivered, %v; want 3 (no duplicate)", len(list), err)
	}
	for _, s := range subs {
		if s.Status != store.SubmissionQueued && s.Status != store.SubmissionSent {
			t.Errorf("submission %d: %s", s.ID, s.Status)
		}
	}
}

// TestContactTokenAnswer: GET /f/<name>/token answers the token and its
// field only; the token shows neither the form's internal id nor the
// server's clock.
func TestContactTokenAnswer(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	var f *store.Form
	for range 3 { // a few forms, so that the id is not a lone "1"
		f = a.addForm(t, nil)
	}
	r := a.visit(t, http.MethodGet, "/f/"+f.Slug+"/token", "", nil, "Accept", "application/json", "Origin", "https://site.example")
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["field"] != "_token" || got["token"] == "" {
		t.Fatalf("answer %s, want only token and field", r.body)
	}
	tok := got["token"].(string)
	now := a.clock.Now()
	for _, leak := range []string{
		"." + fmt.Sprint(f.ID) + ".", fmt.Sprint(now.UnixMilli())[:8], fmt.Sprint(now.Unix())[:6],
	} {
		if strings.Contains(tok, leak) || strings.Contains(r.body, leak) {
			t.Errorf("token answer %s shows %q", r.body, leak)
		}
	}
}
