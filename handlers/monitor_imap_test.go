package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/store"
)

// TestMonitorFormIMAPAndCheck, on both backends: the monitor form stores
// a full send's IMAP mailbox with its password sealed (never in clear,
// never shown again), keeps the password when the field is left empty and
// replaces it when one is typed; it refuses IMAP settings on other kinds
// and incomplete ones, naming the field; and it creates a check monitor
// of a domain without a recipient.
func TestMonitorFormIMAPAndCheck(t *testing.T) {
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend})
			c := a.client()
			c.signUp()
			ctx := context.Background()
			base := url.Values{"name": {"IMAP arrival"}, "kind": {"send"}, "profile": {"0"}, "rcpt": {"monitor@example.test"},
				"interval": {"5"}, "slow_ms": {"0"}, "cert_days": {"14"}, "enabled": {"on"},
				"imap_host": {"localhost"}, "imap_port": {"2143"}, "imap_user": {"monitor@example.test"}, "imap_password": {"clear-Secret-1"},
				"arrival_late_ms": {"30000"}}
			with := func(kv ...string) url.Values {
				f := url.Values{}
				for k, v := range base {
					f[k] = append([]string(nil), v...)
				}
				for i := 0; i+1 < len(kv); i += 2 {
					f.Set(kv[i], kv[i+1])
				}
				return f
			}
			bad := []struct {
				name  string
				form  url.Values
				field string
			}{
				{"imap on a quit-after test", with("kind", "quit-after", "host", "127.0.0.1", "port", "25"), "imap_host"},
				{"imap port", with("imap_port", "99999"), "imap_port"},
				{"imap host with port", with("imap_host", "localhost:143"), "imap_host"},
				{"no imap user", with("imap_user", ""), "imap_user"},
				{"no imap password", with("imap_password", ""), "imap_password"},
				{"arrival threshold", with("arrival_late_ms", "-1"), "arrival_late_ms"},
				{"check target", with("kind", "check", "host", "not a domain", "imap_host", ""), "host"},
			}
			for _, tt := range bad {
				f := tt.form
				f.Set("_csrf", c.csrf("/monitors/new"))
				r := c.post("/monitors", f)
				if r.status != http.StatusUnprocessableEntity || r.testid(t, "summary-"+tt.field).Length() != 1 {
					t.Errorf("%s: status %d, want 422 naming %s:\n%s", tt.name, r.status, tt.field, r.body)
				}
			}
			f := with("_csrf", c.csrf("/monitors/new"))
			r := c.post("/monitors", f)
			if r.status != http.StatusSeeOther {
				t.Fatalf("create: %d\n%s", r.status, r.body)
			}
			page := r.header.Get("Location")
			ms, err := a.store.ListMonitors(ctx)
			if err != nil || len(ms) != 1 || ms[0].Options.IMAP == nil {
				t.Fatalf("stored %+v, %v", ms, err)
			}
			im := ms[0].Options.IMAP
			if im.Host != "localhost" || im.Port != 2143 || im.User != "monitor@example.test" || ms[0].Options.ArrivalLateMS != 30000 ||
				len(im.PasswordEnc) == 0 || bytes.Contains(im.PasswordEnc, []byte("clear-Secret-1")) {
				t.Fatalf("stored IMAP %+v (arrival %d)", im, ms[0].Options.ArrivalLateMS)
			}
			sealed := im.PasswordEnc
			edit := c.get(page + "/edit")
			if edit.status != http.StatusOK || bytes.Contains([]byte(edit.body), []byte("clear-Secret-1")) ||
				edit.testid(t, "input-imap_host").AttrOr("value", "") != "localhost" {
				t.Fatalf("edit page %d shows the password or lacks the host:\n%s", edit.status, edit.body)
			}
			f = with("imap_password", "", "interval", "10")
			f.Set("_csrf", c.csrf(page+"/edit"))
			if r := c.post(page, f); r.status != http.StatusSeeOther {
				t.Fatalf("update keeping the password: %d\n%s", r.status, r.body)
			}
			m, err := a.store.Monitor(ctx, ms[0].ID)
			if err != nil || m.Interval != 10 || m.Options.IMAP == nil || !bytes.Equal(m.Options.IMAP.PasswordEnc, sealed) {
				t.Fatalf("after update with an empty password: %+v, %v; want the sealed password kept", m, err)
			}
			f = with("imap_password", "another-Secret-2")
			f.Set("_csrf", c.csrf(page+"/edit"))
			if r := c.post(page, f); r.status != http.StatusSeeOther {
				t.Fatalf("update with a new password: %d\n%s", r.status, r.body)
			}
			if m, _ := a.store.Monitor(ctx, ms[0].ID); m == nil || m.Options.IMAP == nil || bytes.Equal(m.Options.IMAP.PasswordEnc, sealed) || len(m.Options.IMAP.PasswordEnc) == 0 {
				t.Fatalf("after a new password: %+v; want it sealed anew", m)
			}
			f = url.Values{"name": {"Check"}, "kind": {"check"}, "host": {"check.test"}, "port": {"2525"}, "interval": {"15"}, "enabled": {"on"},
				"_csrf": {c.csrf("/monitors/new")}}
			if r := c.post("/monitors", f); r.status != http.StatusSeeOther {
				t.Fatalf("create a check monitor: %d\n%s", r.status, r.body)
			}
			ms, err = a.store.ListMonitors(ctx)
			if err != nil || len(ms) != 2 || ms[0].Kind != store.MonitorCheck || ms[0].Target != "check.test" || ms[0].Options.Port != 2525 || ms[0].Rcpt != "" {
				t.Fatalf("stored check monitor %+v, %v", ms, err)
			}
			// A stored run shows its check and its arrival time on the
			// monitor's page.
			now := time.Now()
			if _, err := a.store.ClaimMonitor(ctx, ms[0].ID, "page-test", now, time.Minute); err != nil {
				t.Fatal(err)
			}
			ck := &store.Check{Target: "check.test", Started: now}
			if err := a.store.CreateCheck(ctx, ck); err != nil {
				t.Fatal(err)
			}
			arrival := 1500 * time.Millisecond
			run := &store.MonitorRun{MonitorID: ms[0].ID, Started: now, Finished: now.Add(2 * time.Second), State: store.MonitorUp, CheckID: &ck.ID, Arrival: &arrival}
			if err := a.store.FinishMonitorRun(ctx, "page-test", run); err != nil {
				t.Fatal(err)
			}
			pr := c.get("/monitors/" + strconv.FormatInt(ms[0].ID, 10))
			if pr.status != http.StatusOK || pr.testid(t, "run-check").AttrOr("href", "") != "/checks/"+strconv.FormatInt(ck.ID, 10) ||
				!strings.Contains(pr.testid(t, "run-arrival").Text(), "1500 ms") {
				t.Fatalf("monitor page %d lacks the run's check link or arrival:\n%s", pr.status, pr.body)
			}
		})
	}
}
