package handlers_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"sockmail/handlers"
	"sockmail/internal/delivery"
	"sockmail/internal/monitor"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// testMonitors wires the monitor pages as serve does: a real prober
// (through the same resolver as sends) and a scheduler that the tests
// drive with "run now" only.
func testMonitors(t testing.TB, st *store.Store, capInfo handlers.CaptureServer, roots *x509.CertPool) *handlers.Monitors {
	t.Helper()
	resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Sends: st,
		Capture: delivery.Capture{Addr: capInfo.Addr, Certificate: capInfo.Certificate}, RootCAs: roots})
	sched, err := monitor.New(monitor.Deps{Store: st, Owner: "test", Probe: monitor.NewProber(monitor.ProberDeps{Resolve: resolver.Resolve, Sends: st, Captured: st})})
	if err != nil {
		t.Fatal(err)
	}
	return &handlers.Monitors{Store: st, Runner: sched}
}

// TestMonitorPages: the form refuses bad input naming each field; a
// quit-after monitor of the test Postfix is created, run once with "run
// now" (up, its run stored with the send that keeps the transcript),
// shown on its page and in the list with its state in words, edited and
// deleted.
func TestMonitorPages(t *testing.T) {
	pf := testenv.Postfix(t)
	a := newApp(t, appOptions{rootCAs: pf.RootCAs})
	c := a.client()
	c.signUp()
	host, port, _ := net.SplitHostPort(pf.SMTPAddr)
	good := url.Values{"name": {"Test Postfix"}, "kind": {"quit-after"}, "host": {host}, "port": {port}, "rcpt": {testenv.UniqueAddress()},
		"interval": {"5"}, "slow_ms": {"0"}, "cert_days": {"14"}, "enabled": {"on"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range good {
			f[key] = append([]string(nil), vals...)
		}
		f.Set(k, v)
		return f
	}
	bad := []struct {
		name  string
		form  url.Values
		field string
	}{
		{"no name", with("name", ""), "name"},
		{"kind", with("kind", "ping"), "kind"},
		{"host with port", with("host", "127.0.0.1:2525"), "host"},
		{"port", with("port", "70000"), "port"},
		{"recipient", with("rcpt", "not an address"), "rcpt"},
		{"interval 0", with("interval", "0"), "interval"},
		{"interval too long", with("interval", "999999"), "interval"},
		{"slow", with("slow_ms", "-5"), "slow_ms"},
		{"cert days", with("cert_days", "1000"), "cert_days"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.form
			f.Set("_csrf", c.csrf("/monitors/new"))
			r := c.post("/monitors", f)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			if r.testid(t, "summary-"+tt.field).Length() != 1 {
				t.Errorf("no error for field %s:\n%s", tt.field, r.body)
			}
		})
	}
	f := with("_csrf", c.csrf("/monitors/new"))
	r := c.post("/monitors", f)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/monitors/") {
		t.Fatalf("create: %d %s\n%s", r.status, r.header.Get("Location"), r.body)
	}
	page := r.header.Get("Location")
	ms, err := a.store.ListMonitors(context.Background())
	if err != nil || len(ms) != 1 || ms[0].Kind != store.MonitorQuitAfter || ms[0].Options.Port != 2525 || ms[0].State != store.MonitorUnknown {
		t.Fatalf("stored monitors %+v, %v", ms, err)
	}
	id := ms[0].ID
	f = with("_csrf", c.csrf("/monitors/new"))
	if r := c.post("/monitors", f); r.status != http.StatusUnprocessableEntity || r.testid(t, "summary-name").Length() != 1 {
		t.Errorf("duplicate name: %d", r.status)
	}
	if r := c.post(page+"/run", url.Values{"_csrf": {c.csrf(page)}}); r.status != http.StatusSeeOther {
		t.Fatalf("run now: %d\n%s", r.status, r.body)
	}
	runs, err := a.store.MonitorRuns(context.Background(), id, 0, 0)
	if err != nil || len(runs) != 1 || runs[0].State != store.MonitorUp || runs[0].SendID == nil {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	snd, err := a.store.Send(context.Background(), *runs[0].SendID)
	if err != nil || snd.Source != monitor.SourceMonitor || snd.Server != pf.SMTPAddr {
		t.Fatalf("the run's send %+v, %v", snd, err)
	}
	r = c.get(page)
	if r.status != http.StatusOK || r.testid(t, "monitor-state").First().Text() != "up" || r.testid(t, "run-row").Length() != 1 {
		t.Fatalf("monitor page: %d\n%s", r.status, r.body)
	}
	r = c.get("/monitors")
	if r.status != http.StatusOK || r.testid(t, "monitor-state").Text() != "up" || !strings.Contains(r.testid(t, "monitor-row").Text(), "Test Postfix") {
		t.Fatalf("list: %d\n%s", r.status, r.body)
	}
	if r := c.get(page + "/edit"); r.status != http.StatusOK || r.testid(t, "monitor-form").Length() != 1 {
		t.Fatalf("edit page: %d", r.status)
	}
	f = with("interval", "60")
	f.Set("_csrf", c.csrf(page+"/edit"))
	if r := c.post(page, f); r.status != http.StatusSeeOther {
		t.Fatalf("update: %d\n%s", r.status, r.body)
	}
	if m, err := a.store.Monitor(context.Background(), id); err != nil || m.Interval != 60 || m.State != store.MonitorUp {
		t.Fatalf("after update %+v, %v", m, err)
	}
	if r := c.post(page+"/delete", url.Values{"_csrf": {c.csrf(page)}}); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if r := c.get(page); r.status != http.StatusNotFound {
		t.Errorf("deleted monitor's page: %d, want 404", r.status)
	}
}
