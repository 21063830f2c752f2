package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sockmail/internal/outbox"
	"sockmail/internal/safetext"
	"sockmail/internal/store"
)

// Store is the part of *store.Store a Worker uses.
type Store interface {
	AlertSettings(ctx context.Context, monitorID int64) (*store.AlertSettings, error)
	ListAlertSettings(ctx context.Context) ([]store.AlertSettings, error)
	Monitor(ctx context.Context, id int64) (*store.Monitor, error)
	MonitorRuns(ctx context.Context, monitorID int64, limit int, before int64) ([]store.MonitorRun, error)
	RecordMonitorAlert(ctx context.Context, r *store.AlertRecord) (int, error)
	ReleaseHeldAlerts(ctx context.Context, now time.Time) (int, error)
	ClaimWebhookAlerts(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.MonitorAlert, error)
	FinishWebhookAlert(ctx context.Context, id int64, owner string, status store.AlertStatus, now, next time.Time, lastErr string) error
}

// Defaults of Deps.
const (
	DefaultPoll        = 15 * time.Second
	DefaultLease       = 2 * time.Minute
	DefaultHTTPTimeout = 15 * time.Second
	DefaultBackoffBase = 30 * time.Second
	DefaultBackoffMax  = time.Hour
	DefaultMaxAge      = 72 * time.Hour
	// claimBatch webhooks are claimed at a time; maxBatches per pass.
	claimBatch = 8
	maxBatches = 16
	// maxErrorBody bytes of a refusing receiver's answer are kept.
	maxErrorBody = 300
	storeTimeout = 30 * time.Second
)

// Opener opens sealed webhook secrets. *crypt.Box is one.
type Opener interface {
	Open(ciphertext []byte) ([]byte, error)
}

// Deps is what a Worker needs.
type Deps struct {
	Store Store
	// Opener opens the webhook secrets (sealed in the store).
	Opener Opener
	// BaseURL is the web app's public URL, for the links in alerts.
	BaseURL string
	// Owner names this instance in leases (outbox.DefaultOwner()).
	Owner string
	// Now returns the time; time.Now if nil.
	Now func() time.Time
	// Client posts webhooks; one with DefaultHTTPTimeout that follows
	// no redirect if nil.
	Client *http.Client
	// Lease is how long a claimed webhook stays this instance's
	// (DefaultLease); an attempt is bounded to 4/5 of it.
	Lease time.Duration
	// Backoff is the retry schedule of a refused webhook
	// (DefaultBackoffBase, DefaultBackoffMax); MaxAge is how long after
	// the alert it is retried (DefaultMaxAge), then it fails.
	Backoff outbox.Backoff
	MaxAge  time.Duration
	// Poll is how often the worker sweeps, releases held alerts and
	// delivers webhooks (DefaultPoll); unused when Ticks is set.
	Poll time.Duration
	// Ticks, if set, replaces the poll ticker (tests drive it).
	Ticks <-chan time.Time
	// KickOutbox, if set, is called when an alert email was queued
	// (the outbox worker's Kick).
	KickOutbox func()
	// Logger logs failures; slog.Default() if nil.
	Logger *slog.Logger
	// Rand returns a number in [0, 1) for the jitter; math/rand/v2 if nil.
	Rand func() float64
	// Passed, if set, is called after each pass of Run (tests wait on it).
	Passed func()
}

// Worker records monitors' alerts (Observe, and a sweep in Run) and
// delivers their webhooks. Create it with New.
type Worker struct {
	d    Deps
	kick chan struct{}
}

// New checks d, fills its defaults and returns a Worker.
func New(d Deps) (*Worker, error) {
	if d.Store == nil || d.Opener == nil || d.Owner == "" {
		return nil, errors.New("alert: a worker needs a store, an opener and an owner name")
	}
	if d.Lease < 0 || d.Poll < 0 || d.MaxAge < 0 {
		return nil, fmt.Errorf("alert: lease %v, poll %v or max age %v is negative", d.Lease, d.Poll, d.MaxAge)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Lease == 0 {
		d.Lease = DefaultLease
	}
	if d.Poll == 0 {
		d.Poll = DefaultPoll
	}
	if d.MaxAge == 0 {
		d.MaxAge = DefaultMaxAge
	}
	if d.Backoff.Base <= 0 {
		d.Backoff.Base = DefaultBackoffBase
	}
	if d.Backoff.Max <= 0 {
		d.Backoff.Max = DefaultBackoffMax
	}
	d.Backoff.Max = max(d.Backoff.Max, d.Backoff.Base)
	if d.Client == nil {
		d.Client = &http.Client{Timeout: DefaultHTTPTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	return &Worker{d: d, kick: make(chan struct{}, 1)}, nil
}

// AfterRun is the monitor scheduler's hook (monitor.Deps.AfterRun): it
// records the alert the run calls for, if any. A failure is logged; the
// next sweep of Run finds the change again.
func (w *Worker) AfterRun(ctx context.Context, m store.Monitor, run *store.MonitorRun) {
	if err := w.Observe(ctx, m.ID, run); err != nil && ctx.Err() == nil {
		w.d.Logger.Error("alert: record", "monitor", m.ID, "err", err)
	}
}

// Observe compares a monitor's state with the state last alerted about
// and records the alert that calls for (Decide), on each of its
// channels: at once, or held until its quiet hours end. run is the run
// that caused it (nil: the monitor's latest). A monitor without alert
// settings has no alerts; another instance recording the same change
// first is not an error.
func (w *Worker) Observe(ctx context.Context, monitorID int64, run *store.MonitorRun) error {
	a, err := w.d.Store.AlertSettings(ctx, monitorID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("alert: monitor %d: %w", monitorID, err)
	}
	m, err := w.d.Store.Monitor(ctx, monitorID)
	if err != nil {
		return fmt.Errorf("alert: monitor %d: %w", monitorID, err)
	}
	now := w.d.Now()
	dec := Decide(*a, m.State, now)
	if !dec.Update {
		return nil
	}
	rec := &store.AlertRecord{MonitorID: m.ID, FromState: a.AlertedState, FromAt: a.AlertedAt, ToState: dec.State, ToAt: now}
	emails := false
	if dec.Event != "" {
		if run == nil {
			runs, err := w.d.Store.MonitorRuns(ctx, m.ID, 1, 0)
			if err != nil {
				return fmt.Errorf("alert: monitor %d: %w", monitorID, err)
			}
			if len(runs) > 0 {
				run = &runs[0]
			}
		}
		if rec.Alerts, emails, err = w.alerts(*a, *m, dec, run, now); err != nil {
			return err
		}
		rec.ResolveHeld = dec.Event == EventResolved
		rec.SkipIfHeld = dec.Event == EventRepeat
	}
	n, err := w.d.Store.RecordMonitorAlert(ctx, rec)
	if errors.Is(err, store.ErrAlertRaced) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	if n > 0 {
		if emails && w.d.KickOutbox != nil {
			w.d.KickOutbox()
		}
		w.Kick()
	}
	return nil
}

// alerts builds the alert of each channel; emails says whether one is
// an email queued now.
func (w *Worker) alerts(a store.AlertSettings, m store.Monitor, dec Decision, run *store.MonitorRun, now time.Time) ([]store.MonitorAlert, bool, error) {
	id, err := newEventID()
	if err != nil {
		return nil, false, err
	}
	old := a.AlertedState
	if dec.Event == EventRepeat {
		old = dec.State
	}
	e := event{id: id, name: dec.Event, m: m, old: old, new: dec.State, reason: m.Reason, run: run, at: now, baseURL: w.d.BaseURL}
	if dec.Event == EventResolved {
		e.reason = ""
	}
	q, err := QuietOf(a)
	if err != nil {
		return nil, false, err
	}
	until, quiet := q.Until(now)
	next := now
	if quiet {
		next = until
	}
	base := store.MonitorAlert{EventID: id, CreatedAt: now, Event: dec.Event, OldState: e.old, NewState: e.new, Reason: e.reason,
		NextAttemptAt: next}
	if run != nil && run.ID != 0 {
		rid := run.ID
		base.RunID = &rid
	}
	var out []store.MonitorAlert
	emails := false
	if len(a.EmailTo) > 0 {
		from := a.EmailFrom
		if from == "" {
			from = DefaultFrom
		}
		em := base
		em.Channel, em.Rcpts, em.ProfileID, em.MailFrom, em.Payload = store.AlertEmail, a.EmailTo, a.EmailProfile, from, e.email(from, a.EmailTo)
		em.Status = store.AlertQueued
		if quiet {
			em.Status = store.AlertHeld
		} else {
			emails = true
		}
		out = append(out, em)
	}
	if a.WebhookURL != "" {
		body, err := e.payload()
		if err != nil {
			return nil, false, err
		}
		wh := base
		wh.Channel, wh.URL, wh.Payload, wh.Status = store.AlertWebhook, a.WebhookURL, body, store.AlertPending
		if quiet {
			wh.Status = store.AlertHeld
		}
		out = append(out, wh)
	}
	return out, emails, nil
}

// Kick makes Run pass now instead of at its next poll. It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run passes at each poll (or tick) and kick until ctx ends, then
// returns nil. A pass sweeps every monitor with alert settings (a change
// whose alert was not recorded, a repeat that is due), releases the
// alerts whose quiet hours are over and delivers the webhooks due.
func (w *Worker) Run(ctx context.Context) error {
	ticks := w.d.Ticks
	if ticks == nil {
		t := time.NewTicker(w.d.Poll)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		case <-w.kick:
		}
		w.Pass(ctx)
		if w.d.Passed != nil {
			w.d.Passed()
		}
	}
}

// Pass runs one pass of Run; failures are logged.
func (w *Worker) Pass(ctx context.Context) {
	log := w.d.Logger
	list, err := w.d.Store.ListAlertSettings(ctx)
	if err != nil && ctx.Err() == nil {
		log.Error("alert: sweep", "err", err)
	}
	for _, a := range list {
		if err := w.Observe(ctx, a.MonitorID, nil); err != nil && ctx.Err() == nil {
			log.Error("alert: sweep", "monitor", a.MonitorID, "err", err)
		}
	}
	n, err := w.d.Store.ReleaseHeldAlerts(ctx, w.d.Now())
	if err != nil && ctx.Err() == nil {
		log.Error("alert: release held alerts", "err", err)
	}
	if n > 0 && w.d.KickOutbox != nil {
		w.d.KickOutbox()
	}
	for range maxBatches {
		due, err := w.d.Store.ClaimWebhookAlerts(ctx, w.d.Owner, w.d.Now(), w.d.Lease, claimBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("alert: claim webhooks", "err", err)
			}
			return
		}
		for _, a := range due {
			w.deliver(ctx, a)
		}
		if len(due) < claimBatch || ctx.Err() != nil {
			return
		}
	}
}

// deliver posts one claimed webhook alert and records the outcome.
func (w *Worker) deliver(ctx context.Context, a store.MonitorAlert) {
	lastErr := w.post(ctx, a)
	now := w.d.Now()
	status, next := store.AlertSent, now
	if lastErr != "" {
		status, next = store.AlertPending, now.Add(w.d.Backoff.Delay(a.Attempts, w.d.Rand()))
		if !next.Before(a.CreatedAt.Add(w.d.MaxAge)) {
			status, next = store.AlertFailed, now
			lastErr += fmt.Sprintf(" (given up after %d attempts)", a.Attempts)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := w.d.Store.FinishWebhookAlert(sctx, a.ID, w.d.Owner, status, now, next, lastErr); err != nil {
		w.d.Logger.Error("alert: record webhook outcome", "alert", a.ID, "err", err)
	}
}

// post sends the webhook; it returns "" on a 2xx answer, else why not.
func (w *Worker) post(ctx context.Context, a store.MonitorAlert) string {
	set, err := w.d.Store.AlertSettings(ctx, a.MonitorID)
	if err != nil {
		return fmt.Sprintf("alert settings of the monitor: %v", err)
	}
	secret, err := w.d.Opener.Open(set.WebhookSecretEnc)
	if err != nil {
		return fmt.Sprintf("the webhook secret cannot be opened (was the secret key changed? save the monitor's secret again): %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.d.Lease*4/5)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(a.Payload))
	if err != nil {
		return fmt.Sprintf("request: %v", err)
	}
	ts := w.d.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sockmail-alerts")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(string(secret), ts, a.Payload))
	req.Header.Set(HeaderEvent, a.Event)
	resp, err := w.d.Client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return ""
	}
	msg := "HTTP " + resp.Status
	if s := strings.TrimSpace(safetext.Line(string(snippet))); s != "" {
		msg += ": " + s
	}
	return msg
}
