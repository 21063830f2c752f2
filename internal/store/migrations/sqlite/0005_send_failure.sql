-- 0005_send_failure (SQLite): a failed send's failure as data
-- (smtp.Failure: phase, reply code, enhanced code, kind, TLS reason),
-- classified when the send fails. Sends stored before keep '' and 0 here
-- and are explained from their error text. Keep in step with
-- ../postgres/0005_send_failure.sql.
ALTER TABLE sends ADD COLUMN failure_phase    TEXT    NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN failure_code     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sends ADD COLUMN failure_enhanced TEXT    NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN failure_kind     TEXT    NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN failure_reason   TEXT    NOT NULL DEFAULT '';
