-- 0011_api_tokens (SQLite): tokens for the HTTP API under /api/v1. Only
-- the SHA-256 of a token is kept (hex); the token itself is shown once.
-- scopes is a comma-separated list (send, read, captured, admin).
-- Times are microseconds since the epoch; expires_at 0 means never,
-- last_used_at and revoked_at 0 mean not yet.
-- Keep in step with ../postgres/0011_api_tokens.sql.
CREATE TABLE api_tokens (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	name         TEXT    NOT NULL UNIQUE,
	hash         TEXT    NOT NULL UNIQUE,
	scopes       TEXT    NOT NULL,
	expires_at   INTEGER NOT NULL DEFAULT 0,
	created_by   TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER NOT NULL DEFAULT 0,
	revoked_at   INTEGER NOT NULL DEFAULT 0
);
