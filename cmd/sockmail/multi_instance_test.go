package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"sockmail/internal/testenv"
)

// instance is a sockmail serve process started from the built binary.
type instance struct {
	name        string
	url         string
	captureAddr string
	cmd         *exec.Cmd
	stderr      *serveBuffer
	done        chan error
	stopped     bool
}

// buildBinary builds the real sockmail binary into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("go not found: %v", err)
		}
		t.Skipf("go not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sockmail")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// environ is the process environment with the SOCKMAIL_ variables of env
// (and no others from the test's own environment).
func environ(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKMAIL_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startInstance starts "sockmail serve" and waits for its URL.
func startInstance(t *testing.T, bin, name string, env map[string]string) *instance {
	t.Helper()
	in := &instance{name: name, stderr: &serveBuffer{}, done: make(chan error, 1)}
	in.cmd = exec.Command(bin, "serve")
	in.cmd.Env = environ(env)
	in.cmd.Stderr = in.stderr
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls, captures := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		reURL := regexp.MustCompile(`running at (http://\S+)`)
		reCap := regexp.MustCompile(`capture SMTP server at (\S+)`)
		for sc.Scan() {
			if m := reCap.FindStringSubmatch(sc.Text()); m != nil {
				captures <- m[1]
			}
			if m := reURL.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { in.done <- in.cmd.Wait() }()
	t.Cleanup(func() { in.stop(t) })
	select {
	case in.url = <-urls:
	case err := <-in.done:
		t.Fatalf("%s exited: %v\n%s", name, err, in.stderr.String())
	case <-time.After(testenv.StallLimit):
		t.Fatalf("%s printed no URL\n%s", name, in.stderr.String())
	}
	// The capture line follows the URL line.
	if env["SOCKMAIL_CAPTURE_ADDR"] != "off" {
		select {
		case in.captureAddr = <-captures:
		case <-time.After(testenv.StallLimit):
			t.Fatalf("%s printed no capture address", name)
		}
	}
	return in
}

// stop ends the process with SIGINT, as a terminal would, and checks that
// it stopped cleanly.
func (in *instance) stop(t *testing.T) {
	if in.stopped {
		return
	}
	in.stopped = true
	_ = in.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("%s: exit %v\n%s", in.name, err, in.stderr.String())
		} else if !strings.Contains(in.stderr.String(), "sockmail stopped") {
			t.Errorf("%s: no clean stop\n%s", in.name, in.stderr.String())
		}
	case <-time.After(testenv.StallLimit):
		_ = in.cmd.Process.Kill()
		<-in.done
		t.Errorf("%s did not stop in time", in.name)
	}
}

// browser is an HTTP client with a cookie jar. Cookies are not kept per
// port, so instances on two ports of 127.0.0.1 see the same cookie, as
// two instances behind a load balancer would.
type browser struct {
	t   *testing.T
	hc  *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, hc: &http.Client{
		Jar: jar, Timeout: testenv.StallLimit,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	location string
	body     string
	doc      *goquery.Document
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	req.Header.Set("Accept", "text/html")
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
	return &page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body), doc: doc}
}

func (b *browser) get(u string) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// post posts a form as a same-origin browser would.
func (b *browser) post(u string, form url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// csrf returns the CSRF token of the first form of a page.
func (b *browser) csrf(u string) string {
	b.t.Helper()
	p := b.get(u)
	tok, _ := p.doc.Find(`input[name="_csrf"]`).First().Attr("value")
	if tok == "" {
		b.t.Fatalf("no CSRF token on %s (%d)", u, p.status)
	}
	return tok
}

func (b *browser) signIn(base, email, password string) *page {
	b.t.Helper()
	tok := b.csrf(base + "/signin")
	return b.post(base+"/signin", url.Values{"_csrf": {tok}, "email": {email}, "password": {password}})
}

func (p *page) testid(id string) *goquery.Selection {
	return p.doc.Find(`[data-testid="` + id + `"]`)
}

// TestTwoInstancesSharePostgres builds the real binary and runs two
// sockmail processes on one PostgreSQL database: a sign-in through one is
// a sign-in through the other, a send made through one is in the history
// of the other, a sign-out on one revokes the cookie on both, and failed
// sign-ins on both add up to one throttle.
func TestTwoInstancesSharePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts two servers")
	}
	ti := newTwoInstances(t)
	a, b := ti.a, ti.b

	// Sign in through A.
	br := newBrowser(t)
	if p := br.signIn(a.url, ti.admin, ti.password); p.status != http.StatusSeeOther || p.location != "/compose" {
		t.Fatalf("sign-in on A: %d %s", p.status, p.location)
	}
	id, queueID := sendThrough(t, br, a)
	historyHasSend(t, br, b, id, queueID)
	ti.cliSendShows(br)
	signOutEverywhere(t, br, b, a, id)
	ti.throttleAddsUp()
	a.stop(t)
	b.stop(t)
}

// twoInstances is the set-up of TestTwoInstancesSharePostgres: the
// binary, one account, and instances A and B on one database.
type twoInstances struct {
	t               *testing.T
	bin             string
	common          map[string]string
	admin, password string
	a, b            *instance
}

func newTwoInstances(t *testing.T) *twoInstances {
	dsn := testenv.Postgres(t)
	bin := buildBinary(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ti := &twoInstances{t: t, bin: bin, admin: "admin@example.test", password: "two-instances-password", common: map[string]string{
		"SOCKMAIL_DATABASE": dsn, "SOCKMAIL_SECRET_KEY": base64.StdEncoding.EncodeToString(key),
		"SOCKMAIL_LISTEN": "127.0.0.1:0", "SOCKMAIL_CAPTURE_ADDR": "127.0.0.1:0",
	}}
	add := exec.Command(bin, "user", "add", "-email", ti.admin)
	add.Env = environ(ti.with(map[string]string{"SOCKMAIL_DATA": t.TempDir(), "SOCKMAIL_PASSWORD": ti.password}))
	if out, err := add.CombinedOutput(); err != nil || !strings.Contains(string(out), "added") {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	ti.a = startInstance(t, bin, "A", ti.with(map[string]string{"SOCKMAIL_DATA": t.TempDir()}))
	ti.b = startInstance(t, bin, "B", ti.with(map[string]string{"SOCKMAIL_DATA": t.TempDir()}))
	if ti.a.url == ti.b.url {
		t.Fatalf("both instances at %s", ti.a.url)
	}
	return ti
}

// with returns the common environment plus extra.
func (ti *twoInstances) with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range ti.common {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// sendThrough sends a message through in to its capture server, waits for
// the result page to finish, and returns the send's id and queue id.
func sendThrough(t *testing.T, br *browser, in *instance) (id, queueID string) {
	t.Helper()
	tok := br.csrf(in.url + "/compose")
	p := br.post(in.url+"/compose", url.Values{
		"_csrf": {tok}, "server": {"builtin"}, "tls": {"starttls"}, "verify": {"on"},
		"from": {"Sender <sender@example.test>"}, "to": {"rcpt@example.test"},
		"subject": {"through A, seen from B"}, "text": {"Hello from instance A.\n"},
	})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/sends/") {
		t.Fatalf("compose on %s: %d %s\n%s", in.name, p.status, p.location, p.body)
	}
	id = strings.TrimPrefix(p.location, "/sends/")
	testenv.WaitUntil(t, "send "+id+" to finish on "+in.name, func() bool {
		p = br.get(in.url + "/sends/" + id)
		running, _ := p.testid("transcript").Attr("data-running")
		return running == "false"
	})
	if got := strings.TrimSpace(p.testid("status").Text()); got != "sent" {
		t.Fatalf("send through %s: %q\n%s", in.name, got, in.stderr.String())
	}
	return id, strings.TrimSpace(p.testid("queue-id").Text())
}

// historyHasSend checks that in's history lists, finds and shows send id
// made through the other instance, with the same cookie.
func historyHasSend(t *testing.T, br *browser, in *instance, id, queueID string) {
	t.Helper()
	p := br.get(in.url + "/history")
	if p.status != http.StatusOK {
		t.Fatalf("history on %s: %d %s", in.name, p.status, p.location)
	}
	if row := p.doc.Find(`[data-testid="history-row"][data-id="` + id + `"]`); row.Length() != 1 || !strings.Contains(row.Text(), "through A, seen from B") {
		t.Errorf("%s's history lacks send %s:\n%s", in.name, id, p.testid("history-list").Text())
	}
	p = br.get(in.url + "/history?q=" + url.QueryEscape(queueID))
	if ids := p.doc.Find(`[data-testid="history-row"]`); ids.Length() != 1 {
		t.Errorf("search on %s for queue id %q: %d rows", in.name, queueID, ids.Length())
	}
	p = br.get(in.url + "/history/" + id)
	if p.status != http.StatusOK || strings.TrimSpace(p.testid("status").Text()) != "sent" ||
		strings.TrimSpace(p.testid("queue-id").Text()) != queueID || p.testid("event").Length() < 10 || p.testid("timing-part").Length() < 5 {
		t.Errorf("detail on %s: %d, status %q, %d lines", in.name, p.status, p.testid("status").Text(), p.testid("event").Length())
	}
}

// cliSendShows checks that "sockmail send --store" stores into the
// history B shows.
func (ti *twoInstances) cliSendShows(br *browser) {
	t := ti.t
	cli := exec.Command(ti.bin, "send", "--server", ti.a.captureAddr, "--tls", "none", "--from", "cli@example.test",
		"--to", "rcpt@example.test", "--subject", "from the CLI", "--store")
	cli.Env = environ(ti.with(nil))
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "stored as send #") {
		t.Fatalf("send --store: %v\n%s", err, out)
	}
	p := br.get(ti.b.url + "/history?source=cli")
	if rows := p.testid("history-row"); rows.Length() != 1 || !strings.Contains(rows.Text(), "from the CLI") {
		t.Errorf("CLI send on B: %q", rows.Text())
	}
}

// signOutEverywhere signs out on one instance and checks that the signed-in
// session's cookie is refused on the other, also when replayed.
func signOutEverywhere(t *testing.T, br *browser, on, other *instance, id string) {
	t.Helper()
	signedIn := br.jar.Cookies(mustURL(t, other.url))
	tok := br.csrf(on.url + "/history")
	if p := br.post(on.url+"/signout", url.Values{"_csrf": {tok}}); p.status != http.StatusSeeOther || p.location != "/signin" {
		t.Fatalf("sign-out on %s: %d %s", on.name, p.status, p.location)
	}
	if p := br.get(other.url + "/history"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/signin") {
		t.Errorf("%s after sign-out on %s: %d %s", other.name, on.name, p.status, p.location)
	}
	replay := newBrowser(t)
	replay.jar.SetCookies(mustURL(t, other.url), signedIn)
	if p := replay.get(other.url + "/history/" + id); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/signin") {
		t.Errorf("replayed cookie on %s after sign-out on %s: %d %s", other.name, on.name, p.status, p.location)
	}
}

// throttleAddsUp checks that failed sign-ins counted on A and B add up
// to the throttle (3 tries at once per account and browser, then growing
// delays): the right password from that new browser is then refused on
// both.
func (ti *twoInstances) throttleAddsUp() {
	t := ti.t
	a, b := ti.a.url, ti.b.url
	th := newBrowser(t)
	var last time.Time
	for i, base := range []string{a, b, a} {
		if p := th.signIn(base, ti.admin, "wrong-password-"+string(rune('a'+i))); p.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, p.status)
		}
		last = time.Now()
	}
	for _, base := range []string{b, a} {
		p := th.signIn(base, ti.admin, ti.password)
		// The servers run on the real clock: 15 s after the last failure
		// the next try is due (on a machine that slow, nothing to check).
		if p.status != http.StatusTooManyRequests && time.Since(last) < 15*time.Second {
			t.Errorf("right password after 3 failures on two instances, on %s: %d", base, p.status)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
