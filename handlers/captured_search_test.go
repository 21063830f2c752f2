package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
)

// saveRaw stores a captured message with its envelope and source.
func saveRaw(t *testing.T, st *store.Store, from string, rcpts []string, raw string) int64 {
	t.Helper()
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	c := &store.Captured{MailFrom: from, Rcpts: rcpts, Raw: []byte(raw)}
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(l, "Subject: "); ok {
			c.Subject = v
		}
	}
	if err := st.SaveCaptured(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// listedIDs returns the ids of the rows of a captured-mail list page.
func listedIDs(t *testing.T, r *response) []string {
	t.Helper()
	var ids []string
	r.testid(t, "captured").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("data-id")
		ids = append(ids, id)
	})
	return ids
}

// TestCapturedSearchPage, on both backends: the search box narrows the
// list by sender, recipient, subject and body; message links, pages and
// the live stream keep the search; a search too long or with too many
// words is refused with a message naming what is wrong.
func TestCapturedSearchPage(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend})
			c := a.client()
			c.signUp()
			id := func(n int64) string { return strconv.FormatInt(n, 10) }
			alice := saveRaw(t, a.store, "alice@shop.test", []string{"bob@example.test"},
				"From: Alice <alice@shop.test>\nTo: bob@example.test\nSubject: Order shipped\n\nYour parcel left the warehouse.\n")
			carol := saveRaw(t, a.store, "carol@example.test", []string{"dave@example.test"},
				"From: carol@example.test\nTo: Dave <dave@example.test>\nSubject: Lunch\n\nShall we meet at noon?\n")
			tests := []struct {
				q    string
				want []string
			}{
				{"", []string{id(carol), id(alice)}},
				{"from:alice", []string{id(alice)}},
				{"to:dave", []string{id(carol)}},
				{"subject:lunch", []string{id(carol)}},
				{"warehouse", []string{id(alice)}},
				{"noon from:carol", []string{id(carol)}},
				{"noon from:alice", nil},
			}
			for _, tt := range tests {
				t.Run(tt.q, func(t *testing.T) {
					r := c.get("/captured?" + url.Values{"q": {tt.q}}.Encode())
					if r.status != http.StatusOK {
						t.Fatalf("status %d", r.status)
					}
					if got := listedIDs(t, r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
						t.Errorf("listed %v, want %v", got, tt.want)
					}
					if v, _ := r.testid(t, "input-q").Attr("value"); v != tt.q {
						t.Errorf("search box holds %q", v)
					}
					events, _ := r.testid(t, "captured-list").Attr("data-events-url")
					eu, err := url.Parse(events)
					if err != nil || eu.Path != "/captured/events" || eu.Query().Get("q") != tt.q {
						t.Errorf("events URL %q does not keep the search", events)
					}
					r.testid(t, "captured-subject").Each(func(_ int, s *goquery.Selection) {
						href, _ := s.Attr("href")
						if u, err := url.Parse(href); err != nil || u.Query().Get("q") != tt.q {
							t.Errorf("message link %q does not keep the search", href)
						}
					})
				})
			}

			refused := []struct {
				name, q, want string
			}{
				{"too long", strings.Repeat("x", 501), "at most 500"},
				{"too many words", strings.Repeat("w ", 17), "more than 16 words"},
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					r := c.get("/captured?" + url.Values{"q": {tt.q}}.Encode())
					if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.testid(t, "error-q").Text(), tt.want) {
						t.Errorf("status %d, error %q; want 422 naming %q", r.status, r.testid(t, "error-q").Text(), tt.want)
					}
					if ev := c.get("/captured/events?" + url.Values{"q": {tt.q}}.Encode()); ev.status != http.StatusBadRequest {
						t.Errorf("events: status %d, want 400", ev.status)
					}
				})
			}
		})
	}
}

// TestCapturedSearchPages: a search with more matches than a page pages
// by key, the next page's link keeping the search.
func TestCapturedSearchPages(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	base := time.Now()
	for i := range 55 {
		saveCaptured(t, a.store, "needle "+strconv.Itoa(i), base)
		saveCaptured(t, a.store, "hay "+strconv.Itoa(i), base)
	}
	first := c.get("/captured?q=subject%3Aneedle")
	if n := len(listedIDs(t, first)); n != 50 {
		t.Fatalf("first page: %d rows", n)
	}
	if got := strings.Join(strings.Fields(first.testid(t, "captured-total").Text()), " "); got != "55 messages match the search." {
		t.Errorf("total %q", got)
	}
	next, ok := first.testid(t, "next-page").Attr("href")
	if !ok || !strings.Contains(next, "q=subject%3Aneedle") {
		t.Fatalf("next page link %q", next)
	}
	second := c.get(next)
	if n := len(listedIDs(t, second)); n != 5 || second.testid(t, "next-page").Length() != 0 {
		t.Errorf("second page: %d rows, next link %d", n, second.testid(t, "next-page").Length())
	}
	if events, _ := second.testid(t, "captured-list").Attr("data-events-url"); events != "" {
		t.Errorf("a later page streams live rows: %q", events)
	}
	second.testid(t, "captured-subject").Each(func(_ int, s *goquery.Selection) {
		if !strings.HasPrefix(strings.TrimSpace(s.Text()), "needle ") {
			t.Errorf("second page lists %q", s.Text())
		}
	})
}

// TestCapturedDeleteKeepsSearch: deleting from the list, from a message
// and all at once returns to the list with the search it came from.
func TestCapturedDeleteKeepsSearch(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	now := time.Now()
	one := saveCaptured(t, a.store, "report one", now)
	two := saveCaptured(t, a.store, "report two", now)
	saveCaptured(t, a.store, "other", now)
	q := `subject:"report"`
	list := c.get("/captured?" + url.Values{"q": {q}}.Encode())
	if list.testid(t, "row-delete-form").Length() != 2 {
		t.Fatalf("%d row delete forms", list.testid(t, "row-delete-form").Length())
	}
	want := "/captured?" + url.Values{"q": {q}}.Encode()
	view := c.get("/captured/" + strconv.FormatInt(two, 10) + "?" + url.Values{"q": {q}}.Encode())
	if back, _ := view.testid(t, "back-to-list").Attr("href"); back != want {
		t.Errorf("back link %q", back)
	}
	tok := c.csrf("/captured")
	steps := []struct {
		name, path string
		form       url.Values
		left       int
	}{
		{"delete from the list", "/captured/" + strconv.FormatInt(one, 10) + "/delete", url.Values{"_csrf": {tok}, "q": {q}}, 2},
		{"delete from the message", "/captured/" + strconv.FormatInt(two, 10) + "/delete", url.Values{"_csrf": {tok}, "q": {q}}, 1},
		{"delete all", "/captured/delete", url.Values{"_csrf": {tok}, "q": {q}, "confirm": {"yes"}}, 0},
	}
	for _, s := range steps {
		r := c.post(s.path, s.form)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("%s: %d to %q, want 303 to %q", s.name, r.status, r.header.Get("Location"), want)
		}
		if n := capturedCount(t, a.store); n != s.left {
			t.Errorf("%s: %d left, want %d", s.name, n, s.left)
		}
	}
	// A search too long to be one is not carried back.
	saveCaptured(t, a.store, "again", now)
	r := c.post("/captured/delete", url.Values{"_csrf": {tok}, "q": {strings.Repeat("x", 501)}, "confirm": {"yes"}})
	if r.header.Get("Location") != "/captured" {
		t.Errorf("over-long search carried back: %q", r.header.Get("Location"))
	}
}
