-- 0008_captured_search (SQLite): what a search of captured mail matches.
-- search_from holds the envelope sender and the From field, search_to the
-- envelope recipients and the To and Cc fields, search_text all of those,
-- the subject, the attachment names and the text of the body (capped), all
-- decoded and cleaned like the history's search text. An FTS5 trigram
-- index serves substring searches of search_text, as send_fts does for the
-- history. Rows captured before this migration get their envelope and
-- subject only (their body is not read here). Keep in step with
-- ../postgres/0008_captured_search.sql.
ALTER TABLE captured ADD COLUMN search_from TEXT NOT NULL DEFAULT '';
ALTER TABLE captured ADD COLUMN search_to TEXT NOT NULL DEFAULT '';
ALTER TABLE captured ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE captured SET search_from = mail_from, search_to = rcpts,
	search_text = subject || char(10) || mail_from || char(10) || rcpts;
CREATE VIRTUAL TABLE captured_fts USING fts5(
	search_text,
	content = 'captured',
	content_rowid = 'id',
	tokenize = 'trigram'
);
INSERT INTO captured_fts(captured_fts) VALUES ('rebuild');
CREATE TRIGGER captured_ai AFTER INSERT ON captured BEGIN
	INSERT INTO captured_fts(rowid, search_text) VALUES (new.id, new.search_text);
END;
CREATE TRIGGER captured_ad AFTER DELETE ON captured BEGIN
	INSERT INTO captured_fts(captured_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;
CREATE TRIGGER captured_au AFTER UPDATE OF search_text ON captured BEGIN
	INSERT INTO captured_fts(captured_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
	INSERT INTO captured_fts(rowid, search_text) VALUES (new.id, new.search_text);
END;
