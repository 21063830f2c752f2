-- 0020_take_rate (SQLite): nothing to change. On PostgreSQL this version
-- adds sockmail_take_rate, so that a contact post is counted and stored in
-- one round trip; on SQLite the count and the record are already one
-- transaction inside the group commit, in the same process (takeRate).
-- Kept so that both backends number their migrations alike.
SELECT 1;
