package handlers_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// startCheck posts the Check form and returns the check's page path.
func (c *client) startCheck(form url.Values) string {
	c.a.t.Helper()
	form.Set("_csrf", c.csrf("/checks"))
	r := c.post("/checks", form)
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/checks/") {
		c.a.t.Fatalf("POST /checks %v: %d %q\n%s", form, r.status, loc, r.body)
	}
	return loc
}

// waitCheck reloads a check's page until it has finished, failing only
// when no new finding or lookup appeared for testenv.StallLimit.
func (c *client) waitCheck(path string) *response {
	c.a.t.Helper()
	var r *response
	testenv.WaitFor(c.a.t, "the check at "+path+" to end", func() (int, bool) {
		r = c.get(path)
		if r.status != http.StatusOK {
			c.a.t.Fatalf("GET %s: %d\n%s", path, r.status, r.body)
		}
		d := r.doc(c.a.t)
		running, _ := d.Find(`[data-testid="check-status"]`).Attr("data-running")
		return d.Find(`[data-testid="finding"]`).Length() + d.Find(`[data-testid="check-lookups"] li`).Length(), running == "false"
	})
	return r
}

// waitCheckPath waits for the check at path to end and returns path.
func (c *client) waitCheckPath(path string) string {
	c.a.t.Helper()
	c.waitCheck(path)
	return path
}

// findingStatus returns the status of the findings with id on a report
// page, in order.
func findingStatus(t *testing.T, r *response, id string) []string {
	t.Helper()
	var out []string
	r.doc(t).Find(`[data-testid="finding"][data-id="` + id + `"]`).Each(func(_ int, s *goquery.Selection) {
		st, _ := s.Attr("data-status")
		out = append(out, st)
	})
	return out
}

func checkID(t *testing.T, path string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(strings.TrimPrefix(path, "/checks/"), 10, 64)
	if err != nil {
		t.Fatalf("check path %q: %v", path, err)
	}
	return id
}

var checkBackends = []string{store.BackendSQLite, store.BackendPostgres}

// TestCheckServer checks the test Postfix's submission port from the
// Check page: the stored report, the suggested profile and saving it.
func TestCheckServer(t *testing.T) {
	pf := testenv.Postfix(t)
	for _, backend := range checkBackends {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend, rootCAs: pf.RootCAs})
			c := a.client()
			c.signUp()
			page := c.startCheck(url.Values{"target": {pf.SubmissionAddr}})
			r := c.waitCheck(page)
			tests := []struct{ id, status string }{
				{"smtp.connect", "pass"},
				{"tls.starttls", "pass"},
				{"smtp.auth", "info"},
				{"tls.chain", "pass"},
			}
			for _, tt := range tests {
				if got := findingStatus(t, r, tt.id); len(got) != 1 || got[0] != tt.status {
					t.Errorf("finding %s: %v, want [%s]\n%s", tt.id, got, tt.status, r.testid(t, "check-group").Text())
				}
			}
			sugg := strings.Join(strings.Fields(r.testid(t, "suggested-profile").Text()), " ")
			if want := pf.SubmissionAddr + ", TLS starttls, AUTH CRAM-MD5."; sugg != want {
				t.Errorf("suggested profile %q, want %q", sugg, want)
			}
			// Each SMTP conversation is a send in the history (source
			// "check"), linked from its findings.
			link, ok := r.doc(t).Find(`[data-testid="finding"][data-id="tls.starttls"] [data-testid="finding-conversation"]`).Attr("href")
			if !ok {
				t.Fatal("the STARTTLS finding links no conversation")
			}
			conv := c.get(link)
			if conv.status != http.StatusOK || conv.testid(t, "source").Text() != "check" || !strings.Contains(conv.body, "STARTTLS") {
				t.Errorf("conversation %s: %d, source %q", link, conv.status, conv.testid(t, "source").Text())
			}
			hist := c.get("/history?source=check")
			if hist.status != http.StatusOK || !strings.Contains(hist.body, link) {
				t.Errorf("history filtered by source check: %d, no link to %s", hist.status, link)
			}
			// The stored check is read back from the database.
			ck, err := a.store.Check(context.Background(), checkID(t, page))
			if err != nil || ck.Running() || ck.Target != pf.SubmissionAddr || len(ck.Report) == 0 {
				t.Fatalf("stored check %+v, %v", ck, err)
			}
			// Save as profile opens the new profile's edit page.
			resp := c.post(page+"/profile", url.Values{"_csrf": {c.csrf(page)}})
			loc := resp.header.Get("Location")
			if resp.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/profiles/") {
				t.Fatalf("save profile: %d %q\n%s", resp.status, loc, resp.body)
			}
			pid, _ := strconv.ParseInt(strings.TrimPrefix(loc, "/profiles/"), 10, 64)
			p, err := a.store.Profile(context.Background(), pid)
			if err != nil {
				t.Fatal(err)
			}
			host, port, _ := strings.Cut(pf.SubmissionAddr, ":")
			if p.Host != host || strconv.Itoa(p.Port) != port || p.TLSMode != "starttls" || p.AuthMech != "CRAM-MD5" {
				t.Errorf("saved profile %+v", p)
			}
			if got := c.get(loc); got.status != http.StatusOK {
				t.Errorf("profile edit page: %d", got.status)
			}
		})
	}
}

// TestCheckDomainRerunCompare checks check.test through the real DNS tier
// with its MX hosts on a closed port, then on the test Postfix's port,
// re-runs the second, and compares: the SMTP findings change status, the
// DNS ones do not.
func TestCheckDomainRerunCompare(t *testing.T) {
	pf := testenv.Postfix(t)
	d := testenv.DNS(t)
	closed := testenv.ClosedPort(t)
	_, closedPort, _ := strings.Cut(closed, ":")
	_, openPort, _ := strings.Cut(pf.SMTPAddr, ":")
	for _, backend := range checkBackends {
		t.Run(backend, func(t *testing.T) {
			a := newApp(t, appOptions{backend: backend, rootCAs: pf.RootCAs, checkResolver: d.Resolver})
			c := a.client()
			c.signUp()
			first := c.startCheck(url.Values{"target": {"check.test"}, "port": {closedPort}})
			r := c.waitCheck(first)
			if got := findingStatus(t, r, "dns.dnssec"); len(got) != 1 || got[0] != "pass" {
				t.Errorf("dns.dnssec %v, want [pass]", got)
			}
			if got := findingStatus(t, r, "smtp.connect"); len(got) == 0 || got[0] != "fail" {
				t.Errorf("smtp.connect on a closed port %v, want fail", got)
			}
			if r.testid(t, "suggested-profile").Length() != 0 {
				t.Error("a domain check suggests a profile")
			}
			second := c.startCheck(url.Values{"target": {"check.test"}, "port": {openPort}})
			r = c.waitCheck(second)
			if got := findingStatus(t, r, "smtp.connect"); len(got) == 0 || got[0] != "pass" {
				// Say what the report held instead (a DNS lookup that failed,
				// no host found), so a failure here explains itself.
				var all []string
				r.doc(t).Find(`[data-testid="finding"], [data-testid="check-lookups"] li`).Each(func(_ int, s *goquery.Selection) {
					id, _ := s.Attr("data-id")
					st, _ := s.Attr("data-status")
					all = append(all, id+" "+st+": "+strings.Join(strings.Fields(s.Text()), " "))
				})
				t.Errorf("smtp.connect on Postfix %v, want pass; the report:\n%s", got, strings.Join(all, "\n"))
			}
			// Re-run: same target and options, a new check.
			resp := c.post(second+"/rerun", url.Values{"_csrf": {c.csrf(second)}})
			third := resp.header.Get("Location")
			if resp.status != http.StatusSeeOther || third == second || !strings.HasPrefix(third, "/checks/") {
				t.Fatalf("rerun: %d %q", resp.status, third)
			}
			c.waitCheck(third)
			ck, err := a.store.Check(context.Background(), checkID(t, third))
			if err != nil || ck.Target != "check.test" || strconv.Itoa(ck.Options.Port) != openPort {
				t.Fatalf("re-run check %+v, %v; want check.test on port %s", ck, err, openPort)
			}
			// The list, newest first.
			list := c.get("/checks")
			var ids []string
			list.doc(t).Find(`[data-testid="check-row"] a`).Each(func(_ int, s *goquery.Selection) { ids = append(ids, s.Text()) })
			want := []string{"#" + strings.TrimPrefix(third, "/checks/"), "#" + strings.TrimPrefix(second, "/checks/"), "#" + strings.TrimPrefix(first, "/checks/")}
			if strings.Join(ids, " ") != strings.Join(want, " ") {
				t.Errorf("list %v, want %v", ids, want)
			}
			// Compare the closed-port check with the open-port one.
			cmp := c.get("/checks/compare?a=" + strings.TrimPrefix(first, "/checks/") + "&b=" + strings.TrimPrefix(second, "/checks/"))
			if cmp.status != http.StatusOK {
				t.Fatalf("compare: %d\n%s", cmp.status, cmp.body)
			}
			changed := cmp.testid(t, "changed").Find(`[data-id="smtp.connect"]`)
			if changed.Length() == 0 || !strings.Contains(changed.First().Text(), "fail → pass") {
				t.Errorf("compare: smtp.connect not changed fail → pass:\n%s", cmp.testid(t, "changed").Text())
			}
			if cmp.testid(t, "added").Find(`[data-id="smtp.ehlo"]`).Length() == 0 {
				t.Errorf("compare: smtp.ehlo not added:\n%s", cmp.testid(t, "added").Text())
			}
			if n := cmp.doc(t).Find(`[data-testid="change"][data-id="dns.dnssec"]`).Length(); n != 0 {
				t.Errorf("compare lists dns.dnssec, which did not change")
			}
			// Two checks of different targets are not compared.
			other := c.startCheck(url.Values{"target": {pf.SMTPAddr}})
			c.waitCheck(other)
			if got := c.get("/checks/compare?a=" + strings.TrimPrefix(first, "/checks/") + "&b=" + strings.TrimPrefix(other, "/checks/")); got.status != http.StatusUnprocessableEntity {
				t.Errorf("compare of different targets: %d, want 422", got.status)
			}
		})
	}
}

// TestCheckForm: a bad target or port is refused with a clear error on
// its field, and nothing is stored.
func TestCheckForm(t *testing.T) {
	a := newApp(t, appOptions{})
	c := a.client()
	c.signUp()
	tests := []struct {
		name   string
		form   url.Values
		field  string
		wantIn string
	}{
		{"no target", url.Values{"target": {""}}, "target", "no target"},
		{"scheme", url.Values{"target": {"https://example.org"}}, "target", "no scheme"},
		{"address without port", url.Values{"target": {"192.0.2.1"}}, "target", "give a port"},
		{"too long", url.Values{"target": {strings.Repeat("a.", 200) + "org"}}, "target", "the limit is 255"},
		{"port word", url.Values{"target": {"example.org"}, "port": {"smtp"}}, "port", "not a number from 1 to 65535"},
		{"port zero", url.Values{"target": {"example.org"}, "port": {"0"}}, "port", "not a number from 1 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("_csrf", c.csrf("/checks"))
			r := c.post("/checks", tt.form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			if msg := r.testid(t, "error-"+tt.field).Text(); !strings.Contains(msg, tt.wantIn) {
				t.Errorf("error on %s %q, want it to contain %q", tt.field, msg, tt.wantIn)
			}
		})
	}
	if rows, err := a.store.ListChecks(context.Background(), 0, 0); err != nil || len(rows) != 0 {
		t.Errorf("stored checks %v, %v; want none", rows, err)
	}
	for _, path := range []string{"/checks/0", "/checks/999", "/checks/x"} {
		if r := c.get(path); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
}

// TestCheckShutdown: stopping sockmail cancels a running check, which
// stores what it found so far, and the live page's event stream ends.
func TestCheckShutdown(t *testing.T) {
	d := testenv.DNS(t)
	gate := make(chan struct{}) // never opened: the greeting never comes
	t.Cleanup(func() { close(gate) })
	addr := gatedServer(t, gate)
	a := newApp(t, appOptions{checkResolver: d.Resolver})
	c := a.client()
	c.signUp()
	page := c.startCheck(url.Values{"target": {addr}})
	testenv.WaitFor(t, "the check to reach the server", func() (int, bool) {
		r := c.get(page)
		n := r.doc(t).Find(`[data-testid="check-lookups"] li`).Length()
		return n, r.testid(t, "check-live").AttrOr("data-events-url", "") != "" && n >= 3
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ck, err := a.store.Check(context.Background(), checkID(t, page))
	if err != nil || ck.Running() || len(ck.Report) == 0 {
		t.Fatalf("check after shutdown: %+v, %v; want it finished with its report", ck, err)
	}
	r := c.get(page)
	if running, _ := r.testid(t, "check-status").Attr("data-running"); running != "false" {
		t.Errorf("page after shutdown: running %q", running)
	}
	if got := findingStatus(t, r, "smtp.connect"); len(got) != 1 || got[0] != "fail" {
		t.Errorf("smtp.connect after shutdown %v, want [fail]", got)
	}
	// A new check is refused while shutting down.
	resp := c.post("/checks", url.Values{"_csrf": {c.csrf("/checks")}, "target": {addr}})
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("check started during shutdown: %d, want 503", resp.status)
	}
}

// TestCheckShowsServerTextEscaped: a greeting with a bidi override is
// shown escaped on the report page, never raw.
func TestCheckShowsServerTextEscaped(t *testing.T) {
	gate := make(chan struct{})
	close(gate)
	addr := gatedServerAs(t, gate, "evil"+rlo+"gpj.test")
	a := newApp(t, appOptions{checkResolver: testenv.DNS(t).Resolver})
	c := a.client()
	c.signUp()
	r := c.waitCheck(c.startCheck(url.Values{"target": {addr}}))
	if strings.Contains(r.body, rlo) {
		t.Error("the report page carries a raw U+202E")
	}
	greeting := r.doc(t).Find(`[data-testid="finding"][data-id="smtp.greeting"]`).Text()
	if !strings.Contains(greeting, `evil\u202egpj.test`) {
		t.Errorf("greeting finding %q, want the name shown escaped", greeting)
	}
}

// TestCheckConcurrencyBound: five checks of servers that hold their
// greeting: four run at once, the fifth waits for a free slot (it has not
// even begun: no host on its page) and runs once the others end.
func TestCheckConcurrencyBound(t *testing.T) {
	d := testenv.DNS(t)
	gate := make(chan struct{})
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	t.Cleanup(open)
	var accepted atomic.Int32
	a := newApp(t, appOptions{checkResolver: d.Resolver})
	c := a.client()
	c.signUp()
	var pages []string
	for range 5 {
		addr := countingGatedServer(t, gate, &accepted)
		pages = append(pages, c.startCheck(url.Values{"target": {addr}}))
	}
	testenv.WaitFor(t, "four checks to reach their servers", func() (int32, bool) {
		n := accepted.Load()
		return n, n >= 4
	})
	if n := accepted.Load(); n != 4 {
		t.Fatalf("%d checks reached their servers at once, want 4", n)
	}
	waiting := 0
	for _, p := range pages {
		if c.get(p).testid(t, "check-hosts").Length() == 0 {
			waiting++
		}
	}
	if waiting != 1 {
		t.Errorf("%d checks wait for a slot, want 1", waiting)
	}
	open()
	for _, p := range pages {
		r := c.waitCheck(p)
		if got := findingStatus(t, r, "smtp.connect"); len(got) != 1 || got[0] != "pass" {
			t.Errorf("%s: smtp.connect %v, want [pass]", p, got)
		}
	}
	if n := accepted.Load(); n != 5 {
		t.Errorf("%d servers reached, want 5", n)
	}
}

// countingGatedServer is gatedServer counting the connections it accepts.
func countingGatedServer(t *testing.T, gate <-chan struct{}, accepted *atomic.Int32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		accepted.Add(1)
		<-gate
		r := bufio.NewReader(conn)
		_, _ = io.WriteString(conn, "220 gate.test ESMTP\r\n")
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "250 gate.test\r\n")
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "221 bye\r\n")
	}()
	return ln.Addr().String()
}
