package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"

	"sockmail/internal/mailread"
)

// Captured mail search. Each message keeps three searchable copies,
// written when it is saved (capturedSearch): search_from (the envelope
// sender and the From field), search_to (the envelope recipients and the
// To and Cc fields) and search_text (all of those, the subject, the
// attachment names and the body's text). A query is words and "quoted
// phrases", each a case-insensitive substring that must occur; a word may
// be restricted to a field with from:, to: or subject:. Listing is
// newest first with a keyset cursor, like ListSends, and uses the same
// plan: the SQLite FTS5 trigram index (captured_fts) or PostgreSQL's
// pg_trgm index narrows the rows, LIKE checks the field restrictions.

// Captured search limits.
const (
	// MaxCapturedTerms bounds the words and phrases of one query.
	MaxCapturedTerms = 16
	// maxCapturedBodySearch bounds the body text kept searchable per
	// message; the rest of a longer body is still stored and shown.
	maxCapturedBodySearch = 256 << 10
)

// ErrBadQuery reports a search query that cannot be run (too many
// terms); the error says what is wrong.
var ErrBadQuery = errors.New("store: bad search query")

// The fields a captured-mail search term may be restricted to.
const (
	FieldAny     = ""
	FieldFrom    = "from"
	FieldTo      = "to"
	FieldSubject = "subject"
)

// CapturedTerm is one word or phrase of a captured-mail search.
type CapturedTerm struct {
	// Field is FieldAny or the field the text must occur in.
	Field string
	// Text must occur as a case-insensitive substring.
	Text string
}

// ParseCapturedQuery splits a captured-mail search into terms: words
// separated by white space, "double-quoted phrases", each optionally
// prefixed by from:, to: or subject: (case-insensitive). A prefix this
// function does not know stays part of the word. It fails with
// ErrBadQuery beyond MaxCapturedTerms terms.
func ParseCapturedQuery(q string) ([]CapturedTerm, error) {
	var terms []CapturedTerm
	rest := q
	for {
		rest = strings.TrimLeft(rest, " \t\r\n")
		if rest == "" {
			break
		}
		field := FieldAny
		if name, after, ok := strings.Cut(rest, ":"); ok && !strings.ContainsAny(name, " \t\r\n\"") {
			switch f := strings.ToLower(name); f {
			case FieldFrom, FieldTo, FieldSubject:
				field, rest = f, after
			}
		}
		var text string
		if strings.HasPrefix(rest, `"`) {
			phrase, after, _ := strings.Cut(rest[1:], `"`) // an unclosed quote runs to the end
			text, rest = phrase, after
		} else {
			end := strings.IndexAny(rest, " \t\r\n")
			if end < 0 {
				end = len(rest)
			}
			text, rest = rest[:end], rest[end:]
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		terms = append(terms, CapturedTerm{Field: field, Text: text})
	}
	if len(terms) > MaxCapturedTerms {
		return nil, fmt.Errorf("%w: %d words; at most %d", ErrBadQuery, len(terms), MaxCapturedTerms)
	}
	return terms, nil
}

// CapturedFilter selects captured messages to list.
type CapturedFilter struct {
	// Terms must all match (ParseCapturedQuery); none lists everything.
	Terms []CapturedTerm
	// Limit is the page size: DefaultSendLimit if 0, at most MaxSendLimit.
	Limit int
	// Before is the keyset cursor: only ids below it; 0 starts at the
	// newest. Pass the previous page's NextBefore.
	Before int64
	// After lists only ids above it (what arrived since a list was shown).
	After int64
}

// CapturedPage is one page of captured messages, newest first, without
// their Raw source.
type CapturedPage struct {
	Messages []Captured
	// Total is how many messages match, regardless of Before and After,
	// exact up to MaxSendCount (then TotalCapped is set).
	Total       int
	TotalCapped bool
	// NextBefore is the cursor of the next page, 0 on the last page.
	NextBefore int64
}

// capturedSearch is the searchable text of a message.
type capturedSearch struct{ from, to, text string }

// newCapturedSearch reads a message's searchable text: the envelope and
// the decoded From, To, Cc and Subject fields, attachment names, and the
// text body (or the text of the HTML body when there is no text body),
// cleaned as searchBuilder does, the body capped at maxCapturedBodySearch.
func newCapturedSearch(c *Captured) capturedSearch {
	m := mailread.Parse(c.Raw)
	var from, to, text searchBuilder
	from.add(c.MailFrom)
	from.add(m.Get("From"))
	for _, r := range c.Rcpts {
		to.add(r)
	}
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, "To") || strings.EqualFold(f.Name, "Cc") {
			to.add(f.Value)
		}
	}
	subject := c.Subject
	if subject == "" {
		subject = m.Get("Subject")
	}
	text.add(subject)
	text.add(from.String())
	text.add(to.String())
	for _, p := range m.Parts {
		text.add(p.Filename)
	}
	text.limit = text.b.Len() + maxCapturedBodySearch
	body := m.Text
	if body == "" && m.HTML != "" {
		body = htmlText(m.HTML, maxCapturedBodySearch)
	}
	text.add(body)
	return capturedSearch{from: from.String(), to: to.String(), text: text.String()}
}

// htmlText returns the text of an HTML document (no tags, scripts or
// styles, entities decoded), up to about limit bytes.
func htmlText(doc string, limit int) string {
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(doc))
	skip := 0
	for b.Len() < limit {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "script" || string(name) == "style" {
				skip++
			}
			b.WriteByte(' ')
		case html.EndTagToken:
			if name, _ := z.TagName(); (string(name) == "script" || string(name) == "style") && skip > 0 {
				skip--
			}
			b.WriteByte(' ')
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		}
	}
	return b.String()
}

// ftsPhrases splits search words for an FTS5 trigram index: the words of
// three or more characters as one MATCH expression of quoted phrases
// (each a case-insensitive substring match), and the shorter ones, which
// have no trigram, to be matched with LIKE.
func ftsPhrases(words []string) (match string, short []string) {
	var phrases []string
	for _, word := range words {
		if utf8.RuneCountInString(word) >= 3 {
			phrases = append(phrases, `"`+strings.ReplaceAll(word, `"`, `""`)+`"`)
			continue
		}
		short = append(short, word)
	}
	return strings.Join(phrases, " AND "), short
}

// SearchCaptured returns a page of the captured messages matching f,
// newest first, without their Raw source.
func (s *Store) SearchCaptured(ctx context.Context, f CapturedFilter) (CapturedPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultSendLimit
	}
	limit = min(limit, MaxSendLimit)
	from, idCol := `captured c`, `c.id`
	var w whereBuilder
	var words []string
	for _, t := range f.Terms {
		if !sqlText(t.Text) {
			w.add(`1 = 0`) // the searchable text holds neither NUL nor invalid UTF-8
			continue
		}
		switch t.Field {
		case FieldFrom, FieldTo, FieldSubject:
			col := map[string]string{FieldFrom: "c.search_from", FieldTo: "c.search_to", FieldSubject: "c.subject"}[t.Field]
			w.add(`LOWER(`+col+`) LIKE ? ESCAPE '\'`, containsPattern(t.Text))
			// The field's text is in search_text too: the index narrows
			// the rows the LIKE above looks at.
			if searchable(t.Text) {
				words = append(words, t.Text)
			}
		default:
			words = append(words, t.Text)
		}
	}
	if s.backend == BackendPostgres {
		for _, word := range words {
			w.add(`c.search_text ILIKE ? ESCAPE '\'`, "%"+escapeLike(word)+"%")
		}
	} else {
		match, short := ftsPhrases(words)
		for _, word := range short {
			w.add(`c.search_text LIKE ? ESCAPE '\'`, "%"+escapeLike(word)+"%")
		}
		if match != "" {
			from, idCol = `captured_fts CROSS JOIN captured c ON c.id = captured_fts.rowid`, `captured_fts.rowid`
			w.add(`captured_fts MATCH ?`, match)
		}
	}

	var page CapturedPage
	countArgs := append(append([]any(nil), w.args...), s.countCap+1)
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM `+from+w.String()+
		` ORDER BY `+idCol+` DESC LIMIT ?) n`), countArgs...).Scan(&page.Total); err != nil {
		return CapturedPage{}, fmt.Errorf("store: count captured: %w", err)
	}
	if page.Total > s.countCap {
		page.Total, page.TotalCapped = s.countCap, true
	}
	if f.Before > 0 {
		w.add(idCol+` < ?`, f.Before)
	}
	if f.After > 0 {
		w.add(idCol+` > ?`, f.After)
	}
	cols := strings.ReplaceAll("c."+capturedColumns, ", ", ", c.")
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+cols+` FROM `+from+w.String()+
		` ORDER BY `+idCol+` DESC LIMIT ?`), append(w.args, limit+1)...)
	if err != nil {
		return CapturedPage{}, fmt.Errorf("store: search captured: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCaptured(rows)
		if err != nil {
			return CapturedPage{}, fmt.Errorf("store: search captured: %w", err)
		}
		page.Messages = append(page.Messages, *c)
	}
	if err := rows.Err(); err != nil {
		return CapturedPage{}, fmt.Errorf("store: search captured: %w", err)
	}
	if len(page.Messages) > limit {
		page.Messages = page.Messages[:limit]
		page.NextBefore = page.Messages[limit-1].ID
	}
	return page, nil
}

// NewestCapturedID returns the id of the newest captured message, 0 when
// there is none. Instances sharing a database poll it to see mail another
// instance captured.
func (s *Store) NewestCapturedID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM captured`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: newest captured: %w", err)
	}
	return id, nil
}
