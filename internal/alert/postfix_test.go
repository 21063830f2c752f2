package alert

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sockmail/internal/capture"
	"sockmail/internal/crypt"
	"sockmail/internal/delivery"
	"sockmail/internal/monitor"
	"sockmail/internal/outbox"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// forwarder is a TCP forwarder to one address that the test closes (the
// port then refuses connections, and the connections through it are
// cut) and opens again on the same port.
type forwarder struct {
	t    *testing.T
	to   string
	addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newForwarder(t *testing.T, to string) *forwarder {
	f := &forwarder{t: t, to: to, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	f.open()
	t.Cleanup(func() { f.close(); f.wg.Wait() })
	return f
}

// open listens (again) on the forwarder's port.
func (f *forwarder) open() {
	f.t.Helper()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatalf("forwarder: listen on %s: %v", f.addr, err)
	}
	f.mu.Lock()
	f.ln, f.addr = ln, ln.Addr().String()
	f.mu.Unlock()
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.relay(c) })
		}
	})
}

func (f *forwarder) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.ln == nil {
		return false
	}
	if on {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *forwarder) relay(c net.Conn) {
	defer c.Close()
	if !f.track(c, true) {
		return
	}
	defer f.track(c, false)
	up, err := net.DialTimeout("tcp", f.to, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !f.track(up, true) {
		return
	}
	defer f.track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// close stops listening and cuts the connections through it: the port
// refuses connections until open.
func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
}

// TestAlertsWhenPostfixCloses is the proof: a monitor sends
// through the test Postfix's submission port (STARTTLS, AUTH) behind a
// forwarder the test controls and confirms the message's arrival over
// IMAP in the test Dovecot's mailbox, run by the real scheduler every
// (injected-clock) minute; its alerts go by email through the outbox to
// the built-in capture server and to a webhook receiver that checks the
// signature. Up: nothing. Forwarder closed (the Postfix port closed):
// down, exactly one alert email captured and one signed webhook
// received, and no more on the next run while still down. Forwarder
// back: resolved, one email and one webhook more.
func TestAlertsWhenPostfixCloses(t *testing.T) {
	pf := testenv.Postfix(t)
	im := testenv.IMAP(t)
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := &clock{now: t0}
		fwd := newForwarder(t, pf.SubmissionAddr)

		key := make([]byte, crypt.KeySize)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		box, err := crypt.New(key)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := box.Seal([]byte(pf.Password))
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(fwd.addr)
		portN, _ := strconv.Atoi(port)
		prof := &store.Profile{Name: "postfix submission", Host: host, Port: portN, TLSMode: "starttls", AuthMech: "PLAIN",
			Username: pf.User, PasswordEnc: sealed}
		if err := st.SaveProfile(ctx, prof); err != nil {
			t.Fatal(err)
		}

		dir := t.TempDir()
		cert, err := capture.LoadOrCreateCertificate(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cs, err := capture.Listen(capture.Options{Addr: "127.0.0.1:0", Certificate: cert}, st)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Shutdown(context.Background())
		resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Opener: box, RootCAs: pf.RootCAs,
			Capture: delivery.Capture{Addr: cs.Addr(), Certificate: cs.Certificate()}})

		// The outbox worker delivers the alert emails (to the capture server).
		ob, err := outbox.New(outbox.Deps{Store: st, Profiles: resolver.Profile, Now: c.Now, Owner: "e2e-outbox"})
		if err != nil {
			t.Fatal(err)
		}
		var workers sync.WaitGroup
		defer workers.Wait()
		defer cancel()
		workers.Go(func() {
			if err := ob.Run(ctx); err != nil {
				t.Errorf("outbox worker: %v", err)
			}
		})

		rcv := newReceiver(t, "e2e-secret", c)
		alerts, err := New(Deps{Store: st, Opener: testBox(t), BaseURL: "http://sockmail.test", Owner: "e2e-alerts", Now: c.Now, KickOutbox: ob.Kick})
		if err != nil {
			t.Fatal(err)
		}
		// The monitor confirms arrival over IMAP in the test Dovecot's
		// mailbox, which Postfix delivers to.
		imapSealed, err := box.Seal([]byte(im.Password))
		if err != nil {
			t.Fatal(err)
		}
		_, imapPort, _ := net.SplitHostPort(im.Addr)
		imapPortN, _ := strconv.Atoi(imapPort)
		m := &store.Monitor{Name: "postfix submission", Kind: store.MonitorSend, Profile: prof.ID, Rcpt: im.Address,
			Options: store.MonitorOptions{MailFrom: pf.User + "@" + pf.Domain,
				IMAP: &store.MonitorIMAP{Host: "localhost", Port: imapPortN, User: im.User, PasswordEnc: imapSealed}},
			Interval: 1, Enabled: true, Created: t0}
		if err := st.CreateMonitor(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: m.ID, EmailTo: []string{"oncall@example.test"},
			WebhookURL: rcv.srv.URL + "/hook", WebhookSecretEnc: seal(t, "e2e-secret"), RepeatMinutes: 60}); err != nil {
			t.Fatal(err)
		}

		ticks, claimed, finished := make(chan time.Time), make(chan int, 10), make(chan int64, 10)
		sched, err := monitor.New(monitor.Deps{Store: st, Owner: "e2e-scheduler", Ticks: ticks, Now: c.Now, AfterRun: alerts.AfterRun,
			Probe: monitor.NewProber(monitor.ProberDeps{Resolve: resolver.Resolve, Sends: st, Now: c.Now, Opener: box, RootCAs: im.RootCAs,
				ArrivalWait: testenv.StallLimit, ArrivalPoll: 100 * time.Millisecond, Timeout: 2 * testenv.StallLimit}),
			Claimed: func(n int) { claimed <- n }, Finished: func(id int64) { finished <- id }})
		if err != nil {
			t.Fatal(err)
		}
		workers.Go(func() {
			if err := sched.Run(ctx); err != nil {
				t.Errorf("scheduler: %v", err)
			}
		})

		// run waits for one run of the monitor (the first look runs at
		// once; later ones after a tick a minute on), then lets the
		// alert worker pass.
		run := func(at time.Time, want store.MonitorState) {
			t.Helper()
			if !at.Equal(t0) {
				c.Set(at)
				ticks <- at
			}
			if n := <-claimed; n != 1 {
				t.Fatalf("at %v: the scheduler started %d runs, want 1", at, n)
			}
			<-finished
			alerts.Pass(ctx)
			got, err := st.Monitor(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != want {
				t.Fatalf("at %v: monitor %s (%s), want %s", at, got.State, got.Reason, want)
			}
		}
		// delivered waits until the outbox has sent every alert email and
		// returns the subjects captured.
		delivered := func(want int) []string {
			t.Helper()
			testenv.WaitFor(t, "alert emails delivered to the capture server", func() (int, bool) {
				items, err := st.ListOutbox(ctx, store.OutboxFilter{})
				if err != nil {
					t.Fatal(err)
				}
				sent := 0
				for _, it := range items {
					if it.Status == store.OutboxSent {
						sent++
					}
				}
				return sent, sent == len(items) && len(items) >= want
			})
			// Their history records say what they are: alert emails
			// (one at least for each item sent), no contact message.
			for source, atLeast := range map[string]int{delivery.SourceAlert: want, delivery.SourceContact: 0} {
				page, err := st.ListSends(ctx, store.SendFilter{Source: source})
				if err != nil {
					t.Fatal(err)
				}
				if page.Total < atLeast || source == delivery.SourceContact && page.Total > 0 {
					t.Errorf("%d history records of source %q, want %d", page.Total, source, atLeast)
				}
			}
			list, err := st.ListCaptured(ctx, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			var subjects []string
			for i := len(list) - 1; i >= 0; i-- {
				subjects = append(subjects, list[i].Subject)
				if !slices.Equal(list[i].Rcpts, []string{"oncall@example.test"}) {
					t.Errorf("alert email to %v", list[i].Rcpts)
				}
			}
			return subjects
		}
		const subjDown, subjResolved = "[sockmail] monitor postfix submission is DOWN", "[sockmail] monitor postfix submission is up again (resolved)"

		run(t0, store.MonitorUp)
		if runs, err := st.MonitorRuns(ctx, m.ID, 1, 0); err != nil || len(runs) != 1 || runs[0].Arrival == nil {
			t.Fatalf("the up run: %+v, %v; want its arrival over IMAP recorded", runs, err)
		}
		if got := rcv.events(); len(got) != 0 {
			t.Fatalf("webhooks while up: %v", got)
		}

		fwd.close() // the Postfix port closed
		run(t0.Add(time.Minute), store.MonitorDown)
		if got := rcv.events(); !slices.Equal(got, []string{"down"}) {
			t.Fatalf("webhooks after the port closed: %v, want one down alert", got)
		}
		if got := delivered(1); !slices.Equal(got, []string{subjDown}) {
			t.Fatalf("emails captured after the port closed: %q, want one %q", got, subjDown)
		}
		run(t0.Add(2*time.Minute), store.MonitorDown)
		if got := rcv.events(); !slices.Equal(got, []string{"down"}) {
			t.Fatalf("webhooks on the next run still down: %v, want still the one", got)
		}
		if got := delivered(1); !slices.Equal(got, []string{subjDown}) {
			t.Fatalf("emails captured on the next run still down: %q, want still the one", got)
		}

		fwd.open() // the port is back
		run(t0.Add(3*time.Minute), store.MonitorUp)
		if got := rcv.events(); !slices.Equal(got, []string{"down", "resolved"}) {
			t.Fatalf("webhooks after the port came back: %v, want down and resolved", got)
		}
		if got := delivered(2); !slices.Equal(got, []string{subjDown, subjResolved}) {
			t.Fatalf("emails captured after the port came back: %q, want %q and %q", got, subjDown, subjResolved)
		}
		if req, bad := rcv.counts(); req != 2 || bad != 0 {
			t.Errorf("%d webhook requests, %d badly signed; want 2 and 0", req, bad)
		}
		down := rcv.got[0].payload
		if !strings.Contains(down.Reason, "connect") || down.Run == nil || down.Run.SendID == nil ||
			down.SendURL != "http://sockmail.test/sends/"+strconv.FormatInt(*down.Run.SendID, 10) {
			t.Errorf("down payload %+v: want the refused connection as the reason and the run's send", down)
		}
		hist := alertsOf(t, st, m.ID)
		want := []summary{{"down", store.AlertEmail, store.AlertSent}, {"down", store.AlertWebhook, store.AlertSent},
			{"resolved", store.AlertEmail, store.AlertSent}, {"resolved", store.AlertWebhook, store.AlertSent}}
		if !slices.Equal(summarize(hist), want) {
			t.Errorf("alert history %+v, want %+v", summarize(hist), want)
		}
		cancel()
		workers.Wait()
		if err := ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}
