package views

import (
	"strconv"
	"time"
)

// CapturedRow is one captured message in the list. Every text in it came
// from whoever wrote to the capture server: the views show it with
// Untrusted.
type CapturedRow struct {
	ID         int64
	ReceivedAt time.Time
	MailFrom   string
	Rcpts      []string
	Subject    string
	Size       int64
	TLS        bool
	// URL opens the message, keeping the list's search.
	URL string
	// Query is the list's search, carried by the row's delete form so
	// that the list comes back with it.
	Query string
}

// CapturedList is the captured-mail list page.
type CapturedList struct {
	Rows []CapturedRow
	// Addr is the capture server's address, "" when it is off.
	Addr string
	// Query is the search as typed; Error says what is wrong with it.
	Query, Error string
	// Total is how many messages match (capped: TotalCapped).
	Total       int
	TotalCapped bool
	// FirstURL is the first page of this search; NextURL the next page,
	// "" on the last; Paged is set on a page after the first.
	FirstURL, NextURL string
	Paged             bool
	// EventsURL, on the first page, streams the messages captured after
	// the list was made that match its search (app.js); "" elsewhere.
	EventsURL string
}

// Header is one header field, decoded for display.
type Header struct {
	Name, Value string
}

// Part is an attachment (or inline part) of a captured message.
type Part struct {
	Index       int
	Filename    string
	ContentType string
	Size        int64
	// Inline is set for a part the HTML body shows (cid:).
	Inline bool
}

// The tabs of a captured message.
const (
	TabHTML    = "html"
	TabText    = "text"
	TabHeaders = "headers"
	TabRaw     = "raw"
)

// CapturedTab is one tab of a captured message.
type CapturedTab struct {
	// Name is TabHTML, TabText, TabHeaders or TabRaw; Label its title.
	Name, Label string
	// URL shows the message with this tab selected (without JavaScript).
	URL string
}

// ReleaseForm sends a captured message on through a saved server
// profile.
type ReleaseForm struct {
	// Profiles are the saved profiles; none: the form says to add one.
	Profiles []Option
	// Profile is the chosen profile id; Rcpts the recipients, one per
	// line (by default the envelope recipients).
	Profile, Rcpts string
	// Errors by field: "profile", "rcpts".
	Errors map[string]string
	// Query is the list's search, kept when the form comes back.
	Query string
}

// CapturedMessage is the view of one captured message.
type CapturedMessage struct {
	CapturedRow
	RemoteAddr string
	AuthUser   string
	Headers    []Header
	Text       string
	// HTMLDoc is the HTML body wrapped in a document whose CSP blocks
	// remote content; it is shown in a sandboxed iframe's srcdoc.
	HTMLDoc string
	// HTMLSameOrigin lets the sandboxed iframe keep the app's origin (no
	// scripts still), so that inline images load with the session
	// cookie; set only when the HTML shows inline parts.
	HTMLSameOrigin bool
	Attachments    []Part
	// Raw is the source as text, cut at the display limit when
	// RawTruncated (the download has it all).
	Raw          string
	RawTruncated bool
	ParseError   string
	// Tabs are the message's tabs; Tab is the one shown.
	Tabs []CapturedTab
	Tab  string
	// ListURL returns to the list with its search.
	ListURL string
	Release ReleaseForm
}

// boolAttr is "true" or "false", for aria-selected and aria-invalid.
func boolAttr(b bool) string { return strconv.FormatBool(b) }
