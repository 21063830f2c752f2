package views_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/views"
)

func historyRows() []views.HistoryRow {
	return []views.HistoryRow{
		{ID: 12, CreatedAt: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC), Source: "web", Server: "mx.example.org:25", TLSMode: "starttls",
			MailFrom: "a@example.test", Rcpts: []string{"b@example.test", "c@example.test"}, Subject: "<b>hi</b>", Status: "partly sent",
			StatusClass: "warn", QueueID: "4Xy", DurationMS: 812.4, ParentID: 9, Refused: 1},
		{ID: 11, Source: "cli", Status: "sent", StatusClass: "ok"},
	}
}

func TestHistoryListPage(t *testing.T) {
	p := page()
	p.Section = "history"
	v := views.HistoryList{
		Filter: views.HistoryFilter{Status: "sent", Source: "cli", Query: "greylisted", Since: "2025-06-01"},
		Rows:   historyRows(), Total: 10000, TotalCapped: true, Paged: true,
		FirstURL: "/history?q=greylisted", NextURL: "/history?before=11&q=greylisted",
		Retention: "Only the newest 5 sends are kept.",
	}
	code, d := get(t, views.HistoryListPage(p, v))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if d.Find(`nav a[href="/history"][aria-current="page"]`).Length() != 1 {
		t.Error("History not the current navigation entry")
	}
	rows := byID(d, "history-row")
	if rows.Length() != 2 {
		t.Fatalf("%d rows", rows.Length())
	}
	if id, _ := rows.First().Attr("data-id"); id != "12" {
		t.Errorf("first row id %q", id)
	}
	if got := byID(d, "history-subject").First().Text(); got != "<b>hi</b>" {
		t.Errorf("subject %q (escaped text expected)", got)
	}
	first := rows.First().Text()
	for _, want := range []string{"partly sent", "(1 refused)", "resend of #9", "b@example.test, c@example.test", "812"} {
		if !strings.Contains(first, want) {
			t.Errorf("row lacks %q: %q", want, first)
		}
	}
	if got := strings.TrimSpace(byID(d, "history-total").Text()); got != "More than 10000 sends match." {
		t.Errorf("total %q", got)
	}
	if href, _ := byID(d, "next-page").Attr("href"); href != "/history?before=11&q=greylisted" {
		t.Errorf("next %q", href)
	}
	if href, _ := byID(d, "first-page").Attr("href"); href != "/history?q=greylisted" {
		t.Errorf("first %q", href)
	}
	if v, _ := byID(d, "input-q").Attr("value"); v != "greylisted" {
		t.Errorf("search field %q", v)
	}
	if v, _ := d.Find(`[data-testid="input-status"] option[selected]`).Attr("value"); v != "sent" {
		t.Errorf("status selected %q", v)
	}
	if typ, _ := byID(d, "input-since").Attr("type"); typ != "date" {
		t.Errorf("since input type %q", typ)
	}
	if tok, _ := d.Find(`form[action="/history/retention"] input[name="_csrf"]`).Attr("value"); tok != "tok" {
		t.Errorf("retention form CSRF %q", tok)
	}

	// Empty, first page, no policy, with errors.
	code, d = get(t, views.HistoryListPage(p, views.HistoryList{Total: 0, Errors: map[string]string{"since": "A date like 2025-06-30."}}))
	if code != http.StatusOK || byID(d, "no-sends").Length() != 1 || byID(d, "next-page").Length() != 0 || byID(d, "first-page").Length() != 0 {
		t.Error("empty list")
	}
	if byID(d, "error-since").Text() != "A date like 2025-06-30." || d.Find(`#f-since[aria-invalid="true"]`).Length() != 1 {
		t.Error("field error not shown")
	}
	if byID(d, "apply-retention").Length() != 0 {
		t.Error("apply button without a policy")
	}
}

func TestHistoryDetailPage(t *testing.T) {
	r := result()
	d := views.HistoryDetail{
		Result: r, Source: "cli", User: "admin@example.test", ClientAddr: "192.0.2.1", ParentID: 3,
		Resends: historyRows()[:1], Headers: "From: a\nSubject: x",
		Resend: views.ResendForm{Possible: true, Server: "adhoc", Host: "relay.example", Port: "2525", TLS: "none",
			Profiles: []views.Option{{"4", "relay (relay.example:587)"}}, BuiltinAddr: "127.0.0.1:1025",
			Errors: map[string]string{"host": "bad host"}},
	}
	code, doc := get(t, views.HistoryDetailPage(page(), d))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for id, want := range map[string]string{"source": "cli", "started-by": "admin@example.test", "queue-id": "4AbC", "error-host": "bad host"} {
		if got := strings.TrimSpace(byID(doc, id).Text()); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if href, _ := byID(doc, "parent").Find("a").First().Attr("href"); href != "/history/3" {
		t.Errorf("parent link %q", href)
	}
	if href, _ := byID(doc, "compare-parent").Attr("href"); href != "/history/compare?a=3&b=7" {
		t.Errorf("compare with parent %q", href)
	}
	if byID(doc, "transcript").Length() != 1 || byID(doc, "event").Length() != len(r.Events) {
		t.Error("transcript not shown through the result page's component")
	}
	if byID(doc, "timing-summary").Length() != 1 || byID(doc, "resend-item").Length() != 1 {
		t.Error("timing summary or resends missing")
	}
	var opts []string
	byID(doc, "input-server").Find("option").Each(func(_ int, s *goquery.Selection) {
		v, _ := s.Attr("value")
		opts = append(opts, v)
	})
	if strings.Join(opts, ",") != "same,builtin,4,adhoc" {
		t.Errorf("server options %v", opts)
	}
	if v, _ := byID(doc, "input-server").Find("option[selected]").Attr("value"); v != "adhoc" {
		t.Errorf("server selected %q", v)
	}
	if action, _ := byID(doc, "resend-form").Attr("action"); action != "/history/7/resend" {
		t.Errorf("resend action %q", action)
	}
	if action, _ := byID(doc, "delete-form").Attr("action"); action != "/history/7/delete" {
		t.Errorf("delete action %q", action)
	}
	for _, form := range []string{"resend-form", "delete-form"} {
		if tok, _ := byID(doc, form).Find(`input[name="_csrf"]`).Attr("value"); tok != "tok" {
			t.Errorf("%s CSRF %q", form, tok)
		}
	}

	// Running: no re-send, no delete; a send that cannot be re-sent says why.
	d.Running = true
	_, doc = get(t, views.HistoryDetailPage(page(), d))
	if byID(doc, "resend-form").Length() != 0 || byID(doc, "delete-form").Length() != 0 {
		t.Error("actions offered on a running send")
	}
	d.Running = false
	d.Resend = views.ResendForm{Reason: "This send kept no message, so it cannot be re-sent."}
	_, doc = get(t, views.HistoryDetailPage(page(), d))
	if byID(doc, "resend-form").Length() != 0 || byID(doc, "resend-impossible").Text() != d.Resend.Reason {
		t.Error("impossible re-send not explained")
	}
}

func TestHistoryComparePage(t *testing.T) {
	evs := result().Events
	g := views.Groups(evs)
	v := views.HistoryCompare{
		A: views.CompareSide{HistoryRow: views.HistoryRow{ID: 1, Status: "sent", StatusClass: "ok", Server: "a:25"}},
		B: views.CompareSide{HistoryRow: views.HistoryRow{ID: 2, Status: "permanent failure", StatusClass: "fail", Server: "b:25", QueueID: "Q2"}, Error: "550 no"},
		Rows: []views.CompareRow{
			{Phase: g[0].Phase, Left: &g[0], Right: &g[0]},
			{Phase: g[1].Phase, Left: &g[1], Right: &g[1], Differs: true},
			{Phase: g[2].Phase, Right: &g[2]},
		},
	}
	code, d := get(t, views.HistoryComparePage(page(), v))
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	rows := byID(d, "compare-row")
	if rows.Length() != 3 {
		t.Fatalf("%d rows", rows.Length())
	}
	if diff, _ := rows.Eq(1).Attr("data-differs"); diff != "true" || !rows.Eq(1).HasClass("differs") {
		t.Error("differing row not marked")
	}
	if got := rows.Eq(2).Find(`td[data-testid="compare-left"]`).Text(); strings.TrimSpace(got) != "(none)" {
		t.Errorf("missing side shown as %q", got)
	}
	if got := rows.Eq(1).Find(`td[data-testid="compare-right"] [data-testid="event-line"]`).Text(); got != "220 <script>alert(1)</script>" {
		t.Errorf("server line %q", got)
	}
	if d.Find("script").Length() != 1 { // app.js only
		t.Error("a script element from a server line")
	}
	head := byID(d, "compare-b").Text()
	for _, want := range []string{"Send #2", "permanent failure", "b:25", "Q2", "550 no"} {
		if !strings.Contains(head, want) {
			t.Errorf("right header lacks %q: %q", want, head)
		}
	}
}
