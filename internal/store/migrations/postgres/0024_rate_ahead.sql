-- 0024_rate_ahead (PostgreSQL): a busy rate-limit key is counted ahead
-- (issue 16). sockmail_take_rate_ahead counts, for each key, up to as
-- many posts as the caller wants at once (at most a sixteenth of what is
-- left in the window, at least the one post at hand) and returns how
-- many it counted (granted), the window's start and the count; the
-- instance then hands the extra counts to its next posts of that key in
-- memory (store.rateAhead), so that a form busy with posts moves its
-- counter row once in many posts instead of every post. Exact: a key never
-- counts more than its Max posts in a window; counts an instance took
-- and did not use stay counted (an instance that stops, another
-- instance's early refusal, at most a sixteenth of what was left).
-- sockmail_take_rate (0021) stays for instances not yet upgraded.
ALTER TABLE rate_windows ADD COLUMN granted INTEGER NOT NULL DEFAULT 1;

CREATE FUNCTION sockmail_take_rate_ahead(p_token TEXT, p_keys TEXT[], p_at BIGINT, p_froms BIGINT[], p_maxes INTEGER[],
	p_wants INTEGER[], OUT granted INTEGER[], OUT starts BIGINT[], OUT counts INTEGER[])
LANGUAGE plpgsql AS $$
DECLARE
	v_granted INTEGER;
	v_start BIGINT;
	v_n INTEGER;
BEGIN
	-- As sockmail_take_rate: the counter rows stay locked until the
	-- transaction ends, which does not wait for the WAL flush.
	PERFORM set_config('synchronous_commit', 'off', true);
	IF p_token IS NOT NULL AND EXISTS (SELECT 1 FROM submissions WHERE token_hash = p_token) THEN
		RAISE EXCEPTION 'a submission with this token is stored' USING ERRCODE = 'SM001';
	END IF;
	granted := '{}';
	starts := '{}';
	counts := '{}';
	FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
		-- In SET, r.n is the count before this statement.
		INSERT INTO rate_windows AS r (key, window_start, n, granted)
		VALUES (p_keys[i], p_at, greatest(1, least(p_wants[i], p_maxes[i] / 16)), greatest(1, least(p_wants[i], p_maxes[i] / 16)))
		ON CONFLICT (key) DO UPDATE SET
			granted = CASE WHEN r.window_start < p_froms[i] THEN greatest(1, least(p_wants[i], p_maxes[i] / 16))
				ELSE greatest(1, least(p_wants[i], (p_maxes[i] - r.n) / 16)) END,
			n = CASE WHEN r.window_start < p_froms[i] THEN greatest(1, least(p_wants[i], p_maxes[i] / 16))
				ELSE r.n + greatest(1, least(p_wants[i], (p_maxes[i] - r.n) / 16)) END,
			window_start = CASE WHEN r.window_start < p_froms[i] THEN excluded.window_start ELSE r.window_start END
		WHERE r.window_start < p_froms[i] OR r.n < p_maxes[i]
		RETURNING r.granted, r.window_start, r.n INTO v_granted, v_start, v_n;
		IF NOT FOUND THEN
			SELECT window_start INTO v_start FROM rate_windows WHERE key = p_keys[i];
			RAISE EXCEPTION 'rate limit % reached', p_keys[i]
				USING ERRCODE = 'SM002', DETAIL = (i - 1)::text || ' ' || v_start::text;
		END IF;
		granted := granted || v_granted;
		starts := starts || v_start;
		counts := counts || v_n;
	END LOOP;
END
$$;
