package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"sockmail/handlers"
	"sockmail/internal/store"
)

// saveCaptured stores a captured message received at when.
func saveCaptured(t *testing.T, st *store.Store, subject string, when time.Time) int64 {
	t.Helper()
	c := &store.Captured{ReceivedAt: when, MailFrom: "a@example.test", Rcpts: []string{"b@example.test"},
		Subject: subject, Raw: []byte("Subject: " + subject + "\r\n\r\nbody\r\n")}
	if err := st.SaveCaptured(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// capturedCount is how many captured messages the store holds.
func capturedCount(t *testing.T, st *store.Store) int {
	t.Helper()
	list, err := st.ListCaptured(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestCapturedDeleteAndRetention, on both backends: deleting one
// captured message and all of them are POSTs that need the CSRF token
// (and, for all, the confirmation box); the history's retention age
// limit also drops captured mail older than it.
func TestCapturedDeleteAndRetention(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newContactApp(t, contactOptions{backend: backend, retention: handlers.Retention{MaxAge: 30 * 24 * time.Hour}})
			c := a.client()
			c.signUp()
			now := a.clock.Now()
			old := saveCaptured(t, a.store, "old", now.Add(-40*24*time.Hour))
			one := saveCaptured(t, a.store, "one", now)
			saveCaptured(t, a.store, "two", now)
			path := "/captured/" + strconv.FormatInt(one, 10)
			tok := c.csrf(path)
			if c.get(path).testid(t, "delete-form").Length() != 1 || c.get("/captured").testid(t, "delete-all-confirm").Length() != 1 {
				t.Error("the message page lacks its delete form, or the list its confirmed delete-all form")
			}

			steps := []struct {
				name   string
				path   string
				form   url.Values
				status int
				left   int
			}{
				{"delete without token", path + "/delete", url.Values{}, http.StatusForbidden, 3},
				{"delete one", path + "/delete", url.Values{"_csrf": {tok}}, http.StatusSeeOther, 2},
				{"delete it again", path + "/delete", url.Values{"_csrf": {tok}}, http.StatusNotFound, 2},
				{"delete all without token", "/captured/delete", url.Values{"confirm": {"yes"}}, http.StatusForbidden, 2},
				{"delete all unconfirmed", "/captured/delete", url.Values{"_csrf": {tok}}, http.StatusSeeOther, 2},
			}
			for _, s := range steps {
				r := c.post(s.path, s.form)
				if r.status != s.status {
					t.Errorf("%s: status %d, want %d", s.name, r.status, s.status)
				}
				if n := capturedCount(t, a.store); n != s.left {
					t.Errorf("%s: %d messages left, want %d", s.name, n, s.left)
				}
			}

			// Retention: the 40-day-old message goes, today's stays.
			if _, err := a.h.ApplyRetention(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := a.store.Captured(context.Background(), old); err == nil {
				t.Error("retention kept a captured message older than its age limit")
			}
			if n := capturedCount(t, a.store); n != 1 {
				t.Errorf("after retention %d messages, want 1", n)
			}

			r := c.post("/captured/delete", url.Values{"_csrf": {tok}, "confirm": {"yes"}})
			if r.status != http.StatusSeeOther || capturedCount(t, a.store) != 0 {
				t.Errorf("delete all confirmed: %d, %d left", r.status, capturedCount(t, a.store))
			}
			if page := c.get("/captured"); page.status != http.StatusOK || page.testid(t, "no-captured").Length() != 1 {
				t.Errorf("list after delete all: %d", page.status)
			}
		})
	}
}
