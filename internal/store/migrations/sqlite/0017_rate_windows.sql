-- 0017_rate_windows (SQLite): contact-form rate limits as one counter
-- row per key (issue 16): the window began at window_start (the first
-- post counted in it, microseconds) and n posts were counted since.
-- TakeRate moves it in one INSERT ... ON CONFLICT DO UPDATE ...
-- RETURNING, so exact limits need neither a count over the attempts
-- table nor a lock held across statements.
-- Keep in step with ../postgres/0017_rate_windows.sql.
CREATE TABLE rate_windows (
	key          TEXT    PRIMARY KEY,
	window_start INTEGER NOT NULL,
	n            INTEGER NOT NULL
);
CREATE INDEX rate_windows_start ON rate_windows(window_start);
