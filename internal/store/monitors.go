package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MonitorKind is what a monitor tests.
type MonitorKind string

// Monitor kinds.
const (
	// MonitorCheck runs a check (sockmail check) of a server.
	MonitorCheck MonitorKind = "check"
	// MonitorQuitAfter talks to a server from connect to RCPT TO and
	// quits without sending DATA.
	MonitorQuitAfter MonitorKind = "quit-after"
	// MonitorSend sends a message through a saved profile to a recipient.
	MonitorSend MonitorKind = "send"
)

// Valid reports whether k is one of the known kinds.
func (k MonitorKind) Valid() bool {
	return k == MonitorCheck || k == MonitorQuitAfter || k == MonitorSend
}

// MonitorState is a monitor's health after its last run.
type MonitorState string

// Monitor states; MonitorUnknown until the first run.
const (
	MonitorUnknown  MonitorState = "unknown"
	MonitorUp       MonitorState = "up"
	MonitorDegraded MonitorState = "degraded"
	MonitorDown     MonitorState = "down"
)

// Bounds of a monitor's settings, enforced by the store.
const (
	MinMonitorInterval = 1           // minutes
	MaxMonitorInterval = 7 * 24 * 60 // minutes: a week
	MaxMonitorName     = 100
	MaxMonitorTarget   = 255
	MaxMonitorSlowMS   = 10 * 60 * 1000
	MaxMonitorCertDays = 365
	MaxMonitorReason   = 1000
)

// MonitorOptions are the kind-specific options of a monitor.
type MonitorOptions struct {
	// Port is the server's port (0: 25).
	Port int `json:"port,omitempty"`
	// ImplicitTLS says the server speaks TLS from its first byte.
	ImplicitTLS bool `json:"implicit_tls,omitempty"`
	// MailFrom is the envelope sender of a quit-after test.
	MailFrom string `json:"mail_from,omitempty"`
	// IMAP, if set, makes a full send confirm its message's arrival in
	// this mailbox (instead of the built-in capture server).
	IMAP *MonitorIMAP `json:"imap,omitempty"`
	// ArrivalLateMS makes a run whose message arrived later than this
	// after the send began degraded (0: never).
	ArrivalLateMS int `json:"arrival_late_ms,omitempty"`
}

// MonitorIMAP is the mailbox a full send's arrival is confirmed in.
type MonitorIMAP struct {
	Host string `json:"host"`
	// Port is the IMAP port (0: 993 with ImplicitTLS, else 143).
	Port int `json:"port,omitempty"`
	// ImplicitTLS speaks TLS from the first byte (port 993); otherwise
	// STARTTLS is required before LOGIN.
	ImplicitTLS bool   `json:"implicit_tls,omitempty"`
	User        string `json:"user"`
	// PasswordEnc is the password sealed with crypt.Box, as profile
	// passwords are; the store never sees it in clear.
	PasswordEnc []byte `json:"password_enc,omitempty"`
	// Mailbox is the folder searched ("" : INBOX).
	Mailbox string `json:"mailbox,omitempty"`
}

// MaxMonitorArrivalLateMS bounds MonitorOptions.ArrivalLateMS.
const MaxMonitorArrivalLateMS = 24 * 60 * 60 * 1000

// Monitor is a named test run every Interval minutes.
type Monitor struct {
	ID      int64
	Name    string
	Kind    MonitorKind
	Target  string // host of a check or quit-after test
	Profile int64  // profile of a send (0: the built-in capture server)
	Rcpt    string // recipient of a quit-after test or a send
	Options MonitorOptions
	// Interval is in minutes, MinMonitorInterval..MaxMonitorInterval.
	Interval int
	Enabled  bool
	// SlowMS makes a run slower than this degraded (0: never).
	SlowMS int
	// CertDays makes a certificate expiring within this many days
	// degraded (0: never).
	CertDays   int
	State      MonitorState
	Reason     string
	StateSince time.Time // zero before the first run
	LastRun    time.Time // zero before the first run
	NextRun    time.Time
	Created    time.Time
}

// MonitorRun is one stored run of a monitor.
type MonitorRun struct {
	ID        int64
	MonitorID int64
	Started   time.Time
	Finished  time.Time
	State     MonitorState
	Reason    string
	Latency   time.Duration
	// SendID and CheckID name the send (source "monitor") or check that
	// keeps the run's transcript; nil when none.
	SendID  *int64
	CheckID *int64
	// Arrival is how long the run's message took from the start of the
	// send to being found in the mailbox; nil when the run did not look
	// (or the message never came).
	Arrival *time.Duration
}

// validate checks a monitor's settings and names the first wrong one.
func (m *Monitor) validate() error {
	switch {
	case m.Name == "" || len(m.Name) > MaxMonitorName || !sqlText(m.Name):
		return fmt.Errorf("name must be 1 to %d characters of text", MaxMonitorName)
	case !m.Kind.Valid():
		return fmt.Errorf("kind %q is not check, quit-after or send", m.Kind)
	case len(m.Target) > MaxMonitorTarget || len(m.Rcpt) > MaxMonitorTarget || len(m.Options.MailFrom) > MaxMonitorTarget:
		return fmt.Errorf("target, recipient and sender are at most %d bytes", MaxMonitorTarget)
	case m.Kind != MonitorSend && m.Target == "":
		return errors.New("target (a server's host name) is required")
	case m.Kind != MonitorCheck && m.Rcpt == "":
		return errors.New("recipient is required")
	case m.Options.Port < 0 || m.Options.Port > 65535:
		return fmt.Errorf("port %d is not 0 to 65535", m.Options.Port)
	case m.Interval < MinMonitorInterval || m.Interval > MaxMonitorInterval:
		return fmt.Errorf("interval %d is not %d to %d minutes", m.Interval, MinMonitorInterval, MaxMonitorInterval)
	case m.SlowMS < 0 || m.SlowMS > MaxMonitorSlowMS:
		return fmt.Errorf("slow threshold %d ms is not 0 to %d", m.SlowMS, MaxMonitorSlowMS)
	case m.CertDays < 0 || m.CertDays > MaxMonitorCertDays:
		return fmt.Errorf("certificate threshold %d days is not 0 to %d", m.CertDays, MaxMonitorCertDays)
	case m.Options.ArrivalLateMS < 0 || m.Options.ArrivalLateMS > MaxMonitorArrivalLateMS:
		return fmt.Errorf("arrival threshold %d ms is not 0 to %d", m.Options.ArrivalLateMS, MaxMonitorArrivalLateMS)
	}
	if im := m.Options.IMAP; im != nil {
		switch {
		case m.Kind != MonitorSend:
			return errors.New("an IMAP mailbox confirms the arrival of full sends only")
		case im.Host == "" || len(im.Host) > MaxMonitorTarget || !sqlText(im.Host):
			return fmt.Errorf("IMAP host must be 1 to %d characters of text", MaxMonitorTarget)
		case im.Port < 0 || im.Port > 65535:
			return fmt.Errorf("IMAP port %d is not 0 to 65535", im.Port)
		case im.User == "" || len(im.User) > MaxMonitorTarget || len(im.Mailbox) > MaxMonitorTarget:
			return fmt.Errorf("IMAP user (required) and mailbox are at most %d bytes", MaxMonitorTarget)
		case len(im.PasswordEnc) > 1024:
			return errors.New("IMAP password is too long")
		}
	}
	return nil
}

// ErrInvalidMonitor is wrapped by CreateMonitor and UpdateMonitor when a
// setting is out of bounds; the message names it.
var ErrInvalidMonitor = errors.New("store: invalid monitor")

// CreateMonitor stores a new monitor, due at once (m.NextRun, or now if
// zero), and sets m.ID. A name already in use gives ErrExists.
func (s *Store) CreateMonitor(ctx context.Context, m *Monitor) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("store: create monitor: %w: %w", ErrInvalidMonitor, err)
	}
	opts, err := json.Marshal(m.Options)
	if err != nil {
		return fmt.Errorf("store: create monitor: %w", err)
	}
	created := normTime(m.Created)
	next := m.NextRun
	if next.IsZero() {
		next = created
	}
	next = next.UTC().Truncate(time.Microsecond)
	var id int64
	err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO monitors (name, kind, target, profile_id, rcpt, options, interval_minutes, enabled, slow_ms, cert_days, next_run_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		m.Name, string(m.Kind), m.Target, m.Profile, m.Rcpt, string(opts), m.Interval, m.Enabled, m.SlowMS, m.CertDays, micros(next), micros(created)).Scan(&id)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: create monitor %q: %w", m.Name, ErrExists)
		}
		return fmt.Errorf("store: create monitor: %w", err)
	}
	m.ID, m.Created, m.NextRun = id, created, next
	m.State, m.Reason, m.StateSince, m.LastRun = MonitorUnknown, "", time.Time{}, time.Time{}
	return nil
}

// UpdateMonitor changes a monitor's settings (not its state). A changed
// interval takes effect from the last run: the next run is moved to
// last run + interval (or now when it never ran). ErrNotFound when it
// does not exist.
func (s *Store) UpdateMonitor(ctx context.Context, m *Monitor, now time.Time) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("store: update monitor %d: %w: %w", m.ID, ErrInvalidMonitor, err)
	}
	opts, err := json.Marshal(m.Options)
	if err != nil {
		return fmt.Errorf("store: update monitor %d: %w", m.ID, err)
	}
	err = affected(s.w.ExecContext(ctx, s.q(`UPDATE monitors SET name = ?, kind = ?, target = ?, profile_id = ?, rcpt = ?, options = ?,
		interval_minutes = ?, enabled = ?, slow_ms = ?, cert_days = ?,
		next_run_at = CASE WHEN last_run_at = 0 THEN ? ELSE last_run_at + ? END WHERE id = ?`),
		m.Name, string(m.Kind), m.Target, m.Profile, m.Rcpt, string(opts), m.Interval, m.Enabled, m.SlowMS, m.CertDays,
		micros(normTime(now)), int64(m.Interval)*int64(time.Minute/time.Microsecond), m.ID))
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: update monitor %q: %w", m.Name, ErrExists)
		}
		return fmt.Errorf("store: update monitor %d: %w", m.ID, err)
	}
	return nil
}

// DeleteMonitor deletes a monitor and its runs (not the sends and checks
// they link to), or ErrNotFound.
func (s *Store) DeleteMonitor(ctx context.Context, id int64) error {
	if err := affected(s.w.ExecContext(ctx, s.q(`DELETE FROM monitors WHERE id = ?`), id)); err != nil {
		return fmt.Errorf("store: delete monitor %d: %w", id, err)
	}
	return nil
}

const monitorColumns = `id, name, kind, target, profile_id, rcpt, options, interval_minutes, enabled, slow_ms, cert_days,
	state, reason, state_since, last_run_at, next_run_at, created_at`

func scanMonitor(row interface{ Scan(...any) error }) (*Monitor, error) {
	var m Monitor
	var kind, state, opts string
	var since, last, next, created int64
	if err := row.Scan(&m.ID, &m.Name, &kind, &m.Target, &m.Profile, &m.Rcpt, &opts, &m.Interval, &m.Enabled, &m.SlowMS, &m.CertDays,
		&state, &m.Reason, &since, &last, &next, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(opts), &m.Options); err != nil {
		return nil, fmt.Errorf("options of monitor %d: %w", m.ID, err)
	}
	m.Kind, m.State = MonitorKind(kind), MonitorState(state)
	if since != 0 {
		m.StateSince = fromMicros(since)
	}
	if last != 0 {
		m.LastRun = fromMicros(last)
	}
	m.NextRun, m.Created = fromMicros(next), fromMicros(created)
	return &m, nil
}

// Monitor returns the monitor with that id, or ErrNotFound.
func (s *Store) Monitor(ctx context.Context, id int64) (*Monitor, error) {
	m, err := scanMonitor(s.r.QueryRowContext(ctx, s.q(`SELECT `+monitorColumns+` FROM monitors WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: monitor %d: %w", id, notFound(err))
	}
	return m, nil
}

// ListMonitors returns every monitor by name (there are few: each is
// created by hand).
func (s *Store) ListMonitors(ctx context.Context) ([]Monitor, error) {
	return s.queryMonitors(ctx, "list monitors", s.r, `SELECT `+monitorColumns+` FROM monitors ORDER BY name`)
}

func (s *Store) queryMonitors(ctx context.Context, what string, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]Monitor, error) {
	rows, err := db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []Monitor
	for rows.Next() {
		m, err := scanMonitor(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// ClaimDueMonitors leases up to limit enabled monitors due at now (next
// run at or before now) whose lease is free or expired, to owner until
// now+lease, and returns them. Several instances sharing a database each
// get different monitors: the claim is one UPDATE, and on PostgreSQL the
// candidates are locked with FOR UPDATE SKIP LOCKED.
func (s *Store) ClaimDueMonitors(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Monitor, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := ""
	if s.backend == BackendPostgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	n := micros(normTime(now))
	return s.queryMonitors(ctx, "claim due monitors", s.w, `UPDATE monitors SET lease_owner = ?, lease_until = ?
		WHERE enabled = ? AND next_run_at <= ? AND lease_until <= ? AND id IN (
			SELECT id FROM monitors WHERE enabled = ? AND next_run_at <= ? AND lease_until <= ?
			ORDER BY next_run_at LIMIT ?`+lock+`)
		RETURNING `+monitorColumns,
		owner, n+lease.Microseconds(), true, n, n, true, n, n, limit)
}

// ClaimMonitor leases one monitor to owner until now+lease whether due
// or not (a "run now"), unless another holds an unexpired lease on it:
// then ErrLeaseLost. ErrNotFound when it does not exist.
func (s *Store) ClaimMonitor(ctx context.Context, id int64, owner string, now time.Time, lease time.Duration) (*Monitor, error) {
	n := micros(normTime(now))
	ms, err := s.queryMonitors(ctx, "claim monitor", s.w, `UPDATE monitors SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND lease_until <= ? RETURNING `+monitorColumns, owner, n+lease.Microseconds(), id, n)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		if _, err := s.Monitor(ctx, id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("store: claim monitor %d: %w", id, ErrLeaseLost)
	}
	return &ms[0], nil
}

// FinishMonitorRun stores run (setting its ID) and the monitor's new
// state: the state's since-time moves only when the state changes; the
// next run is due interval minutes after run.Started; the lease is
// released. ErrLeaseLost when owner no longer holds the lease (it
// expired and another instance took the monitor; the run is not
// stored).
func (s *Store) FinishMonitorRun(ctx context.Context, owner string, run *MonitorRun) error {
	if !run.State.valid() {
		return fmt.Errorf("store: finish monitor run: state %q", run.State)
	}
	reason := run.Reason
	if len(reason) > MaxMonitorReason {
		reason = reason[:MaxMonitorReason]
	}
	reason = encText(reason)
	started, finished := normTime(run.Started), normTime(run.Finished)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := affected(s.txExec(ctx, tx, `UPDATE monitors SET
			state_since = CASE WHEN state = ? THEN state_since ELSE ? END,
			state = ?, reason = ?, last_run_at = ?,
			next_run_at = ? + interval_minutes * ?,
			lease_owner = '', lease_until = 0
			WHERE id = ? AND lease_owner = ?`,
			string(run.State), micros(finished), string(run.State), reason, micros(started),
			micros(started), int64(time.Minute/time.Microsecond), run.MonitorID, owner))
		if errors.Is(err, ErrNotFound) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		var arrival *int64
		if run.Arrival != nil {
			ms := run.Arrival.Milliseconds()
			arrival = &ms
		}
		return s.txQueryRow(ctx, tx, `INSERT INTO monitor_runs (monitor_id, started_at, finished_at, state, reason, latency_ms, send_id, check_id, arrival_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			run.MonitorID, micros(started), micros(finished), string(run.State), reason, run.Latency.Milliseconds(),
			nullInt64(run.SendID), nullInt64(run.CheckID), nullInt64(arrival)).Scan(&run.ID)
	})
	if err != nil {
		return fmt.Errorf("store: finish run of monitor %d: %w", run.MonitorID, err)
	}
	run.Started, run.Finished, run.Reason = started, finished, decText(reason)
	run.Latency = time.Duration(run.Latency.Milliseconds()) * time.Millisecond
	if run.Arrival != nil {
		a := time.Duration(run.Arrival.Milliseconds()) * time.Millisecond
		run.Arrival = &a
	}
	return nil
}

func (st MonitorState) valid() bool {
	return st == MonitorUp || st == MonitorDegraded || st == MonitorDown
}

// MonitorRuns returns up to limit runs of a monitor (DefaultSendLimit if
// limit <= 0, at most MaxSendLimit), newest first; before is a keyset
// cursor (only ids below it; 0 starts at the newest).
func (s *Store) MonitorRuns(ctx context.Context, monitorID int64, limit int, before int64) ([]MonitorRun, error) {
	if limit <= 0 {
		limit = DefaultSendLimit
	}
	limit = min(limit, MaxSendLimit)
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT id, monitor_id, started_at, finished_at, state, reason, latency_ms, send_id, check_id, arrival_ms
		FROM monitor_runs WHERE monitor_id = ? AND id < ? ORDER BY id DESC LIMIT ?`), monitorID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store: runs of monitor %d: %w", monitorID, err)
	}
	defer rows.Close()
	var out []MonitorRun
	for rows.Next() {
		var r MonitorRun
		var started, finished, latency int64
		var state string
		var sendID, checkID, arrival sql.NullInt64
		if err := rows.Scan(&r.ID, &r.MonitorID, &started, &finished, &state, &r.Reason, &latency, &sendID, &checkID, &arrival); err != nil {
			return nil, fmt.Errorf("store: runs of monitor %d: %w", monitorID, err)
		}
		r.Started, r.Finished, r.State, r.Reason = fromMicros(started), fromMicros(finished), MonitorState(state), decText(r.Reason)
		r.Latency = time.Duration(latency) * time.Millisecond
		r.SendID, r.CheckID = ptrInt64(sendID), ptrInt64(checkID)
		if arrival.Valid {
			a := time.Duration(arrival.Int64) * time.Millisecond
			r.Arrival = &a
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: runs of monitor %d: %w", monitorID, err)
	}
	return out, nil
}
