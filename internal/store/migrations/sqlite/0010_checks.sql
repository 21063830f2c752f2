-- 0010_checks (SQLite): checks run from the web page (sockmail check):
-- what was checked with which options, when, the worst finding and the
-- report as JSON (check.Report's encoding), NULL while the check runs,
-- and the sends (source "check") that keep its SMTP conversations.
-- Keep in step with ../postgres/0010_checks.sql.
CREATE TABLE checks (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	target      TEXT    NOT NULL,
	options     TEXT    NOT NULL, -- JSON object (store.CheckOptions)
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0, -- 0 while running
	worst       TEXT    NOT NULL DEFAULT '',
	report      TEXT,
	sends       TEXT   NOT NULL DEFAULT '{}' -- JSON object: conversation number -> sends.id
);
CREATE INDEX checks_target ON checks (target, id);
