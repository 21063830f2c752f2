-- 0021_take_rate_async (SQLite): nothing to change. On PostgreSQL
-- sockmail_take_rate now makes its own transaction commit without waiting
-- for the WAL flush, which saves a statement a post; SQLite has no such
-- function (see 0020). Kept so that both backends number their migrations
-- alike.
SELECT 1;
