-- 0015_outbox_scale (PostgreSQL): claims whose cost does not grow with
-- the outbox's history. Keep in step with ../sqlite/0015_outbox_scale.sql;
-- the README ("Delivery: the outbox", at scale) argues the design.
--
-- ClaimDue reads two small sets: queued items by due time and items being
-- sent by lease expiry. Each gets a partial index holding those items
-- only, so that finished items (millions, kept for the history and the
-- queue page) are in neither, and an update that finishes an item adds
-- no entry to either. The index over every item by status and due time,
-- which grew with the history and took an entry at every change of every
-- item, goes.
CREATE INDEX outbox_queued_due ON outbox(next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_sending_lease ON outbox(lease_until) WHERE status = 'sending';
DROP INDEX outbox_due;
-- Room on every heap page for new versions of its rows: an update that
-- changes no indexed column (MarkDataSent's mark) then stays on its page
-- as a heap-only tuple (HOT), adds no index entry, and the dead version
-- is pruned by the next reader of the page, without VACUUM.
ALTER TABLE outbox SET (fillfactor = 70);
