-- 0022_search_queue (PostgreSQL): nothing to change. On SQLite this
-- version makes the history's full-text index a batch job (send_fts_pending);
-- PostgreSQL's trigram index is a GIN index whose own pending list already
-- batches its insertions. Kept so that both backends number their
-- migrations alike.
SELECT 1;
