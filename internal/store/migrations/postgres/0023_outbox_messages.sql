-- 0023_outbox_messages (PostgreSQL): nothing to change. On SQLite this
-- version moves a new outbox item's message into a table of its own, so
-- that the claim, the end-of-message mark and the outcome no longer
-- rewrite it; PostgreSQL stores a large value out of the row (TOAST) and
-- an update copies only its pointer. Kept so that both backends number
-- their migrations alike.
SELECT 1;
