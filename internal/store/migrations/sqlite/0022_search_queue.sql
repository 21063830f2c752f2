-- 0022_search_queue (SQLite): the history's full-text index (send_fts)
-- is written in batches instead of in every transaction that stores a
-- send (issue 16). FTS5 writes what a transaction added as a new index
-- segment when it commits and merges segments as they pile up: with the
-- outbox worker committing a few outcomes at a time, that was a sixth of
-- a drain's CPU, inside the single writer where contact posts wait.
--
-- A new send_bodies row now only queues its id in send_fts_pending; the
-- store's indexer (Store.IndexSearch, run every second by the store
-- itself) moves pending rows into send_fts a few hundred at a time. A
-- search reads send_fts and matches the pending rows itself
-- (ListSends), so a send is found from the moment it is stored.
--
-- send_fts is external-content: a 'delete' of a row it never indexed
-- would corrupt it, so deleting or changing a pending row leaves send_fts
-- alone (the indexer reads the text as it is when it runs).
CREATE TABLE send_fts_pending (send_id INTEGER PRIMARY KEY);
DROP TRIGGER send_bodies_ai;
DROP TRIGGER send_bodies_ad;
DROP TRIGGER send_bodies_au;
CREATE TRIGGER send_bodies_ai AFTER INSERT ON send_bodies BEGIN
	INSERT INTO send_fts_pending (send_id) VALUES (new.send_id);
END;
-- One trigger, in this order: the index's delete must see whether the row
-- is still pending before the row leaves the queue.
CREATE TRIGGER send_bodies_ad AFTER DELETE ON send_bodies BEGIN
	INSERT INTO send_fts(send_fts, rowid, search_text) SELECT 'delete', old.send_id, old.search_text
		WHERE NOT EXISTS (SELECT 1 FROM send_fts_pending WHERE send_id = old.send_id);
	DELETE FROM send_fts_pending WHERE send_id = old.send_id;
END;
CREATE TRIGGER send_bodies_au AFTER UPDATE OF search_text ON send_bodies
	WHEN NOT EXISTS (SELECT 1 FROM send_fts_pending WHERE send_id = old.send_id) BEGIN
	INSERT INTO send_fts(send_fts, rowid, search_text) VALUES ('delete', old.send_id, old.search_text);
	INSERT INTO send_fts(rowid, search_text) VALUES (new.send_id, new.search_text);
END;
