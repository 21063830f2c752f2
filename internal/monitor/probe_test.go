package monitor

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sockmail/internal/capture"
	"sockmail/internal/delivery"
	"sockmail/internal/store"
	"sockmail/internal/testenv"
)

// TestProber runs monitors against the real test Postfix: a quit-after
// test to an accepted recipient works (no message sent, the certificate
// noted), a refused recipient or a closed port fails with the reason, a
// full send through a profile delivers a message carrying its token, and
// a check monitor says it cannot run yet. Every run that reached the
// network is kept as a send with source "monitor".
func TestProber(t *testing.T) {
	pf := testenv.Postfix(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host, port, _ := net.SplitHostPort(pf.SMTPAddr)
	portN, _ := strconv.Atoi(port)
	prof := &store.Profile{Name: "postfix", Host: host, Port: portN, TLSMode: "starttls"}
	if err := st.SaveProfile(ctx, prof); err != nil {
		t.Fatal(err)
	}
	closedHost, closedPort, _ := net.SplitHostPort(testenv.ClosedPort(t))
	closedN, _ := strconv.Atoi(closedPort)
	probe := NewProber(ProberDeps{Resolve: delivery.NewResolver(delivery.ResolverDeps{Profiles: st, RootCAs: pf.RootCAs}).Resolve, Sends: st})
	rcpt := testenv.UniqueAddress()
	tests := []struct {
		name    string
		m       store.Monitor
		errHas  string // "" wants success
		cert    bool
		sent    bool // a send is stored
		message bool // a message reaches the Maildir
	}{
		{name: "quit-after up", m: store.Monitor{Name: "qa", Kind: store.MonitorQuitAfter, Target: host, Rcpt: rcpt, Options: store.MonitorOptions{Port: portN}}, cert: true, sent: true},
		{name: "recipient refused", m: store.Monitor{Name: "qa550", Kind: store.MonitorQuitAfter, Target: host, Rcpt: testenv.RejectRecipient550, Options: store.MonitorOptions{Port: portN}}, errHas: "550", cert: true, sent: true},
		{name: "port closed", m: store.Monitor{Name: "closed", Kind: store.MonitorQuitAfter, Target: closedHost, Rcpt: rcpt, Options: store.MonitorOptions{Port: closedN}}, errHas: "connect", sent: true},
		{name: "full send", m: store.Monitor{Name: "full", Kind: store.MonitorSend, Profile: prof.ID, Rcpt: rcpt}, cert: true, sent: true, message: true},
		{name: "check", m: store.Monitor{Name: "chk", Kind: store.MonitorCheck, Target: host}, errHas: "cannot run yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := probe(ctx, tt.m)
			switch {
			case tt.errHas == "" && res.Err != nil:
				t.Fatalf("run failed: %v", res.Err)
			case tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)):
				t.Fatalf("error %v, want one naming %q", res.Err, tt.errHas)
			}
			if tt.errHas == "cannot run yet" && !errors.Is(res.Err, ErrKindUnsupported) {
				t.Errorf("error %v, want ErrKindUnsupported", res.Err)
			}
			if res.Finished.Before(res.Started) || res.Started.IsZero() {
				t.Errorf("run from %v to %v", res.Started, res.Finished)
			}
			if got := !res.CertExpiry.IsZero(); got != tt.cert {
				t.Errorf("certificate expiry %v, want one: %v", res.CertExpiry, tt.cert)
			}
			if (res.SendID != nil) != tt.sent {
				t.Fatalf("send id %v, want one: %v", res.SendID, tt.sent)
			}
			if !tt.sent {
				return
			}
			snd, err := st.Send(ctx, *res.SendID)
			if err != nil || snd.Source != SourceMonitor || len(snd.Events) == 0 {
				t.Fatalf("stored send %+v, %v", snd, err)
			}
			if tt.message {
				token := strings.TrimSuffix(strings.SplitN(snd.Subject, "[", 2)[1], "]")
				testenv.WaitForMessage(t, pf.Maildir, "Token: "+token, testenv.StallLimit)
			}
		})
	}
}

// TestConfirmArrival: a full send to the built-in capture server finds
// its message by token and deletes it; a token that never arrives fails
// once the wait (a fake clock's) is over, naming the token.
func TestConfirmArrival(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cert, err := capture.LoadOrCreateCertificate(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := capture.Listen(capture.Options{Addr: "127.0.0.1:0", Certificate: cert}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Shutdown(ctx)
	resolver := delivery.NewResolver(delivery.ResolverDeps{Profiles: st, Capture: delivery.Capture{Addr: cs.Addr(), Certificate: cs.Certificate()}})
	probe := NewProber(ProberDeps{Resolve: resolver.Resolve, Sends: st, Captured: st})
	res := probe(ctx, store.Monitor{Name: "arrival", Kind: store.MonitorSend, Rcpt: "someone@example.test"})
	if res.Err != nil || res.SendID == nil {
		t.Fatalf("full send to the capture server: %v", res.Err)
	}
	if left, err := st.ListCaptured(ctx, 10, 0); err != nil || len(left) != 0 {
		t.Errorf("captured mail left after the run: %d, %v; want the message deleted", len(left), err)
	}
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	never := make(chan time.Time)
	after := func(d time.Duration) <-chan time.Time {
		if d == time.Minute { // the deadline
			return fired
		}
		return never
	}
	_, err = confirmArrival(ctx, ProberDeps{Captured: st, ArrivalWait: time.Minute, ArrivalPoll: time.Second, After: after}, "0123456789abcdef")
	if err == nil || !strings.Contains(err.Error(), "0123456789abcdef") || !strings.Contains(err.Error(), "did not arrive") {
		t.Errorf("missing message: %v, want it named as not arrived", err)
	}
}
