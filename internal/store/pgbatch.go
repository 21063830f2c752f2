package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Writes that go to PostgreSQL as one pipelined batch of statements: the
// server runs them one after the other without waiting for the client,
// and an error skips the rest (issue 16). database/sql cannot pipeline,
// so these take a pool connection's pgx connection (onPgConn).
//
// A contact post (enqueuePostgres): the rate limits counted in a short
// transaction of its own that commits without waiting for the WAL flush
// (so that a form's hot counter row is locked for microseconds), then the
// submission, its files and its outbox item in one statement that
// commits durably. A batch's outcomes (finishAttemptsPostgres): one
// statement each, in one implicit transaction.

// Error codes raised by sockmail_take_rate (migration 0020).
const (
	pgTokenStored = "SM001"
	pgRateReached = "SM002"
)

// enqueueSQL stores a submission, its files ($11-$13: names, content
// types, data, in order) and its outbox item, returning the item's id and
// the submission's.
const enqueueSQL = `WITH sub AS (
	INSERT INTO submissions (form_id, created_at, client_addr, origin, user_agent, fields, reply_to, status,
		block_reason, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id
), files AS (
	INSERT INTO submission_files (submission_id, position, name, content_type, data)
	SELECT sub.id, f.pos - 1, f.name, f.content_type, f.data
	FROM sub, unnest($11::text[], $12::text[], $13::bytea[]) WITH ORDINALITY AS f(name, content_type, data, pos)
)
INSERT INTO outbox (created_at, queued_at, submission_id, form_id, profile_id, mail_from, rcpts, subject, message_id,
	message, status, attempts, next_attempt_at, expires_at, lease_owner, lease_until, taken_over_from, last_error)
SELECT $14, $15, sub.id, $1, $16, $17, $18, $19, $20, $21, $22, 0, $23, $24, '', 0, '', '' FROM sub
RETURNING id, submission_id`

// onPgConn runs fn on the pgx connection of one of db's connections. A
// connection that fn leaves inside a transaction (a batch that failed
// after BEGIN) is rolled back, or dropped from the pool when that fails.
func onPgConn(ctx context.Context, db *sql.DB, fn func(*pgx.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a pgx connection: %T", dc)
		}
		c := sc.Conn()
		err := fn(c)
		if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
			if _, rerr := c.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				return errors.Join(err, driver.ErrBadConn)
			}
		}
		return err
	})
}

// queueTakeRate queues the transaction that counts a post under the
// limits of t.need (rateAhead.take), each ahead by as many posts as
// t.wants asks for (the database grants at least the post at hand), and,
// when token is not empty, refuses it if a stored submission has that
// token digest; first, in the same transaction, it gives back the
// counts t released (another limit's on the same key). The function
// makes the transaction commit with synchronous_commit off itself
// (migration 0024). readTakeRate reads its answers.
func queueTakeRate(b *pgx.Batch, token string, t aheadTake, at time.Time) {
	keys, froms, maxes := make([]string, len(t.need)), make([]int64, len(t.need)), make([]int32, len(t.need))
	for i, l := range t.need {
		keys[i], froms[i], maxes[i] = encText(l.Key), micros(at.Add(-l.Window)), int32(min(l.Max, 1<<31-1))
	}
	var tok any
	if token != "" {
		tok = token
	}
	b.Queue(`BEGIN`)
	for _, h := range t.released {
		b.Queue(giveBackSQL, encText(h.key), h.start, h.n)
	}
	b.Queue(`SELECT granted, starts, counts FROM sockmail_take_rate_ahead($1, $2, $3, $4, $5, $6)`,
		tok, keys, micros(at), froms, maxes, t.wants)
	b.Queue(`COMMIT`)
}

// readTakeRate reads the answers of queueTakeRate's statements from br
// and keeps the counts granted ahead (rateAhead.granted); once they are
// committed, t notes them (aheadTake.counted).
func (s *Store) readTakeRate(br pgx.BatchResults, t *aheadTake, at time.Time) error {
	for range 1 + len(t.released) {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	var granted, counts []int32
	var starts []int64
	if err := br.QueryRow().Scan(&granted, &starts, &counts); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	s.ahead.granted(t, granted, starts, counts, at)
	t.counted(starts)
	return nil
}

// rateRefusal turns sockmail_take_rate's errors into what TakeRate and
// EnqueueLimited return: the limit of active that refused the post (with
// its RetryAfter), ErrExists for a repeated token, or err itself.
func rateRefusal(err error, active []Limit, at time.Time) (*Limit, error) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil, err
	}
	switch pe.Code {
	case pgTokenStored:
		return nil, fmt.Errorf("submission with this token: %w", ErrExists)
	case pgRateReached:
		idx, start, ok := strings.Cut(pe.Detail, " ")
		i, err1 := strconv.Atoi(idx)
		us, err2 := strconv.ParseInt(start, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(active) {
			return nil, fmt.Errorf("rate limit reached, detail %q: %w", pe.Detail, err)
		}
		over := active[i]
		over.RetryAfter = max(fromMicros(us).Add(over.Window).Sub(at), time.Second)
		return &over, nil
	}
	return nil, err
}

// giveBackSQL gives n counts of key's window that starts at start back:
// its count goes down by n, unless the window has begun again since.
const giveBackSQL = `UPDATE rate_windows SET n = n - $3 WHERE key = $1 AND window_start = $2 AND n >= $3`

// giveBackTimeout bounds giveBackHeld's round trip.
const giveBackTimeout = 5 * time.Second

// giveBackAhead gives the counts this Store took ahead and holds unused
// back to the database (giveBackHeld). On SQLite it has nothing to give
// back.
func (s *Store) giveBackAhead(ctx context.Context) error {
	return s.giveBackHeld(ctx, s.ahead.release())
}

// aheadIdleEvery is how often giveBackIdle runs (startEvery): after one
// to two of these an idle key's counts are the database's again.
const aheadIdleEvery = 10 * time.Second

// giveBackIdle gives back the counts taken ahead of the keys no post
// used since its last round (rateAhead.idle). A failure leaves them
// counted, and is logged (SetLogger).
func (s *Store) giveBackIdle(ctx context.Context) {
	if err := s.giveBackHeld(ctx, s.ahead.idle()); err != nil && ctx.Err() == nil {
		s.logError("store: rate limits", err)
	}
}

// giveBackHeld gives held back to the database in one round trip: each
// key's count goes down by as many, unless its window has begun again
// since. A failure leaves them counted (the limit stays exact; other
// instances may be refused early until the window ends).
func (s *Store) giveBackHeld(ctx context.Context, held []heldCounts) error {
	if len(held) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, giveBackTimeout)
	defer cancel()
	var b pgx.Batch
	for _, h := range held {
		b.Queue(giveBackSQL, encText(h.key), h.start, h.n)
	}
	err := onPgConn(ctx, s.w, func(c *pgx.Conn) error { return c.SendBatch(ctx, &b).Close() })
	if err != nil {
		return fmt.Errorf("give back %d rate-limit keys' unused counts: %w", len(held), err)
	}
	return nil
}

// takeRatePostgres is TakeRate on PostgreSQL: from the counts held in
// memory, or in one round trip.
func (s *Store) takeRatePostgres(ctx context.Context, active []Limit, at time.Time) (*Limit, error) {
	t, err := s.ahead.takeWait(ctx, active, at)
	if err != nil || len(t.need) == 0 {
		return nil, err
	}
	var b pgx.Batch
	queueTakeRate(&b, "", t, at)
	sent := false
	err = onPgConn(ctx, s.w, func(c *pgx.Conn) error {
		sent = true
		br := c.SendBatch(ctx, &b)
		if err := s.readTakeRate(br, &t, at); err != nil {
			br.Close()
			return err
		}
		return br.Close()
	})
	s.health.note(err)
	if err != nil {
		s.ahead.settle(active, t, sent, err)
		return rateRefusal(err, t.need, at)
	}
	return nil, nil
}

// enqueuePostgres is enqueue on PostgreSQL: the post counted under active
// and stored in one round trip. A post refused by a limit returns that
// limit and stores and counts nothing; a post whose storing fails after
// its count committed stays counted.
func (s *Store) enqueuePostgres(ctx context.Context, sub *Submission, subStatus SubmissionStatus, it OutboxItem,
	active []Limit, at time.Time) (enqueued, *Limit, error) {
	created := normTime(sub.CreatedAt)
	fields, err := encFields(sub.Fields)
	if err != nil {
		return enqueued{}, nil, err
	}
	rcpts, err := encStrings(it.Rcpts)
	if err != nil {
		return enqueued{}, nil, err
	}
	var tokenHash any // NULL when there is none: NULLs never collide
	if sub.TokenHash != "" {
		tokenHash = sub.TokenHash
	}
	names, types, data := make([]string, len(sub.Files)), make([]string, len(sub.Files)), make([][]byte, len(sub.Files))
	for i, f := range sub.Files {
		names[i], types[i], data[i] = encText(f.Name), encText(f.ContentType), f.Data
		if data[i] == nil {
			data[i] = []byte{}
		}
	}
	var expires int64
	if !it.ExpiresAt.IsZero() {
		expires = micros(it.ExpiresAt)
	}
	t, err := s.ahead.takeWait(ctx, active, at)
	if err != nil {
		return enqueued{}, nil, err
	}
	var b pgx.Batch
	if len(t.need) > 0 {
		queueTakeRate(&b, sub.TokenHash, t, at)
	}
	b.Queue(enqueueSQL, sub.FormID, micros(created), encText(sub.ClientAddr), encText(sub.Origin),
		encText(sub.UserAgent), fields, encText(sub.ReplyTo), encText(string(subStatus)), encText(sub.BlockReason),
		tokenHash, names, types, data,
		micros(it.CreatedAt), micros(it.QueuedAt), it.ProfileID, encText(it.MailFrom), rcpts, encText(it.Subject),
		encText(it.MessageID), it.Message, string(it.Status), micros(it.NextAttemptAt), expires)
	var subID int64
	sent := false
	err = onPgConn(ctx, s.w, func(c *pgx.Conn) error {
		sent = true
		br := c.SendBatch(ctx, &b)
		if len(t.need) > 0 {
			if err := s.readTakeRate(br, &t, at); err != nil {
				br.Close()
				return err
			}
		}
		if err := br.QueryRow().Scan(&it.ID, &subID); err != nil {
			br.Close()
			return err
		}
		return br.Close()
	})
	s.health.note(err)
	if err != nil {
		s.ahead.settle(active, t, sent, err)
	}
	switch {
	case err == nil:
	case isForeignKeyViolation(err):
		return enqueued{}, nil, fmt.Errorf("form %d: %w", sub.FormID, ErrNotFound)
	case isUniqueViolation(err):
		return enqueued{}, nil, fmt.Errorf("submission with this token: %w", ErrExists)
	default:
		over, err := rateRefusal(err, t.need, at)
		return enqueued{}, over, err
	}
	formID := sub.FormID
	it.SubmissionID, it.FormID = &subID, &formID
	return enqueued{subID: subID, subTime: created, item: it}, nil, nil
}

// finishAttemptSQL stores one attempt's outcome with its history record
// (FinishAttempts): the sends row ($1-$24, sendRowColumns), its
// send_bodies row ($25-$28: search text, headers, events, message), then
// the outbox item $29 moved to status $30 (next attempt $31 when queued;
// last error $32) if owner $33 holds it (finishAttempt's condition), and
// its submission's status for a final outcome. It returns the send's id,
// whether the item was moved, and whether it exists.
const finishAttemptSQL = `WITH snd AS (
	INSERT INTO sends (` + sendRowColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
		$15, $16, $17, $18, $19, $20, $21, $22, $23, $24) RETURNING id
), body AS (
	INSERT INTO send_bodies (send_id, search_text, headers, events, message) SELECT id, $25, $26, $27, $28 FROM snd
), moved AS (
	UPDATE outbox SET status = $30::text,
		next_attempt_at = CASE WHEN $30::text = 'queued' THEN $31 ELSE next_attempt_at END,
		lease_owner = '', lease_until = 0, taken_over_from = '', last_error = $32,
		last_send_id = (SELECT id FROM snd), data_sent_at = NULL
	WHERE id = $29 AND (lease_owner = $33 AND status = 'sending'
		OR status = 'unknown' AND lease_owner = '' AND taken_over_from = $33 AND data_sent_at IS NOT NULL)
	RETURNING submission_id
), sub AS (
	UPDATE submissions SET status = $30::text WHERE id = (SELECT submission_id FROM moved) AND $30::text <> 'queued'
)
SELECT (SELECT id FROM snd), EXISTS (SELECT 1 FROM moved), EXISTS (SELECT 1 FROM outbox WHERE id = $29)`

// finishAttemptArgs validates an outcome of owner's attempt and encodes it,
// with snd (its history record), for finishAttemptSQL.
func (s *Store) finishAttemptArgs(o AttemptOutcome, owner string, snd *Send) ([]any, encodedSend, error) {
	switch o.Status {
	case OutboxQueued, OutboxSent, OutboxFailed, OutboxUnknown:
	default:
		return nil, encodedSend{}, fmt.Errorf("outbox item %d: status %q is not queued, sent, failed or unknown", o.ItemID, o.Status)
	}
	row, err := s.encodeSendRow(snd)
	if err != nil {
		return nil, encodedSend{}, fmt.Errorf("history record of outbox item %d: %w", o.ItemID, err)
	}
	var next int64
	if o.Status == OutboxQueued {
		next = micros(o.Next)
	}
	args := append(row.args, row.body.search, row.body.headers, row.body.events, row.body.message,
		o.ItemID, encText(string(o.Status)), next, encText(o.LastErr), encText(owner))
	return args, row, nil
}

// finishAttemptsPostgres is FinishAttempts on PostgreSQL: every outcome
// in one statement, all of them in one pipelined batch, one implicit
// transaction (all stored or none) on a session of Store.async; one
// round trip where database/sql needed four statements an outcome.
func (s *Store) finishAttemptsPostgres(ctx context.Context, owner string, outs []AttemptOutcome, sends []Send, errs []error) error {
	rows := make([]encodedSend, len(outs))
	var b pgx.Batch
	for i, o := range outs {
		sends[i], errs[i] = *o.Send, nil
		args, row, err := s.finishAttemptArgs(o, owner, &sends[i])
		if err != nil {
			return err
		}
		rows[i] = row
		b.Queue(finishAttemptSQL, args...)
	}
	err := onPgConn(ctx, s.async, func(c *pgx.Conn) error {
		br := c.SendBatch(ctx, &b)
		for i, o := range outs {
			var id int64
			var moved, exists bool
			if err := br.QueryRow().Scan(&id, &moved, &exists); err != nil {
				br.Close()
				return fmt.Errorf("outbox item %d: %w", o.ItemID, err)
			}
			rows[i].stored(&sends[i], id)
			switch {
			case !exists:
				errs[i] = fmt.Errorf("store: finish attempt on outbox item %d: %w", o.ItemID, ErrNotFound)
			case !moved:
				errs[i] = fmt.Errorf("store: finish attempt on outbox item %d: %w", o.ItemID, ErrLeaseLost)
			}
		}
		return br.Close()
	})
	s.health.note(err)
	return err
}

// finishAttemptSendPostgres is FinishAttemptSend on PostgreSQL: the
// statement of finishAttemptsPostgres in a transaction of its own, sent
// with its BEGIN, then committed when the item moved or rolled back when
// it did not (nothing is stored then); two round trips instead of six.
func (s *Store) finishAttemptSendPostgres(ctx context.Context, o AttemptOutcome, owner string) error {
	c := *o.Send
	args, row, err := s.finishAttemptArgs(o, owner, &c)
	if err != nil {
		return err
	}
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(finishAttemptSQL, args...)
	err = onPgConn(ctx, s.async, func(conn *pgx.Conn) error {
		br := conn.SendBatch(ctx, &b)
		var id int64
		var moved, exists bool
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&id, &moved, &exists)
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		switch {
		case !exists:
			return ErrNotFound // onPgConn rolls the transaction back
		case !moved:
			return ErrLeaseLost
		}
		if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
			return err
		}
		row.stored(&c, id)
		return nil
	})
	s.health.note(err)
	if err != nil {
		return err
	}
	*o.Send = c
	return nil
}

// claimPostgres runs a claim on PostgreSQL in one round trip: BEGIN, the
// settling of expired marked attempts (pgSettleSQL from staleFrom to
// nowUS), pgClaimQuery with args and COMMIT go as one pipelined batch on
// a worker session (synchronous_commit off, as writeTx's). A failure
// leaves nothing claimed (onPgConn rolls back).
func (s *Store) claimPostgres(ctx context.Context, staleFrom, nowUS int64, args ...any) ([]OutboxItem, error) {
	var out []OutboxItem
	var b pgx.Batch
	b.Queue(`BEGIN`)
	b.Queue(s.q(pgSettleSQL), staleFrom, nowUS, encText(DataSentLostError))
	b.Queue(s.q(pgClaimQuery), args...)
	b.Queue(`COMMIT`)
	err := onPgConn(ctx, s.async, func(c *pgx.Conn) error {
		br := c.SendBatch(ctx, &b)
		defer br.Close()
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		out, err = scanOutboxRows(rows, true)
		rows.Close()
		if err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	})
	s.health.note(err)
	return out, err
}
