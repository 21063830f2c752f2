-- 0008_captured_search (PostgreSQL): what a search of captured mail
-- matches. search_from holds the envelope sender and the From field,
-- search_to the envelope recipients and the To and Cc fields, search_text
-- all of those, the subject, the attachment names and the text of the body
-- (capped), all decoded and cleaned like the history's search text. ILIKE
-- over search_text is served by a pg_trgm GIN index when the extension is
-- installed (0001_init), as for the history. Rows captured before this
-- migration get their envelope and subject only (their body is not read
-- here). Keep in step with ../sqlite/0008_captured_search.sql.
ALTER TABLE captured
	ADD COLUMN search_from TEXT NOT NULL DEFAULT '',
	ADD COLUMN search_to   TEXT NOT NULL DEFAULT '',
	ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE captured SET search_from = mail_from, search_to = rcpts,
	search_text = subject || chr(10) || mail_from || chr(10) || rcpts;
DO $$
DECLARE
	trgm_schema TEXT;
BEGIN
	SELECT n.nspname INTO trgm_schema
	FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	WHERE e.extname = 'pg_trgm';
	IF trgm_schema IS NOT NULL THEN
		EXECUTE format('CREATE INDEX captured_search ON captured USING gin (search_text %I.gin_trgm_ops)', trgm_schema);
	END IF;
END
$$;
