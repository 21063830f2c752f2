package handlers_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"sockmail/handlers"
	"sockmail/internal/store"
)

// The public endpoint when storage fails, across instances, and under
// the retention policy.

func TestContactDatabaseDownIs503(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	tok := a.token(t, f)
	a.store.Close()
	r := a.postJSON(t, f, validPost(tok))
	ans := wantAnswer(t, r, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(ans.Message, "not sent") || r.header.Get("Retry-After") == "" {
		t.Errorf("answer %+v, Retry-After %q", ans, r.header.Get("Retry-After"))
	}
	r = a.postForm(t, f, url.Values{"message": {"hi"}})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.testid(t, "contact-error").Text(), "not sent") {
		t.Errorf("plain: %d\n%s", r.status, r.body)
	}
	if strings.Contains(strings.ToLower(r.body), "sql") || strings.Contains(r.body, "closed") {
		t.Errorf("internal details shown:\n%s", r.body)
	}
	r = a.visit(t, http.MethodGet, "/f/"+f.Slug+"/token", "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("token: %d", r.status)
	}
	if a.kick.n.Load() != 0 {
		t.Errorf("kicked with the database down")
	}
}

// failingEnqueue is a store whose EnqueueLimited fails, after the form
// was read: the database going away in the middle of a submission.
type failingEnqueue struct{ *store.Store }

func (failingEnqueue) EnqueueLimited(context.Context, *store.Submission, *store.OutboxItem, []store.Limit, time.Time) (*store.Limit, error) {
	return nil, context.DeadlineExceeded
}

func TestContactStoreFailingAtEnqueueIs503(t *testing.T) {
	a := newContactApp(t, contactOptions{})
	f := a.addForm(t, nil)
	tok := a.token(t, f)
	h := newHandlerWithForms(t, a, failingEnqueue{a.store})
	srv := newServer(t, h)
	b := strings.NewReader(`{"_token":"` + tok + `","message":"hi"}`)
	req, _ := http.NewRequest(http.MethodPost, srv+"/f/"+f.Slug, b)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestContactTwoInstancesOnPostgres runs two sockmail instances on one
// PostgreSQL database: a token from one is good on the other, and the
// rate limits count the posts of both.
func TestContactTwoInstancesOnPostgres(t *testing.T) {
	a := newContactApp(t, contactOptions{backend: store.BackendPostgres})
	f := a.addForm(t, func(f *store.Form) { f.RatePerForm = 3 })
	st2, err := store.Open(context.Background(), a.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	other := newServer(t, newHandlerWithForms(t, a, st2))

	// Each post gets its own token (a token is used once), signed by
	// the first instance.
	post := func() *response {
		tok := a.token(t, f)
		return a.visit(t, http.MethodPost, "/f/"+f.Slug, "application/json",
			strings.NewReader(`{"_token":"`+tok+`","message":"hi"}`), "Accept", "application/json")
	}
	postOther := func() *response {
		tok := a.token(t, f)
		req, _ := http.NewRequest(http.MethodPost, other+"/f/"+f.Slug, strings.NewReader(`{"_token":"`+tok+`","message":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	wantAnswer(t, postOther(), http.StatusOK, "") // the other instance accepts the first one's token
	wantAnswer(t, post(), http.StatusOK, "")
	wantAnswer(t, postOther(), http.StatusOK, "")
	wantAnswer(t, post(), http.StatusTooManyRequests, "rate_limited")
	wantAnswer(t, postOther(), http.StatusTooManyRequests, "rate_limited")
	if n := len(a.submissions(t, f)); n != 3 {
		t.Errorf("%d submissions, want 3", n)
	}
}

// TestContactRetention: the retention policy's age limit removes contact
// messages that are done with (delivered, cancelled, blocked) with their
// submissions, and keeps those still queued or needing an admin, and
// everything younger.
func TestContactRetention(t *testing.T) {
	ctx := context.Background()
	a := newContactApp(t, contactOptions{retention: handlers.Retention{MaxAge: 30 * 24 * time.Hour}})
	f := a.addForm(t, nil)
	post := func() {
		t.Helper()
		wantAnswer(t, a.postJSON(t, f, validPost(a.token(t, f))), http.StatusOK, "")
	}
	post()
	post()
	old := a.outbox(t, f) // newest first
	if len(old) != 2 {
		t.Fatalf("%d items queued, want 2", len(old))
	}
	cancelled, queued := old[0], old[1]
	if err := a.store.CancelOutbox(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(40 * 24 * time.Hour)
	post()
	recent := a.outbox(t, f)[0]
	if err := a.store.CancelOutbox(ctx, recent.ID); err != nil {
		t.Fatal(err)
	}

	if _, err := a.h.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		item store.OutboxItem
		gone bool
	}{
		{"old cancelled", cancelled, true},
		{"old still queued", queued, false},
		{"recent cancelled", recent, false},
	} {
		_, errItem := a.store.OutboxItem(ctx, tc.item.ID)
		_, errSub := a.store.Submission(ctx, *tc.item.SubmissionID)
		if errors.Is(errItem, store.ErrNotFound) != tc.gone || errors.Is(errSub, store.ErrNotFound) != tc.gone {
			t.Errorf("%s: item %v, submission %v; want gone %v", tc.name, errItem, errSub, tc.gone)
		}
	}
}
