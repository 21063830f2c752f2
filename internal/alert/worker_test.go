package alert

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sockmail/internal/crypt"
	"sockmail/internal/store"
)

// summary is an alert reduced to what the tests compare.
type summary struct {
	Event   string
	Channel store.AlertChannel
	Status  store.AlertStatus
}

func summarize(list []store.MonitorAlert) []summary {
	out := make([]summary, len(list))
	for i, a := range list {
		out[i] = summary{a.Event, a.Channel, a.Status}
	}
	return out
}

// outboxSubjects returns the subjects of the outbox items, oldest first.
func outboxSubjects(t *testing.T, st *store.Store) []string {
	t.Helper()
	items, err := st.ListOutbox(context.Background(), store.OutboxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(items) - 1; i >= 0; i-- {
		out = append(out, items[i].Subject)
	}
	return out
}

// TestRepeatWhileDown: a monitor with an email and a webhook channel and
// a 30-minute repeat: its first run (up) sends nothing; down sends one
// alert on each channel (the email as an outbox item, the webhook signed
// and delivered by a pass), even when two instances observe the change
// at once; staying down sends nothing until 30 minutes have passed, then
// a repeat (found by a pass's sweep, with no run to trigger it); up
// again sends "resolved".
func TestRepeatWhileDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c := &clock{now: t0}
		rcv := newReceiver(t, "hook-secret", c)
		m := newMonitor(t, st, "repeat")
		if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: m.ID, EmailTo: []string{"admin@example.test"},
			WebhookURL: rcv.srv.URL, WebhookSecretEnc: seal(t, "hook-secret"), RepeatMinutes: 30}); err != nil {
			t.Fatal(err)
		}
		var kicks atomic.Int32
		w := newWorker(t, st, c, &kicks)
		w2 := newWorker(t, st, c, &kicks)
		step := func(at time.Time, state store.MonitorState) {
			t.Helper()
			c.Set(at)
			if state != "" {
				run := setState(t, st, m, state, "connect: connection refused", at)
				var wg sync.WaitGroup
				for _, wk := range []*Worker{w, w2} {
					wg.Go(func() {
						if err := wk.Observe(ctx, m.ID, run); err != nil {
							t.Errorf("Observe: %v", err)
						}
					})
				}
				wg.Wait()
			}
			w.Pass(ctx)
		}
		steps := []struct {
			name   string
			at     time.Time
			state  store.MonitorState // "" : no run, a pass only
			events []string           // all webhook events received so far
		}{
			{name: "first run up", at: t0, state: store.MonitorUp},
			{name: "down", at: t0.Add(time.Minute), state: store.MonitorDown, events: []string{"down"}},
			{name: "still down", at: t0.Add(10 * time.Minute), state: store.MonitorDown, events: []string{"down"}},
			{name: "repeat not due", at: t0.Add(30*time.Minute + 59*time.Second), events: []string{"down"}},
			{name: "repeat due (sweep)", at: t0.Add(31 * time.Minute), events: []string{"down", "repeat"}},
			{name: "still down after the repeat", at: t0.Add(40 * time.Minute), state: store.MonitorDown, events: []string{"down", "repeat"}},
			{name: "up again", at: t0.Add(45 * time.Minute), state: store.MonitorUp, events: []string{"down", "repeat", "resolved"}},
			{name: "stays up", at: t0.Add(90 * time.Minute), state: store.MonitorUp, events: []string{"down", "repeat", "resolved"}},
		}
		for _, s := range steps {
			step(s.at, s.state)
			if got := rcv.events(); !slices.Equal(got, s.events) {
				t.Fatalf("%s: webhooks received %v, want %v", s.name, got, s.events)
			}
		}
		if req, bad := rcv.counts(); req != 3 || bad != 0 {
			t.Errorf("%d webhook requests, %d badly signed; want 3 and 0", req, bad)
		}
		subjects := outboxSubjects(t, st)
		wantSubj := []string{"is DOWN", "is still DOWN", "is up again (resolved)"}
		if len(subjects) != len(wantSubj) {
			t.Fatalf("outbox subjects %q, want %d emails", subjects, len(wantSubj))
		}
		for i, s := range subjects {
			if !strings.HasPrefix(s, "[sockmail] monitor repeat ") || !strings.HasSuffix(s, wantSubj[i]) {
				t.Errorf("email %d subject %q, want one ending %q", i, s, wantSubj[i])
			}
		}
		if n := kicks.Load(); n != 3 {
			t.Errorf("outbox kicked %d times, want 3 (once per email)", n)
		}
		want := []summary{{"down", store.AlertEmail, store.AlertQueued}, {"down", store.AlertWebhook, store.AlertSent},
			{"repeat", store.AlertEmail, store.AlertQueued}, {"repeat", store.AlertWebhook, store.AlertSent},
			{"resolved", store.AlertEmail, store.AlertQueued}, {"resolved", store.AlertWebhook, store.AlertSent}}
		got := alertsOf(t, st, m.ID)
		if !slices.Equal(summarize(got), want) {
			t.Fatalf("alerts %+v, want %+v", summarize(got), want)
		}
		first := rcv.got[0].payload
		if first.Monitor.Name != "repeat" || first.OldState != "up" || first.NewState != "down" || first.Reason != "connect: connection refused" ||
			first.Run == nil || first.Run.ID == 0 || first.Monitor.URL != "https://sockmail.example/monitors/"+strconv.FormatInt(m.ID, 10) || first.EventID != got[0].EventID {
			t.Errorf("down payload %+v", first)
		}
		if r := rcv.got[2].payload; r.OldState != "down" || r.NewState != "up" || r.Reason != "" {
			t.Errorf("resolved payload %+v", r)
		}
	})
}

// TestQuietHours: quiet hours from 22:00 to 07:00 (Paris). A monitor
// going down at night has its alerts held (no outbox item, no webhook)
// until 07:00, then both go out; a monitor that goes down and recovers
// during the night has both alerts dropped and nothing is sent.
func TestQuietHours(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		paris, err := time.LoadLocation("Europe/Paris")
		if err != nil {
			t.Fatal(err)
		}
		night := time.Date(2026, 12, 6, 23, 0, 0, 0, paris)
		morning := time.Date(2026, 12, 7, 7, 0, 0, 0, paris)
		c := &clock{now: night}
		rcv := newReceiver(t, "q", c)
		held, gone := newMonitor(t, st, "held"), newMonitor(t, st, "recovered")
		for _, m := range []*store.Monitor{held, gone} {
			if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: m.ID, EmailTo: []string{"admin@example.test"},
				WebhookURL: rcv.srv.URL + "/" + m.Name, WebhookSecretEnc: seal(t, "q"), RepeatMinutes: 30,
				QuietStart: 22 * 60, QuietEnd: 7 * 60, QuietTZ: "Europe/Paris"}); err != nil {
				t.Fatal(err)
			}
		}
		w := newWorker(t, st, c, nil)
		at := func(d time.Duration, m *store.Monitor, state store.MonitorState) {
			t.Helper()
			c.Set(night.Add(d))
			if m != nil {
				run := setState(t, st, m, state, "down", night.Add(d))
				if err := w.Observe(ctx, m.ID, run); err != nil {
					t.Fatal(err)
				}
			}
			w.Pass(ctx)
		}
		at(-2*time.Hour, held, store.MonitorUp)
		at(-2*time.Hour, gone, store.MonitorUp)
		at(0, held, store.MonitorDown)
		at(0, gone, store.MonitorDown)
		at(time.Hour, gone, store.MonitorUp)
		at(2*time.Hour, nil, "") // a repeat of "held" is due but one is held already
		if got := rcv.events(); len(got) != 0 {
			t.Fatalf("webhooks during quiet hours: %v", got)
		}
		if got := outboxSubjects(t, st); len(got) != 0 {
			t.Fatalf("emails queued during quiet hours: %q", got)
		}
		wantHeld := []summary{{"down", store.AlertEmail, store.AlertHeld}, {"down", store.AlertWebhook, store.AlertHeld}}
		if got := summarize(alertsOf(t, st, held.ID)); !slices.Equal(got, wantHeld) {
			t.Fatalf("alerts of the down monitor at night %+v, want %+v", got, wantHeld)
		}
		wantGone := []summary{{"down", store.AlertEmail, store.AlertDropped}, {"down", store.AlertWebhook, store.AlertDropped},
			{"resolved", store.AlertEmail, store.AlertDropped}, {"resolved", store.AlertWebhook, store.AlertDropped}}
		if got := summarize(alertsOf(t, st, gone.ID)); !slices.Equal(got, wantGone) {
			t.Fatalf("alerts of the recovered monitor %+v, want %+v", got, wantGone)
		}
		c.Set(morning.Add(-time.Second))
		w.Pass(ctx)
		if got := rcv.events(); len(got) != 0 {
			t.Fatalf("webhooks a second before quiet hours end: %v", got)
		}
		c.Set(morning)
		w.Pass(ctx)
		if got := rcv.events(); !slices.Equal(got, []string{"down"}) {
			t.Fatalf("webhooks when quiet hours end: %v, want the held down alert", got)
		}
		if got := outboxSubjects(t, st); len(got) != 1 || !strings.HasSuffix(got[0], "monitor held is DOWN") {
			t.Fatalf("emails when quiet hours end: %q, want the held down alert", got)
		}
		if got := summarize(alertsOf(t, st, held.ID)); got[0].Status != store.AlertQueued || got[1].Status != store.AlertSent {
			t.Errorf("released alerts %+v", got)
		}
		if p := rcv.got[0].payload; p.Monitor.Name != "held" || p.Time != night.UTC().Format(time.RFC3339) {
			t.Errorf("released payload %+v: want the monitor held, raised at %v", p, night.UTC())
		}
	})
}

// TestWebhookRetry: a receiver answering 500 twice then 204 gets the
// alert three times, each signed, at the backoff's times (30 s, then
// 60 s later); the alert shows its attempts and, until it succeeds, the
// last error. A receiver that never accepts fails the alert once the
// maximum age has passed.
func TestWebhookRetry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c := &clock{now: t0}
		flaky := newReceiver(t, "k", c, 500, 500)
		broken := newReceiver(t, "k", c, 503, 503, 503, 503, 503, 503)
		mf, mb := newMonitor(t, st, "flaky"), newMonitor(t, st, "broken")
		for _, x := range []struct {
			m   *store.Monitor
			url string
		}{{mf, flaky.srv.URL}, {mb, broken.srv.URL}} {
			if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: x.m.ID, WebhookURL: x.url, WebhookSecretEnc: seal(t, "k")}); err != nil {
				t.Fatal(err)
			}
			setState(t, st, x.m, store.MonitorDown, "refused", t0)
		}
		w, err := New(Deps{Store: st, Opener: testBox(t), Owner: "retry", Now: c.Now, Rand: func() float64 { return 0 }, MaxAge: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			at                   time.Duration
			flakyReq, brokenReq  int
			flakyStatus          store.AlertStatus
			flakyErr             string
			brokenStatus         store.AlertStatus
			flakyAttempts, bAtts int
		}{
			{at: 0, flakyReq: 1, brokenReq: 1, flakyStatus: store.AlertPending, flakyErr: "HTTP 500", brokenStatus: store.AlertPending, flakyAttempts: 1, bAtts: 1},
			{at: 29 * time.Second, flakyReq: 1, brokenReq: 1, flakyStatus: store.AlertPending, flakyErr: "HTTP 500", brokenStatus: store.AlertPending, flakyAttempts: 1, bAtts: 1},
			{at: 30 * time.Second, flakyReq: 2, brokenReq: 2, flakyStatus: store.AlertPending, flakyErr: "HTTP 500", brokenStatus: store.AlertPending, flakyAttempts: 2, bAtts: 2},
			{at: 89 * time.Second, flakyReq: 2, brokenReq: 2, flakyStatus: store.AlertPending, flakyErr: "HTTP 500", brokenStatus: store.AlertPending, flakyAttempts: 2, bAtts: 2},
			{at: 90 * time.Second, flakyReq: 3, brokenReq: 3, flakyStatus: store.AlertSent, flakyErr: "", brokenStatus: store.AlertFailed, flakyAttempts: 3, bAtts: 3},
			{at: time.Hour, flakyReq: 3, brokenReq: 3, flakyStatus: store.AlertSent, flakyErr: "", brokenStatus: store.AlertFailed, flakyAttempts: 3, bAtts: 3},
		}
		for _, s := range steps {
			c.Set(t0.Add(s.at))
			if s.at == 0 {
				for _, m := range []*store.Monitor{mf, mb} {
					if err := w.Observe(ctx, m.ID, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			w.Pass(ctx)
			fr, fbad := flaky.counts()
			br, bbad := broken.counts()
			if fr != s.flakyReq || br != s.brokenReq || fbad+bbad != 0 {
				t.Fatalf("at %v: requests %d and %d (%d badly signed), want %d and %d", s.at, fr, br, fbad+bbad, s.flakyReq, s.brokenReq)
			}
			fa, ba := alertsOf(t, st, mf.ID), alertsOf(t, st, mb.ID)
			if len(fa) != 1 || len(ba) != 1 {
				t.Fatalf("at %v: %d and %d alerts, want one each", s.at, len(fa), len(ba))
			}
			if fa[0].Status != s.flakyStatus || fa[0].Attempts != s.flakyAttempts || !strings.HasPrefix(fa[0].LastError, s.flakyErr) ||
				(s.flakyErr == "") != (fa[0].LastError == "") {
				t.Fatalf("at %v: flaky alert %s, %d attempts, error %q; want %s, %d, %q", s.at, fa[0].Status, fa[0].Attempts, fa[0].LastError,
					s.flakyStatus, s.flakyAttempts, s.flakyErr)
			}
			if ba[0].Status != s.brokenStatus || ba[0].Attempts != s.bAtts || !strings.HasPrefix(ba[0].LastError, "HTTP 503") {
				t.Fatalf("at %v: broken alert %s, %d attempts, error %q; want %s, %d", s.at, ba[0].Status, ba[0].Attempts, ba[0].LastError, s.brokenStatus, s.bAtts)
			}
		}
		if got := flaky.events(); !slices.Equal(got, []string{"down"}) {
			t.Errorf("flaky receiver accepted %v, want one down alert", got)
		}
		if !strings.Contains(alertsOf(t, st, mb.ID)[0].LastError, "given up after 3 attempts") {
			t.Errorf("failed alert's error %q does not say it was given up", alertsOf(t, st, mb.ID)[0].LastError)
		}
	})
}

// TestTwoInstances: two workers (two instances on one database) pass at
// the same moment, when quiet hours end with ten monitors' alerts held:
// each email reaches the outbox once and each webhook is received once.
func TestTwoInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		night := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
		c := &clock{now: night}
		rcv := newReceiver(t, "two", c)
		const n = 10
		for i := range n {
			m := newMonitor(t, st, "m"+strconv.Itoa(i))
			if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: m.ID, EmailTo: []string{"admin@example.test"},
				WebhookURL: rcv.srv.URL, WebhookSecretEnc: seal(t, "two"), QuietStart: 22 * 60, QuietEnd: 6 * 60}); err != nil {
				t.Fatal(err)
			}
			setState(t, st, m, store.MonitorDown, "down", night)
		}
		a, err := New(Deps{Store: st, Opener: testBox(t), Owner: "instance-a", Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Deps{Store: st, Opener: testBox(t), Owner: "instance-b", Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, w := range []*Worker{a, b} {
			wg.Go(func() { w.Pass(ctx) })
		}
		wg.Wait()
		if got := rcv.events(); len(got) != 0 {
			t.Fatalf("webhooks in quiet hours: %v", got)
		}
		c.Set(night.Add(7 * time.Hour))
		for _, w := range []*Worker{a, b} {
			wg.Go(func() { w.Pass(ctx) })
		}
		wg.Wait()
		if got := rcv.events(); len(got) != n {
			t.Errorf("%d webhooks received, want %d (one per monitor)", len(got), n)
		}
		if got := outboxSubjects(t, st); len(got) != n {
			t.Errorf("%d alert emails in the outbox, want %d", len(got), n)
		}
		ids := map[string]bool{}
		rcv.mu.Lock()
		for _, g := range rcv.got {
			ids[g.payload.EventID] = true
		}
		rcv.mu.Unlock()
		if len(ids) != n {
			t.Errorf("%d distinct alerts received, want %d", len(ids), n)
		}
	})
}

// TestWebhookSecretUnreadable: a secret sealed under another key (the
// instance key changed) is not used: nothing is posted, and the alert
// says why and stays pending (saving the secret again fixes it).
func TestWebhookSecretUnreadable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c := &clock{now: t0}
		rcv := newReceiver(t, "s", c)
		m := newMonitor(t, st, "rekeyed")
		other, err := crypt.New(bytes.Repeat([]byte{'o'}, crypt.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := other.Seal([]byte("s"))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SaveAlertSettings(ctx, &store.AlertSettings{MonitorID: m.ID, WebhookURL: rcv.srv.URL, WebhookSecretEnc: sealed}); err != nil {
			t.Fatal(err)
		}
		setState(t, st, m, store.MonitorDown, "refused", t0)
		newWorker(t, st, c, nil).Pass(ctx)
		if req, _ := rcv.counts(); req != 0 {
			t.Errorf("%d requests posted with an unreadable secret, want none", req)
		}
		got := alertsOf(t, st, m.ID)
		if len(got) != 1 || got[0].Status != store.AlertPending || !strings.Contains(got[0].LastError, "cannot be opened") {
			t.Fatalf("alerts %+v, want one pending saying the secret cannot be opened", got)
		}
	})
}

// TestSaveAlertSettingsBounds: settings out of bounds are refused naming
// the setting, and settings of a monitor that does not exist are not
// found.
func TestSaveAlertSettingsBounds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		m := newMonitor(t, st, "bounds")
		tests := []struct {
			name string
			a    store.AlertSettings
			want error
			has  string
		}{
			{name: "webhook without secret", a: store.AlertSettings{MonitorID: m.ID, WebhookURL: "https://x.test/"}, want: store.ErrInvalidAlertSettings, has: "secret"},
			{name: "time zone", a: store.AlertSettings{MonitorID: m.ID, QuietTZ: "Mars/Olympus"}, want: store.ErrInvalidAlertSettings, has: "time zone"},
			{name: "quiet start", a: store.AlertSettings{MonitorID: m.ID, QuietStart: 24 * 60}, want: store.ErrInvalidAlertSettings, has: "quiet"},
			{name: "repeat", a: store.AlertSettings{MonitorID: m.ID, RepeatMinutes: -1}, want: store.ErrInvalidAlertSettings, has: "repeat"},
			{name: "recipients", a: store.AlertSettings{MonitorID: m.ID, EmailTo: slices.Repeat([]string{"a@example.test"}, 11)}, want: store.ErrInvalidAlertSettings, has: "recipients"},
			{name: "no such monitor", a: store.AlertSettings{MonitorID: m.ID + 100}, want: store.ErrNotFound},
			{name: "good", a: store.AlertSettings{MonitorID: m.ID, EmailTo: []string{"a@example.test"}, QuietStart: 60, QuietEnd: 120, QuietTZ: "Asia/Tokyo"}},
		}
		for _, tt := range tests {
			err := st.SaveAlertSettings(ctx, &tt.a)
			if tt.want == nil && err != nil || tt.want != nil && (!errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.has)) {
				t.Errorf("%s: %v, want %v naming %q", tt.name, err, tt.want, tt.has)
			}
		}
		got, err := st.AlertSettings(ctx, m.ID)
		if err != nil || got.QuietTZ != "Asia/Tokyo" || got.QuietStart != 60 || got.AlertedState != store.MonitorUnknown {
			t.Fatalf("stored %+v, %v", got, err)
		}
	})
}
