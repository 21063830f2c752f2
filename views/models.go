// Package views holds sockmail's templ components: a layout wrapping every
// page with { children... }, and one file per area. Every value is escaped
// by templ; server replies are shown as text. Elements that tests look for
// carry data-testid attributes.
package views

import (
	"fmt"
	"strings"
	"time"

	"sockmail/internal/webform"
	"sockmail/smtp"
)

// Page is what the layout needs to know about the request.
type Page struct {
	// Title is the page title.
	Title string
	// User is the signed-in admin's email, "" when signed out.
	User string
	// CSRF is the token every form posts back.
	CSRF string
	// Flashes are one-time messages.
	Flashes []string
	// Section marks the current navigation entry.
	Section string
	// RefreshSeconds, when positive, reloads the page that often for
	// browsers without JavaScript (a send still running).
	RefreshSeconds int
}

// Option is one entry of a select element.
type Option struct {
	Value, Label string
}

// Explanation is a plain-language account of a failure.
type Explanation struct {
	// Title says what happened in a few words.
	Title string
	// Detail explains it.
	Detail string
	// Try lists what to do about it.
	Try []string
	// Code is the reply and enhanced code explained, like "535 5.7.8".
	Code string
}

// RecipientRow is one recipient's result.
type RecipientRow struct {
	smtp.RecipientResult
	Explanation *Explanation
}

// Result is the result page of one send.
type Result struct {
	ID          int64
	Running     bool
	Status      string
	StatusClass string // ok, warn, fail, running
	Server      string
	TLSMode     string
	MailFrom    string
	Rcpts       []string
	Subject     string
	QueueID     string
	Error       string
	// Failure is Error as data: where the send failed (the diagram marks it).
	Failure     smtp.Failure
	Started     time.Time
	DurationMS  float64
	Recipients  []RecipientRow
	Events      []smtp.Event
	Dropped     int
	TLSInfo     []string
	Explanation *Explanation
	HasMessage  bool
}

// PhaseGroup is the events of one phase with the time it took.
type PhaseGroup struct {
	Phase    smtp.Phase
	Duration time.Duration
	Events   []IndexedEvent
}

// IndexedEvent is an event with its position in the transcript.
type IndexedEvent struct {
	Index int
	smtp.Event
}

// Groups splits the events into runs of one phase, each with its time.
func Groups(events []smtp.Event) []PhaseGroup {
	timings := smtp.PhaseTimings(events)
	var out []PhaseGroup
	for i, ev := range events {
		if i == 0 || ev.Phase != events[i-1].Phase {
			g := PhaseGroup{Phase: ev.Phase}
			if len(out) < len(timings) {
				g.Duration = timings[len(out)].Duration
			}
			out = append(out, g)
		}
		last := &out[len(out)-1]
		last.Events = append(last.Events, IndexedEvent{Index: i, Event: ev})
	}
	return out
}

// Millis formats a duration as milliseconds with three decimals.
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d.Microseconds())/1000)
}

// Marker is the text marker of a direction, so that direction is not told
// by colour alone: "C:" client, "S:" server, "i" information.
func Marker(d smtp.Direction) string {
	switch d {
	case smtp.DirClient:
		return "C:"
	case smtp.DirServer:
		return "S:"
	}
	return "i"
}

// DirLabel names a direction for screen readers.
func DirLabel(d smtp.Direction) string {
	switch d {
	case smtp.DirClient:
		return "client"
	case smtp.DirServer:
		return "server"
	}
	return "info"
}

// Line is the event's text made safe to show (control characters escaped).
func Line(ev smtp.Event) string { return smtp.SafeText(ev.Line) }

// Itoa formats an int64 id.
func Itoa(n int64) string { return fmt.Sprint(n) }

// When formats a time for lists.
func When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// Bytes formats a size.
func Bytes(n int64) string { return webform.Bytes(n) }

// Join joins strings with ", ".
func Join(s []string) string { return strings.Join(s, ", ") }

// Compose is the compose page.
type Compose struct {
	Form        *webform.Compose
	Errors      webform.Errors
	Profiles    []Option
	BuiltinAddr string
	// MaxUpload bounds the attachments together, in bytes; MaxFiles
	// bounds their number.
	MaxUpload int64
	MaxFiles  int
}

// ProfileRow is one saved server profile in the list.
type ProfileRow struct {
	ID          int64
	Name        string
	Addr        string
	TLSMode     string
	AuthMech    string
	Username    string
	HasPassword bool
	// AllowInsecureAuth: the profile lets AUTH run without TLS.
	AllowInsecureAuth bool
}

// ProfileEdit is the profile form page; ID is 0 for a new profile.
type ProfileEdit struct {
	ID          int64
	Form        *webform.Profile
	Errors      webform.Errors
	HasPassword bool
}
