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
	// Timings are where each send's time went, stretch by stretch
	// (CompareTimings).
	Timings []CompareTiming
}

// CompareTiming is one stretch of two sends' timings side by side.
type CompareTiming struct {
	Key, Label string
	A, B       time.Duration
	// Diff is B's time less A's.
	Diff time.Duration
}

// CompareTimings lists the stretches that took time in either send, in
// the order they happen, with the totals last (Key "total").
func CompareTimings(a, b smtp.Timings) []CompareTiming {
	pa, pb := a.Parts(), b.Parts()
	var out []CompareTiming
	for i := range pa {
		if pa[i].Duration <= 0 && pb[i].Duration <= 0 {
			continue
		}
		out = append(out, CompareTiming{Key: pa[i].Key, Label: pa[i].Label, A: pa[i].Duration, B: pb[i].Duration, Diff: pb[i].Duration - pa[i].Duration})
	}
	if len(out) == 0 {
		return nil
	}
	return append(out, CompareTiming{Key: "total", Label: "total", A: a.Total, B: b.Total, Diff: b.Total - a.Total})
}

// SignedMillis formats a difference of times: "+12.3 ms", "−0.482 ms",
// "0 ms".
func SignedMillis(d time.Duration) string {
	switch {
	case d > 0:
		return "+" + MillisShort(d)
	case d < 0:
		return "−" + MillisShort(-d)
	}
	return "0 ms"
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
	return []Option{{"", "Any"}, {"web", "web"}, {"cli", "cli"}, {"contact", "contact form"}, {"alert", "monitor alert email"}, {"monitor", "monitor run"}, {"release", "release of captured mail"}, {"check", "check (Check page)"}, {"api:*", "API (any token)"}}
}
