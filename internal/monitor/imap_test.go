package monitor

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"

	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
	"sockmail/smtp"
)

// forBackends runs fn on a fresh store of each backend: an SQLite file
// and a PostgreSQL database.
func forBackends(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "m.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			fn(t, st)
		})
	}
}

func sealWith(t *testing.T, box *crypt.Box, s string) []byte {
	t.Helper()
	b, err := box.Seal([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func portOf(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, n
}

// tokenOf returns the token of a monitor's stored send (its Subject ends
// in "[token]").
func tokenOf(t *testing.T, st *store.Store, sendID *int64) string {
	t.Helper()
	if sendID == nil {
		t.Fatal("the run has no send")
	}
	snd, err := st.Send(context.Background(), *sendID)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.LastIndex(snd.Subject, "["), strings.LastIndex(snd.Subject, "]")
	if i < 0 || j < i {
		t.Fatalf("subject %q carries no token", snd.Subject)
	}
	return snd.Subject[i+1 : j]
}

// imapHolds reports whether the test mailbox holds a message with token,
// looking both over IMAP (a session of the test's own) and in the
// Maildir's files.
func imapHolds(t *testing.T, im *testenv.IMAPServer, token string) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", im.TLSAddr, im.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(testenv.StallLimit))
	c, err := client.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	if err := c.Login(im.User, im.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", true); err != nil {
		t.Fatal(err)
	}
	crit := imap.NewSearchCriteria()
	crit.Header.Add(MonitorHeader, token)
	uids, err := c.UidSearch(crit)
	if err != nil {
		t.Fatal(err)
	}
	inFiles := false
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(im.Maildir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(im.Maildir, sub, e.Name()))
			if err == nil && bytes.Contains(b, []byte(MonitorHeader+": "+token)) {
				inFiles = true
			}
		}
	}
	return len(uids) > 0 || inFiles
}

// TestMonitorIMAPArrival is issue 15's proof of arrival over IMAP, on both
// backends: a full-send monitor sends through the test Postfix's
// submission port (STARTTLS, then AUTH with the profile's sealed
// password) to the address Postfix delivers into the test Dovecot's
// mailbox, every interval of an injected clock, and each run finds its
// message over IMAP (STARTTLS, sealed password), records the arrival
// time, is up, and leaves the message deleted from the mailbox.
func TestMonitorIMAPArrival(t *testing.T) {
	pf := testenv.Postfix(t)
	im := testenv.IMAP(t)
	box, err := crypt.New(bytes.Repeat([]byte{7}, crypt.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	forBackends(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		subHost, subPort := portOf(t, pf.SubmissionAddr)
		prof := &store.Profile{Name: "submission", Host: subHost, Port: subPort, TLSMode: "starttls", AuthMech: "auto",
			Username: pf.User, PasswordEnc: sealWith(t, box, pf.Password)}
		if err := st.SaveProfile(ctx, prof); err != nil {
			t.Fatal(err)
		}
		_, imapPort := portOf(t, im.Addr)
		m := &store.Monitor{Name: "arrival over IMAP", Kind: store.MonitorSend, Profile: prof.ID, Rcpt: im.Address, Interval: 1, Enabled: true,
			Options: store.MonitorOptions{ArrivalLateMS: int(testenv.StallLimit.Milliseconds()),
				IMAP: &store.MonitorIMAP{Host: "localhost", Port: imapPort, User: im.User, PasswordEnc: sealWith(t, box, im.Password)}}}
		start := time.Now()
		m.Created = start
		if err := st.CreateMonitor(ctx, m); err != nil {
			t.Fatal(err)
		}
		resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Opener: box, RootCAs: pf.RootCAs})
		probe := NewProber(ProberDeps{Resolve: resolver.Resolve, Sends: st, Opener: box, RootCAs: im.RootCAs,
			ArrivalWait: testenv.StallLimit, ArrivalPoll: 100 * time.Millisecond, Timeout: 2 * testenv.StallLimit})
		clk := &clock{now: start}
		ticks, claimed, finished := make(chan time.Time), make(chan int, 10), make(chan int64, 10)
		sched, err := New(Deps{Store: st, Probe: probe, Owner: "imap-test", Ticks: ticks, Now: clk.Now,
			Claimed: func(n int) { claimed <- n }, Finished: func(id int64) { finished <- id }})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sched.Run(runCtx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		const runs = 3
		at := start
		for i := range runs {
			if i > 0 {
				// The next interval on the injected clock (runs are due a
				// minute after they started, by the real clock).
				at = time.Now().Add(time.Duration(m.Interval) * time.Minute)
				clk.Set(at)
				ticks <- at
			}
			if n := <-claimed; n != 1 {
				t.Fatalf("look %d at %v started %d runs, want 1", i, at, n)
			}
			if id := <-finished; id != m.ID {
				t.Fatalf("finished monitor %d, want %d", id, m.ID)
			}
			got, err := st.MonitorRuns(ctx, m.ID, 1, 0)
			if err != nil || len(got) != 1 {
				t.Fatalf("run %d: %+v, %v", i, got, err)
			}
			run := got[0]
			if run.State != store.MonitorUp || run.Reason != "" {
				t.Fatalf("run %d: %s %q, want up", i, run.State, run.Reason)
			}
			if run.Arrival == nil || *run.Arrival <= 0 || *run.Arrival > run.Finished.Sub(run.Started) {
				t.Fatalf("run %d: arrival %v, want a time within the run's %v", i, run.Arrival, run.Finished.Sub(run.Started))
			}
			t.Logf("run %d: arrival %v, run %v", i, *run.Arrival, run.Finished.Sub(run.Started))
			token := tokenOf(t, st, run.SendID)
			snd, err := st.Send(ctx, *run.SendID)
			if err != nil || snd.Server != pf.SubmissionAddr {
				t.Errorf("run %d: send %+v, %v; want it through %s", i, snd, err, pf.SubmissionAddr)
			}
			if imapHolds(t, im, token) {
				t.Errorf("run %d: the message with token %s is still in the mailbox", i, token)
			}
		}
		mon, err := st.Monitor(ctx, m.ID)
		if err != nil || mon.State != store.MonitorUp {
			t.Fatalf("monitor after %d runs: %+v, %v", runs, mon, err)
		}
	})
}

// TestConfirmIMAP finds a message over implicit TLS too, and fails with
// the reason when the password is wrong, when the server is not the one
// the certificate names, or when the message never arrives (a fake
// clock's wait).
func TestConfirmIMAP(t *testing.T) {
	pf := testenv.Postfix(t)
	im := testenv.IMAP(t)
	box, err := crypt.New(bytes.Repeat([]byte{9}, crypt.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	host, tlsPort := portOf(t, im.TLSAddr)
	_, plainPort := portOf(t, im.Addr)
	never := make(chan time.Time)
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	afterFired := func(d time.Duration) <-chan time.Time {
		if d == time.Minute {
			return fired
		}
		return never
	}
	tests := []struct {
		name    string
		im      store.MonitorIMAP
		deliver bool
		after   func(time.Duration) <-chan time.Time
		errHas  string
	}{
		{name: "implicit TLS", im: store.MonitorIMAP{Host: "localhost", Port: tlsPort, ImplicitTLS: true, User: im.User, PasswordEnc: sealWith(t, box, im.Password)}, deliver: true},
		{name: "wrong password", im: store.MonitorIMAP{Host: "localhost", Port: plainPort, User: im.User, PasswordEnc: sealWith(t, box, "wrong")}, errHas: "IMAP login"},
		{name: "certificate for another name", im: store.MonitorIMAP{Host: "imap.elsewhere.test", Port: tlsPort, ImplicitTLS: true, User: im.User, PasswordEnc: sealWith(t, box, im.Password)}, errHas: "certificate"},
		{name: "never arrives", im: store.MonitorIMAP{Host: "localhost", Port: tlsPort, ImplicitTLS: true, User: im.User, PasswordEnc: sealWith(t, box, im.Password)}, after: afterFired, errHas: "did not arrive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := testenv.UniqueToken()
			if tt.deliver {
				msg := "From: <" + pf.User + ">\r\nTo: <" + im.Address + ">\r\nSubject: t\r\n" + MonitorHeader + ": " + token + "\r\n\r\nhello\r\n"
				cfg := smtp.Config{Addr: pf.SMTPAddr, TLS: smtp.TLSStartTLS, TLSConfig: pf.TLSConfig()}
				if _, err := smtp.SendMail(context.Background(), cfg, smtp.Envelope{From: pf.User, To: []string{im.Address}}, bytes.NewBufferString(msg), smtp.SendOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			d := ProberDeps{Opener: box, RootCAs: im.RootCAs, Now: time.Now, ArrivalWait: time.Minute, ArrivalPoll: 100 * time.Millisecond, After: time.After}
			if tt.after != nil {
				d.After = tt.after
			}
			imCopy := tt.im
			ctx, cancel := context.WithTimeout(context.Background(), 2*testenv.StallLimit)
			defer cancel()
			var found time.Time
			var err error
			if tt.im.Host != "localhost" {
				// The name does not resolve: dial the server's address, but
				// verify its certificate for the other name.
				bx, merr := mailboxOf(d, &imCopy)
				if merr != nil {
					t.Fatal(merr)
				}
				bx.addr = net.JoinHostPort(host, strconv.Itoa(tlsPort))
				_, err = dialIMAP(ctx, bx, imapCommandTimeout)
			} else {
				found, err = confirmIMAP(ctx, d, &imCopy, token)
			}
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("confirm: %v", err)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Fatalf("error %v, want one naming %q", err, tt.errHas)
			}
			if tt.errHas == "" {
				if found.IsZero() {
					t.Error("found time is zero")
				}
				if imapHolds(t, im, token) {
					t.Errorf("message %s left in the mailbox", token)
				}
			}
		})
	}
}
