-- 0003_outbox_commit (SQLite): the durable "end of message sent" marker
-- of the outbox. Keep in step with ../postgres/0003_outbox_commit.sql.
--
-- data_sent_at (microseconds, NULL when not sent) is set by the worker
-- holding the lease just before the end of the message (the final "." or
-- BDAT LAST) goes on the wire, and cleared when the attempt's outcome is
-- recorded or an admin queues the item again. A "sending" item whose
-- lease expired with it set is not sent again: ClaimDue marks it unknown
-- (the server has probably accepted the message).
ALTER TABLE outbox ADD COLUMN data_sent_at INTEGER;
