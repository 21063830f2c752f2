-- 0012_monitors (SQLite): monitors run on a schedule (issue 15): what
-- they test (kind, target, profile, recipient, options as JSON), how
-- often, their thresholds, their state (up, degraded, down; unknown
-- before the first run) with its reason and since when, when they run
-- next, and the lease a scheduler holds while running one (so that
-- several instances run each monitor once). monitor_runs keeps each
-- run's outcome and the send or check that holds its transcript.
-- Keep in step with ../postgres/0012_monitors.sql.
CREATE TABLE monitors (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	name             TEXT    NOT NULL UNIQUE,
	kind             TEXT    NOT NULL,
	target           TEXT    NOT NULL DEFAULT '',
	profile_id       INTEGER NOT NULL DEFAULT 0,
	rcpt             TEXT    NOT NULL DEFAULT '',
	options          TEXT    NOT NULL DEFAULT '{}', -- JSON object (store.MonitorOptions)
	interval_minutes INTEGER NOT NULL,
	enabled          INTEGER NOT NULL DEFAULT 1,
	slow_ms          INTEGER NOT NULL DEFAULT 0,
	cert_days        INTEGER NOT NULL DEFAULT 0,
	state            TEXT    NOT NULL DEFAULT 'unknown',
	reason           TEXT    NOT NULL DEFAULT '',
	state_since      INTEGER NOT NULL DEFAULT 0,
	last_run_at      INTEGER NOT NULL DEFAULT 0,
	next_run_at      INTEGER NOT NULL DEFAULT 0,
	lease_owner      TEXT    NOT NULL DEFAULT '',
	lease_until      INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL
);
CREATE INDEX monitors_due ON monitors (enabled, next_run_at);
CREATE TABLE monitor_runs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	monitor_id  INTEGER NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL,
	state       TEXT    NOT NULL,
	reason      TEXT    NOT NULL DEFAULT '',
	latency_ms  INTEGER NOT NULL DEFAULT 0,
	send_id     INTEGER,
	check_id    INTEGER
);
CREATE INDEX monitor_runs_monitor ON monitor_runs (monitor_id, id);
