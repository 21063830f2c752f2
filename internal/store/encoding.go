package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"sockmail/smtp"
)

// Hostile bytes. A server's reply may hold any byte: NUL, invalid UTF-8,
// terminal escapes, bidi overrides, 4 KB lines. PostgreSQL TEXT refuses NUL
// and invalid UTF-8, JSONB refuses \u0000, and encoding/json turns invalid
// UTF-8 into U+FFFD. So every free-text value goes through encText before
// it reaches a TEXT column or a JSON document, and through decText on the
// way back. The encoding is the identity for every string that is valid
// UTF-8 without NUL and does not start with rawMark (that is, for all
// ordinary text, which stays readable and filterable in SQL); any other
// string is stored as rawMark followed by the standard base64 of its
// bytes. Round trips are exact on both backends, and SQL never sees a NUL.
//
// What a search matches is a separate, lossy copy (searchText).

// rawMark starts an encoded string. It is a control character, which
// ordinary text does not begin with; text that does is encoded too.
const rawMark = "\x01"

// encText returns s in the stored form.
func encText(s string) string {
	if sqlText(s) && !strings.HasPrefix(s, rawMark) {
		return s
	}
	return rawMark + base64.StdEncoding.EncodeToString([]byte(s))
}

// sqlText reports whether s may be bound as a TEXT argument on both
// backends as it is: valid UTF-8 without NUL.
func sqlText(s string) bool { return utf8.ValidString(s) && !strings.Contains(s, "\x00") }

// decText reverses encText.
func decText(s string) string {
	if !strings.HasPrefix(s, rawMark) {
		return s
	}
	b, err := base64.StdEncoding.DecodeString(s[len(rawMark):])
	if err != nil {
		return s // not written by encText: give it back as stored
	}
	return string(b)
}

// marshalJSON encodes v without HTML escaping, so that stored addresses
// such as a&b@example.org stay as typed and match a LIKE filter.
func marshalJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// encStrings stores a list of strings as a JSON array.
func encStrings(list []string) (string, error) {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = encText(s)
	}
	return marshalJSON(out)
}

// decStrings reverses encStrings; an empty list is nil.
func decStrings(s string) ([]string, error) {
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("decode string list: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	for i := range list {
		list[i] = decText(list[i])
	}
	return list, nil
}

// storedEvent is the stored form of an smtp.Event. The offset is kept in
// nanoseconds (smtp.Event's own JSON rounds to microseconds) and every
// string is encText-ed, so an event reads back exactly as written.
type storedEvent struct {
	NS     int64  `json:"ns"`
	Dir    string `json:"dir"`
	Phase  string `json:"phase"`
	Line   string `json:"line"`
	Secret bool   `json:"secret,omitempty"`
	Cmd    bool   `json:"cmd,omitempty"`
	Span   string `json:"span,omitempty"`
	TookNS int64  `json:"took_ns,omitempty"`
}

// encEvents stores a transcript as a JSON array.
func encEvents(events []smtp.Event) (string, error) {
	out := make([]storedEvent, len(events))
	for i, e := range events {
		out[i] = storedEvent{
			NS:     int64(e.Offset),
			Dir:    encText(string(e.Dir)),
			Phase:  encText(string(e.Phase)),
			Line:   encText(e.Line),
			Secret: e.Secret,
			Cmd:    e.Cmd,
			Span:   encText(string(e.Span)),
			TookNS: int64(e.Took),
		}
	}
	return marshalJSON(out)
}

// decEvents reverses encEvents; an empty transcript is nil.
func decEvents(s string) ([]smtp.Event, error) {
	var in []storedEvent
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("decode events: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]smtp.Event, len(in))
	for i, e := range in {
		out[i] = smtp.Event{
			Offset: time.Duration(e.NS),
			Dir:    smtp.Direction(decText(e.Dir)),
			Phase:  smtp.Phase(decText(e.Phase)),
			Line:   decText(e.Line),
			Secret: e.Secret,
			Cmd:    e.Cmd,
			Span:   smtp.Span(decText(e.Span)),
			Took:   time.Duration(e.TookNS),
		}
	}
	return out, nil
}

// storedRecipient is the stored form of an smtp.RecipientResult.
type storedRecipient struct {
	Address      string `json:"address"`
	Accepted     bool   `json:"accepted"`
	Code         int    `json:"code,omitempty"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	Message      string `json:"message,omitempty"`
}

// encRecipients stores per-recipient results as a JSON array.
func encRecipients(rs []smtp.RecipientResult) (string, error) {
	out := make([]storedRecipient, len(rs))
	for i, r := range rs {
		out[i] = storedRecipient{
			Address:      encText(r.Address),
			Accepted:     r.Accepted,
			Code:         r.Code,
			EnhancedCode: encText(r.EnhancedCode),
			Message:      encText(r.Message),
		}
	}
	return marshalJSON(out)
}

// decRecipients reverses encRecipients; an empty list is nil.
func decRecipients(s string) ([]smtp.RecipientResult, error) {
	var in []storedRecipient
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("decode recipients: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]smtp.RecipientResult, len(in))
	for i, r := range in {
		out[i] = smtp.RecipientResult{
			Address:      decText(r.Address),
			Accepted:     r.Accepted,
			Code:         r.Code,
			EnhancedCode: decText(r.EnhancedCode),
			Message:      decText(r.Message),
		}
	}
	return out, nil
}

// maxSearchText bounds the server-supplied part of the searchable copy of
// one send (replies and transcript lines). Transcripts keep the DATA body
// summarised, so real ones are a few kilobytes; only a hostile server's
// flood of long lines reaches the cap, and its tail is then not
// searchable (it is still stored and shown). The envelope part (subject,
// addresses, server, queue id, error) is never cut, so ListSends may use
// the search index to pre-filter its Sender, Recipient and Server filters.
const maxSearchText = 256 << 10

// searchBuilder assembles the searchable text of a send: one line per
// part, each cleaned so that SQL LIKE and trigram indexes see plain text.
type searchBuilder struct {
	b     strings.Builder
	limit int // add stops adding at this length; 0: no limit
}

// searchClean reports whether r is kept as is in the searchable text.
// Invalid UTF-8, NUL, control characters and bidi and other format
// characters become spaces: "\x00250 OK\xff" is searchable as "250 OK".
func searchClean(r rune) bool {
	return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r)
}

// add appends one part as a line, cleaned.
func (sb *searchBuilder) add(s string) {
	if s == "" || sb.limit > 0 && sb.b.Len() >= sb.limit {
		return
	}
	if sb.b.Len() > 0 {
		sb.b.WriteByte('\n')
	}
	for i, r := range s {
		if sb.limit > 0 && sb.b.Len() >= sb.limit {
			return
		}
		if !searchClean(r) && !(r == utf8.RuneError && strings.HasPrefix(s[i:], "\uFFFD")) {
			r = ' '
		}
		sb.b.WriteRune(r)
	}
}

func (sb *searchBuilder) String() string { return sb.b.String() }

// searchable reports whether a filter value appears unchanged in the
// searchable text of a send whose field holds it.
func searchable(s string) bool {
	for i, r := range s {
		if !searchClean(r) && !(r == utf8.RuneError && strings.HasPrefix(s[i:], "\uFFFD")) {
			return false
		}
	}
	return true
}

// searchText is the searchable copy of a send: subject, envelope, server,
// queue id and error in full, then replies to each recipient and every
// transcript line up to maxSearchText more bytes.
func searchText(subject, from string, rcpts []string, server, queueID, errText string, results []smtp.RecipientResult, events []smtp.Event) string {
	var sb searchBuilder
	sb.add(subject)
	sb.add(from)
	for _, r := range rcpts {
		sb.add(r)
	}
	sb.add(server)
	sb.add(queueID)
	sb.add(errText)
	sb.limit = sb.b.Len() + maxSearchText
	for _, r := range results {
		sb.add(r.Message)
	}
	for _, e := range events {
		sb.add(e.Line)
	}
	return sb.String()
}

// escapeLike quotes LIKE's wildcards; patterns use ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// storedTimings is the stored form of smtp.Timings: microseconds.
type storedTimings struct {
	DNS        int64 `json:"dns"`
	Connect    int64 `json:"connect"`
	Greeting   int64 `json:"greeting"`
	Hello      int64 `json:"hello"`
	TLS        int64 `json:"tls"`
	Auth       int64 `json:"auth"`
	Envelope   int64 `json:"envelope"`
	Data       int64 `json:"data"`
	FinalReply int64 `json:"final_reply"`
	Quit       int64 `json:"quit"`
	Other      int64 `json:"other"`
	Total      int64 `json:"total"`
}

// encTimings stores timings as JSON; nil is "".
func encTimings(t *smtp.Timings) (string, error) {
	if t == nil {
		return "", nil
	}
	us := func(d time.Duration) int64 { return d.Microseconds() }
	return marshalJSON(storedTimings{us(t.DNS), us(t.Connect), us(t.Greeting), us(t.Hello), us(t.TLS), us(t.Auth),
		us(t.Envelope), us(t.Data), us(t.FinalReply), us(t.Quit), us(t.Other), us(t.Total)})
}

// decTimings reverses encTimings; "" is nil.
func decTimings(s string) (*smtp.Timings, error) {
	if s == "" {
		return nil, nil
	}
	var v storedTimings
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode timings: %w", err)
	}
	d := func(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
	return &smtp.Timings{DNS: d(v.DNS), Connect: d(v.Connect), Greeting: d(v.Greeting), Hello: d(v.Hello), TLS: d(v.TLS),
		Auth: d(v.Auth), Envelope: d(v.Envelope), Data: d(v.Data), FinalReply: d(v.FinalReply), Quit: d(v.Quit),
		Other: d(v.Other), Total: d(v.Total)}, nil
}
