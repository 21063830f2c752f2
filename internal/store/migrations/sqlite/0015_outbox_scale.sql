-- 0015_outbox_scale (SQLite): claims whose cost does not grow with the
-- outbox's history. Keep in step with ../postgres/0015_outbox_scale.sql;
-- the README ("Delivery: the outbox", at scale) argues the design.
--
-- ClaimDue reads two small sets: queued items by due time and items being
-- sent by lease expiry. Each gets a partial index holding those items
-- only, so that finished items (millions, kept for the history and the
-- queue page) are in neither. The index over every item by status and
-- due time goes. status leads each index although it is constant there:
-- without statistics (the store runs no ANALYZE) SQLite's planner takes
-- an index whose columns match the query's equality and ORDER BY, and
-- with (next_attempt_at) alone it chose outbox_status and sorted the
-- whole queue at every claim. (SQLite updates rows in place: no
-- fillfactor to set.)
CREATE INDEX outbox_queued_due ON outbox(status, next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_sending_lease ON outbox(status, lease_until) WHERE status = 'sending';
DROP INDEX outbox_due;
