package alert

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"sockmail/internal/safetext"
	"strconv"
	"strings"
	"time"

	"sockmail/internal/store"
)

// DefaultFrom is the sender of alert emails when the settings name none.
const DefaultFrom = "sockmail-alerts@localhost"

// Payload is the JSON body of a webhook alert (documented in the README).
type Payload struct {
	// EventID is the same for every channel and every attempt of one
	// alert: a receiver that sees it twice has it already.
	EventID  string         `json:"event_id"`
	Event    string         `json:"event"`
	Monitor  PayloadMonitor `json:"monitor"`
	OldState string         `json:"old_state"`
	NewState string         `json:"new_state"`
	Reason   string         `json:"reason"`
	Run      *PayloadRun    `json:"run,omitempty"`
	// SendURL is the page of the run's send (its transcript), when the
	// run made one.
	SendURL string `json:"send_url,omitempty"`
	// Time is when the alert was raised (RFC 3339, UTC).
	Time string `json:"time"`
}

// PayloadMonitor names the monitor of an alert.
type PayloadMonitor struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

// PayloadRun is the run that caused an alert.
type PayloadRun struct {
	ID        int64  `json:"id"`
	Started   string `json:"started"`
	LatencyMS int64  `json:"latency_ms"`
	SendID    *int64 `json:"send_id,omitempty"`
}

// event is one alert being built, before it is split into channels.
type event struct {
	id       string
	name     string
	m        store.Monitor
	old, new store.MonitorState
	reason   string
	run      *store.MonitorRun
	at       time.Time
	baseURL  string
}

func newEventID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("alert: event id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (e event) monitorURL() string {
	return strings.TrimSuffix(e.baseURL, "/") + "/monitors/" + strconv.FormatInt(e.m.ID, 10)
}

func (e event) sendURL() string {
	if e.run == nil || e.run.SendID == nil {
		return ""
	}
	return strings.TrimSuffix(e.baseURL, "/") + "/sends/" + strconv.FormatInt(*e.run.SendID, 10)
}

// payload returns the webhook body.
func (e event) payload() ([]byte, error) {
	p := Payload{EventID: e.id, Event: e.name, Monitor: PayloadMonitor{ID: e.m.ID, Name: e.m.Name, URL: e.monitorURL()},
		OldState: string(e.old), NewState: string(e.new), Reason: e.reason, SendURL: e.sendURL(), Time: e.at.UTC().Format(time.RFC3339)}
	if e.run != nil {
		p.Run = &PayloadRun{ID: e.run.ID, Started: e.run.Started.UTC().Format(time.RFC3339), LatencyMS: e.run.Latency.Milliseconds(), SendID: e.run.SendID}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("alert: payload: %w", err)
	}
	return b, nil
}

// headline says what happened, for a subject line.
func (e event) headline() string {
	name := safetext.Line(e.m.Name)
	switch e.name {
	case EventDown:
		return "monitor " + name + " is DOWN"
	case EventDegraded:
		return "monitor " + name + " is degraded"
	case EventRepeat:
		return "monitor " + name + " is still DOWN"
	case EventResolved:
		return "monitor " + name + " is up again (resolved)"
	}
	return "monitor " + name + ": " + e.name
}

// email returns the alert message.
func (e event) email(from string, to []string) []byte {
	var b bytes.Buffer
	addrs := make([]string, len(to))
	for i, a := range to {
		addrs[i] = "<" + safetext.Line(a) + ">"
	}
	fmt.Fprintf(&b, "From: <%s>\r\nTo: %s\r\nSubject: %s\r\n", safetext.Line(from), strings.Join(addrs, ", "),
		mime.QEncoding.Encode("utf-8", "[sockmail] "+e.headline()))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <alert-%s@sockmail.invalid>\r\nX-Sockmail-Alert: %s\r\n", e.at.Format(time.RFC1123Z), e.id, e.name)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "The sockmail %s.\r\n\r\n", e.headline())
	fmt.Fprintf(&b, "State: %s (before: %s)\r\n", e.new, e.old)
	if e.reason != "" {
		fmt.Fprintf(&b, "Reason: %s\r\n", safetext.Line(e.reason))
	}
	fmt.Fprintf(&b, "Time: %s\r\nMonitor: %s\r\n", e.at.UTC().Format(time.RFC3339), e.monitorURL())
	if u := e.sendURL(); u != "" {
		fmt.Fprintf(&b, "Transcript of the run: %s\r\n", u)
	}
	fmt.Fprintf(&b, "Alert: %s\r\n", e.id)
	return b.Bytes()
}
