package check

import (
	"encoding/json"
	"fmt"
	"time"

	"sockmail/internal/check/resolve"
)

// maxStoredReport bounds a report read back from JSON, in bytes.
const maxStoredReport = 8 << 20

// UnmarshalJSON reads back a report MarshalJSON wrote: target, kind,
// resolver, start, duration, hosts, findings (from their groups) and
// lookups. Conversations come back without their transcripts (an
// smtp.Transcript cannot be read back; the web app keeps each
// conversation as a send in the history instead). The report it fills
// has no observer.
func (r *Report) UnmarshalJSON(b []byte) error {
	if len(b) > maxStoredReport {
		return fmt.Errorf("check: stored report is %d bytes; the limit is %d", len(b), maxStoredReport)
	}
	var in struct {
		Target        string           `json:"target"`
		Kind          Kind             `json:"kind"`
		Resolver      string           `json:"resolver"`
		Started       time.Time        `json:"started"`
		TookMS        float64          `json:"took_ms"`
		Hosts         []Host           `json:"hosts"`
		Groups        []Group          `json:"groups"`
		Lookups       []resolve.Lookup `json:"lookups"`
		Conversations []struct {
			ID      int    `json:"id"`
			Host    string `json:"host"`
			Addr    string `json:"addr"`
			Purpose string `json:"purpose"`
			Err     string `json:"error"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("check: read stored report: %w", err)
	}
	if in.Kind != KindDomain && in.Kind != KindServer {
		return fmt.Errorf("check: read stored report: unknown kind %q", in.Kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Target, r.Kind, r.Resolver, r.Started = in.Target, in.Kind, in.Resolver, in.Started
	r.Took = time.Duration(in.TookMS * float64(time.Millisecond))
	r.hosts = in.Hosts
	r.findings = nil
	for _, g := range in.Groups {
		r.findings = append(r.findings, g.Findings...)
	}
	r.lookups = make([]resolve.Lookup, len(in.Lookups))
	for i, l := range in.Lookups {
		l.Took = time.Duration(l.TookMS * float64(time.Millisecond))
		r.lookups[i] = l
	}
	r.conversations = nil
	for _, c := range in.Conversations {
		r.conversations = append(r.conversations, &Conversation{ID: c.ID, Host: c.Host, Addr: c.Addr, Purpose: c.Purpose, Err: c.Err})
	}
	r.onEvent = nil
	return nil
}

// Change is a finding that differs between two checks of one target.
type Change struct {
	// Old is the finding in the earlier check, nil when it is new.
	Old *Finding
	// New is the finding in the later check, nil when it is gone.
	New *Finding
}

// Compare lists what differs between an earlier and a later check of the
// same target: findings added, removed, or whose status changed. A
// finding is the same finding when its ID, host and address are.
func Compare(old, new []Finding) (added, removed, changed []Change) {
	key := func(f Finding) string { return f.ID + "\x00" + f.Host + "\x00" + f.Addr }
	before := map[string]Finding{}
	for _, f := range old {
		before[key(f)] = f
	}
	after := map[string]bool{}
	for _, f := range new {
		k := key(f)
		after[k] = true
		o, ok := before[k]
		switch {
		case !ok:
			added = append(added, Change{New: &f})
		case o.Status != f.Status:
			changed = append(changed, Change{Old: &o, New: &f})
		}
	}
	for _, f := range old {
		if !after[key(f)] {
			removed = append(removed, Change{Old: &f})
		}
	}
	return added, removed, changed
}
