package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"sockmail/handlers"
	"sockmail/internal/alert"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/monitor"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// testMonitors wires the monitor pages as serve does: a real prober
// (through the same resolver as sends), a scheduler that the tests
// drive with "run now" only, and alerts recorded after each run (their
// webhooks are not delivered: no alert worker runs).
func testMonitors(t testing.TB, st *store.Store, capInfo handlers.CaptureServer, roots *x509.CertPool) *handlers.Monitors {
	t.Helper()
	resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Sends: st,
		Capture: delivery.Capture{Addr: capInfo.Addr, Certificate: capInfo.Certificate}, RootCAs: roots})
	// The worker only records alerts here (AfterRun); it never delivers
	// a webhook, so its opener (another key than the handler's) is
	// never used.
	key := make([]byte, crypt.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	opener, err := crypt.New(key)
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := alert.New(alert.Deps{Store: st, Owner: "test", BaseURL: "http://sockmail.test", Opener: opener})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := monitor.New(monitor.Deps{Store: st, Owner: "test", Probe: monitor.NewProber(monitor.ProberDeps{Resolve: resolver.Resolve, Sends: st, Captured: st}),
		AfterRun: alerts.AfterRun})
	if err != nil {
		t.Fatal(err)
	}
	return &handlers.Monitors{Store: st, Runner: sched, Alerts: st}
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

// TestMonitorAlertSettings: the alert fieldset refuses bad input naming
// each field; good settings are stored (a webhook secret made when left
// empty) and shown again on the edit page; a monitor of a closed port run
// once is down and its page lists the alert on each channel with its
// status.
func TestMonitorAlertSettings(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	host, port, _ := net.SplitHostPort(testenv.ClosedPort(t))
	good := url.Values{"name": {"Closed port"}, "kind": {"quit-after"}, "host": {host}, "port": {port}, "rcpt": {"a@example.test"},
		"interval": {"5"}, "slow_ms": {"0"}, "cert_days": {"0"}, "enabled": {"on"},
		"alert_email_to": {"oncall@example.test, boss@example.test"}, "alert_email_profile": {"0"}, "alert_email_from": {""},
		"alert_webhook_url": {"https://hooks.example.test/sockmail"}, "alert_webhook_secret": {""}, "alert_repeat": {"30"},
		"alert_quiet_start": {"22:00"}, "alert_quiet_end": {"07:00"}, "alert_quiet_tz": {"Europe/Paris"}, "alert_on_degraded": {"on"}}
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
		{"recipient", with("alert_email_to", "oncall@example.test, not an address"), "alert_email_to"},
		{"too many recipients", with("alert_email_to", strings.Repeat("x@example.test,", 11)), "alert_email_to"},
		{"profile", with("alert_email_profile", "x"), "alert_email_profile"},
		{"sender", with("alert_email_from", "Someone <a@example.test>"), "alert_email_from"},
		{"webhook scheme", with("alert_webhook_url", "ftp://hooks.example.test/"), "alert_webhook_url"},
		{"webhook without host", with("alert_webhook_url", "https:///x"), "alert_webhook_url"},
		{"secret on two lines", with("alert_webhook_secret", "a\r\nb"), "alert_webhook_secret"},
		{"repeat", with("alert_repeat", "-1"), "alert_repeat"},
		{"quiet start", with("alert_quiet_start", "25:00"), "alert_quiet_start"},
		{"quiet end missing", with("alert_quiet_end", ""), "alert_quiet_end"},
		{"time zone", with("alert_quiet_tz", "Mars/Olympus"), "alert_quiet_tz"},
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
	if ms, err := a.store.ListMonitors(context.Background()); err != nil || len(ms) != 0 {
		t.Fatalf("monitors stored from bad forms: %+v, %v", ms, err)
	}
	f := with("_csrf", c.csrf("/monitors/new"))
	r := c.post("/monitors", f)
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.status, r.body)
	}
	page := r.header.Get("Location")
	ms, err := a.store.ListMonitors(context.Background())
	if err != nil || len(ms) != 1 {
		t.Fatalf("monitors %+v, %v", ms, err)
	}
	set, err := a.store.AlertSettings(context.Background(), ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.EmailTo, []string{"oncall@example.test", "boss@example.test"}) || set.WebhookURL != "https://hooks.example.test/sockmail" ||
		len(set.WebhookSecretEnc) == 0 || set.RepeatMinutes != 30 || set.QuietStart != 22*60 || set.QuietEnd != 7*60 ||
		set.QuietTZ != "Europe/Paris" || !set.OnDegraded || set.EmailProfile != 0 {
		t.Fatalf("stored alert settings %+v", set)
	}
	edit := c.get(page + "/edit")
	made, _ := edit.testid(t, "input-alert_webhook_secret").Attr("value")
	if len(made) != 64 || bytes.Contains(set.WebhookSecretEnc, []byte(made)) {
		t.Errorf("edit page shows secret %q, want the 64 hex digits made, stored sealed (stored %x)", made, set.WebhookSecretEnc)
	}
	if v, _ := edit.testid(t, "input-alert_quiet_start").Attr("value"); v != "22:00" {
		t.Errorf("edit page shows quiet start %q, want 22:00", v)
	}
	// Quiet hours off, so that the alert goes out at once.
	f = with("alert_quiet_start", "")
	f.Set("alert_quiet_end", "")
	f.Set("alert_webhook_secret", "kept-secret")
	f.Set("_csrf", c.csrf(page+"/edit"))
	if r := c.post(page, f); r.status != http.StatusSeeOther {
		t.Fatalf("update: %d\n%s", r.status, r.body)
	}
	if set, err := a.store.AlertSettings(context.Background(), ms[0].ID); err != nil || bytes.Contains(set.WebhookSecretEnc, []byte("kept-secret")) ||
		len(set.WebhookSecretEnc) == 0 || set.QuietStart != set.QuietEnd {
		t.Fatalf("updated alert settings %+v, %v: want the new secret stored sealed", set, err)
	}
	if v, _ := c.get(page+"/edit").testid(t, "input-alert_webhook_secret").Attr("value"); v != "kept-secret" {
		t.Errorf("edit page shows secret %q after the update, want kept-secret", v)
	}
	if r := c.post(page+"/run", url.Values{"_csrf": {c.csrf(page)}}); r.status != http.StatusSeeOther {
		t.Fatalf("run now: %d\n%s", r.status, r.body)
	}
	r = c.get(page)
	if r.status != http.StatusOK || r.testid(t, "monitor-state").First().Text() != "down" {
		t.Fatalf("monitor page: %d\n%s", r.status, r.body)
	}
	if s := r.testid(t, "alert-summary").Text(); !strings.Contains(s, "email to oncall@example.test, boss@example.test") || !strings.Contains(s, "every 30 minutes") {
		t.Errorf("alert summary %q", s)
	}
	rows := r.testid(t, "alert-row")
	if rows.Length() != 2 {
		t.Fatalf("%d alert rows, want 2 (email and webhook)\n%s", rows.Length(), r.body)
	}
	text := rows.Text()
	for _, want := range []string{"down (unknown → down)", "email", "oncall@example.test", "webhook", "https://hooks.example.test/sockmail", "pending"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert rows %q lack %q", text, want)
		}
	}
}
