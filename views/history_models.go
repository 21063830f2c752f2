package views

import (
	"time"

	"sockmail/smtp"
)

// HistoryFilter is the filter form of the history list, as typed. Since
// and Until are dates (YYYY-MM-DD), both inclusive.
type HistoryFilter struct {
	Status, Source, Recipient, Sender, Server, Query, Since, Until string
}

// HistoryRow is one send in the history list. Every text field is already
// made safe to show (smtp.SafeText).
type HistoryRow struct {
	ID          int64
	CreatedAt   time.Time
	Source      string
	Server      string
	TLSMode     string
	MailFrom    string
	Rcpts       []string
	Subject     string
	Status      string
	StatusClass string // ok, warn, fail, running
	QueueID     string
	DurationMS  float64
	ParentID    int64 // 0: not a resend
	Refused     int   // recipients refused
	// Timings is where the time went, nil for a send stored before
	// timings were kept (no bar is drawn for it).
	Timings *smtp.Timings
}

// HistoryList is the history list page.
type HistoryList struct {
	Filter HistoryFilter
	Errors map[string]string
	Rows   []HistoryRow
	// Total is how many sends match; TotalCapped: more than Total.
	Total       int
	TotalCapped bool
	// Paged is set on a page after the first; FirstURL leads back to it.
	Paged    bool
	FirstURL string
	// NextURL is the next (older) page, "" on the last.
	NextURL string
	// Retention describes the retention policy, "" when there is none.
	Retention string
}

// HistoryDetail is the history page of one stored send: the result view
// plus where it came from, its resends and the actions on it.
type HistoryDetail struct {
	Result
	Source     string
	ClientAddr string
	User       string
	// ParentID is the send this one resends, 0 if none.
	ParentID int64
	// Resends are the sends that resent this one.
	Resends []HistoryRow
	// Headers is the message's header block, safe to show.
	Headers          string
	MessageTruncated bool
	// RemoteRunning: the send is running on another instance.
	RemoteRunning bool
	Resend        ResendForm
}

// ResendForm is the form that re-sends a stored message.
type ResendForm struct {
	// Possible is false when the stored message cannot be re-sent; Reason
	// says why.
	Possible bool
	Reason   string
	// Server is "same", "builtin", "adhoc" or a profile id.
	Server   string
	Host     string
	Port     string
	TLS      string
	Verify   bool
	Profiles []Option
	// BuiltinAddr is the capture server, "" when it is off.
	BuiltinAddr string
	Errors      map[string]string
}

// CompareSide is one of the two sends compared.
type CompareSide struct {
	HistoryRow
	Error string
}

// CompareRow is one aligned row: a run of one phase in either send, or in
// both. Left or Right is nil when only the other send has the run.
type CompareRow struct {
	Phase       smtp.Phase
	Left, Right *PhaseGroup
	// Differs is set when both sides have the run and their lines differ
	// (times aside).
	Differs bool
}

// HistoryCompare is the side-by-side comparison of two transcripts.
type HistoryCompare struct {
	A, B CompareSide
	Rows []CompareRow
	// DiagramA and DiagramB are the two sequence diagrams, on one time
	// scale (DiagramsOnOneScale).
	DiagramA, DiagramB Diagram
}

// historyStatusOptions are the statuses the list filters by.
func historyStatusOptions() []Option {
	opts := []Option{{"", "Any"}}
	for _, s := range []smtp.Status{smtp.StatusSent, smtp.StatusPartial, smtp.StatusTempFail, smtp.StatusPermFail,
		smtp.StatusUnknown, smtp.StatusAborted, smtp.StatusStopped} {
		opts = append(opts, Option{string(s), string(s)})
	}
	return append(opts, Option{"running", "running (or interrupted)"})
}

// historySourceOptions are the sources the list filters by.
func historySourceOptions() []Option {
	return []Option{{"", "Any"}, {"web", "web"}, {"cli", "cli"}, {"contact", "contact form"}, {"release", "release of captured mail"}, {"check", "check (Check page)"}, {"api:*", "API (any token)"}}
}
