package store

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseCapturedQuery(t *testing.T) {
	tests := []struct {
		q    string
		want []CapturedTerm
	}{
		{"", nil},
		{"  hello   world ", []CapturedTerm{{FieldAny, "hello"}, {FieldAny, "world"}}},
		{"from:alice To:bob SUBJECT:report", []CapturedTerm{{FieldFrom, "alice"}, {FieldTo, "bob"}, {FieldSubject, "report"}}},
		{`subject:"weekly report" "two words"`, []CapturedTerm{{FieldSubject, "weekly report"}, {FieldAny, "two words"}}},
		{`"unclosed phrase`, []CapturedTerm{{FieldAny, "unclosed phrase"}}},
		{"cc:x http://example.org", []CapturedTerm{{FieldAny, "cc:x"}, {FieldAny, "http://example.org"}}},
		{`from: "" subject:`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got, err := ParseCapturedQuery(tt.q)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCapturedQuery(%q) = %+v, %v; want %+v", tt.q, got, err, tt.want)
			}
		})
	}
	many := strings.Repeat("w ", MaxCapturedTerms+1)
	if _, err := ParseCapturedQuery(many); !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("%d words: %v", MaxCapturedTerms+1, err)
	}
}

// capturedMessage is a raw message for the search tests.
func capturedMessage(from, to, subject, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n" + body)
}

func TestSearchCaptured(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		save := func(mailFrom string, rcpts []string, subject string, raw []byte) int64 {
			t.Helper()
			c := &Captured{MailFrom: mailFrom, Rcpts: rcpts, Subject: subject, Raw: raw}
			if err := s.SaveCaptured(ctx, c); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		invoice := save("billing@shop.test", []string{"carol@example.test"}, "Your invoice 42",
			capturedMessage(`"Shop Billing" <billing@shop.test>`, "Carol <carol@example.test>", "Your invoice 42",
				"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease pay the amount of 17 EUR by Friday.\r\n"))
		// An HTML-only body in quoted-printable, a Cc and an encoded subject.
		news := save("news@paper.test", []string{"dave@example.test", "erin@example.test"}, "Météo du jour",
			capturedMessage("=?utf-8?q?Le_Journal?= <news@paper.test>", "dave@example.test", "=?utf-8?q?M=C3=A9t=C3=A9o_du_jour?=",
				"Cc: Erin <erin@example.test>\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+
					"<html><style>.hidden-style{}</style><p>Soleil =C3=A0 <b>Paris</b></p><script>var scripted=1</script></html>\r\n"))
		// The envelope differs from the header: both are searchable.
		relay := save("bounce+x@lists.test", []string{"frank@example.test"}, "ok",
			capturedMessage("Grace <grace@origin.test>", "list@lists.test", "ok",
				"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"+
					"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"quarterly.pdf\"\r\n\r\n%PDF\r\n--b--\r\n"))

		tests := []struct {
			q    string
			want []int64
		}{
			{"", []int64{relay, news, invoice}},
			{"invoice", []int64{invoice}},
			{"INVOICE 42", []int64{invoice}},
			{"17 eur", []int64{invoice}}, // short words: LIKE beside the index
			{"friday pay", []int64{invoice}},
			{"soleil paris", []int64{news}},       // HTML body, decoded
			{"scripted", nil},                     // not the text of a script
			{"hidden-style", nil},                 // nor of a style sheet
			{"météo", []int64{news}},              // decoded subject
			{"quarterly.pdf", []int64{relay}},     // attachment name
			{"from:shop", []int64{invoice}},       // envelope and From
			{"from:grace", []int64{relay}},        // From field only
			{"from:bounce", []int64{relay}},       // envelope only
			{"from:journal", []int64{news}},       // decoded display name
			{"from:carol", nil},                   // a recipient, not a sender
			{"to:erin", []int64{news}},            // envelope and Cc
			{"to:list@lists", []int64{relay}},     // To field only
			{"to:frank", []int64{relay}},          // envelope only
			{"to:shop", nil},                      // a sender, not a recipient
			{"subject:invoice", []int64{invoice}}, // subject
			{"subject:pay", nil},                  // in the body, not the subject
			{`subject:"your invoice"`, []int64{invoice}},
			{"example.test", []int64{relay, news, invoice}},
			{"to:example from:paper", []int64{news}},
			{"nothing-like-this", nil},
			{"100%", nil},   // LIKE wildcards are literal
			{"a_b", nil},    // likewise
			{"\xff", nil},   // invalid UTF-8 matches nothing
			{"x\x00y", nil}, // nor does NUL
		}
		for _, tt := range tests {
			t.Run(tt.q, func(t *testing.T) {
				terms, err := ParseCapturedQuery(tt.q)
				if err != nil {
					t.Fatal(err)
				}
				page, err := s.SearchCaptured(ctx, CapturedFilter{Terms: terms})
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, m := range page.Messages {
					got = append(got, m.ID)
					if m.Raw != nil {
						t.Errorf("message %d listed with its source", m.ID)
					}
				}
				if !slices.Equal(got, tt.want) || page.Total != len(tt.want) {
					t.Errorf("search %q = %v (total %d), want %v", tt.q, got, page.Total, tt.want)
				}
			})
		}
	})
}

// TestSearchCapturedPages: keyset pages of a search, newest first, the
// count independent of the cursor, and After for what arrived since.
func TestSearchCapturedPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		var matching []int64
		for i := range 7 {
			subject := "other"
			if i%2 == 0 {
				subject = "wanted"
			}
			c := &Captured{MailFrom: "a@example.test", Rcpts: []string{"b@example.test"}, Subject: subject,
				Raw: []byte("Subject: " + subject + "\r\n\r\nbody\r\n")}
			if err := s.SaveCaptured(ctx, c); err != nil {
				t.Fatal(err)
			}
			if subject == "wanted" {
				matching = append([]int64{c.ID}, matching...) // newest first
			}
		}
		terms, _ := ParseCapturedQuery("subject:wanted")
		var got []int64
		before := int64(0)
		for pages := 0; ; pages++ {
			page, err := s.SearchCaptured(ctx, CapturedFilter{Terms: terms, Limit: 3, Before: before})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != len(matching) || page.TotalCapped {
				t.Errorf("page %d: total %d (capped %v), want %d", pages, page.Total, page.TotalCapped, len(matching))
			}
			for _, m := range page.Messages {
				got = append(got, m.ID)
			}
			if page.NextBefore == 0 {
				break
			}
			before = page.NextBefore
		}
		if !slices.Equal(got, matching) {
			t.Errorf("pages %v, want %v", got, matching)
		}
		page, err := s.SearchCaptured(ctx, CapturedFilter{Terms: terms, After: matching[2]})
		if err != nil || len(page.Messages) != 2 || page.Messages[0].ID != matching[0] || page.Messages[1].ID != matching[1] {
			t.Errorf("after %d: %+v, %v", matching[2], page.Messages, err)
		}
		newest, err := s.NewestCapturedID(ctx)
		if err != nil || newest < matching[0] {
			t.Errorf("NewestCapturedID = %d, %v", newest, err)
		}
		if _, err := s.DeleteAllCaptured(ctx); err != nil {
			t.Fatal(err)
		}
		if page, err := s.SearchCaptured(ctx, CapturedFilter{Terms: terms}); err != nil || len(page.Messages) != 0 {
			t.Errorf("after delete all: %+v, %v", page.Messages, err)
		}
		if newest, err := s.NewestCapturedID(ctx); err != nil || newest != 0 {
			t.Errorf("NewestCapturedID on none = %d, %v", newest, err)
		}
	})
}
