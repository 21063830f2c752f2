-- 0013_monitor_alerts (SQLite): alerts of monitors (issue 15 item 4).
-- monitor_alert_settings holds each monitor's alert channels (email
-- through a profile via the outbox, a signed webhook), when to alert
-- (degraded too or down only; repeat while down), its quiet hours, and
-- the state last alerted about (compare-and-set: instances sharing a
-- database record each change once). monitor_alerts keeps one row per
-- alert and channel: held during quiet hours, then an email handed to
-- the outbox (outbox_id) or a webhook delivered by the alert worker under
-- a lease with retries. Keep in step with ../postgres/0013_monitor_alerts.sql.
CREATE TABLE monitor_alert_settings (
	monitor_id     INTEGER NOT NULL PRIMARY KEY REFERENCES monitors (id) ON DELETE CASCADE,
	email_to       TEXT    NOT NULL DEFAULT '[]', -- JSON array of addresses; empty: no email
	email_profile  INTEGER NOT NULL DEFAULT 0,    -- 0: the built-in capture server
	email_from     TEXT    NOT NULL DEFAULT '',
	webhook_url    TEXT    NOT NULL DEFAULT '',   -- empty: no webhook
	webhook_secret_enc BLOB,                     -- sealed with the instance key (crypt.Box)
	on_degraded    INTEGER NOT NULL DEFAULT 0,
	repeat_minutes INTEGER NOT NULL DEFAULT 0,    -- 0: no repeat while down
	quiet_start    INTEGER NOT NULL DEFAULT 0,    -- minutes after midnight
	quiet_end      INTEGER NOT NULL DEFAULT 0,    -- equal to quiet_start: no quiet hours
	quiet_tz       TEXT    NOT NULL DEFAULT 'UTC',
	alerted_state  TEXT    NOT NULL DEFAULT 'unknown',
	alerted_at     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE monitor_alerts (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	monitor_id      INTEGER NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
	event_id        TEXT    NOT NULL,             -- shared by the channels of one alert
	created_at      INTEGER NOT NULL,
	event           TEXT    NOT NULL,             -- down, degraded, repeat, resolved
	old_state       TEXT    NOT NULL,
	new_state       TEXT    NOT NULL,
	reason          TEXT    NOT NULL DEFAULT '',
	run_id          INTEGER,
	channel         TEXT    NOT NULL,             -- email, webhook
	target          TEXT    NOT NULL,             -- the webhook URL, or the recipients (JSON array)
	profile_id      INTEGER NOT NULL DEFAULT 0,    -- email: the profile it goes through
	mail_from       TEXT    NOT NULL DEFAULT '',
	payload         BLOB   NOT NULL,             -- the webhook body, or the email message
	status          TEXT    NOT NULL,             -- held, queued, pending, sent, failed, dropped
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	lease_owner     TEXT    NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	outbox_id       INTEGER,                        -- email: its outbox item once released
	sent_at         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX monitor_alerts_monitor ON monitor_alerts (monitor_id, id);
CREATE INDEX monitor_alerts_due ON monitor_alerts (status, next_attempt_at);
