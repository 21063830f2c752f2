-- 0024_rate_ahead (SQLite): nothing to change. On PostgreSQL a busy
-- rate-limit key is now counted ahead, many posts in one move of its
-- counter row (sockmail_take_rate_ahead, store.rateAhead); on SQLite the
-- counts are moved inside the group commit with the submission they
-- count, one process holds the database, and a count costs no write of
-- its own. Kept so that both backends number their migrations alike.
SELECT 1;
