-- 0007_profile_insecure_auth (PostgreSQL): a server profile may allow AUTH
-- over a connection without TLS (the password then crosses the network in
-- clear; for test servers). Off for every existing profile. Keep in step
-- with ../sqlite/0007_profile_insecure_auth.sql.
ALTER TABLE profiles ADD COLUMN allow_insecure_auth BOOLEAN NOT NULL DEFAULT FALSE;
