package handlers_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
)

// charsetCase is a message whose Subject and From name are RFC 2047
// encoded in one charset, with a body in that charset. want and body are
// written here in UTF-8 by hand, not computed by the code under test.
type charsetCase struct {
	name     string
	rcpt     string // identifies the message in every list
	subject  string // as on the wire
	from     string // as on the wire
	ctype    string
	body64   string // the body in the charset, base64
	want     string // the subject as every page must show it
	wantFrom string
	wantBody string
}

var charsetCases = []charsetCase{
	{
		name: "windows-1252", rcpt: "cp1252@example.test",
		subject: "=?windows-1252?Q?Caf=E9_=93quoted=94_=805?=", from: "=?windows-1252?Q?=8Aeila?= <forms@example.test>",
		ctype: "text/plain; charset=windows-1252", body64: "Q2Fm6SCTcXVvdGVklCCANQ==",
		want: "Café \u201cquoted\u201d €5", wantFrom: "Šeila <forms@example.test>", wantBody: "Café \u201cquoted\u201d €5",
	},
	{
		name: "ISO-8859-1", rcpt: "latin1@example.test",
		subject: "=?ISO-8859-1?Q?Gr=FC=DFe_aus_Z=FCrich?=", from: "=?ISO-8859-1?Q?Ren=E9?= <forms@example.test>",
		ctype: "text/plain; charset=ISO-8859-1", body64: "R3L832UgYXVzIFr8cmljaA==",
		want: "Grüße aus Zürich", wantFrom: "René <forms@example.test>", wantBody: "Grüße aus Zürich",
	},
	{
		name: "Shift_JIS", rcpt: "sjis@example.test",
		subject: "=?Shift_JIS?B?k/qWe4zqgsyMj5a8?=", from: "=?Shift_JIS?B?k/qWe4zq?= <forms@example.test>",
		ctype: "text/plain; charset=Shift_JIS", body64: "lnuVtoLFgrc=",
		want: "日本語の件名", wantFrom: "日本語 <forms@example.test>", wantBody: "本文です",
	},
	{
		name: "unknown charset kept visible", rcpt: "unknown@example.test",
		subject: "=?x-no-such-charset?Q?abc?=", from: "forms@example.test",
		ctype: "text/plain; charset=us-ascii", body64: "cGxhaW4=",
		want: "=?x-no-such-charset?Q?abc?=", wantFrom: "forms@example.test", wantBody: "plain",
	},
}

func (cc charsetCase) message(i int) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: %s
To: %s
Subject: %s
Date: Sun, 06 Dec 2026 12:00:00 +0000
Message-ID: <charset-%d@example.test>
MIME-Version: 1.0
Content-Type: %s
Content-Transfer-Encoding: base64

%s
`, cc.from, cc.rcpt, cc.subject, i, cc.ctype, cc.body64), "\n", "\r\n"))
}

// TestHeadersDecodeTheSameOnEveryPage queues messages with windows-1252,
// ISO-8859-1 and Shift_JIS headers, lets the real outbox worker deliver
// them to the built-in capture server, and reads the queue, captured
// mail and history pages through the real router: each page shows the
// same decoded subject.
func TestHeadersDecodeTheSameOnEveryPage(t *testing.T) {
	a := newContactApp(t, contactOptions{worker: true, realClock: true})
	f := a.addForm(t, nil)
	ctx := context.Background()
	items := map[string]int64{} // rcpt → outbox item
	for i, cc := range charsetCases {
		sub := &store.Submission{FormID: f.ID, Fields: []store.FieldValue{{Name: "message", Value: cc.name}}}
		it := &store.OutboxItem{MailFrom: "forms@example.test", Rcpts: []string{cc.rcpt}, Message: cc.message(i)}
		if err := a.store.EnqueueSubmission(ctx, sub, it); err != nil {
			t.Fatal(err)
		}
		items[cc.rcpt] = it.ID
	}
	sends := waitAllSent(t, a.store, items)

	c := a.client()
	c.signUp()
	captured := capturedByRcpt(t, a.store)
	for _, cc := range charsetCases {
		t.Run(cc.name, func(t *testing.T) {
			checkQueuePage(t, c, items[cc.rcpt], cc.want)
			checkCapturedPages(t, c, captured[cc.rcpt], cc)
			checkHistoryPages(t, c, sends[cc.rcpt], cc.want)
		})
	}
}

// waitAllSent waits until the worker has sent every item and returns
// each one's history record by recipient. It fails when no item has
// changed for a minute, never on a total deadline.
func waitAllSent(t *testing.T, st *store.Store, items map[string]int64) map[string]int64 {
	t.Helper()
	sends := map[string]int64{}
	last, lastChange := "", time.Now()
	for {
		var state strings.Builder
		for rcpt, id := range items {
			it, err := st.OutboxItem(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&state, "%d:%s:%d ", id, it.Status, it.Attempts)
			if it.Status == store.OutboxSent && it.LastSendID != nil {
				sends[rcpt] = *it.LastSendID
			}
		}
		if len(sends) == len(items) {
			return sends
		}
		if state.String() != last {
			last, lastChange = state.String(), time.Now()
		} else if time.Since(lastChange) > time.Minute {
			t.Fatalf("no progress for a minute: %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// capturedByRcpt returns the captured message ids by envelope recipient.
func capturedByRcpt(t *testing.T, st *store.Store) map[string]int64 {
	t.Helper()
	list, err := st.ListCaptured(context.Background(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range list {
		if len(m.Rcpts) == 1 {
			out[m.Rcpts[0]] = m.ID
		}
	}
	if len(out) != len(charsetCases) {
		t.Fatalf("captured %d messages by recipient, want %d", len(out), len(charsetCases))
	}
	return out
}

// page gets path and fails unless it answers 200.
func page(t *testing.T, c *client, path string) *goquery.Document {
	t.Helper()
	r := c.get(path)
	if r.status != 200 {
		t.Fatalf("GET %s: %d", path, r.status)
	}
	return r.doc(t)
}

// rowText returns the whitespace-normalised text of the selection.
func rowText(s *goquery.Selection) string {
	return strings.Join(strings.Fields(s.Text()), " ")
}

func checkQueuePage(t *testing.T, c *client, item int64, want string) {
	t.Helper()
	row := page(t, c, "/outbox").Find(`[data-testid="outbox-row"][data-id="` + strconv.FormatInt(item, 10) + `"]`)
	if row.Length() != 1 {
		t.Fatalf("queue page: %d rows for item %d", row.Length(), item)
	}
	if got := rowText(row); !strings.Contains(got, want) {
		t.Errorf("queue page row %q lacks %q", got, want)
	}
}

func checkCapturedPages(t *testing.T, c *client, id int64, cc charsetCase) {
	t.Helper()
	sid := strconv.FormatInt(id, 10)
	var listed []string
	page(t, c, "/captured").Find(`[data-testid="captured-subject"]`).Each(func(_ int, s *goquery.Selection) {
		if h, _ := s.Attr("href"); h == "/captured/"+sid {
			listed = append(listed, strings.TrimSpace(s.Text()))
		}
	})
	if len(listed) != 1 || listed[0] != cc.want {
		t.Errorf("captured list: %q, want [%q]", listed, cc.want)
	}
	d := page(t, c, "/captured/"+sid)
	if got := strings.TrimSpace(d.Find(`[data-testid="captured-title"]`).Text()); got != cc.want {
		t.Errorf("captured view title %q, want %q", got, cc.want)
	}
	fields := map[string]string{}
	d.Find(`[data-testid="headers"] tr`).Each(func(_ int, s *goquery.Selection) {
		fields[s.Find("th").Text()] = s.Find("td").Text()
	})
	if fields["Subject"] != cc.want || fields["From"] != cc.wantFrom {
		t.Errorf("captured view headers: Subject %q From %q, want %q and %q", fields["Subject"], fields["From"], cc.want, cc.wantFrom)
	}
	if got := strings.TrimSpace(d.Find(`[data-testid="text-body"]`).Text()); got != cc.wantBody {
		t.Errorf("captured view body %q, want %q", got, cc.wantBody)
	}
}

func checkHistoryPages(t *testing.T, c *client, id int64, want string) {
	t.Helper()
	sid := strconv.FormatInt(id, 10)
	row := page(t, c, "/history").Find(`[data-testid="history-row"][data-id="` + sid + `"]`)
	if got := strings.TrimSpace(row.Find(`[data-testid="history-subject"]`).Text()); got != want {
		t.Errorf("history list subject %q, want %q", got, want)
	}
	d := page(t, c, "/history/"+sid)
	var subject string
	d.Find("dt").Each(func(_ int, s *goquery.Selection) {
		if s.Text() == "Subject" {
			subject = strings.TrimSpace(s.Next().Text())
		}
	})
	if subject != want {
		t.Errorf("history detail subject %q, want %q", subject, want)
	}
	if got := d.Find(`[data-testid="headers"]`).Text(); !strings.Contains(got, "Subject: "+want+"\n") {
		t.Errorf("history detail header block lacks %q:\n%s", "Subject: "+want, got)
	}
}
