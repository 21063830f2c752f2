-- 0009_send_timings (SQLite): where a finished send's time went
-- (smtp.Timings: DNS, connect, greeting wait, EHLO, TLS, AUTH, envelope,
-- data, final reply, QUIT, other, total), stored when the send finishes so
-- that the history list draws a bar per row without reading transcripts.
-- A JSON object of microseconds; '' for sends stored before, which the
-- list shows without a bar. Keep in step with
-- ../postgres/0009_send_timings.sql.
ALTER TABLE sends ADD COLUMN timings TEXT NOT NULL DEFAULT '';
