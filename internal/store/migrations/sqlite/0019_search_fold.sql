-- 0019_search_fold (SQLite): PostgreSQL folds its searchable text to
-- lowercase (see ../postgres/0019_search_fold.sql). SQLite needs no
-- folding: its FTS5 trigram index and LIKE ignore case. The table exists
-- on both backends so that the schemas stay in step; here every row
-- counts as folded.
CREATE TABLE search_fold (below BIGINT NOT NULL);
INSERT INTO search_fold (below) VALUES (0);
