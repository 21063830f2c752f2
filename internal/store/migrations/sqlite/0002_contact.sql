-- 0002_contact (SQLite): contact forms, their submissions and the durable
-- outbox of messages to deliver. Keep in step with
-- ../postgres/0002_contact.sql.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); free text goes
-- through the store's reversible text encoding (see encoding.go).

CREATE TABLE forms (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	slug               TEXT    NOT NULL UNIQUE, -- public id in POST /f/{slug}
	name               TEXT    NOT NULL,
	recipients         TEXT    NOT NULL, -- JSON array of strings
	profile_id         INTEGER NOT NULL, -- 0: the built-in capture server
	from_addr          TEXT    NOT NULL,
	from_name          TEXT    NOT NULL,
	allowed_origins    TEXT    NOT NULL, -- JSON array of strings
	success_url        TEXT    NOT NULL,
	error_url          TEXT    NOT NULL,
	subject_template   TEXT    NOT NULL,
	fields             TEXT    NOT NULL, -- JSON array of strings
	allow_uploads      INTEGER NOT NULL,
	max_upload_bytes   INTEGER NOT NULL,
	max_field_bytes    INTEGER NOT NULL,
	captcha_provider   TEXT    NOT NULL,
	captcha_secret_enc BLOB,
	rate_per_addr      INTEGER NOT NULL,
	rate_per_form      INTEGER NOT NULL,
	enabled            INTEGER NOT NULL,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL
);

-- A form's submissions go with it.
CREATE TABLE submissions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	form_id      INTEGER NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	client_addr  TEXT    NOT NULL,
	origin       TEXT    NOT NULL,
	user_agent   TEXT    NOT NULL,
	fields       TEXT    NOT NULL, -- JSON array of [name, value] pairs
	reply_to     TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	block_reason TEXT    NOT NULL
);
CREATE INDEX submissions_form ON submissions(form_id, id);
CREATE INDEX submissions_status ON submissions(status, id);

CREATE TABLE submission_files (
	submission_id INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
	position      INTEGER NOT NULL,
	name          TEXT    NOT NULL,
	content_type  TEXT    NOT NULL,
	data          BLOB    NOT NULL,
	PRIMARY KEY (submission_id, position)
);

-- The outbox. An item survives its submission and its form (submission_id
-- becomes NULL; form_id and last_send_id are plain numbers, possibly
-- pointing at rows deleted since): a queued message is still delivered.
CREATE TABLE outbox (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	created_at      INTEGER NOT NULL,
	queued_at       INTEGER NOT NULL, -- last enqueue, retry or release
	submission_id   INTEGER REFERENCES submissions(id) ON DELETE SET NULL,
	form_id         INTEGER,
	profile_id      INTEGER NOT NULL,
	mail_from       TEXT    NOT NULL,
	rcpts           TEXT    NOT NULL, -- JSON array of strings
	subject         TEXT    NOT NULL,
	message_id      TEXT    NOT NULL,
	message         BLOB    NOT NULL,
	status          TEXT    NOT NULL,
	attempts        INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL, -- 0: the worker's maximum age applies
	lease_owner     TEXT    NOT NULL,
	lease_until     INTEGER NOT NULL,
	taken_over_from TEXT    NOT NULL, -- set by a claim that took over an expired lease
	last_error      TEXT    NOT NULL,
	last_send_id    INTEGER
);
-- ClaimDue: queued items by due time, and the few 'sending' ones by status.
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_status ON outbox(status, id);
CREATE INDEX outbox_submission ON outbox(submission_id);
