-- 0016_profile_connections (PostgreSQL): how many connections the
-- contact-form outbox keeps open to a profile's server at most; 0 takes
-- the instance's default (SOCKMAIL_OUTBOX_CONNECTIONS), 1 suits servers
-- that limit connections per client. Keep in step with
-- ../sqlite/0016_profile_connections.sql.
ALTER TABLE profiles ADD COLUMN max_connections INTEGER NOT NULL DEFAULT 0;
