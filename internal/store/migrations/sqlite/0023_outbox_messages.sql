-- 0023_outbox_messages (SQLite): an outbox item's message in a table of
-- its own. SQLite stores a row as one record; a message larger than a
-- page spills into overflow pages, together with every column after it
-- (status, lease, attempts, the end-of-message mark...), and an UPDATE
-- that changes the record's size writes the whole record again. So each
-- of a delivery's three writes (claim, end-of-message mark, outcome)
-- rewrote the whole message: 256 KiB written three times, 850 KiB to the
-- write-ahead log and as much again at the checkpoint, for one delivery
-- of a 256 KiB message (TestOutboxUpdatesLeaveMessage).
--
-- New items keep their message here and an empty blob in
-- outbox.message; items stored before keep theirs in outbox.message
-- (reads take outbox_messages' when there is one), so the upgrade
-- rewrites nothing. PostgreSQL keeps a large value out of the row
-- already (TOAST) and an update copies only its pointer: its 0023 changes
-- nothing.
CREATE TABLE outbox_messages (
	item_id INTEGER PRIMARY KEY REFERENCES outbox(id) ON DELETE CASCADE,
	message BLOB    NOT NULL
);
