-- 0018_chart_indexes (PostgreSQL): the charts (issue 15) read a server's
-- sends and a monitor's runs by time: /history/server and the monitor
-- page's 24 h / 7 d / 30 d ranges, without scanning the whole history.
-- Keep in step with ../sqlite/0018_chart_indexes.sql.
CREATE INDEX sends_server_created ON sends (server, created_at);
CREATE INDEX monitor_runs_started ON monitor_runs (monitor_id, started_at);
