-- 0019_search_fold (PostgreSQL): the searchable text of a send is stored
-- lowercased from now on and matched with LIKE instead of ILIKE, which
-- lowercased every row it looked at (searchfold.go). Rows stored before
-- are folded in the background, newest first, by FoldSearchText; below is
-- the lowest send id from which every row is folded (0: all are). No
-- row is rewritten here, so the migration takes no time at any history
-- size. Keep in step with ../sqlite/0019_search_fold.sql.
CREATE TABLE search_fold (below BIGINT NOT NULL);
INSERT INTO search_fold (below) SELECT COALESCE(MAX(send_id), 0) + 1 FROM send_bodies;
