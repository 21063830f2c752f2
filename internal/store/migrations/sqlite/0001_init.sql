-- 0001_init (SQLite): users, sessions, attempts, settings, profiles, sends,
-- captured mail. Keep in step with ../postgres/0001_init.sql.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC) on both
-- backends, so that one code path reads and writes them. Free text that
-- may come from a hostile server is stored through the store's reversible
-- text encoding (see encoding.go), so TEXT columns never hold NUL or
-- invalid UTF-8.

CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	email         TEXT    NOT NULL,
	email_key     TEXT    NOT NULL UNIQUE, -- lower-cased email
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
);

-- Session ids are stored as SHA-256 hashes: a copy of the database does
-- not give away live sessions.
CREATE TABLE sessions (
	id_hash    TEXT    PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE attempts (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	key          TEXT    NOT NULL,
	attempted_at INTEGER NOT NULL
);
CREATE INDEX attempts_key_at ON attempts(key, attempted_at);
CREATE INDEX attempts_at ON attempts(attempted_at);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);

CREATE TABLE profiles (
	id                   INTEGER PRIMARY KEY AUTOINCREMENT,
	name                 TEXT    NOT NULL UNIQUE,
	host                 TEXT    NOT NULL,
	port                 INTEGER NOT NULL,
	tls_mode             TEXT    NOT NULL,
	insecure_skip_verify INTEGER NOT NULL DEFAULT 0,
	auth_mech            TEXT    NOT NULL,
	username             TEXT    NOT NULL,
	password_enc         BLOB,
	helo_name            TEXT    NOT NULL,
	created_at           INTEGER NOT NULL,
	updated_at           INTEGER NOT NULL
);

-- sends holds what a list shows; its rows stay small so that filtering
-- and counting scan few pages. The large parts live in send_bodies.
CREATE TABLE sends (
	id                INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: keyset cursors stay valid
	created_at        INTEGER NOT NULL,
	finished_at       INTEGER,
	source            TEXT    NOT NULL,
	user_id           INTEGER REFERENCES users(id) ON DELETE SET NULL,
	client_addr       TEXT    NOT NULL,
	server            TEXT    NOT NULL,
	tls_mode          TEXT    NOT NULL,
	mail_from         TEXT    NOT NULL,
	rcpts             TEXT    NOT NULL, -- JSON array of strings
	subject           TEXT    NOT NULL,
	status            TEXT    NOT NULL,
	queue_id          TEXT    NOT NULL,
	error             TEXT    NOT NULL,
	duration_ms       REAL    NOT NULL,
	parent_id         INTEGER REFERENCES sends(id) ON DELETE SET NULL,
	form_id           INTEGER,
	message_truncated INTEGER NOT NULL,
	recipients        TEXT    NOT NULL  -- JSON array of recipient results
);
CREATE INDEX sends_created ON sends(created_at);
CREATE INDEX sends_status ON sends(status, id);
CREATE INDEX sends_source ON sends(source, id);
CREATE INDEX sends_parent ON sends(parent_id);
CREATE INDEX sends_user ON sends(user_id);

CREATE TABLE send_bodies (
	send_id     INTEGER PRIMARY KEY REFERENCES sends(id) ON DELETE CASCADE,
	search_text TEXT NOT NULL, -- subject, addresses, replies, transcript lines
	headers     TEXT NOT NULL,
	events      TEXT NOT NULL, -- JSON array of events
	message     BLOB
);

-- Substring search over search_text: an FTS5 trigram index with
-- send_bodies as its external content, kept in step by triggers.
CREATE VIRTUAL TABLE send_fts USING fts5(
	search_text,
	content = 'send_bodies',
	content_rowid = 'send_id',
	tokenize = 'trigram'
);
CREATE TRIGGER send_bodies_ai AFTER INSERT ON send_bodies BEGIN
	INSERT INTO send_fts(rowid, search_text) VALUES (new.send_id, new.search_text);
END;
CREATE TRIGGER send_bodies_ad AFTER DELETE ON send_bodies BEGIN
	INSERT INTO send_fts(send_fts, rowid, search_text) VALUES ('delete', old.send_id, old.search_text);
END;
CREATE TRIGGER send_bodies_au AFTER UPDATE OF search_text ON send_bodies BEGIN
	INSERT INTO send_fts(send_fts, rowid, search_text) VALUES ('delete', old.send_id, old.search_text);
	INSERT INTO send_fts(rowid, search_text) VALUES (new.send_id, new.search_text);
END;

CREATE TABLE captured (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	received_at INTEGER NOT NULL,
	mail_from   TEXT    NOT NULL,
	rcpts       TEXT    NOT NULL, -- JSON array of strings
	subject     TEXT    NOT NULL,
	size        INTEGER NOT NULL,
	remote_addr TEXT    NOT NULL,
	tls         INTEGER NOT NULL,
	auth_user   TEXT    NOT NULL,
	raw         BLOB
);
