package handlers

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
	"sockmail/smtp"
	"sockmail/views"
)

func TestHistoryFormValidate(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	tests := []struct {
		query string
		errs  []string
		check func(t *testing.T, sf store.SendFilter)
	}{
		{query: "", check: func(t *testing.T, sf store.SendFilter) {
			if sf.Limit != historyPageSize || !sf.Since.IsZero() || !sf.Until.IsZero() || sf.Before != 0 {
				t.Errorf("empty form: %+v", sf)
			}
		}},
		{query: "status=sent&source=cli&recipient=+bob+&q=+greylisted+&before=42", check: func(t *testing.T, sf store.SendFilter) {
			if sf.Status != "sent" || sf.Source != "cli" || sf.Recipient != "bob" || sf.Query != "greylisted" || sf.Before != 42 {
				t.Errorf("filter %+v", sf)
			}
		}},
		{query: "status=running"},
		{query: "since=2025-06-01&until=2025-06-01", check: func(t *testing.T, sf store.SendFilter) {
			if !sf.Since.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, loc)) || !sf.Until.Equal(time.Date(2025, 6, 2, 0, 0, 0, 0, loc)) {
				t.Errorf("one day: %v to %v", sf.Since, sf.Until)
			}
		}},
		{query: "before=-5&before=x", check: func(t *testing.T, sf store.SendFilter) {
			if sf.Before != 0 {
				t.Errorf("bad cursor kept: %d", sf.Before)
			}
		}},
		{query: "status=Sent", errs: []string{"status"}},
		{query: "source=web%00", errs: []string{"source"}},
		{query: "since=2025-02-30", errs: []string{"since"}},
		{query: "since=1969-12-31", errs: []string{"since"}},
		{query: "until=25-06-01", errs: []string{"until"}},
		{query: "since=2025-06-02&until=2025-06-01", errs: []string{"until"}},
		{query: "q=" + strings.Repeat("é", 251), errs: []string{"q"}},
		{query: "sender=" + strings.Repeat("a", 201) + "&server=" + strings.Repeat("b", 201), errs: []string{"sender", "server"}},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		f := readHistoryForm(q)
		sf, errs := f.Validate(loc)
		var got []string
		for k := range errs {
			got = append(got, k)
		}
		sort.Strings(got)
		if !slices.Equal(got, tt.errs) {
			t.Errorf("%.60s: errors %v, want %v", tt.query, got, tt.errs)
		}
		if tt.check != nil {
			tt.check(t, sf)
		}
	}
}

func TestResendFormValidate(t *testing.T) {
	tests := []struct {
		f    resendForm
		errs []string
	}{
		{resendForm{Server: "same", TLS: "starttls"}, nil},
		{resendForm{Server: "builtin", TLS: "none"}, nil},
		{resendForm{Server: "12", TLS: "implicit"}, nil},
		{resendForm{Server: "adhoc", Host: "mx.example.org", Port: "25", TLS: "starttls-optional"}, nil},
		{resendForm{Server: "adhoc", Host: "2001:db8::1", Port: "587", TLS: "starttls"}, nil},
		{resendForm{Server: "", TLS: "none"}, []string{"server"}},
		{resendForm{Server: "0", TLS: "none"}, []string{"server"}},
		{resendForm{Server: "-3", TLS: "none"}, []string{"server"}},
		{resendForm{Server: "same", TLS: ""}, []string{"tls"}},
		{resendForm{Server: "adhoc", TLS: "none"}, []string{"host", "port"}},
		{resendForm{Server: "adhoc", Host: "mx\r\nRCPT TO:<x>", Port: "25", TLS: "none"}, []string{"host"}},
		{resendForm{Server: "adhoc", Host: "user@mx", Port: "25", TLS: "none"}, []string{"host"}},
		{resendForm{Server: "adhoc", Host: "mx\xff", Port: "25", TLS: "none"}, []string{"host"}},
		{resendForm{Server: "adhoc", Host: strings.Repeat("a", 254), Port: "25", TLS: "none"}, []string{"host"}},
		{resendForm{Server: "adhoc", Host: "mx", Port: "0", TLS: "none"}, []string{"port"}},
		{resendForm{Server: "adhoc", Host: "mx", Port: "25x", TLS: "none"}, []string{"port"}},
	}
	for _, tt := range tests {
		errs := tt.f.Validate()
		var got []string
		for k := range errs {
			got = append(got, k)
		}
		sort.Strings(got)
		if !slices.Equal(got, tt.errs) {
			t.Errorf("%+v: errors %v, want %v", tt.f, got, tt.errs)
		}
	}
}

func TestRetentionString(t *testing.T) {
	tests := []struct {
		r    Retention
		want string
	}{
		{Retention{}, ""},
		{Retention{MaxAge: 90 * 24 * time.Hour}, "Sends older than 90 days are deleted, with captured mail and the contact messages that were delivered, cancelled or blocked of that age."},
		{Retention{MaxSends: 1000}, "Only the newest 1000 sends are kept."},
		{Retention{MaxAge: 36 * time.Hour, MaxSends: 5}, "Sends older than 1.5 days are deleted, with captured mail and the contact messages that were delivered, cancelled or blocked of that age, and only the newest 5 sends are kept."},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.r, got, tt.want)
		}
	}
}

// groups builds phase runs from phase names.
func groups(phases ...smtp.Phase) []views.PhaseGroup {
	var evs []smtp.Event
	for i, p := range phases {
		evs = append(evs, smtp.Event{Offset: time.Duration(i) * time.Millisecond, Dir: smtp.DirServer, Phase: p, Line: string(p)})
		// Two runs of one phase in a row stay two runs.
		evs = append(evs, smtp.Event{Offset: time.Duration(i) * time.Millisecond, Dir: smtp.DirInfo, Phase: "sep"})
	}
	var out []views.PhaseGroup
	for _, g := range views.Groups(evs) {
		if g.Phase != "sep" {
			out = append(out, g)
		}
	}
	return out
}

func TestAlignPhases(t *testing.T) {
	const (
		C, G, E, S, A, M, R, D, B, Q = smtp.PhaseConnect, smtp.PhaseGreeting, smtp.PhaseEHLO, smtp.PhaseStartTLS,
			smtp.PhaseAuth, smtp.PhaseMail, smtp.PhaseRcpt, smtp.PhaseData, smtp.PhaseBody, smtp.PhaseQuit
	)
	// A row is "L", "R" or "LR" followed by the phase.
	tests := []struct {
		name string
		a, b []smtp.Phase
		want []string
	}{
		{"same", []smtp.Phase{C, G, E, Q}, []smtp.Phase{C, G, E, Q}, []string{"LR connect", "LR greeting", "LR ehlo", "LR quit"}},
		{"starttls and auth on one side", []smtp.Phase{C, G, E, M, R, D, B, Q}, []smtp.Phase{C, G, E, S, E, A, M, R, D, B, Q},
			[]string{"LR connect", "LR greeting", "LR ehlo", "R starttls", "R ehlo", "R auth", "LR mail", "LR rcpt", "LR data", "LR body", "LR quit"}},
		{"failed early", []smtp.Phase{C, G, E, M, R, D, B, Q}, []smtp.Phase{C}, []string{"LR connect", "L greeting", "L ehlo", "L mail", "L rcpt", "L data", "L body", "L quit"}},
		{"empty", nil, []smtp.Phase{C, G}, []string{"R connect", "R greeting"}},
		{"both empty", nil, nil, nil},
		{"pipelined runs", []smtp.Phase{M, R, D, M, R, D}, []smtp.Phase{M, R, D}, []string{"LR mail", "LR rcpt", "LR data", "L mail", "L rcpt", "L data"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range alignPhases(groups(tt.a...), groups(tt.b...)) {
			side := ""
			if r.Left != nil {
				side += "L"
				if r.Left.Phase != r.Phase {
					t.Errorf("%s: left run %s in a %s row", tt.name, r.Left.Phase, r.Phase)
				}
			}
			if r.Right != nil {
				side += "R"
				if r.Right.Phase != r.Phase {
					t.Errorf("%s: right run %s in a %s row", tt.name, r.Right.Phase, r.Phase)
				}
			}
			got = append(got, side+" "+string(r.Phase))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %v\nwant %v", tt.name, got, tt.want)
		}
	}
	// Beyond maxAlign the runs are paired in order, and nothing is lost.
	var long []smtp.Phase
	for range 600 {
		long = append(long, M, R)
	}
	rows := alignPhases(groups(long...), groups(append([]smtp.Phase{C}, long...)...))
	left, right := 0, 0
	for _, r := range rows {
		if r.Left != nil {
			left++
		}
		if r.Right != nil {
			right++
		}
	}
	if left != 1200 || right != 1201 {
		t.Errorf("long transcripts: %d left and %d right runs, want 1200 and 1201", left, right)
	}
}
