// Package check checks a mail domain or one mail server end to end and
// produces a Report: findings (pass, warning, fail, each with what it
// means and what to change), grouped by host, streamed as they are found,
// with every DNS lookup and every SMTP conversation kept in full.
//
// A domain check follows RFC 5321 5.1 (MX in preference order, the
// implicit MX), RFC 7505 (null MX) and RFC 2181 10.3 (MX hosts are not
// aliases); it looks up each host's addresses and their reverse DNS
// (forward-confirmed, FCrDNS), then talks to each address on port 25:
// greeting, EHLO, STARTTLS (RFC 3207), the TLS versions it accepts (RFC
// 8996 deprecates 1.0 and 1.1), its certificate (RFC 9525 name matching),
// SIZE (RFC 1870). It never sends DATA, unless asked for a real test
// message (Options.TestSend, testsend.go).
package check

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"sockmail/internal/check/resolve"
	"sockmail/smtp"
)

// Status is the verdict of a finding.
type Status string

// The statuses, from best to worst. Info is a fact that needs no action;
// it counts as a pass.
const (
	Pass    Status = "pass"
	Info    Status = "info"
	Warning Status = "warning"
	Fail    Status = "fail"
)

// rank orders statuses: a higher rank is worse.
func (s Status) rank() int {
	switch s {
	case Warning:
		return 1
	case Fail:
		return 2
	}
	return 0
}

// Worse reports whether s is worse than t.
func (s Status) Worse(t Status) bool { return s.rank() > t.rank() }

// Finding is one verdict of a check.
type Finding struct {
	// ID names what was checked, stable across runs ("mx.order",
	// "tls.versions"), so that two checks can be compared.
	ID string `json:"id"`
	// Host is the host the finding is about; empty for the domain's DNS.
	Host string `json:"host,omitempty"`
	// Addr is the address the finding is about, when it is about one.
	Addr string `json:"addr,omitempty"`
	// Status is the verdict.
	Status Status `json:"status"`
	// Message says, in one sentence, what was found and what it means.
	Message string `json:"message"`
	// Fix says what to change; empty when nothing needs to.
	Fix string `json:"fix,omitempty"`
	// Conversation is the ID of the SMTP conversation the finding comes
	// from, 0 when none.
	Conversation int `json:"conversation,omitempty"`
}

// Conversation is one SMTP conversation of a check, kept in full.
type Conversation struct {
	// ID numbers the conversations of a report from 1.
	ID int `json:"id"`
	// Host is the host name talked to, Addr the host:port dialled.
	Host string `json:"host"`
	Addr string `json:"addr"`
	// Purpose says why it was held ("check", "probe TLS 1.0").
	Purpose string `json:"purpose"`
	// Transcript is the conversation; it fills in while the check runs.
	Transcript *smtp.Transcript `json:"transcript"`
	// Err is how the conversation failed, empty when it went as planned.
	Err string `json:"error,omitempty"`
	// Status is the send status that failure amounts to (smtp.StatusOf:
	// a 5xx refusal is a permanent failure, a drop a temporary one), empty
	// when it went as planned.
	Status smtp.Status `json:"status,omitempty"`
}

// Host is a mail server host of the check.
type Host struct {
	// Name is the host name (or address, for a server check by address).
	Name string `json:"name"`
	// Preference is the MX preference; 0 for an implicit MX or a server.
	Preference int `json:"preference"`
	// Implicit marks the domain itself used as its MX (RFC 5321 5.1).
	Implicit bool `json:"implicit,omitempty"`
	// Port is the port checked.
	Port int `json:"port"`
	// Service is the RFC 6186 service the host was found by
	// ("submission", "submissions"); empty for an MX host or a server.
	Service string `json:"service,omitempty"`
}

// Kind says what a check is of.
type Kind string

// The kinds of check.
const (
	KindDomain Kind = "domain"
	KindServer Kind = "server"
)

// EventKind says what an Event carries.
type EventKind string

// The kinds of event a running check streams.
const (
	EventLookup       EventKind = "lookup"
	EventHost         EventKind = "host"
	EventConversation EventKind = "conversation"
	EventFinding      EventKind = "finding"
)

// Event is one step of a running check, as it happens. Exactly one of its
// pointers is set, as Kind says. A Conversation arrives when it starts:
// subscribe to its Transcript to follow it live.
type Event struct {
	Kind         EventKind
	Lookup       *resolve.Lookup
	Host         *Host
	Conversation *Conversation
	Finding      *Finding
}

// Report is the result of a check. Its methods are safe for concurrent
// use while the check runs.
type Report struct {
	mu sync.Mutex

	// Target is what was checked, as given.
	Target string
	// Kind is domain or server.
	Kind Kind
	// Resolver is the DNS resolver used, host:port.
	Resolver string
	// Started is when the check began; Took how long it ran.
	Started time.Time
	Took    time.Duration

	hosts         []Host
	lookups       []resolve.Lookup
	findings      []Finding
	conversations []*Conversation
	onEvent       func(Event)
}

// emit hands ev to the observer with the report locked, so events arrive
// one at a time and in order.
func (r *Report) emit(ev Event) {
	if r.onEvent != nil {
		r.onEvent(ev)
	}
}

func (r *Report) addLookup(l resolve.Lookup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, l)
	r.emit(Event{Kind: EventLookup, Lookup: &l})
}

func (r *Report) addHost(h Host) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = append(r.hosts, h)
	r.emit(Event{Kind: EventHost, Host: &h})
}

// newConversation registers a conversation and returns it.
func (r *Report) newConversation(host, addr, purpose string) *Conversation {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Conversation{ID: len(r.conversations) + 1, Host: host, Addr: addr, Purpose: purpose, Transcript: smtp.NewTranscript()}
	r.conversations = append(r.conversations, c)
	r.emit(Event{Kind: EventConversation, Conversation: c})
	return c
}

// setConversationErr records how a conversation failed.
func (r *Report) setConversationErr(c *Conversation, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c.Err = err.Error()
	c.Status = smtp.StatusOf(nil, err)
}

func (r *Report) add(f Finding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.findings = append(r.findings, f)
	r.emit(Event{Kind: EventFinding, Finding: &f})
}

// Hosts returns the hosts checked, in preference order.
func (r *Report) Hosts() []Host {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hosts)
}

// Lookups returns the DNS lookups made so far, in the order they ended.
func (r *Report) Lookups() []resolve.Lookup {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lookups)
}

// Findings returns the findings so far, in the order they were found.
func (r *Report) Findings() []Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.findings)
}

// Conversations returns the SMTP conversations so far.
func (r *Report) Conversations() []*Conversation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.conversations)
}

// Worst returns the worst status of the findings: Pass when there is no
// warning or failure.
func (r *Report) Worst() Status {
	worst := Pass
	for _, f := range r.Findings() {
		if f.Status.Worse(worst) {
			worst = f.Status
		}
	}
	return worst
}

// Group is the findings about one host (Host empty: the domain's DNS).
type Group struct {
	Host     string    `json:"host"`
	Findings []Finding `json:"findings"`
}

// Groups returns the findings grouped by host: the domain's own first,
// then each host in preference order, each group's findings in the order
// they were found.
func (r *Report) Groups() []Group {
	findings := r.Findings()
	order := []string{""}
	for _, h := range r.Hosts() {
		if !slices.Contains(order, h.Name) {
			order = append(order, h.Name)
		}
	}
	for _, f := range findings {
		if !slices.Contains(order, f.Host) {
			order = append(order, f.Host)
		}
	}
	var out []Group
	for _, h := range order {
		g := Group{Host: h}
		for _, f := range findings {
			if f.Host == h {
				g.Findings = append(g.Findings, f)
			}
		}
		if len(g.Findings) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// MarshalJSON encodes the report with its findings grouped by host, every
// lookup and every conversation's transcript.
func (r *Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Target        string           `json:"target"`
		Kind          Kind             `json:"kind"`
		Resolver      string           `json:"resolver"`
		Started       time.Time        `json:"started"`
		TookMS        float64          `json:"took_ms"`
		Worst         Status           `json:"worst"`
		Hosts         []Host           `json:"hosts"`
		Groups        []Group          `json:"groups"`
		Lookups       []resolve.Lookup `json:"lookups"`
		Conversations []*Conversation  `json:"conversations"`
	}{
		Target: r.Target, Kind: r.Kind, Resolver: r.Resolver, Started: r.Started,
		TookMS: smtp.Millis(r.Took), Worst: r.Worst(), Hosts: nonNil(r.Hosts()), Groups: nonNil(r.Groups()),
		Lookups: nonNil(r.Lookups()), Conversations: nonNil(r.Conversations()),
	})
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
