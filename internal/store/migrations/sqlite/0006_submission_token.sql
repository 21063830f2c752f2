-- 0006_submission_token (SQLite): the digest of the time-trap token a
-- submission was posted with, unique, so that a token is used once and a
-- retried post is recognised (contact: "already received"). NULL for
-- submissions without one. Keep in step with
-- ../postgres/0006_submission_token.sql.
ALTER TABLE submissions ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX submissions_token_hash ON submissions(token_hash);
