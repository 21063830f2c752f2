-- 0015_outbox_scale (SQLite): claims whose cost does not grow with the
-- outbox's history. Keep in step with ../postgres/0015_outbox_scale.sql;
-- the README ("Delivery: the outbox", at scale) argues the design.
--
-- ClaimDue reads two small sets: queued items by due time and items being
-- sent by lease expiry. Each gets a partial index holding those items
-- only, so that finished items (millions, kept for the history and the
-- queue page) are in neither. The index over every item by status and
-- due time goes. (SQLite updates rows in place: no fillfactor to set.)
CREATE INDEX outbox_queued_due ON outbox(next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_sending_lease ON outbox(lease_until) WHERE status = 'sending';
DROP INDEX outbox_due;
