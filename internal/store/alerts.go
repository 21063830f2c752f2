package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Alerts of monitors (internal/alert decides and delivers them). Each
// monitor may have AlertSettings; the state last alerted about is kept
// with them and moved by compare-and-set (RecordMonitorAlert), so that
// instances sharing a database, and the worker's sweep racing a
// scheduler's run, record each change once. Every alert is one
// MonitorAlert per channel:
//
//	held (quiet hours) --ReleaseHeldAlerts--> email: queued (an outbox item)
//	                                      \-> webhook: pending
//	held --RecordMonitorAlert(resolved meanwhile)--> dropped
//	pending --ClaimWebhookAlerts (lease)--> sent | pending (retry) | failed

// AlertChannel is how an alert goes out.
type AlertChannel string

// Alert channels.
const (
	AlertEmail   AlertChannel = "email"
	AlertWebhook AlertChannel = "webhook"
)

// AlertStatus is where an alert stands (the life cycle above). An email
// alert that reached the outbox shows its outbox item's status.
type AlertStatus string

// Alert statuses.
const (
	AlertHeld    AlertStatus = "held"
	AlertQueued  AlertStatus = "queued"
	AlertPending AlertStatus = "pending"
	AlertSent    AlertStatus = "sent"
	AlertFailed  AlertStatus = "failed"
	AlertDropped AlertStatus = "dropped"
)

// Bounds of alert settings, enforced by the store.
const (
	MaxAlertRecipients  = 10
	MaxAlertURL         = 2000
	MaxAlertSecret      = 200
	MaxAlertRepeat      = 7 * 24 * 60 // minutes
	MaxAlertPayload     = 64 << 10
	MinutesPerDay       = 24 * 60
	DefaultAlertHistory = 50
)

// AlertSettings are a monitor's alert channels and rules.
type AlertSettings struct {
	MonitorID int64
	// EmailTo are the recipients of alert emails (none: no email),
	// sent through EmailProfile (0: the built-in capture server) from
	// EmailFrom.
	EmailTo      []string
	EmailProfile int64
	EmailFrom    string
	// WebhookURL receives alerts as signed JSON (empty: no webhook);
	// WebhookSecretEnc is the secret that keys the signature, sealed
	// with crypt.Box: the store never sees it in clear.
	WebhookURL       string
	WebhookSecretEnc []byte
	// OnDegraded alerts when the monitor becomes degraded too (else a
	// degraded monitor counts as up).
	OnDegraded bool
	// RepeatMinutes repeats the alert while the monitor stays down (0:
	// never).
	RepeatMinutes int
	// QuietStart and QuietEnd (minutes after midnight in QuietTZ) bound
	// the daily quiet hours; equal: none. Start after end spans midnight.
	QuietStart, QuietEnd int
	QuietTZ              string
	// AlertedState is the state last alerted about (MonitorUnknown at
	// first) and AlertedAt when; set by RecordMonitorAlert only.
	AlertedState MonitorState
	AlertedAt    time.Time
}

// ErrInvalidAlertSettings is wrapped by SaveAlertSettings when a setting
// is out of bounds; the message names it.
var ErrInvalidAlertSettings = errors.New("store: invalid alert settings")

// ErrAlertRaced is returned by RecordMonitorAlert when the alerted
// state changed since it was read: another instance recorded it.
var ErrAlertRaced = errors.New("store: alert recorded by another instance")

func (a *AlertSettings) validate() error {
	switch {
	case len(a.EmailTo) > MaxAlertRecipients:
		return fmt.Errorf("at most %d recipients", MaxAlertRecipients)
	case len(a.WebhookURL) > MaxAlertURL || !sqlText(a.WebhookURL):
		return fmt.Errorf("webhook URL is at most %d bytes of text", MaxAlertURL)
	case len(a.WebhookSecretEnc) > 2*MaxAlertSecret:
		return fmt.Errorf("sealed webhook secret is at most %d bytes", 2*MaxAlertSecret)
	case a.WebhookURL != "" && len(a.WebhookSecretEnc) == 0:
		return errors.New("a webhook needs a secret")
	case len(a.EmailFrom) > MaxMonitorTarget || !sqlText(a.EmailFrom):
		return fmt.Errorf("sender is at most %d bytes", MaxMonitorTarget)
	case a.RepeatMinutes < 0 || a.RepeatMinutes > MaxAlertRepeat:
		return fmt.Errorf("repeat %d is not 0 to %d minutes", a.RepeatMinutes, MaxAlertRepeat)
	case a.QuietStart < 0 || a.QuietStart >= MinutesPerDay || a.QuietEnd < 0 || a.QuietEnd >= MinutesPerDay:
		return errors.New("quiet hours must be times of day")
	case len(a.QuietTZ) > 100:
		return errors.New("time zone name too long")
	}
	for _, r := range a.EmailTo {
		if r == "" || len(r) > MaxMonitorTarget || !sqlText(r) {
			return fmt.Errorf("recipient %q is not an address", r)
		}
	}
	if _, err := time.LoadLocation(a.QuietTZ); err != nil {
		return fmt.Errorf("time zone %q: %w", a.QuietTZ, err)
	}
	return nil
}

// SaveAlertSettings stores a monitor's alert settings (replacing those
// it had; the alerted state is kept). ErrNotFound when the monitor does
// not exist.
func (s *Store) SaveAlertSettings(ctx context.Context, a *AlertSettings) error {
	if a.QuietTZ == "" {
		a.QuietTZ = "UTC"
	}
	if err := a.validate(); err != nil {
		return fmt.Errorf("store: save alert settings of monitor %d: %w: %w", a.MonitorID, ErrInvalidAlertSettings, err)
	}
	if _, err := s.Monitor(ctx, a.MonitorID); err != nil {
		return fmt.Errorf("store: save alert settings: %w", err)
	}
	to, err := encStrings(a.EmailTo)
	if err != nil {
		return fmt.Errorf("store: save alert settings: %w", err)
	}
	_, err = s.w.ExecContext(ctx, s.q(`INSERT INTO monitor_alert_settings (monitor_id, email_to, email_profile, email_from,
		webhook_url, webhook_secret_enc, on_degraded, repeat_minutes, quiet_start, quiet_end, quiet_tz)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (monitor_id) DO UPDATE SET email_to = excluded.email_to, email_profile = excluded.email_profile,
		email_from = excluded.email_from, webhook_url = excluded.webhook_url, webhook_secret_enc = excluded.webhook_secret_enc,
		on_degraded = excluded.on_degraded, repeat_minutes = excluded.repeat_minutes, quiet_start = excluded.quiet_start,
		quiet_end = excluded.quiet_end, quiet_tz = excluded.quiet_tz`),
		a.MonitorID, to, a.EmailProfile, a.EmailFrom, a.WebhookURL, nullBytes(a.WebhookSecretEnc), a.OnDegraded, a.RepeatMinutes,
		a.QuietStart, a.QuietEnd, a.QuietTZ)
	if err != nil {
		return fmt.Errorf("store: save alert settings of monitor %d: %w", a.MonitorID, err)
	}
	return nil
}

const alertSettingsColumns = `monitor_id, email_to, email_profile, email_from, webhook_url, webhook_secret_enc, on_degraded,
	repeat_minutes, quiet_start, quiet_end, quiet_tz, alerted_state, alerted_at`

func scanAlertSettings(row interface{ Scan(...any) error }) (*AlertSettings, error) {
	var a AlertSettings
	var to, state string
	var at int64
	if err := row.Scan(&a.MonitorID, &to, &a.EmailProfile, &a.EmailFrom, &a.WebhookURL, &a.WebhookSecretEnc, &a.OnDegraded,
		&a.RepeatMinutes, &a.QuietStart, &a.QuietEnd, &a.QuietTZ, &state, &at); err != nil {
		return nil, err
	}
	list, err := decStrings(to)
	if err != nil {
		return nil, fmt.Errorf("recipients of monitor %d: %w", a.MonitorID, err)
	}
	a.EmailTo, a.AlertedState = list, MonitorState(state)
	if at != 0 {
		a.AlertedAt = fromMicros(at)
	}
	return &a, nil
}

// AlertSettings returns a monitor's alert settings, or ErrNotFound when
// it has none.
func (s *Store) AlertSettings(ctx context.Context, monitorID int64) (*AlertSettings, error) {
	a, err := scanAlertSettings(s.r.QueryRowContext(ctx, s.q(`SELECT `+alertSettingsColumns+`
		FROM monitor_alert_settings WHERE monitor_id = ?`), monitorID))
	if err != nil {
		return nil, fmt.Errorf("store: alert settings of monitor %d: %w", monitorID, notFound(err))
	}
	return a, nil
}

// ListAlertSettings returns the alert settings of every monitor that
// has some (the worker's sweep).
func (s *Store) ListAlertSettings(ctx context.Context) ([]AlertSettings, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+alertSettingsColumns+` FROM monitor_alert_settings ORDER BY monitor_id`)
	if err != nil {
		return nil, fmt.Errorf("store: list alert settings: %w", err)
	}
	defer rows.Close()
	var out []AlertSettings
	for rows.Next() {
		a, err := scanAlertSettings(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list alert settings: %w", err)
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list alert settings: %w", err)
	}
	return out, nil
}

// MonitorAlert is one alert on one channel.
type MonitorAlert struct {
	ID        int64
	MonitorID int64
	// EventID is shared by the channels of one alert (receivers use it
	// to recognise a delivery they had already).
	EventID   string
	CreatedAt time.Time
	// Event is down, degraded, repeat or resolved.
	Event              string
	OldState, NewState MonitorState
	Reason             string
	RunID              *int64
	Channel            AlertChannel
	// Target is the webhook URL, or the email's recipients.
	URL   string
	Rcpts []string
	// ProfileID and MailFrom are the email's profile and sender.
	ProfileID int64
	MailFrom  string
	// Payload is the webhook's JSON body or the email message. The list
	// of a monitor's alerts leaves it nil.
	Payload []byte
	Status  AlertStatus
	// Attempts, LastError: the webhook's, or the outbox item's.
	Attempts      int
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time
	LastError     string
	OutboxID      *int64
	SentAt        time.Time
}

// AlertRecord is what RecordMonitorAlert stores for one monitor.
type AlertRecord struct {
	MonitorID int64
	// FromState and FromAt are the alerted state and time read with the
	// settings; the record is stored only if they are still the same.
	FromState MonitorState
	FromAt    time.Time
	// ToState and ToAt are the new alerted state and time.
	ToState MonitorState
	ToAt    time.Time
	// Alerts are stored (one per channel); queued emails get their
	// outbox item in the same transaction.
	Alerts []MonitorAlert
	// ResolveHeld: when the monitor has held alerts, they and Alerts
	// are stored dropped (the problem was over before quiet hours were).
	ResolveHeld bool
	// SkipIfHeld: when the monitor has held alerts, Alerts are not
	// stored (a repeat during quiet hours: the held alert goes out when
	// they end).
	SkipIfHeld bool
}

// RecordMonitorAlert moves a monitor's alerted state and stores its
// alerts in one transaction, or returns ErrAlertRaced when the alerted
// state is no longer r.FromState/r.FromAt. It returns the number of
// alerts stored with a status that will send them.
func (s *Store) RecordMonitorAlert(ctx context.Context, r *AlertRecord) (int, error) {
	sending := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		sending = 0
		var fromAt int64
		if !r.FromAt.IsZero() {
			fromAt = micros(r.FromAt)
		}
		err := affected(s.txExec(ctx, tx, `UPDATE monitor_alert_settings SET alerted_state = ?, alerted_at = ?
			WHERE monitor_id = ? AND alerted_state = ? AND alerted_at = ?`,
			string(r.ToState), micros(normTime(r.ToAt)), r.MonitorID, string(r.FromState), fromAt))
		if errors.Is(err, ErrNotFound) {
			return ErrAlertRaced
		}
		if err != nil {
			return err
		}
		if len(r.Alerts) == 0 {
			return nil
		}
		held := 0
		if r.ResolveHeld || r.SkipIfHeld {
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM monitor_alerts WHERE monitor_id = ? AND status = ?`,
				r.MonitorID, string(AlertHeld)).Scan(&held); err != nil {
				return err
			}
		}
		if held > 0 && r.SkipIfHeld {
			return nil
		}
		drop := held > 0 && r.ResolveHeld
		if drop {
			if _, err := s.txExec(ctx, tx, `UPDATE monitor_alerts SET status = ?, last_error = ?
				WHERE monitor_id = ? AND status = ?`, string(AlertDropped), "resolved during quiet hours", r.MonitorID, string(AlertHeld)); err != nil {
				return err
			}
		}
		for i := range r.Alerts {
			a := r.Alerts[i]
			a.MonitorID = r.MonitorID
			if drop {
				a.Status, a.LastError = AlertDropped, "resolved during quiet hours"
			}
			if err := s.insertAlert(ctx, tx, &a); err != nil {
				return err
			}
			if a.Status != AlertDropped {
				sending++
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrAlertRaced) {
			return 0, fmt.Errorf("store: record alert of monitor %d: %w", r.MonitorID, ErrAlertRaced)
		}
		return 0, fmt.Errorf("store: record alert of monitor %d: %w", r.MonitorID, err)
	}
	return sending, nil
}

// insertAlert stores a; a queued email gets its outbox item first.
func (s *Store) insertAlert(ctx context.Context, tx *sql.Tx, a *MonitorAlert) error {
	if len(a.Payload) == 0 || len(a.Payload) > MaxAlertPayload {
		return fmt.Errorf("alert payload of %d bytes (1 to %d)", len(a.Payload), MaxAlertPayload)
	}
	a.CreatedAt = normTime(a.CreatedAt)
	if a.NextAttemptAt.IsZero() {
		a.NextAttemptAt = a.CreatedAt
	}
	if a.Channel == AlertEmail && a.Status == AlertQueued {
		id, err := s.insertAlertEmail(ctx, tx, *a)
		if err != nil {
			return err
		}
		a.OutboxID = &id
	}
	target := a.URL
	if a.Channel == AlertEmail {
		var err error
		if target, err = encStrings(a.Rcpts); err != nil {
			return err
		}
	}
	reason := a.Reason
	if len(reason) > MaxMonitorReason {
		reason = reason[:MaxMonitorReason]
	}
	return s.txQueryRow(ctx, tx, `INSERT INTO monitor_alerts (monitor_id, event_id, created_at, event, old_state, new_state,
		reason, run_id, channel, target, profile_id, mail_from, payload, status, next_attempt_at, last_error, outbox_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		a.MonitorID, a.EventID, micros(a.CreatedAt), a.Event, string(a.OldState), string(a.NewState), encText(reason),
		nullInt64(a.RunID), string(a.Channel), encText(target), a.ProfileID, encText(a.MailFrom), a.Payload, string(a.Status),
		micros(normTime(a.NextAttemptAt)), encText(a.LastError), nullInt64(a.OutboxID)).Scan(&a.ID)
}

// insertAlertEmail puts an alert email in the outbox (no submission,
// no form), due at once, and returns the item's id.
func (s *Store) insertAlertEmail(ctx context.Context, tx *sql.Tx, a MonitorAlert) (int64, error) {
	if len(a.Rcpts) == 0 {
		return 0, errors.New("alert email without recipients")
	}
	rcpts, err := encStrings(a.Rcpts)
	if err != nil {
		return 0, err
	}
	subject, msgID := messageHeader(a.Payload)
	now := micros(normTime(a.NextAttemptAt))
	var id int64
	err = s.txQueryRow(ctx, tx, `INSERT INTO outbox (created_at, queued_at, submission_id, form_id, profile_id,
		mail_from, rcpts, subject, message_id, message, status, attempts, next_attempt_at, expires_at, lease_owner,
		lease_until, taken_over_from, last_error) VALUES (?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, '', 0, '', '')
		RETURNING id`,
		now, now, a.ProfileID, encText(a.MailFrom), rcpts, encText(subject), encText(msgID), s.inlineMessage(a.Payload),
		string(OutboxQueued), now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("outbox item: %w", err)
	}
	if err := s.putMessage(ctx, tx, id, a.Payload); err != nil {
		return 0, fmt.Errorf("outbox item %d: message: %w", id, err)
	}
	return id, nil
}

// ReleaseHeldAlerts releases the held alerts due at now (their quiet
// hours are over): an email goes to the outbox, a webhook becomes
// pending. Each is released once even when several instances call it
// at the same time. It returns how many it released.
func (s *Store) ReleaseHeldAlerts(ctx context.Context, now time.Time) (int, error) {
	n := micros(normTime(now))
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT id FROM monitor_alerts WHERE status = ? AND next_attempt_at <= ? ORDER BY id LIMIT 100`),
		string(AlertHeld), n)
	if err != nil {
		return 0, fmt.Errorf("store: release held alerts: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: release held alerts: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: release held alerts: %w", err)
	}
	released := 0
	for _, id := range ids {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			a, err := scanAlert(s.txQueryRow(ctx, tx, `UPDATE monitor_alerts SET status = CASE WHEN channel = ? THEN ? ELSE ? END,
				next_attempt_at = ? WHERE id = ? AND status = ? RETURNING `+alertColumns+`, payload`,
				string(AlertEmail), string(AlertQueued), string(AlertPending), n, id, string(AlertHeld)), true)
			if err != nil {
				return err
			}
			if a.Channel == AlertEmail {
				a.NextAttemptAt = fromMicros(n)
				oid, err := s.insertAlertEmail(ctx, tx, *a)
				if err != nil {
					return err
				}
				if _, err := s.txExec(ctx, tx, `UPDATE monitor_alerts SET outbox_id = ? WHERE id = ?`, oid, id); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Released or dropped meanwhile.
		case err != nil:
			return released, fmt.Errorf("store: release alert %d: %w", id, err)
		default:
			released++
		}
	}
	return released, nil
}

const alertColumns = `id, monitor_id, event_id, created_at, event, old_state, new_state, reason, run_id, channel, target,
	profile_id, mail_from, status, attempts, next_attempt_at, lease_owner, lease_until, last_error, outbox_id, sent_at`

func scanAlert(row interface{ Scan(...any) error }, withPayload bool, extra ...any) (*MonitorAlert, error) {
	var a MonitorAlert
	var created, next, leaseUntil, sent int64
	var event, oldSt, newSt, channel, target, status string
	var runID, outboxID sql.NullInt64
	dest := []any{&a.ID, &a.MonitorID, &a.EventID, &created, &event, &oldSt, &newSt, &a.Reason, &runID, &channel, &target,
		&a.ProfileID, &a.MailFrom, &status, &a.Attempts, &next, &a.LeaseOwner, &leaseUntil, &a.LastError, &outboxID, &sent}
	if withPayload {
		dest = append(dest, &a.Payload)
	}
	dest = append(dest, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	a.CreatedAt, a.Event, a.OldState, a.NewState = fromMicros(created), event, MonitorState(oldSt), MonitorState(newSt)
	a.Reason, a.MailFrom, a.LastError = decText(a.Reason), decText(a.MailFrom), decText(a.LastError)
	a.Channel, a.Status, a.RunID, a.OutboxID = AlertChannel(channel), AlertStatus(status), ptrInt64(runID), ptrInt64(outboxID)
	target = decText(target)
	if a.Channel == AlertEmail {
		list, err := decStrings(target)
		if err != nil {
			return nil, fmt.Errorf("recipients of alert %d: %w", a.ID, err)
		}
		a.Rcpts = list
	} else {
		a.URL = target
	}
	a.NextAttemptAt = fromMicros(next)
	if leaseUntil != 0 {
		a.LeaseUntil = fromMicros(leaseUntil)
	}
	if sent != 0 {
		a.SentAt = fromMicros(sent)
	}
	return &a, nil
}

// ClaimWebhookAlerts leases up to limit pending webhook alerts due at
// now whose lease is free or expired to owner until now+lease, counting
// an attempt on each, and returns them with their payload. Several
// instances sharing a database each get different ones (on PostgreSQL
// the candidates are locked with FOR UPDATE SKIP LOCKED).
func (s *Store) ClaimWebhookAlerts(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]MonitorAlert, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := ""
	if s.backend == BackendPostgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	n := micros(normTime(now))
	rows, err := s.w.QueryContext(ctx, s.q(`UPDATE monitor_alerts SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
		WHERE status = ? AND next_attempt_at <= ? AND lease_until <= ? AND id IN (
			SELECT id FROM monitor_alerts WHERE status = ? AND next_attempt_at <= ? AND lease_until <= ?
			ORDER BY next_attempt_at LIMIT ?`+lock+`)
		RETURNING `+alertColumns+`, payload`),
		owner, n+lease.Microseconds(), string(AlertPending), n, n, string(AlertPending), n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim webhook alerts: %w", err)
	}
	defer rows.Close()
	var out []MonitorAlert
	for rows.Next() {
		a, err := scanAlert(rows, true)
		if err != nil {
			return nil, fmt.Errorf("store: claim webhook alerts: %w", err)
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim webhook alerts: %w", err)
	}
	return out, nil
}

// FinishWebhookAlert records the outcome of owner's attempt on a webhook
// alert: AlertSent (at now), AlertFailed, or AlertPending to try again at
// next; the lease is released. ErrLeaseLost when owner no longer holds
// it.
func (s *Store) FinishWebhookAlert(ctx context.Context, id int64, owner string, status AlertStatus, now, next time.Time, lastErr string) error {
	if status != AlertSent && status != AlertFailed && status != AlertPending {
		return fmt.Errorf("store: finish webhook alert %d: status %q", id, status)
	}
	if len(lastErr) > MaxMonitorReason {
		lastErr = lastErr[:MaxMonitorReason]
	}
	var sent int64
	if status == AlertSent {
		sent = micros(normTime(now))
	}
	err := affected(s.w.ExecContext(ctx, s.q(`UPDATE monitor_alerts SET status = ?, next_attempt_at = ?, last_error = ?, sent_at = ?,
		lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ? AND status = ?`),
		string(status), micros(normTime(next)), encText(lastErr), sent, id, owner, string(AlertPending)))
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: finish webhook alert %d: %w", id, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("store: finish webhook alert %d: %w", id, err)
	}
	return nil
}

// MonitorAlerts returns a monitor's latest alerts, newest first, at most
// limit (DefaultAlertHistory if <= 0, at most MaxSendLimit), without
// payloads. An email alert in the outbox shows its item's status,
// attempts and last error.
func (s *Store) MonitorAlerts(ctx context.Context, monitorID int64, limit int) ([]MonitorAlert, error) {
	if limit <= 0 {
		limit = DefaultAlertHistory
	}
	limit = min(limit, MaxSendLimit)
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+prefixed("a.", alertColumns)+`, o.status, o.attempts, o.last_error
		FROM monitor_alerts a LEFT JOIN outbox o ON o.id = a.outbox_id
		WHERE a.monitor_id = ? ORDER BY a.id DESC LIMIT ?`), monitorID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: alerts of monitor %d: %w", monitorID, err)
	}
	defer rows.Close()
	var out []MonitorAlert
	for rows.Next() {
		var oStatus, oErr sql.NullString
		var oAttempts sql.NullInt64
		a, err := scanAlert(rows, false, &oStatus, &oAttempts, &oErr)
		if err != nil {
			return nil, fmt.Errorf("store: alerts of monitor %d: %w", monitorID, err)
		}
		if oStatus.Valid {
			a.Status, a.Attempts, a.LastError = AlertStatus(oStatus.String), int(oAttempts.Int64), decText(oErr.String)
		}
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: alerts of monitor %d: %w", monitorID, err)
	}
	return out, nil
}

// prefixed puts p before each comma-separated column name.
func prefixed(p, cols string) string {
	out := make([]byte, 0, len(cols)+64)
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			out = append(out, p...)
			start = false
		}
		out = append(out, c)
		if c == ',' {
			start = true
		}
	}
	return string(out)
}
