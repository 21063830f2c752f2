package monitor

import (
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sockmail/internal/check"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// TestMonitorCertExpiringSoon: a quit-after monitor of the test Postfix
// listener whose certificate expires in 5 days, with a threshold of 7
// days, is degraded with a reason naming the expiry; with a threshold of
// 3 days it is up. Both backends, run through the scheduler's RunNow.
func TestMonitorCertExpiringSoon(t *testing.T) {
	cs := testenv.CertSoon(t)
	forBackends(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		_, port := portOf(t, cs.Addr)
		resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, RootCAs: cs.RootCAs})
		sched, err := New(Deps{Store: st, Probe: NewProber(ProberDeps{Resolve: resolver.Resolve, Sends: st}), Owner: "cert-test"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			days   int
			state  store.MonitorState
			reason []string
		}{
			{7, store.MonitorDegraded, []string{"certificate expires in ", "within 7"}},
			{3, store.MonitorUp, nil},
		}
		for _, tt := range tests {
			m := &store.Monitor{Name: "cert " + strconv.Itoa(tt.days), Kind: store.MonitorQuitAfter, Target: cs.Name, Rcpt: testenv.UniqueAddress(),
				Options: store.MonitorOptions{Port: port}, Interval: 5, Enabled: true, CertDays: tt.days}
			if err := st.CreateMonitor(ctx, m); err != nil {
				t.Fatal(err)
			}
			run, state, err := sched.RunNow(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if state.State != tt.state || run.State != tt.state {
				t.Fatalf("threshold %d days: %s %q (stored %s), want %s", tt.days, state.State, state.Reason, run.State, tt.state)
			}
			for _, want := range tt.reason {
				if !strings.Contains(run.Reason, want) {
					t.Errorf("threshold %d days: reason %q, want it to name %q", tt.days, run.Reason, want)
				}
			}
			// At most 5 whole days are left (4 to 5 after servers.sh up,
			// which makes the certificate again when 4 or less are left).
			if tt.reason != nil && !regexp.MustCompile(`expires in [0-5] days`).MatchString(run.Reason) {
				t.Errorf("reason %q, want at most 5 days left", run.Reason)
			}
		}
	})
}

// TestMonitorCheck runs check monitors against the DNS tier on both
// backends: a domain whose MX host has no address is down, naming it; a
// domain whose MX is the test Postfix (on its port) is up or degraded as
// its stored check's worst finding says (warning: degraded, naming the
// warning). Each run stores its check and links it.
func TestMonitorCheck(t *testing.T) {
	dns := testenv.DNS(t)
	pf := testenv.Postfix(t)
	_, smtpPort := portOf(t, pf.SMTPAddr)
	forBackends(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		probe := NewProber(ProberDeps{Sends: st, Checks: st, CheckResolver: dns.Resolver, RootCAs: pf.RootCAs})
		sched, err := New(Deps{Store: st, Probe: probe, Owner: "check-test"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			target string
			port   int
			down   string // the reason of a down run; "" when it must not be down
		}{
			{target: "nohost." + dns.SignedZone, port: smtpPort, down: "no A or AAAA"},
			{target: "good." + dns.SignedZone, port: smtpPort},
			{target: net.JoinHostPort("localhost", strconv.Itoa(smtpPort))},
		}
		for _, tt := range tests {
			t.Run(tt.target, func(t *testing.T) {
				m := &store.Monitor{Name: "check " + tt.target, Kind: store.MonitorCheck, Target: tt.target, Interval: 5, Enabled: true,
					Options: store.MonitorOptions{Port: tt.port}}
				if err := st.CreateMonitor(ctx, m); err != nil {
					t.Fatal(err)
				}
				run, _, err := sched.RunNow(ctx, m.ID)
				if err != nil {
					t.Fatal(err)
				}
				if run.CheckID == nil {
					t.Fatalf("run %+v links no check", run)
				}
				ck, err := st.Check(ctx, *run.CheckID)
				if err != nil || ck.Running() || len(ck.Report) == 0 {
					t.Fatalf("stored check %+v, %v", ck, err)
				}
				var rep check.Report
				if err := json.Unmarshal(ck.Report, &rep); err != nil {
					t.Fatalf("report: %v", err)
				}
				want := map[string]store.MonitorState{string(check.Pass): store.MonitorUp, string(check.Info): store.MonitorUp,
					string(check.Warning): store.MonitorDegraded, string(check.Fail): store.MonitorDown}[ck.Worst]
				if run.State != want {
					t.Fatalf("worst finding %q, state %s %q, want %s", ck.Worst, run.State, run.Reason, want)
				}
				switch {
				case tt.down != "" && (run.State != store.MonitorDown || !strings.Contains(run.Reason, tt.down)):
					t.Errorf("state %s %q, want down naming %q", run.State, run.Reason, tt.down)
				case tt.down == "" && run.State == store.MonitorDown:
					t.Errorf("state down %q, want up or degraded", run.Reason)
				case run.State == store.MonitorDegraded && !strings.Contains(run.Reason, "warns: "):
					t.Errorf("degraded with reason %q, want the warnings named", run.Reason)
				}
				for _, f := range rep.Findings() {
					if f.Status == check.Warning && run.State == store.MonitorDegraded && !strings.Contains(run.Reason, f.Message) &&
						!strings.Contains(run.Reason, "more") {
						t.Errorf("warning %q not named in the reason %q", f.Message, run.Reason)
					}
				}
			})
		}
	})
}
