package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"sockmail/smtp"
)

// transcript returns a plausible n-event transcript whose lines carry tag.
func transcript(n int, tag string) []smtp.Event {
	script := []struct {
		dir   smtp.Direction
		phase smtp.Phase
		line  string
	}{
		{smtp.DirInfo, smtp.PhaseConnect, "connected to 192.0.2.1:25 in 1.234ms"},
		{smtp.DirServer, smtp.PhaseGreeting, "220 mx.example.org ESMTP Postfix"},
		{smtp.DirClient, smtp.PhaseEHLO, "EHLO client.example.org"},
		{smtp.DirServer, smtp.PhaseEHLO, "250-mx.example.org"},
		{smtp.DirServer, smtp.PhaseEHLO, "250-PIPELINING"},
		{smtp.DirServer, smtp.PhaseEHLO, "250-SIZE 10240000"},
		{smtp.DirServer, smtp.PhaseEHLO, "250 8BITMIME"},
		{smtp.DirClient, smtp.PhaseAuth, "AUTH PLAIN [redacted]"},
		{smtp.DirServer, smtp.PhaseAuth, "235 2.7.0 Authentication successful"},
		{smtp.DirClient, smtp.PhaseMail, "MAIL FROM:<sender@example.org> SIZE=1234"},
		{smtp.DirServer, smtp.PhaseMail, "250 2.1.0 Ok"},
		{smtp.DirClient, smtp.PhaseRcpt, "RCPT TO:<rcpt@example.net>"},
		{smtp.DirServer, smtp.PhaseRcpt, "250 2.1.5 Ok"},
		{smtp.DirClient, smtp.PhaseData, "DATA"},
		{smtp.DirServer, smtp.PhaseData, "354 End data with <CR><LF>.<CR><LF>"},
		{smtp.DirClient, smtp.PhaseBody, "[body: 1234 bytes]"},
		{smtp.DirServer, smtp.PhaseBody, "250 2.0.0 Ok: queued as " + tag},
		{smtp.DirClient, smtp.PhaseQuit, "QUIT"},
		{smtp.DirServer, smtp.PhaseQuit, "221 2.0.0 Bye"},
	}
	out := make([]smtp.Event, n)
	for i := range out {
		st := script[i%len(script)]
		out[i] = smtp.Event{
			Offset: time.Duration(i)*1234567*time.Nanosecond + 89,
			Dir:    st.dir, Phase: st.phase, Line: st.line,
			Secret: st.phase == smtp.PhaseAuth && st.dir == smtp.DirClient,
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// fullSend returns a send with every field set.
func fullSend(userID *int64) *Send {
	return &Send{
		CreatedAt:        time.Date(2025, 6, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600)),
		Source:           "web",
		UserID:           userID,
		ClientAddr:       "198.51.100.7",
		Server:           "mx.example.org:587",
		TLSMode:          "starttls",
		MailFrom:         "sender@example.org",
		Rcpts:            []string{"a@example.net", "b&c@example.net"},
		Subject:          "Hello Grüße",
		Headers:          "From: sender@example.org\r\nSubject: Hello\r\n",
		Message:          []byte("From: sender@example.org\r\n\r\nbody\r\n"),
		MessageTruncated: true,
		Status:           StatusRunning,
		Events:           transcript(3, "Q1"),
		DurationMS:       0,
	}
}

func TestSendRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		u, err := s.CreateUser(ctx, "admin@example.org", "h")
		if err != nil {
			t.Fatal(err)
		}
		snd := fullSend(&u.ID)
		if err := s.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		if snd.ID == 0 || snd.CreatedAt.Nanosecond() != 123456000 || snd.CreatedAt.Location() != time.UTC {
			t.Fatalf("after CreateSend ID %d CreatedAt %v", snd.ID, snd.CreatedAt)
		}
		got, err := s.Send(ctx, snd.ID)
		if err != nil || !reflect.DeepEqual(got, snd) {
			t.Fatalf("Send after create = %+v, %v\nwant %+v", got, err, snd)
		}

		// Finish with a Send holding only the outcome: the stored envelope
		// stays, and stays searchable.
		fin := &Send{
			ID:         snd.ID,
			Status:     smtp.StatusPartial,
			QueueID:    "4XyZ12",
			FinishedAt: ptr(time.Date(2025, 6, 1, 10, 0, 1, 999, time.UTC)),
			Recipients: []smtp.RecipientResult{
				{Address: "a@example.net", Accepted: true, Code: 250, EnhancedCode: "2.1.5", Message: "Ok"},
				{Address: "b&c@example.net", Code: 550, EnhancedCode: "5.1.1", Message: "User unknown"},
			},
			Events:     transcript(40, "4XyZ12"),
			Error:      "550 5.1.1 User unknown",
			DurationMS: 1234.567,
			Timings: &smtp.Timings{DNS: 1 * time.Microsecond, Connect: 1500 * time.Microsecond, Greeting: 1202 * time.Millisecond,
				Hello: 2, TLS: 3 * time.Millisecond, Auth: 4 * time.Millisecond, Envelope: 5 * time.Millisecond,
				Data: 6 * time.Millisecond, FinalReply: 7 * time.Millisecond, Quit: 8 * time.Millisecond,
				Other: 9 * time.Millisecond, Total: 1234567 * time.Microsecond},
		}
		if err := s.FinishSend(ctx, fin); err != nil {
			t.Fatal(err)
		}
		want := *snd
		want.Status, want.QueueID, want.Recipients, want.Events = fin.Status, fin.QueueID, fin.Recipients, fin.Events
		want.Error, want.DurationMS = fin.Error, fin.DurationMS
		// Kept to the microsecond: Hello's 2 ns read back as 0.
		wantTimings := *fin.Timings
		wantTimings.Hello = 0
		want.Timings = &wantTimings
		want.FinishedAt = ptr(time.Date(2025, 6, 1, 10, 0, 1, 0, time.UTC))
		if !reflect.DeepEqual(fin.FinishedAt, want.FinishedAt) {
			t.Errorf("FinishSend set FinishedAt %v, want %v", fin.FinishedAt, want.FinishedAt)
		}
		got, err = s.Send(ctx, snd.ID)
		if err != nil || !reflect.DeepEqual(got, &want) {
			t.Fatalf("Send after finish = %+v, %v\nwant %+v", got, err, &want)
		}
		// The list carries the timings too, without the transcript.
		if page, err := s.ListSends(ctx, SendFilter{}); err != nil || len(page.Sends) != 1 || !reflect.DeepEqual(page.Sends[0].Timings, &wantTimings) {
			t.Errorf("list after finish: %+v, %v", page.Sends, err)
		}
		for _, q := range []string{"Grüße", "b&c@example", "mx.example.org", "4xyz12", "user unknown", "sender@example.org"} {
			page, err := s.ListSends(ctx, SendFilter{Query: q})
			if err != nil || page.Total != 1 {
				t.Errorf("search %q after finish: total %d, %v", q, page.Total, err)
			}
		}

		checkResendAndMissing(t, s, snd.ID)
	})
}

// checkResendAndMissing: a resend points at its parent and a FinishedAt
// left nil means now; a bare send is running; missing sends and parents
// are errors.
func checkResendAndMissing(t *testing.T, s *Store, parent int64) {
	t.Helper()
	ctx := ctxT(t)
	child := &Send{Source: "web", ParentID: &parent, Status: "running"}
	if err := s.CreateSend(ctx, child); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	child.Status = smtp.StatusSent
	if err := s.FinishSend(ctx, child); err != nil {
		t.Fatal(err)
	}
	if child.FinishedAt == nil || child.FinishedAt.Before(before) {
		t.Errorf("FinishSend without FinishedAt set it to %v", child.FinishedAt)
	}
	got, err := s.Send(ctx, child.ID)
	if err != nil || *got.ParentID != parent || got.Rcpts != nil || got.Events != nil || got.Message != nil {
		t.Fatalf("child = %+v, %v", got, err)
	}
	// Status defaults to running.
	bare := &Send{Source: "cli"}
	if err := s.CreateSend(ctx, bare); err != nil || bare.Status != StatusRunning {
		t.Fatalf("bare send status %q, %v", bare.Status, err)
	}

	_, err = s.Send(ctx, 99999)
	wantErr(t, "Send missing", err, ErrNotFound)
	wantErr(t, "FinishSend missing", s.FinishSend(ctx, &Send{ID: 99999, Status: "sent"}), ErrNotFound)
	if err := s.CreateSend(ctx, &Send{Source: "web", ParentID: ptr(int64(99999))}); err == nil {
		t.Error("CreateSend with a missing parent succeeded")
	}
}

// hostileLines are server lines a hostile or broken server may send.
func hostileLines() []string {
	long := strings.Repeat("L", 2000) + " long-marker " + strings.Repeat("M", 4096-2000-13)
	return []string{
		"\x00",
		"250 \x00 nul-marker \x00",
		"\xff\xfe invalid-marker \xc3",
		"\u202e bidi-marker \u2066",
		"\x1b[31m ansi-marker \x1b[0m",
		"\x01 starts-with-rawmark",
		"\x01" + "AAAA", // looks like an encoded value
		long,
		"",
		"\ufffd replacement-marker",
		`quote " backslash \ tab` + "\t" + `percent 100% under_score`,
		"\r bare CR \n bare LF",
		"\u2028 line separator \u2029",
		"emoji 😀 marker",
	}
}

func TestHostileBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		lines := hostileLines()
		if len(lines[7]) != 4096 {
			t.Fatalf("long line is %d bytes", len(lines[7]))
		}
		var events []smtp.Event
		for i, l := range lines {
			events = append(events, smtp.Event{Offset: time.Duration(i) + 1, Dir: smtp.DirServer, Phase: smtp.PhaseData, Line: l})
		}
		events = append(events, smtp.Event{Dir: "\x00dir\xff", Phase: "\xfe", Line: "[redacted]", Secret: true, Cmd: true},
			smtp.Event{Offset: 9, Dir: smtp.DirInfo, Phase: smtp.PhaseConnect, Line: "connected", Span: "\xffspan", Took: 1234567})
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		snd := &Send{
			Source: "web", ClientAddr: "\x00", Server: "mx\xff:25", TLSMode: "\u202e", MailFrom: "\xfe@example.org",
			Rcpts: []string{"\x00a@example.org", "\x01b@example.org"}, Subject: "subj \x00 \xff subject-marker",
			Headers: "X-Bad: \x00\xff\r\n", Message: all, Status: "running", QueueID: "\x00Q",
			Events: events, Error: "err \x00 \xff",
			Recipients: []smtp.RecipientResult{{Address: "\xff@x", Code: 250, EnhancedCode: "\x00", Message: "\x00\xff rcpt-marker"}},
		}
		if err := s.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		got, err := s.Send(ctx, snd.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, snd) {
			t.Errorf("hostile send did not round-trip")
			for i := range min(len(got.Events), len(snd.Events)) {
				if got.Events[i] != snd.Events[i] {
					t.Errorf("event %d: got %q want %q", i, got.Events[i].Line, snd.Events[i].Line)
				}
			}
			t.Fatalf("got  %+v\nwant %+v", got, snd)
		}
		// The same through FinishSend, reversed.
		slices.Reverse(snd.Events)
		snd.Status = smtp.StatusUnknown
		if err := s.FinishSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		if got, err = s.Send(ctx, snd.ID); err != nil || !reflect.DeepEqual(got, snd) {
			t.Fatalf("hostile send did not round-trip through FinishSend: %v", err)
		}
		page, err := s.ListSends(ctx, SendFilter{})
		if err != nil || len(page.Sends) != 1 {
			t.Fatal(page, err)
		}
		sum := page.Sends[0]
		if sum.Subject != snd.Subject || sum.MailFrom != snd.MailFrom || !reflect.DeepEqual(sum.Rcpts, snd.Rcpts) ||
			!reflect.DeepEqual(sum.Recipients, snd.Recipients) || sum.Server != snd.Server || sum.Error != snd.Error {
			t.Errorf("summary did not round-trip: %+v", sum)
		}
		for _, q := range []string{"nul-marker", "invalid-marker", "bidi-marker", "ansi-marker", "long-marker",
			"LLLL long-marker MMMM", "replacement-marker", "rcpt-marker", "subject-marker", "100%", "under_score",
			"31m", "😀"} {
			page, err := s.ListSends(ctx, SendFilter{Query: q})
			if err != nil || page.Total != 1 {
				t.Errorf("search %q: total %d, %v; want 1", q, page.Total, err)
			}
		}
	})
}

func TestEncText(t *testing.T) {
	tests := []struct {
		in       string
		identity bool
	}{
		{"", true},
		{"plain ascii", true},
		{"Grüße 😀 \u202e \x1b[0m \t\r\n", true},
		{"\x00", false},
		{"a\x00b", false},
		{"\xff", false},
		{"\x01", false},
		{"\x01AAAA", false},
		{"x\x01", true},
	}
	for _, tt := range tests {
		enc := encText(tt.in)
		if (enc == tt.in) != tt.identity {
			t.Errorf("encText(%q) = %q, identity %v, want %v", tt.in, enc, enc == tt.in, tt.identity)
		}
		if strings.Contains(enc, "\x00") || !utf8.ValidString(enc) {
			t.Errorf("encText(%q) = %q is not safe for PostgreSQL TEXT", tt.in, enc)
		}
		if got := decText(enc); got != tt.in {
			t.Errorf("decText(encText(%q)) = %q", tt.in, got)
		}
	}
}

func FuzzEncText(f *testing.F) {
	for _, l := range hostileLines() {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := encText(s)
		if strings.Contains(enc, "\x00") || !utf8.ValidString(enc) {
			t.Fatalf("encText(%q) = %q", s, enc)
		}
		if decText(enc) != s {
			t.Fatalf("round trip of %q gave %q", s, decText(enc))
		}
		ev, err := encEvents([]smtp.Event{{Line: s, Dir: smtp.Direction(s)}})
		if err != nil {
			t.Fatal(err)
		}
		back, err := decEvents(ev)
		if err != nil || back[0].Line != s || string(back[0].Dir) != s {
			t.Fatalf("event round trip of %q: %+v, %v", s, back, err)
		}
	})
}

// sendSpec describes a send for the listing tests.
type sendSpec struct {
	source, status, from, server, subject string
	rcpts                                 []string
	day                                   int // created on 2025-01-<day>
	lines                                 []string
}

func seedSends(t *testing.T, s *Store, specs []sendSpec) []int64 {
	t.Helper()
	ctx := ctxT(t)
	var ids []int64
	for _, sp := range specs {
		var evs []smtp.Event
		for _, l := range sp.lines {
			evs = append(evs, smtp.Event{Dir: smtp.DirServer, Phase: smtp.PhaseData, Line: l})
		}
		snd := &Send{Source: sp.source, Status: smtp.Status(sp.status), MailFrom: sp.from, Server: sp.server, Subject: sp.subject,
			Rcpts: sp.rcpts, Events: evs, CreatedAt: time.Date(2025, 1, sp.day, 12, 0, 0, 0, time.UTC)}
		if err := s.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, snd.ID)
	}
	return ids
}

func pageIDs(p SendPage) []int64 {
	var ids []int64
	for _, m := range p.Sends {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestListSendsFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		stopIndexing(s)
		ids := seedSends(t, s, []sendSpec{
			{source: "web", status: "sent", from: "alice@a.example", server: "mx.a.example:25", subject: "Invoice 1",
				rcpts: []string{"bob@b.example"}, day: 1, lines: []string{"250 2.0.0 Ok: queued as 4XyZ"}},
			{source: "cli", status: "permanent failure", from: "carol@c.example", server: "smtp.gmail.com:587", subject: "Report",
				rcpts: []string{"dave@d.example", "x_y@d.example"}, day: 2, lines: []string{"550 5.1.1 <dave@d.example>: User unknown"}},
			{source: "contact", status: "temporary failure", from: "Alice@A.example", server: "MX.A.example:25", subject: "Contact form",
				rcpts: []string{"xzy@d.example"}, day: 3, lines: []string{"451 4.7.1 Greylisted, try again later"}},
			{source: "web", status: "running", from: "erin@e.example", server: "localhost:2525", subject: "100% off",
				rcpts: []string{"Bob@B.example"}, day: 4, lines: []string{"220 capture ESMTP"}},
			{source: "web", status: "sent", from: "a&b@amp.example", server: "mx.a.example:465", subject: "Say \"hi\" to as",
				rcpts: []string{"frank@f.example", "bob@b.example"}, day: 5, lines: []string{"250 OK id=1abc-2def"}},
		})
		id := func(i ...int) []int64 {
			var out []int64
			for _, j := range i {
				out = append(out, ids[j-1])
			}
			return out
		}
		day := func(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }
		tests := []struct {
			name string
			f    SendFilter
			want []int64
		}{
			{"all", SendFilter{}, id(5, 4, 3, 2, 1)},
			{"status sent", SendFilter{Status: "sent"}, id(5, 1)},
			{"status is exact", SendFilter{Status: "Sent"}, nil},
			{"status with spaces", SendFilter{Status: "permanent failure"}, id(2)},
			{"status running", SendFilter{Status: StatusRunning}, id(4)},
			{"source web", SendFilter{Source: "web"}, id(5, 4, 1)},
			{"source contact", SendFilter{Source: "contact"}, id(3)},
			{"source prefix", SendFilter{Source: "c*"}, id(3, 2)},
			{"source prefix of none", SendFilter{Source: "api:*"}, nil},
			{"source prefix quotes LIKE", SendFilter{Source: "%*"}, nil},
			{"sender substring any case", SendFilter{Sender: "ALICE@"}, id(3, 1)},
			{"sender ampersand", SendFilter{Sender: "a&b"}, id(5)},
			{"recipient", SendFilter{Recipient: "bob@b.example"}, id(5, 4, 1)},
			{"recipient underscore is literal", SendFilter{Recipient: "x_y"}, id(2)},
			{"recipient domain", SendFilter{Recipient: "@d.example"}, id(3, 2)},
			{"server substring any case", SendFilter{Server: "mx.a.example"}, id(5, 3, 1)},
			{"server port", SendFilter{Server: ":25"}, id(4, 3, 1)},
			{"since", SendFilter{Since: day(3)}, id(5, 4, 3)},
			{"until", SendFilter{Until: day(3)}, id(2, 1)},
			{"since and until", SendFilter{Since: day(2), Until: day(4)}, id(3, 2)},
			{"query transcript", SendFilter{Query: "greylisted"}, id(3)},
			{"query queue id any case", SendFilter{Query: "4xyz"}, id(1)},
			{"query subject", SendFilter{Query: "invoice"}, id(1)},
			{"query words all match", SendFilter{Query: "user unknown dave"}, id(2)},
			{"query words one missing", SendFilter{Query: "user unknown frank"}, nil},
			{"query short word", SendFilter{Query: "as"}, id(5, 1)},
			{"query two-letter word and long word", SendFilter{Query: "id 1abc"}, id(5)},
			{"query percent is literal", SendFilter{Query: "100%"}, id(4)},
			{"query percent not a wildcard", SendFilter{Query: "1%0"}, nil},
			{"query quotes", SendFilter{Query: `"hi"`}, id(5)},
			{"query FTS syntax is text", SendFilter{Query: `OR AND NOT * ( ) :`}, nil},
			{"query recipient address", SendFilter{Query: "frank@f.example"}, id(5)},
			{"query server", SendFilter{Query: "gmail"}, id(2)},
			{"query blank", SendFilter{Query: "   "}, id(5, 4, 3, 2, 1)},
			{"combined", SendFilter{Source: "web", Status: "sent", Recipient: "bob", Query: "ok", Since: day(1)}, id(5, 1)},
			{"combined narrow", SendFilter{Source: "web", Sender: "alice", Server: "mx.a", Query: "queued"}, id(1)},
			{"no match", SendFilter{Query: "nothing-like-this"}, nil},
		}
		searchStates(t, s, func(state string) {
			for _, tt := range tests {
				page, err := s.ListSends(ctx, tt.f)
				if err != nil {
					t.Fatalf("%s%s: %v", state, tt.name, err)
				}
				if got := pageIDs(page); !slices.Equal(got, tt.want) || page.Total != len(tt.want) || page.NextBefore != 0 || page.TotalCapped {
					t.Errorf("%s%s: ids %v total %d next %d capped %v; want %v", state, tt.name, got, page.Total, page.NextBefore, page.TotalCapped, tt.want)
				}
			}
		})
	})
}

// stopIndexing stops a SQLite store's own full-text indexer, so that the
// sends stored next stay queued (send_fts_pending) until searchStates
// indexes them.
func stopIndexing(s *Store) {
	if s.stopIndexer != nil {
		s.stopIndexer()
		s.stopIndexer = nil
	}
}

// searchStates runs check on PostgreSQL once; on SQLite (after
// stopIndexing and the sends stored) three times: with every send queued,
// not indexed; with the older half indexed and the newer half queued; and
// with all indexed. A search must give the same answers in each. check
// gets the state's name as a prefix for its messages.
func searchStates(t *testing.T, s *Store, check func(state string)) {
	t.Helper()
	if s.Backend() != BackendSQLite {
		check("")
		return
	}
	ctx := ctxT(t)
	var queued int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM send_fts_pending`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued == 0 {
		t.Fatal("no send is queued for the index: the searches below would not read the queue")
	}
	check("queued: ")
	if n, err := s.IndexSearch(ctx, queued/2); err != nil || n != queued/2 {
		t.Fatalf("IndexSearch(%d) = %d, %v", queued/2, n, err)
	}
	check("half indexed: ")
	if n, err := s.IndexSearch(ctx, queued); err != nil || n != queued-queued/2 {
		t.Fatalf("IndexSearch(rest) = %d, %v; want %d", n, err, queued-queued/2)
	}
	check("indexed: ")
	checkSearchIndex(t, s)
}

// walkSends lists every page of f and returns each page's ids and Total.
func walkSends(t *testing.T, s *Store, f SendFilter) (pages [][]int64, totals []int) {
	t.Helper()
	for {
		p, err := s.ListSends(ctxT(t), f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, pageIDs(p))
		totals = append(totals, p.Total)
		if p.NextBefore == 0 {
			return pages, totals
		}
		if p.NextBefore != p.Sends[len(p.Sends)-1].ID {
			t.Fatalf("NextBefore %d is not the last id on the page", p.NextBefore)
		}
		f.Before = p.NextBefore
		if len(pages) > 30 {
			t.Fatal("pagination does not end")
		}
	}
}

// seedPages stores 25 sends a day apart, every other one failed, and
// returns their ids newest first and the ids of those sent.
func seedPages(t *testing.T, s *Store) (ids, sent []int64) {
	t.Helper()
	var specs []sendSpec
	for i := range 25 {
		st := "sent"
		if i%2 == 1 {
			st = "permanent failure"
		}
		specs = append(specs, sendSpec{source: "web", status: st, day: 1 + i, subject: fmt.Sprint("s", i),
			lines: []string{"250 page-marker ok"}})
	}
	ids = seedSends(t, s, specs)
	slices.Reverse(ids) // newest first
	for i, id := range ids {
		if (24-i)%2 == 0 {
			sent = append(sent, id)
		}
	}
	return ids, sent
}

func TestListSendsPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		stopIndexing(s)
		ids, want := seedPages(t, s)
		pages, totals := walkSends(t, s, SendFilter{Limit: 10})
		if len(pages) != 3 || !slices.Equal(pages[0], ids[:10]) || !slices.Equal(pages[1], ids[10:20]) || !slices.Equal(pages[2], ids[20:]) {
			t.Errorf("pages %v", pages)
		}
		if !slices.Equal(totals, []int{25, 25, 25}) {
			t.Errorf("totals %v, want 25 on every page", totals)
		}
		// An exact multiple of the page size ends without an empty page.
		if pages, _ = walkSends(t, s, SendFilter{Limit: 5}); len(pages) != 5 {
			t.Errorf("limit 5 over 25 sends gave %d pages", len(pages))
		}
		// A filter pages too: 13 sends with status sent, 4 per page.
		pages, totals = walkSends(t, s, SendFilter{Status: "sent", Limit: 4})
		if got := slices.Concat(pages...); !slices.Equal(got, want) || len(pages) != 4 || totals[3] != 13 {
			t.Errorf("status pages %v (totals %v), want %v", pages, totals, want)
		}
		// Search results page the same way (on SQLite the search index
		// drives the query and the cursor, the sends not indexed yet
		// merged in), alone and with a short word and a filter.
		searchStates(t, s, func(state string) {
			for _, f := range []SendFilter{
				{Query: "page-marker", Limit: 10},
				{Query: "page-marker ok", Limit: 10},
				{Query: "ok", Limit: 10},
			} {
				pages, totals := walkSends(t, s, f)
				if len(pages) != 3 || !slices.Equal(pages[0], ids[:10]) || !slices.Equal(pages[1], ids[10:20]) ||
					!slices.Equal(pages[2], ids[20:]) || !slices.Equal(totals, []int{25, 25, 25}) {
					t.Errorf("%ssearch %q pages %v totals %v", state, f.Query, pages, totals)
				}
			}
			pages, totals := walkSends(t, s, SendFilter{Query: "PAGE-MARKER", Status: "sent", Limit: 4})
			if got := slices.Concat(pages...); !slices.Equal(got, want) || totals[0] != 13 {
				t.Errorf("%ssearch+status pages %v (totals %v), want %v", state, pages, totals, want)
			}
			checkCountCap(t, s)
		})
		// Limit 0 means DefaultSendLimit; a huge limit is capped.
		if p, _ := s.ListSends(ctx, SendFilter{}); len(p.Sends) != 25 || p.NextBefore != 0 {
			t.Errorf("default limit page has %d sends", len(p.Sends))
		}
		if p, _ := s.ListSends(ctx, SendFilter{Limit: 1 << 30}); len(p.Sends) != 25 {
			t.Errorf("huge limit page has %d sends", len(p.Sends))
		}
		checkCountCap(t, s)
	})
}

// checkCountCap: over the 25 sends of seedPages, counting stops at the
// cap.
func checkCountCap(t *testing.T, s *Store) {
	t.Helper()
	s.countCap = 10
	defer func() { s.countCap = MaxSendCount }()
	for _, tt := range []struct {
		f      SendFilter
		total  int
		capped bool
	}{
		{SendFilter{}, 10, true},
		{SendFilter{Status: "sent"}, 10, true},
		{SendFilter{Since: time.Date(2025, 1, 16, 0, 0, 0, 0, time.UTC)}, 10, false},
		{SendFilter{Since: time.Date(2025, 1, 17, 0, 0, 0, 0, time.UTC)}, 9, false},
		{SendFilter{Query: "page-marker"}, 10, true},
		{SendFilter{Query: "page-marker", Since: time.Date(2025, 1, 17, 0, 0, 0, 0, time.UTC)}, 9, false},
	} {
		p, err := s.ListSends(ctxT(t), tt.f)
		if err != nil || p.Total != tt.total || p.TotalCapped != tt.capped {
			t.Errorf("cap 10, filter %+v: total %d capped %v, %v; want %d %v", tt.f, p.Total, p.TotalCapped, err, tt.total, tt.capped)
		}
	}
}

func TestDeleteAndRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		var specs []sendSpec
		for i := range 10 {
			specs = append(specs, sendSpec{source: "web", status: "sent", day: 1 + i, lines: []string{fmt.Sprintf("line-marker-%02d", i)}})
		}
		ids := seedSends(t, s, specs)
		child := &Send{Source: "web", ParentID: &ids[0], CreatedAt: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}
		if err := s.CreateSend(ctx, child); err != nil {
			t.Fatal(err)
		}
		remaining := func() []int64 {
			t.Helper()
			p, err := s.ListSends(ctx, SendFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got := pageIDs(p)
			slices.Reverse(got)
			return got
		}
		found := func(q string) int {
			t.Helper()
			p, err := s.ListSends(ctx, SendFilter{Query: q})
			if err != nil {
				t.Fatal(err)
			}
			return p.Total
		}

		wantErr(t, "DeleteSend", s.DeleteSend(ctx, ids[9]), nil)
		wantErr(t, "DeleteSend again", s.DeleteSend(ctx, ids[9]), ErrNotFound)
		_, err := s.Send(ctx, ids[9])
		wantErr(t, "Send deleted", err, ErrNotFound)
		if n := found("line-marker-09"); n != 0 {
			t.Errorf("deleted send still found by search")
		}

		day := func(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }
		steps := []struct {
			name      string
			olderThan time.Time
			keepMax   int
			deleted   int
			left      []int64
		}{
			{"nothing asked", time.Time{}, 0, 0, append(slices.Clone(ids[:9]), child.ID)},
			{"keep more than exist", time.Time{}, 100, 0, append(slices.Clone(ids[:9]), child.ID)},
			{"older than day 4", day(4), 0, 3, append(slices.Clone(ids[3:9]), child.ID)},
			{"keep 5 newest", time.Time{}, 5, 2, append(slices.Clone(ids[5:9]), child.ID)},
			{"both: age wins", day(8), 4, 2, append(slices.Clone(ids[7:9]), child.ID)},
			{"both: count wins", day(1), 1, 2, []int64{child.ID}},
		}
		for _, st := range steps {
			n, err := s.applyRetention(ctx, st.olderThan, st.keepMax, 2) // small batches exercise the loop
			if err != nil || n != st.deleted {
				t.Fatalf("%s: deleted %d, %v; want %d", st.name, n, err, st.deleted)
			}
			if got := remaining(); !slices.Equal(got, st.left) {
				t.Fatalf("%s: left %v, want %v", st.name, got, st.left)
			}
		}
		for i := range 9 {
			if n := found(fmt.Sprintf("line-marker-%02d", i)); n != 0 {
				t.Errorf("send %d deleted by retention still found by search", i)
			}
		}
		got, err := s.Send(ctx, child.ID)
		if err != nil || got.ParentID != nil {
			t.Errorf("child after its parent was deleted: %+v, %v", got, err)
		}
		if n, err := s.ApplyRetention(ctx, time.Now(), 0); err != nil || n != 1 {
			t.Errorf("ApplyRetention(now) = %d, %v", n, err)
		}
		checkSearchIndex(t, s)
	})
}

// checkSearchIndex verifies on SQLite that the FTS index agrees with its
// content table once the queued sends are indexed (the triggers kept it
// in step, and left alone what it had not indexed).
func checkSearchIndex(t *testing.T, s *Store) {
	t.Helper()
	if s.Backend() != BackendSQLite {
		return
	}
	for {
		n, err := s.IndexSearch(context.Background(), searchIndexBatch)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if _, err := s.w.ExecContext(context.Background(), `INSERT INTO send_fts(send_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("FTS integrity-check: %v", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		stop := make(chan struct{})
		// Readers list and search while the writers write.
		var readers sync.WaitGroup
		for range 2 {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.ListSends(ctx, SendFilter{Query: "queued"}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				snd := &Send{Source: "web", Subject: fmt.Sprint("concurrent ", i), Events: transcript(20, "x")}
				if err := s.CreateSend(ctx, snd); err != nil {
					errs <- fmt.Errorf("create %d: %w", i, err)
					return
				}
				snd.Events = transcript(200, fmt.Sprintf("Q%03d", i))
				snd.Status, snd.QueueID = smtp.StatusSent, fmt.Sprintf("Q%03d", i)
				if err := s.FinishSend(ctx, snd); err != nil {
					errs <- fmt.Errorf("finish %d: %w", i, err)
				}
			}()
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Error(err) // "database is locked" would show here
		}
		p, err := s.ListSends(ctx, SendFilter{Status: smtp.StatusSent, Limit: MaxSendLimit})
		if err != nil || p.Total != n || len(p.Sends) != n {
			t.Fatalf("stored %d (total %d), %v; want %d", len(p.Sends), p.Total, err, n)
		}
		for _, m := range p.Sends {
			got, err := s.Send(ctx, m.ID)
			if err != nil || len(got.Events) != 200 || !strings.HasSuffix(got.Events[16].Line, got.QueueID) {
				t.Fatalf("send %d: %d events, %v", m.ID, len(got.Events), err)
			}
		}
		checkSearchIndex(t, s)
	})
}

func TestSearchTextCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		var events []smtp.Event
		for i := range 100 { // 100 lines of 4 KB: beyond maxSearchText
			events = append(events, smtp.Event{Dir: smtp.DirServer, Line: fmt.Sprintf("early-%03d-marker ", i) + strings.Repeat("z", 4000)})
		}
		rcpts := make([]string, 2000) // a long envelope is never cut
		for i := range rcpts {
			rcpts[i] = fmt.Sprintf("rcpt%04d-%s@example.net", i, strings.Repeat("r", 100))
		}
		snd := &Send{Source: "cli", Subject: "capped", MailFrom: "from-marker@example.org", Rcpts: rcpts,
			Server: "mx.cap.example:25", Events: events}
		if err := s.CreateSend(ctx, snd); err != nil {
			t.Fatal(err)
		}
		got, err := s.Send(ctx, snd.ID)
		if err != nil || !reflect.DeepEqual(got.Events, events) || len(got.Rcpts) != 2000 {
			t.Fatalf("capped send did not round-trip: %v", err)
		}
		tests := []struct {
			f    SendFilter
			want int
		}{
			{SendFilter{Query: "early-000-marker"}, 1},
			{SendFilter{Query: "early-099-marker"}, 0}, // past the cap: stored, not searchable
			{SendFilter{Recipient: "rcpt1999-"}, 1},
			{SendFilter{Query: "rcpt1999-"}, 1},
			{SendFilter{Sender: "FROM-MARKER"}, 1},
			{SendFilter{Server: "cap.example"}, 1},
			{SendFilter{Server: "cap.\x00example"}, 0}, // not searchable: no pre-filter, LIKE decides
		}
		for _, tt := range tests {
			p, err := s.ListSends(ctx, tt.f)
			if err != nil || p.Total != tt.want {
				t.Errorf("filter %+v: total %d, %v; want %d", tt.f, p.Total, err, tt.want)
			}
		}
	})
}
