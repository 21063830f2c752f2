-- 0020_take_rate (PostgreSQL): a contact post's rate limits taken in one
-- statement (issue 16), so that the whole post (count, then store) goes
-- to the server in one pipelined round trip (store.enqueuePostgres).
--
-- sockmail_take_rate counts one post at p_at (microseconds) under each
-- limit i: key p_keys[i], whose window began before p_froms[i] is over,
-- at most p_maxes[i] posts in a window. The counter rows move as
-- TakeRate's did (INSERT ... ON CONFLICT DO UPDATE ... WHERE, which
-- re-reads a row locked by a concurrent post, so limits stay exact). When
-- a limit refuses the post, or p_token is the token digest of a stored
-- submission (a repeated post, which must not count), it raises an error
-- and the caller's transaction counts nothing:
--   SM001  a submission with this token exists;
--   SM002  limit reached; DETAIL is "<i-1> <window_start>" (0-based index
--          of the limit, start of its window in microseconds).
CREATE FUNCTION sockmail_take_rate(p_token TEXT, p_keys TEXT[], p_at BIGINT, p_froms BIGINT[], p_maxes INTEGER[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
	v_start BIGINT;
BEGIN
	IF p_token IS NOT NULL AND EXISTS (SELECT 1 FROM submissions WHERE token_hash = p_token) THEN
		RAISE EXCEPTION 'a submission with this token is stored' USING ERRCODE = 'SM001';
	END IF;
	FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
		INSERT INTO rate_windows AS r (key, window_start, n) VALUES (p_keys[i], p_at, 1)
		ON CONFLICT (key) DO UPDATE SET
			n = CASE WHEN r.window_start < p_froms[i] THEN 1 ELSE r.n + 1 END,
			window_start = CASE WHEN r.window_start < p_froms[i] THEN excluded.window_start ELSE r.window_start END
		WHERE r.window_start < p_froms[i] OR r.n < p_maxes[i];
		IF NOT FOUND THEN
			SELECT window_start INTO v_start FROM rate_windows WHERE key = p_keys[i];
			RAISE EXCEPTION 'rate limit % reached', p_keys[i]
				USING ERRCODE = 'SM002', DETAIL = (i - 1)::text || ' ' || v_start::text;
		END IF;
	END LOOP;
END
$$;
