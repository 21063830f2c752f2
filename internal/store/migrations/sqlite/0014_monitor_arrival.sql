-- 0014_monitor_arrival (SQLite): the end-to-end arrival time of a monitor
-- run that confirmed its message arrived (over IMAP or in the capture
-- server), in milliseconds from the start of the send to the message being
-- found; NULL when the run did not look (issue 15, charts of "end-to-end
-- arrival").
-- Keep in step with ../postgres/0014_monitor_arrival.sql.
ALTER TABLE monitor_runs ADD COLUMN arrival_ms INTEGER;
