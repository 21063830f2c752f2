package handlers_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/testenv"
)

// pngPixel is a 1x1 PNG in base64.
const pngPixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

const htmlWithImage = `From: =?utf-8?q?Zo=C3=AB?= <zoe@example.test>
To: b@example.test
Subject: pictures
X-Second: one
X-Second: two
MIME-Version: 1.0
Content-Type: multipart/related; boundary="r"

--r
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8

plain version
--a
Content-Type: text/html; charset=utf-8

<p>See <img src="cid:logo@example.test" alt="logo"> and <img src="cid:missing@x"></p><script>parent.pwned=1</script>
--a--
--r
Content-Type: image/png
Content-ID: <logo@example.test>
Content-Disposition: inline; filename="logo.png"
Content-Transfer-Encoding: base64

` + pngPixel + `
--r--
`

// TestCapturedTabs: each tab is a link to the page with that tab chosen
// (role=tab, aria-selected, aria-controls), the chosen panel shown and
// the others hidden; HTML is the default when there is HTML, text
// otherwise; the headers tab lists the fields in order, decoded; the raw
// tab shows the source.
func TestCapturedTabs(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	withHTML := captureRaw(t, a, htmlWithImage)
	textOnly := captureRaw(t, a, "Subject: plain\nX-Bidi: a\u202eb\n\nonly text\n")
	tests := []struct {
		name, path, tab string
	}{
		{"html default", withHTML, "html"},
		{"text default without html", textOnly, "text"},
		{"text chosen", withHTML + "?tab=text", "text"},
		{"headers chosen", withHTML + "?tab=headers&q=pictures", "headers"},
		{"raw chosen", withHTML + "?tab=raw", "raw"},
		{"unknown tab", withHTML + "?tab=evil", "html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.get(tt.path)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			d := r.doc(t)
			tabs := d.Find(`[role="tablist"] [role="tab"]`)
			if tabs.Length() != 4 {
				t.Fatalf("%d tabs", tabs.Length())
			}
			u, _ := url.Parse(tt.path)
			tabs.Each(func(_ int, s *goquery.Selection) {
				name, _ := s.Attr("data-tab")
				sel, _ := s.Attr("aria-selected")
				ctl, _ := s.Attr("aria-controls")
				href, _ := s.Attr("href")
				if (sel == "true") != (name == tt.tab) {
					t.Errorf("tab %s aria-selected=%q", name, sel)
				}
				hu, err := url.Parse(href)
				if err != nil || hu.Path != u.Path || hu.Query().Get("tab") != name || hu.Query().Get("q") != u.Query().Get("q") {
					t.Errorf("tab %s links to %q", name, href)
				}
				panel := d.Find("#" + ctl)
				_, hidden := panel.Attr("hidden")
				if role, _ := panel.Attr("role"); role != "tabpanel" || hidden == (name == tt.tab) {
					t.Errorf("panel %s: role %q hidden %v", ctl, role, hidden)
				}
			})
		})
	}

	d := c.get(withHTML).doc(t)
	if got := strings.TrimSpace(d.Find(`[data-testid="text-body"]`).Text()); got != "plain version" {
		t.Errorf("text panel %q", got)
	}
	var names, values []string
	d.Find(`[data-testid="headers"] tr`).Each(func(_ int, s *goquery.Selection) {
		names = append(names, s.Find("th").Text())
		values = append(values, s.Find("td").Text())
	})
	if strings.Join(names, ",") != "From,To,Subject,X-Second,X-Second,MIME-Version,Content-Type" || values[0] != "Zoë <zoe@example.test>" ||
		values[3] != "one" || values[4] != "two" {
		t.Errorf("headers %q = %q", names, values)
	}
	if raw := d.Find(`[data-testid="raw"]`).Text(); !strings.Contains(raw, "Subject: pictures") || !strings.Contains(raw, pngPixel) {
		t.Errorf("raw panel %q", raw)
	}
	// Text from the sender is escaped where it is shown: the bidi
	// override in a header field is made visible, not applied.
	plain := c.get(textOnly).doc(t).Find(`[data-testid="headers"]`).Text()
	if strings.Contains(plain, "\u202e") {
		t.Errorf("a bidi override reached the page: %q", plain)
	}
}

// TestCapturedInlineImage: cid: references in the HTML body point at the
// part's URL (references to no part stay), the sandboxed iframe then
// keeps the origin without scripts so the image loads with the session,
// and the part is served as the image it is.
func TestCapturedInlineImage(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	path := captureRaw(t, a, htmlWithImage)
	d := c.get(path).doc(t)
	frame := d.Find(`[data-testid="html-body"]`)
	doc, _ := frame.Attr("srcdoc")
	sandbox, _ := frame.Attr("sandbox")
	if !strings.Contains(doc, `<img src="`+path+`/parts/0" alt="logo">`) || !strings.Contains(doc, `src="cid:missing@x"`) {
		t.Errorf("srcdoc %q", doc)
	}
	if sandbox != "allow-same-origin" || !strings.Contains(doc, "default-src 'none'; img-src 'self' data:") {
		t.Errorf("sandbox %q, CSP in %q", sandbox, doc)
	}
	att := d.Find(`[data-testid="attachment"]`)
	if att.Length() != 1 || !strings.Contains(att.Text(), "logo.png") || !strings.Contains(att.Text(), "shown in the HTML") {
		t.Errorf("attachments %q", att.Text())
	}
	img := c.get(path + "/parts/0")
	if img.status != http.StatusOK || img.header.Get("Content-Type") != "image/png" || !strings.HasPrefix(img.body, "\x89PNG") {
		t.Errorf("image: %d %q", img.status, img.header.Get("Content-Type"))
	}
	// Without inline parts the iframe gets no origin at all.
	plain := captureRaw(t, a, "Subject: h\nContent-Type: text/html\n\n<p>hi <img src=\"cid:nothing\"></p>\n")
	if s, _ := c.get(plain).testid(t, "html-body").Attr("sandbox"); s != "" {
		t.Errorf("HTML without inline parts: sandbox %q", s)
	}
}

// capturedStream reads a server-sent event stream in the background.
type capturedStream struct {
	mu     sync.Mutex
	events []capturedEventData
	done   bool
}

type capturedEventData struct {
	ID   int64  `json:"id"`
	HTML string `json:"html"`
}

func (s *capturedStream) snapshot() ([]capturedEventData, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capturedEventData(nil), s.events...), s.done
}

// openEvents opens the captured-mail event stream at path.
func openEvents(t *testing.T, c *client, path string) *capturedStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.a.srv.URL+path, nil)
	hc := *c.hc
	hc.Timeout = 0 // the stream stays open
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := &capturedStream{}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev capturedEventData
				if err := json.Unmarshal([]byte(data), &ev); err == nil {
					r.mu.Lock()
					r.events = append(r.events, ev)
					r.mu.Unlock()
				}
			}
		}
		r.mu.Lock()
		r.done = true
		r.mu.Unlock()
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return r
}

// waitEvents waits until the stream has n events.
func waitEvents(t *testing.T, r *capturedStream, n int) []capturedEventData {
	t.Helper()
	var evs []capturedEventData
	testenv.WaitFor(t, strconv.Itoa(n)+" live rows", func() (int, bool) {
		var done bool
		evs, done = r.snapshot()
		if done && len(evs) < n {
			t.Fatalf("the stream ended after %d events", len(evs))
		}
		return len(evs), len(evs) >= n
	})
	return evs
}

// TestCapturedEvents: the live list's stream sends the rows of messages
// captured after the list was shown that match its search, at once when
// this process's capture server stores them, and by the poll of the
// newest id when another instance stores them (here: the store itself).
func TestCapturedEvents(t *testing.T) {
	tests := []struct {
		name string
		// opts sets the poll of the newest id: a day, so that only the
		// notifier can wake the stream in time, or 20 ms.
		opts appOptions
		// direct stores the messages in the database, as another
		// instance would, instead of sending them to the capture server.
		direct bool
	}{
		{"notified by the capture server", appOptions{capturedPoll: 24 * time.Hour}, false},
		{"polled: another instance captured it", appOptions{capturedPoll: 20 * time.Millisecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, tt.opts)
			c := a.client()
			c.signUp()
			old := saveRaw(t, a.store, "a@example.test", []string{"b@example.test"}, "Subject: wanted before\n\nx\n")
			list := c.get("/captured?q=subject%3Awanted")
			events, _ := list.testid(t, "captured-list").Attr("data-events-url")
			want := url.Values{"after": {strconv.FormatInt(old, 10)}, "q": {"subject:wanted"}}
			if events != "/captured/events?"+want.Encode() {
				t.Fatalf("events URL %q", events)
			}
			r := openEvents(t, c, events)
			add := func(subject string) {
				raw := "From: a@example.test\nTo: b@example.test\nSubject: " + subject + "\n\nbody\n"
				if tt.direct {
					saveRaw(t, a.store, "a@example.test", []string{"b@example.test"}, raw)
				} else {
					captureRaw(t, a, raw)
				}
			}
			add("unrelated")
			add("wanted <one>")
			// The unrelated message, captured first, would have come first.
			if evs := waitEvents(t, r, 1); !strings.Contains(evs[0].HTML, "wanted &lt;one&gt;") {
				t.Fatalf("first live row: %s", evs[0].HTML)
			}
			add("wanted two")
			evs := waitEvents(t, r, 2)
			for i, want := range []string{"wanted &lt;one&gt;", "wanted two"} {
				if !strings.Contains(evs[i].HTML, want) || !strings.Contains(evs[i].HTML, `data-id="`+strconv.FormatInt(evs[i].ID, 10)+`"`) ||
					!strings.Contains(evs[i].HTML, "q=subject%3Awanted") || !strings.Contains(evs[i].HTML, `name="_csrf"`) {
					t.Errorf("event %d: %s", i, evs[i].HTML)
				}
			}
			if len(evs) != 2 || evs[0].ID <= old || evs[1].ID <= evs[0].ID {
				t.Errorf("events %+v", evs)
			}
		})
	}
}
