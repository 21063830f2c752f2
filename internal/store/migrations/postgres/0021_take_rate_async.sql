-- 0021_take_rate_async (PostgreSQL): sockmail_take_rate (0020) sets
-- synchronous_commit off for its own transaction (set_config, local to
-- the transaction, as SET LOCAL is), so that store.enqueuePostgres and
-- TakeRate no longer send a SET LOCAL statement before it: one statement
-- less a post. Otherwise the function is 0020's.
CREATE OR REPLACE FUNCTION sockmail_take_rate(p_token TEXT, p_keys TEXT[], p_at BIGINT, p_froms BIGINT[], p_maxes INTEGER[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
	v_start BIGINT;
BEGIN
	-- The counter rows stay locked until the transaction ends: it ends
	-- without waiting for the WAL flush, so that a form's posts do not
	-- queue behind each other's disk writes (true: for this transaction
	-- only, as SET LOCAL; the stored submission commits durably in a
	-- transaction of its own).
	PERFORM set_config('synchronous_commit', 'off', true);
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
