package check

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"sockmail/internal/check/resolve"
	"sockmail/internal/testenv"
)

// TestStoredReport checks the test Postfix's submission and implicit-TLS
// ports, writes each report as JSON and reads it back: the findings,
// hosts and lookups come back the same, and so does the profile the
// report suggests.
func TestStoredReport(t *testing.T) {
	d := testenv.DNS(t)
	pf := testenv.Postfix(t)
	tests := []struct {
		target   string
		implicit bool
		want     Suggestion
	}{
		{target: fmt.Sprintf("localhost:%d", portOf(t, pf.SubmissionAddr)),
			want: Suggestion{Host: "localhost", Port: portOf(t, pf.SubmissionAddr), TLSMode: "starttls", AuthMech: "CRAM-MD5"}},
		{target: fmt.Sprintf("127.0.0.1:%d", portOf(t, pf.SMTPSAddr)), implicit: true,
			want: Suggestion{Host: "127.0.0.1", Port: portOf(t, pf.SMTPSAddr), TLSMode: "implicit", AuthMech: "CRAM-MD5"}},
		{target: fmt.Sprintf("127.0.0.1:%d", portOf(t, pf.SMTPAddr)),
			want: Suggestion{Host: "127.0.0.1", Port: portOf(t, pf.SMTPAddr), TLSMode: "starttls"}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			target, err := ParseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), target, Options{Resolver: d.Resolver, ImplicitTLS: tt.implicit, RootCAs: pf.RootCAs})
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := Suggest(rep, tt.implicit); !ok || got != tt.want {
				t.Errorf("Suggest = %+v, %v; want %+v\n%s", got, ok, tt.want, dump(rep))
			}
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			back := &Report{}
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Findings(), rep.Findings()) {
				t.Errorf("findings read back:\n%s\nwant:\n%s", dump(back), dump(rep))
			}
			if !reflect.DeepEqual(back.Hosts(), rep.Hosts()) || back.Target != rep.Target || back.Kind != rep.Kind || back.Resolver != rep.Resolver {
				t.Errorf("read back %s %s %s %v; want %s %s %s %v", back.Target, back.Kind, back.Resolver, back.Hosts(), rep.Target, rep.Kind, rep.Resolver, rep.Hosts())
			}
			if !back.Started.Equal(rep.Started) || back.Worst() != rep.Worst() {
				t.Errorf("started %v worst %s; want %v %s", back.Started, back.Worst(), rep.Started, rep.Worst())
			}
			noTook := func(ls []resolve.Lookup) []resolve.Lookup {
				for i := range ls {
					ls[i].Took = 0
				}
				return ls
			}
			if !reflect.DeepEqual(noTook(back.Lookups()), noTook(rep.Lookups())) {
				t.Errorf("lookups read back %v, want %v", back.Lookups(), rep.Lookups())
			}
			if got, ok := Suggest(back, tt.implicit); !ok || got != tt.want {
				t.Errorf("Suggest of the report read back = %+v, %v; want %+v", got, ok, tt.want)
			}
			if n, m := len(back.Conversations()), len(rep.Conversations()); n != m || n == 0 {
				t.Errorf("%d conversations read back, want %d", n, m)
			}
		})
	}
}

func TestStoredReportErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", "{", "read stored report"},
		{"unknown kind", `{"target":"x","kind":"planet"}`, `unknown kind "planet"`},
		{"too long", `{"target":"` + strings.Repeat("x", maxStoredReport) + `"}`, "the limit is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Report{}).UnmarshalJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	f := func(id, host string, st Status) Finding { return Finding{ID: id, Host: host, Status: st} }
	old := []Finding{f("dns.dnssec", "", Pass), f("smtp.connect", "mx1", Fail), f("smtp.connect", "mx2", Pass), f("gone", "mx1", Info)}
	new := []Finding{f("dns.dnssec", "", Pass), f("smtp.connect", "mx1", Pass), f("smtp.connect", "mx2", Pass), f("smtp.ehlo", "mx1", Info)}
	added, removed, changed := Compare(old, new)
	ids := func(cs []Change) string {
		var out []string
		for _, c := range cs {
			x := c.New
			if x == nil {
				x = c.Old
			}
			s := x.ID + "@" + x.Host
			if c.Old != nil && c.New != nil {
				s += ":" + string(c.Old.Status) + ">" + string(c.New.Status)
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	tests := []struct{ name, got, want string }{
		{"added", ids(added), "smtp.ehlo@mx1"},
		{"removed", ids(removed), "gone@mx1"},
		{"changed", ids(changed), "smtp.connect@mx1:fail>pass"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if a, r, c := Compare(new, new); len(a)+len(r)+len(c) != 0 {
		t.Errorf("a check compared with itself: %d added, %d removed, %d changed", len(a), len(r), len(c))
	}
}
