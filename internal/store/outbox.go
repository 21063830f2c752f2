package store

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/textproto"
	"sort"
	"strings"
	"sync"
	"time"

	"sockmail/internal/mailread"
)

// The durable outbox. Every message a contact form sends is an OutboxItem,
// stored in the same transaction as its Submission, before the visitor is
// told "thank you". Workers (internal/outbox) claim due items with a lease,
// deliver them and record the outcome; the lease is what lets several
// instances share one PostgreSQL database, and what lets a crashed
// worker's claims be taken over once it expires.
//
// Life of an item:
//
//	queued --ClaimDue--> sending --FinishAttempt--> sent | failed | unknown
//	                        |                       \--> queued (retry later)
//	                        |-- MarkDataSent (the end of the message goes out)
//	                        \-- lease expires --> ClaimDue: taken over and sent
//	                             again if the end of the message was not
//	                             marked sent, else unknown (not sent again)
//	held (blocked submission) --ReleaseSubmission--> queued
//	queued | held --CancelOutbox--> cancelled
//	failed | unknown | cancelled --RetryOutbox--> queued

// OutboxStatus is where an outbox item stands (the life cycle above).
type OutboxStatus string

// Outbox item statuses.
const (
	OutboxQueued    OutboxStatus = "queued"
	OutboxSending   OutboxStatus = "sending"
	OutboxSent      OutboxStatus = "sent"
	OutboxFailed    OutboxStatus = "failed"
	OutboxUnknown   OutboxStatus = "unknown"
	OutboxCancelled OutboxStatus = "cancelled"
	OutboxHeld      OutboxStatus = "held"
)

// DefaultOutboxMaxAge is how long temporary failures are retried when
// neither the item (ExpiresAt) nor the worker says otherwise.
const DefaultOutboxMaxAge = 72 * time.Hour

// ErrLeaseLost is returned by FinishAttempt, FinishAttemptSend and
// MarkDataSent when the item
// is no longer claimed by the caller: its lease expired and another worker
// took it over, or an admin changed it.
var ErrLeaseLost = errors.New("store: outbox lease lost")

// ErrWrongState is returned by the admin actions (RetryOutbox,
// CancelOutbox, ReleaseSubmission) when the item or submission is not in
// a state the action applies to, e.g. cancelling a message being sent.
var ErrWrongState = errors.New("store: not possible in the current state")

// OutboxItem is one message to deliver.
type OutboxItem struct {
	ID        int64
	CreatedAt time.Time
	// QueuedAt is when the item last entered the queue: at
	// EnqueueSubmission, RetryOutbox or ReleaseSubmission. A worker's
	// maximum age counts from here.
	QueuedAt time.Time
	// SubmissionID and FormID link the item to what caused it:
	// SubmissionID is nil once the submission has been deleted; FormID
	// (a plain number, kept when the form goes) is nil only for an item
	// no form made, a monitor's alert email (insertAlertEmail).
	SubmissionID *int64
	FormID       *int64
	// ProfileID is the server profile to deliver through; 0 is the
	// built-in capture server.
	ProfileID int64
	MailFrom  string
	Rcpts     []string
	// Subject is the message's decoded Subject, for lists; taken from
	// Message by EnqueueSubmission when empty.
	Subject string
	// MessageID is the Message-ID of Message (without angle brackets),
	// fixed when the message was built: a resend carries the same one, so
	// a duplicate can be recognised. Taken from Message when empty.
	MessageID string
	// Message is the complete RFC 5322 message, built at submission time.
	// ListOutbox leaves it nil.
	Message []byte
	// Status is one of the Outbox* constants.
	Status OutboxStatus
	// Attempts counts the claims since the item was last queued.
	Attempts      int
	NextAttemptAt time.Time
	// ExpiresAt, when not zero, is when temporary failures stop being
	// retried; zero leaves it to the worker (QueuedAt + its maximum age).
	ExpiresAt  time.Time
	LeaseOwner string
	LeaseUntil time.Time
	// DataSentAt, when not zero, is when the current attempt (by
	// LeaseOwner) was about to send the end of the message (MarkDataSent):
	// from then on the server may have the message. Cleared when the
	// attempt's outcome is recorded or the item is queued again; kept on
	// an item ClaimDue marked unknown because of it.
	DataSentAt time.Time
	// TakenOverFrom is set by ClaimDue when it took the item over from a
	// worker whose lease had expired (a crashed or stuck process) before
	// that worker's attempt sent the end of the message. On an item
	// ClaimDue marked unknown instead (DataSentLostError) it names the
	// worker whose attempt had marked the end of the message sent.
	TakenOverFrom string
	LastError     string
	// LastSendID is the history record (Send) of the last attempt. It may
	// name a send that retention has deleted since.
	LastSendID *int64
}

// OutboxFilter selects outbox items to list. Zero fields do not filter.
type OutboxFilter struct {
	Status OutboxStatus
	FormID int64
	// Limit is the page size: DefaultListLimit if 0, at most MaxListLimit.
	Limit int
	// Before is the keyset cursor: only items with ID < Before.
	Before int64
}

// messageHeader returns the decoded Subject and the Message-ID (without
// angle brackets) of a message; empty when absent or unreadable.
func messageHeader(msg []byte) (subject, messageID string) {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return "", ""
	}
	subject = mailread.DecodeHeader(h.Get("Subject"))
	messageID = strings.TrimSpace(h.Get("Message-Id"))
	messageID = strings.TrimSuffix(strings.TrimPrefix(messageID, "<"), ">")
	return subject, messageID
}

// enqueued is what EnqueueSubmission stored, copied into the caller's
// structs once the transaction commits.
type enqueued struct {
	subID   int64
	subTime time.Time
	item    OutboxItem
}

// checkEnqueue validates and completes what EnqueueSubmission stores.
func checkEnqueue(sub *Submission, item *OutboxItem) (SubmissionStatus, OutboxItem, error) {
	subStatus := sub.Status
	if subStatus == "" {
		subStatus = SubmissionQueued
	}
	it := *item
	switch subStatus {
	case SubmissionQueued:
		it.Status = OutboxQueued
	case SubmissionBlocked:
		it.Status = OutboxHeld
	default:
		return "", it, fmt.Errorf("submission status %q: want %q or %q", subStatus, SubmissionQueued, SubmissionBlocked)
	}
	if len(it.Message) == 0 {
		return "", it, errors.New("outbox item without a message")
	}
	if len(it.Rcpts) == 0 {
		return "", it, errors.New("outbox item without recipients")
	}
	subject, msgID := messageHeader(it.Message)
	if it.Subject == "" {
		it.Subject = subject
	}
	if it.MessageID == "" {
		it.MessageID = msgID
	}
	if it.CreatedAt.IsZero() {
		it.CreatedAt = sub.CreatedAt
	}
	it.CreatedAt = normTime(it.CreatedAt)
	it.QueuedAt = it.CreatedAt
	if it.NextAttemptAt.IsZero() {
		it.NextAttemptAt = it.CreatedAt
	}
	it.NextAttemptAt = normTime(it.NextAttemptAt)
	if !it.ExpiresAt.IsZero() {
		it.ExpiresAt = normTime(it.ExpiresAt)
	}
	it.Attempts, it.LeaseOwner, it.LeaseUntil, it.TakenOverFrom, it.LastError, it.LastSendID = 0, "", time.Time{}, "", "", nil
	return subStatus, it, nil
}

// EnqueueSubmission stores a submission and the outbox item that delivers
// it in one transaction. The item is queued, or held when sub.Status is
// SubmissionBlocked (an empty Status means SubmissionQueued). When it
// returns nil both are durable: committed on PostgreSQL; on SQLite
// committed with synchronous=FULL, so that the write-ahead log is on disk
// and survives a power cut, not only a crash of sockmail. Concurrent calls
// on SQLite share one transaction and one fsync (group commit), which is
// what keeps hundreds of submissions a second possible with that
// guarantee.
//
// On success it sets sub.ID, sub.CreatedAt (now if zero), sub.Status and
// their files' Size, and item.ID, item.SubmissionID, item.FormID and the
// defaults (CreatedAt = the submission's, QueuedAt, NextAttemptAt = now,
// Status, Subject and MessageID from the message when empty). On error
// neither is changed and nothing was stored, with one exception shared by
// every database write: on PostgreSQL, a connection lost during COMMIT
// leaves the outcome unknown. On SQLite a call whose context ends before
// its batch starts returns the context's error and stores nothing; once
// its batch has started it waits for the batch's outcome (at most the
// busy timeout for the write lock, then the writes), so its answer is
// always the truth. A form that does not exist gives ErrNotFound.
func (s *Store) EnqueueSubmission(ctx context.Context, sub *Submission, item *OutboxItem) error {
	_, err := s.enqueue(ctx, sub, item, nil, time.Time{})
	return err
}

// insertEnqueue inserts a submission and its item in tx.
func (s *Store) insertEnqueue(ctx context.Context, tx *sql.Tx, sub *Submission, subStatus SubmissionStatus, it OutboxItem) (enqueued, error) {
	c := *sub
	c.Status = subStatus
	subID, subTime, err := s.insertSubmission(ctx, tx, &c)
	if err != nil {
		return enqueued{}, err
	}
	formID := sub.FormID
	it.SubmissionID, it.FormID = &subID, &formID
	rcpts, err := encStrings(it.Rcpts)
	if err != nil {
		return enqueued{}, err
	}
	var expires int64
	if !it.ExpiresAt.IsZero() {
		expires = micros(it.ExpiresAt)
	}
	err = s.txQueryRow(ctx, tx, `INSERT INTO outbox (created_at, queued_at, submission_id, form_id, profile_id,
		mail_from, rcpts, subject, message_id, message, status, attempts, next_attempt_at, expires_at, lease_owner,
		lease_until, taken_over_from, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, '', 0, '', '')
		RETURNING id`,
		micros(it.CreatedAt), micros(it.QueuedAt), subID, formID, it.ProfileID, encText(it.MailFrom), rcpts,
		encText(it.Subject), encText(it.MessageID), s.inlineMessage(it.Message), it.Status, micros(it.NextAttemptAt), expires).Scan(&it.ID)
	if err != nil {
		return enqueued{}, err
	}
	if err := s.putMessage(ctx, tx, it.ID, it.Message); err != nil {
		return enqueued{}, err
	}
	return enqueued{subID: subID, subTime: subTime, item: it}, nil
}

// sqliteMessage reads an outbox row's message on SQLite (migration
// 0023): from outbox_messages, or, for an item stored before, from the
// row itself.
const sqliteMessage = `COALESCE((SELECT m.message FROM outbox_messages m WHERE m.item_id = outbox.id), outbox.message)`

// messageColumn is what a query of outbox rows reads for the message.
func (s *Store) messageColumn() string {
	if s.backend == BackendSQLite {
		return sqliteMessage
	}
	return "message"
}

// inlineMessage is what a new outbox row holds in its message column:
// on SQLite nothing (putMessage stores the message beside it, so that
// the row's updates do not rewrite it), on PostgreSQL the message.
func (s *Store) inlineMessage(msg []byte) []byte {
	if s.backend == BackendSQLite {
		return []byte{}
	}
	return msg
}

// putMessage stores the message of the new outbox item id in tx, on
// SQLite (see inlineMessage).
func (s *Store) putMessage(ctx context.Context, tx *sql.Tx, id int64, msg []byte) error {
	if s.backend != BackendSQLite {
		return nil
	}
	if msg == nil {
		msg = []byte{}
	}
	_, err := s.txExec(ctx, tx, `INSERT INTO outbox_messages (item_id, message) VALUES (?, ?)`, id, msg)
	return err
}

// outboxColumns are the columns scanOutbox reads; Message follows when
// asked for.
const outboxColumns = `id, created_at, queued_at, submission_id, form_id, profile_id, mail_from, rcpts, subject,
	message_id, status, attempts, next_attempt_at, expires_at, lease_owner, lease_until, taken_over_from, last_error,
	last_send_id, data_sent_at`

func scanOutbox(row interface{ Scan(...any) error }, withMessage bool) (*OutboxItem, error) {
	var it OutboxItem
	var created, queued, next, expires, leaseUntil int64
	var subID, formID, sendID, dataSent sql.NullInt64
	var rcpts, status string
	dest := []any{&it.ID, &created, &queued, &subID, &formID, &it.ProfileID, &it.MailFrom, &rcpts, &it.Subject,
		&it.MessageID, &status, &it.Attempts, &next, &expires, &it.LeaseOwner, &leaseUntil, &it.TakenOverFrom,
		&it.LastError, &sendID, &dataSent}
	if withMessage {
		dest = append(dest, &it.Message)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	it.CreatedAt, it.QueuedAt, it.NextAttemptAt = fromMicros(created), fromMicros(queued), fromMicros(next)
	if expires != 0 {
		it.ExpiresAt = fromMicros(expires)
	}
	if leaseUntil != 0 {
		it.LeaseUntil = fromMicros(leaseUntil)
	}
	if dataSent.Valid {
		it.DataSentAt = fromMicros(dataSent.Int64)
	}
	it.SubmissionID, it.FormID, it.LastSendID = ptrInt64(subID), ptrInt64(formID), ptrInt64(sendID)
	it.Status = OutboxStatus(decText(status))
	for _, p := range []*string{&it.MailFrom, &it.Subject, &it.MessageID, &it.LeaseOwner, &it.TakenOverFrom, &it.LastError} {
		*p = decText(*p)
	}
	var err error
	if it.Rcpts, err = decStrings(rcpts); err != nil {
		return nil, err
	}
	return &it, nil
}

// outboxRows is what scanOutboxRows reads: *sql.Rows, or pgx.Rows of a
// batch. The caller closes it.
type outboxRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanOutboxRows reads the outbox items of the remaining rows (see
// scanOutbox).
func scanOutboxRows(rows outboxRows, withMessage bool) ([]OutboxItem, error) {
	var out []OutboxItem
	for rows.Next() {
		it, err := scanOutbox(rows, withMessage)
		if err != nil {
			return nil, err
		}
		out = append(out, *it)
	}
	return out, rows.Err()
}

// DataSentLostError is the LastError of an item ClaimDue marked unknown
// because the attempt whose lease expired had marked the end of the
// message sent (MarkDataSent).
const DataSentLostError = "the previous attempt's process stopped after sending the end of the message; " +
	"the server has probably accepted it — not sent again automatically"

// ClaimDue atomically claims up to limit items for owner: items queued and
// due (next_attempt_at <= now), oldest due first, and items whose lease
// expired while sending (a crashed or stuck worker's claims; those come
// first and have TakenOverFrom set). Claimed items become "sending" with
// lease_owner = owner, lease_until = now + lease (a microsecond later
// than owner's previous claim's or renewal's when owner's clock has not
// moved: claimState.until) and one more attempt; they are returned with
// their messages. On PostgreSQL a claim whose answer was lost after it
// committed (a cut connection) is found and returned (claimedAnyway).
//
// An expired item whose attempt had marked the end of the message sent
// (MarkDataSent) is not taken over: the server has probably accepted the
// message, and sending it again would deliver it twice. In the same
// transaction it becomes unknown, with its submission, LastError
// DataSentLostError and TakenOverFrom the owner whose lease expired; it
// is not returned. An admin decides (RetryOutbox). Expired items without
// the mark are taken over and sent again: the server never saw the end
// of the message, so it discarded what it had received.
//
// PostgreSQL: the candidates are locked with FOR UPDATE SKIP LOCKED in the
// UPDATE's CTE, so concurrent workers on several instances never wait for
// each other and never claim the same item; an item whose mark commits
// while a claim waits for it is re-checked under the lock and left out.
// SQLite: the statements run under the one write lock.
//
// Cost at scale: finished items are in neither index a claim reads
// (migration 0015: partial indexes over queued and sending items only).
// On PostgreSQL the index entries of rows that changed since the last
// VACUUM stay until it runs, and a scan that starts at the low end of a
// range walks over all of them; so a claim there reads only the recent
// part of each range (claimState): leases that expired since the
// previous claim, and queued items due from a floor 10 s before the
// earliest item the previous claim found. A full claim, which reads
// everything, is made at the first call and whenever now is
// claimScanEvery (a tenth of the lease, at most 30 s) past the last one.
// So every lease is still taken over as soon as it expires; only an item
// a claim skipped because another transaction held it (a claim that then
// rolled back, a mark committing at that moment), or one queued due more
// than 10 s before the items already due (clocks of instances apart),
// waits for the next full claim.
func (s *Store) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxItem, error) {
	if owner == "" {
		return nil, errors.New("store: claim due: empty owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	nowUS, untilUS := micros(now), micros(now.Add(lease))
	var out []OutboxItem
	var err error
	if s.backend == BackendPostgres {
		// staleFrom and dueFloor bound the scans (claimState).
		full, staleFrom, dueFloor := s.claims.plan(nowUS, lease)
		untilUS = s.claims.until(owner, untilUS)
		out, err = s.claimPostgres(ctx, staleFrom, nowUS,
			staleFrom, nowUS, limit, dueFloor, nowUS, limit, limit, encText(owner), untilUS)
		if err != nil {
			out, err = s.claimedAnyway(ctx, owner, untilUS, err)
		}
		if err == nil {
			s.claims.done(full, nowUS, limit, out)
		}
	} else {
		out, err = s.claimSQLite(ctx, nowUS, encText(owner), untilUS, nowUS, limit, nowUS, limit, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("store: claim due: %w", err)
	}
	// RETURNING order is unspecified: take-overs first, then by due time.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.TakenOverFrom != "") != (b.TakenOverFrom != "") {
			return a.TakenOverFrom != ""
		}
		if !a.NextAttemptAt.Equal(b.NextAttemptAt) {
			return a.NextAttemptAt.Before(b.NextAttemptAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// claimSQLite runs a claim on SQLite: the settling of expired marked
// attempts, then sqliteClaimQuery with args, in one write of the group
// commit.
func (s *Store) claimSQLite(ctx context.Context, nowUS int64, args ...any) ([]OutboxItem, error) {
	var out []OutboxItem
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.settleDataSent(ctx, tx, nowUS); err != nil {
			return err
		}
		rows, err := s.txQuery(ctx, tx, sqliteClaimQuery, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = scanOutboxRows(rows, true)
		return err
	})
	return out, err
}

// sqliteClaimQuery is ClaimDue's statement on SQLite. Its limits are
// read at run time (CAST): SQLite builds a bare "LIMIT ?" into the
// statement's program with the bound value, so a statement kept by
// stmtCache was prepared again whenever the limit changed, which a
// worker's claims do all the time (its free slots: 1, 8, 3...); that
// was a twentieth of a drain's CPU (TestClaimLimitAtRunTime).
const sqliteClaimQuery = `UPDATE outbox SET ` + claimSet + ` WHERE id IN (SELECT id FROM (
		SELECT id FROM (SELECT id FROM outbox WHERE status = 'sending' AND lease_until <= ?
			AND data_sent_at IS NULL ORDER BY lease_until LIMIT CAST(? AS INTEGER))
		UNION ALL
		SELECT id FROM (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT CAST(? AS INTEGER))
	) LIMIT CAST(? AS INTEGER)) RETURNING ` + outboxColumns + `, ` + sqliteMessage

// pgClaimQuery is ClaimDue's statement on PostgreSQL: expired leases
// whose end was not marked sent (taken over) and due queued items, each
// scan bounded below (claimState). Arguments: stale-from, now, limit,
// due-floor, now, limit, limit, owner, lease-until.
const pgClaimQuery = `WITH stale AS (
		SELECT id FROM outbox WHERE status = 'sending' AND lease_until > ? AND lease_until <= ?
		AND data_sent_at IS NULL ORDER BY lease_until LIMIT ? FOR UPDATE SKIP LOCKED),
	due AS (
		SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at >= ? AND next_attempt_at <= ?
		ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED),
	pick AS (SELECT id FROM stale UNION ALL SELECT id FROM due LIMIT ?)
	UPDATE outbox SET ` + claimSet + ` WHERE id IN (SELECT id FROM pick) RETURNING ` + outboxColumns + `, message`

// claimSet is what a claim sets on the items it takes.
const claimSet = `status = 'sending', lease_owner = ?, lease_until = ?, attempts = attempts + 1,
	taken_over_from = CASE WHEN status = 'sending' THEN lease_owner ELSE '' END`

// claimScanEvery is how often ClaimDue on PostgreSQL makes a full claim
// (claimState): a tenth of the lease, at most 30 s.
func claimScanEvery(lease time.Duration) time.Duration {
	return min(lease/10, 30*time.Second)
}

// claimFloorSlack is how far before the due items a full claim found the
// floor of the next claims lies: items queued meanwhile with a due time a
// little in the past (committed late, or by an instance whose clock is
// behind) are still above it.
const claimFloorSlack = 10 * time.Second

// claimState is what a Store remembers between ClaimDue calls on
// PostgreSQL, so that a claim's index scans do not grow with the dead
// entries that changes leave behind until VACUUM (see ClaimDue). Times
// are the callers' now, in microseconds.
type claimState struct {
	mu sync.Mutex
	// lastUntil is the lease end of each owner's last claim (until):
	// each claim's is later than its owner's before, so that with the
	// owner it names the items of that claim only (claimedAnyway).
	lastUntil map[string]int64
	// fullAt is the now of the last full claim; 0 before the first or
	// when the next claim must be full.
	fullAt int64
	// staleFrom is the now of the last claim: every lease expired by then
	// and not locked by another transaction was taken over or settled by
	// it, so the next claim looks only at leases expiring after it.
	staleFrom int64
	// floor is where the next claim starts its scan of queued items: the
	// due time of the earliest item the last claim took (or its now when
	// it took none), less claimFloorSlack. A queued item due before it and
	// not locked by another transaction would have been taken, or was
	// already below the floor that claim scanned from.
	floor int64
}

// until returns the lease end of owner's claim or lease renewal that
// asked for untilUS: later than owner's earlier ones (by a microsecond
// when its clock has not moved or went back), so that no item of another
// claim of owner has the lease end of a claim.
func (c *claimState) until(owner string, untilUS int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastUntil == nil || len(c.lastUntil) > 1000 {
		c.lastUntil = make(map[string]int64) // owners are few: one a worker
	}
	if last, ok := c.lastUntil[owner]; ok && untilUS <= last {
		untilUS = last + 1
	}
	c.lastUntil[owner] = untilUS
	return untilUS
}

// claimedAnyway looks, after a claim on PostgreSQL failed with claimErr,
// for the items that claim took all the same: a connection cut while
// the server committed (a failover, a restart, pg_terminate_backend)
// loses the answer but not the claim, and those items would wait for
// their lease to expire (minutes) with nobody sending them. The claim's
// items are those of owner with its lease end untilUS (unique to it,
// claimState.until), read on another connection: the pool may hold
// other connections cut at the same moment, each failing once, so the
// read is tried on up to every connection of both pools and a new one.
// With none found, or when the reads fail, the claim took nothing:
// claimErr is returned.
func (s *Store) claimedAnyway(ctx context.Context, owner string, untilUS int64, claimErr error) ([]OutboxItem, error) {
	for range pgConns + pgWorkerConns + 1 {
		out, err := s.claimedBy(ctx, owner, untilUS)
		if err == nil {
			if len(out) == 0 {
				return nil, claimErr
			}
			return out, nil
		}
		if _, failed := StorageFailure(err); !failed || ctx.Err() != nil {
			break
		}
	}
	return nil, claimErr
}

// claimedBy reads the items owner's claim with lease end untilUS took
// (claimedAnyway).
func (s *Store) claimedBy(ctx context.Context, owner string, untilUS int64) ([]OutboxItem, error) {
	rows, err := s.w.QueryContext(ctx, s.q(`SELECT `+outboxColumns+`, message FROM outbox
		WHERE status = 'sending' AND lease_owner = ? AND lease_until = ? ORDER BY id`), encText(owner), untilUS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanOutboxRows(rows, true)
}

// plan tells ClaimDue whether its claim at nowUS is a full one, and the
// bounds of its scans: leases expiring after staleFrom, items due from
// dueFloor (math.MinInt64 when full). A clock that went back (tests,
// another caller's clock) gets a full claim.
func (c *claimState) plan(nowUS int64, lease time.Duration) (full bool, staleFrom, dueFloor int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fullAt == 0 || nowUS < c.fullAt || nowUS < c.staleFrom || nowUS-c.fullAt >= claimScanEvery(lease).Microseconds() {
		return true, math.MinInt64, math.MinInt64
	}
	return false, c.staleFrom, c.floor
}

// done records a committed claim at nowUS for up to limit items. A claim
// filled by taken-over leases alone may have left others expired: the
// next claim is then a full one.
func (c *claimState) done(full bool, nowUS int64, limit int, items []OutboxItem) {
	floor, takeovers := nowUS, 0
	for _, it := range items {
		if it.TakenOverFrom != "" {
			takeovers++
			continue
		}
		floor = min(floor, micros(it.NextAttemptAt))
	}
	floor -= claimFloorSlack.Microseconds()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case takeovers >= limit:
		c.fullAt = 0
		return
	case full:
		c.fullAt, c.staleFrom, c.floor = nowUS, nowUS, floor
	case c.fullAt != 0:
		c.staleFrom, c.floor = max(c.staleFrom, nowUS), max(c.floor, floor)
	}
}

// settledSet is what settling an expired attempt that marked its end
// sent sets: unknown, not sent again (see ClaimDue).
const settledSet = `status = 'unknown', taken_over_from = lease_owner, lease_owner = '', lease_until = 0, last_error = ?`

// pgSettleSQL marks unknown on PostgreSQL the items whose lease expired
// (lease_until in (from, now], see claimState) after their attempt
// marked the end of the message sent, and their submissions. Arguments:
// from, now (microseconds), DataSentLostError.
const pgSettleSQL = `WITH gone AS (
		SELECT id FROM outbox WHERE status = 'sending' AND lease_until > ? AND lease_until <= ?
		AND data_sent_at IS NOT NULL FOR UPDATE SKIP LOCKED),
	settled AS (UPDATE outbox SET ` + settledSet + ` WHERE id IN (SELECT id FROM gone) RETURNING submission_id)
	UPDATE submissions SET status = 'unknown' WHERE id IN (SELECT submission_id FROM settled)`

// settleDataSent is pgSettleSQL on SQLite, in tx: the items whose lease
// expired (lease_until <= nowUS) after their attempt marked the end of
// the message sent, and their submissions, become unknown.
func (s *Store) settleDataSent(ctx context.Context, tx *sql.Tx, nowUS int64) error {
	const gone = `status = 'sending' AND lease_until <= ? AND data_sent_at IS NOT NULL`
	if _, err := s.txExec(ctx, tx, `UPDATE submissions SET status = 'unknown'
		WHERE id IN (SELECT submission_id FROM outbox WHERE `+gone+`)`, nowUS); err != nil {
		return err
	}
	_, err := s.txExec(ctx, tx, `UPDATE outbox SET `+settledSet+` WHERE `+gone, encText(DataSentLostError), nowUS)
	return err
}

// MarkDataSent records that owner's attempt on an item is about to send
// the end of the message (the final "." or BDAT LAST) at at: from then
// on the server may have the message, so if the attempt's outcome is
// never recorded (the process dies), ClaimDue marks the item unknown
// instead of sending it again. The worker calls it just before those
// bytes go on the wire and waits for it. It applies only while owner
// holds the item ("sending", lease_owner = owner; an expired lease not
// yet taken over still counts): otherwise it changes nothing and returns
// ErrLeaseLost (ErrNotFound for a missing item).
//
// When it returns nil the mark survives a crash of sockmail (on SQLite it
// commits in the group commit, like the outcome of an attempt; on
// PostgreSQL with synchronous_commit off, see writeTx), not a crash of
// the database server or the machine. On PostgreSQL it is one statement
// outside any transaction: one round trip.
func (s *Store) MarkDataSent(ctx context.Context, id int64, owner string, at time.Time) error {
	const mark = `UPDATE outbox SET data_sent_at = ? WHERE id = ? AND lease_owner = ? AND status = 'sending'`
	var err error
	if s.backend == BackendPostgres {
		res, xerr := s.async.ExecContext(ctx, s.q(mark), micros(at), id, encText(owner))
		s.health.noteFailure(xerr)
		if err = affected(res, xerr); errors.Is(err, ErrNotFound) {
			err = leaseLostOr(s.readQueryRow(ctx, itemExists, id))
		}
	} else {
		err = s.writeSmallTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := s.txExec(ctx, tx, mark, micros(at), id, encText(owner))
			if err := affected(res, err); errors.Is(err, ErrNotFound) {
				return leaseLostOr(s.txQueryRow(ctx, tx, itemExists, id))
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("store: mark end of message sent on outbox item %d: %w", id, err)
	}
	return nil
}

// itemExists is the query leaseLostOr reads: one row if the item exists.
const itemExists = `SELECT 1 FROM outbox WHERE id = ?`

// leaseLostOr tells why an update guarded by the lease changed nothing,
// from row (itemExists, in the update's transaction or outside it): the
// item does not exist (ErrNotFound), or the caller's lease is gone
// (ErrLeaseLost).
func leaseLostOr(row *sql.Row) error {
	var one int
	if err := row.Scan(&one); err != nil {
		return notFound(err)
	}
	return ErrLeaseLost
}

// RenewLease moves the lease of owner's claim on an item to until, so
// that no worker takes the item over while owner still holds its attempt
// (the worker renews while it waits to store a known outcome). It is one
// statement outside any transaction: on PostgreSQL database/sql runs it
// over a fresh connection when the pooled one broke. ErrLeaseLost means
// owner's claim is gone (ErrNotFound: the item is).
func (s *Store) RenewLease(ctx context.Context, id int64, owner string, until time.Time) error {
	untilUS := micros(until)
	if s.backend == BackendPostgres {
		// Never a lease end a claim of owner has (claimedAnyway).
		untilUS = s.claims.until(owner, untilUS)
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE outbox SET lease_until = ?
		WHERE id = ? AND lease_owner = ? AND status = 'sending'`), untilUS, id, encText(owner))
	s.health.noteFailure(err) // a renewal's success proves little (noteFailure)
	if err := affected(res, err); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store: renew lease on outbox item %d: %w", id, leaseLostOr(s.readQueryRow(ctx, itemExists, id)))
	} else if err != nil {
		return fmt.Errorf("store: renew lease on outbox item %d: %w", id, err)
	}
	return nil
}

// FinishAttempt records the outcome of owner's attempt on an item: status
// OutboxSent, OutboxFailed or OutboxUnknown, or OutboxQueued to try again
// at next. It clears the lease, sets LastError and, when sendID is not nil,
// LastSendID, and sets the submission's status to the item's for sent,
// failed and unknown. ErrLeaseLost means owner's claim is gone (another
// worker took the item over, or an admin changed it): nothing is changed.
// An item ClaimDue marked unknown because owner's lease expired after its
// mark (DataSentLostError, TakenOverFrom owner) still takes owner's
// outcome: it is known, the unknown was a guess.
func (s *Store) FinishAttempt(ctx context.Context, id int64, owner string, status OutboxStatus, next time.Time, lastErr string, sendID *int64) error {
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.finishAttempt(ctx, tx, id, owner, status, next, lastErr, sendID)
	})
	if err != nil {
		return fmt.Errorf("store: finish attempt on outbox item %d: %w", id, err)
	}
	return nil
}

// FinishAttemptSend is FinishAttempt together with the history record of
// the attempt: snd, a new send holding the attempt's envelope, outcome and
// transcript, is inserted (as CreateSend does, setting snd.ID) and becomes
// the item's LastSendID, in one transaction, so that the outbox and the
// history never disagree about an attempt and an attempt costs one
// commit. On ErrLeaseLost neither is written: the caller should still
// keep snd with CreateSend.
func (s *Store) FinishAttemptSend(ctx context.Context, id int64, owner string, status OutboxStatus, next time.Time, lastErr string, snd *Send) error {
	if s.backend == BackendPostgres {
		o := AttemptOutcome{ItemID: id, Status: status, Next: next, LastErr: lastErr, Send: snd}
		if err := s.finishAttemptSendPostgres(ctx, o, owner); err != nil {
			return fmt.Errorf("store: finish attempt on outbox item %d: %w", id, err)
		}
		return nil
	}
	c := *snd
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		c = *snd
		body, err := s.insertSendRow(ctx, tx, &c)
		if err != nil {
			return err
		}
		if err := s.finishAttempt(ctx, tx, id, owner, status, next, lastErr, &c.ID); err != nil {
			return err
		}
		return s.insertSendBodies(ctx, tx, []sendBody{body})
	})
	if err != nil {
		return fmt.Errorf("store: finish attempt on outbox item %d: %w", id, err)
	}
	*snd = c
	return nil
}

// AttemptOutcome is the outcome of one attempt on an outbox item with its
// history record, for FinishAttempts.
type AttemptOutcome struct {
	ItemID  int64
	Status  OutboxStatus
	Next    time.Time
	LastErr string
	// Send is the attempt's history record (see FinishAttemptSend); it
	// is updated as CreateSend documents once the outcomes are stored.
	Send *Send
	// Err is set by FinishAttempts once the outcomes are stored: nil, or
	// ErrLeaseLost or ErrNotFound (wrapped) when the claim or the item
	// was gone; then only the history record was stored.
	Err error
}

// FinishAttempts stores the outcomes of several attempts of owner (a
// pipelined batch) and their history records in one transaction, as
// FinishAttemptSend does for one: one commit, and on SQLite one write of
// the full-text index, for the whole batch. An attempt whose claim or
// item is gone does not fail the others: its Err says so and its history
// record is kept (what the worker does after FinishAttemptSend's
// ErrLeaseLost). An error means nothing was stored.
func (s *Store) FinishAttempts(ctx context.Context, owner string, outs []AttemptOutcome) error {
	sends := make([]Send, len(outs))
	errs := make([]error, len(outs))
	if s.backend == BackendPostgres {
		if err := s.finishAttemptsPostgres(ctx, owner, outs, sends, errs); err != nil {
			return fmt.Errorf("store: finish %d attempts: %w", len(outs), err)
		}
		for i := range outs {
			*outs[i].Send, outs[i].Err = sends[i], errs[i]
		}
		return nil
	}
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		bodies := make([]sendBody, 0, len(outs))
		for i, o := range outs {
			sends[i], errs[i] = *o.Send, nil
			body, err := s.insertSendRow(ctx, tx, &sends[i])
			if err != nil {
				return fmt.Errorf("history record of outbox item %d: %w", o.ItemID, err)
			}
			bodies = append(bodies, body)
			err = s.finishAttempt(ctx, tx, o.ItemID, owner, o.Status, o.Next, o.LastErr, &sends[i].ID)
			switch {
			case errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound):
				errs[i] = fmt.Errorf("store: finish attempt on outbox item %d: %w", o.ItemID, err)
			case err != nil:
				return fmt.Errorf("outbox item %d: %w", o.ItemID, err)
			}
		}
		return s.insertSendBodies(ctx, tx, bodies)
	})
	if err != nil {
		return fmt.Errorf("store: finish %d attempts: %w", len(outs), err)
	}
	for i := range outs {
		*outs[i].Send, outs[i].Err = sends[i], errs[i]
	}
	return nil
}

// finishAttempt does FinishAttempt's writes in tx.
func (s *Store) finishAttempt(ctx context.Context, tx *sql.Tx, id int64, owner string, status OutboxStatus, next time.Time, lastErr string, sendID *int64) error {
	var nextSet string
	var args []any
	switch status {
	case OutboxQueued:
		nextSet, args = `next_attempt_at = ?, `, []any{encText(string(status)), micros(next)}
	case OutboxSent, OutboxFailed, OutboxUnknown:
		args = []any{encText(string(status))}
	default:
		return fmt.Errorf("status %q is not queued, sent, failed or unknown", status)
	}
	args = append(args, encText(lastErr), nullInt64(sendID), id, encText(owner), encText(owner))
	var subID sql.NullInt64
	// The second case is an item ClaimDue settled as unknown because
	// owner's lease expired after the mark (settleDataSent) while owner
	// still held the outcome (the database refused writes meanwhile): the
	// known outcome replaces the guess.
	err := s.txQueryRow(ctx, tx, `UPDATE outbox SET status = ?, `+nextSet+`lease_owner = '', lease_until = 0,
		taken_over_from = '', last_error = ?, last_send_id = COALESCE(?, last_send_id), data_sent_at = NULL
		WHERE id = ? AND (lease_owner = ? AND status = 'sending'
			OR status = 'unknown' AND lease_owner = '' AND taken_over_from = ? AND data_sent_at IS NOT NULL)
		RETURNING submission_id`, args...).Scan(&subID)
	if errors.Is(err, sql.ErrNoRows) {
		return leaseLostOr(s.txQueryRow(ctx, tx, itemExists, id))
	}
	if err != nil {
		return err
	}
	if subID.Valid && status != OutboxQueued {
		_, err = s.txExec(ctx, tx, `UPDATE submissions SET status = ? WHERE id = ?`, encText(string(status)), subID.Int64)
	}
	return err
}

// OutboxItem returns the outbox item with that id, with its message, or
// ErrNotFound.
func (s *Store) OutboxItem(ctx context.Context, id int64) (*OutboxItem, error) {
	it, err := scanOutbox(s.r.QueryRowContext(ctx, s.q(`SELECT `+outboxColumns+`, `+s.messageColumn()+` FROM outbox WHERE id = ?`), id), true)
	if err != nil {
		return nil, fmt.Errorf("store: outbox item %d: %w", id, notFound(err))
	}
	return it, nil
}

// ListOutbox returns a page of the outbox items matching f, newest first,
// without their messages.
func (s *Store) ListOutbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error) {
	var w whereBuilder
	if f.Status != "" {
		w.add(`status = ?`, encText(string(f.Status)))
	}
	if f.FormID != 0 {
		w.add(`form_id = ?`, f.FormID)
	}
	if f.Before > 0 {
		w.add(`id < ?`, f.Before)
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+outboxColumns+` FROM outbox`+w.String()+` ORDER BY id DESC LIMIT ?`),
		append(w.args, listLimit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("store: list outbox: %w", err)
	}
	defer rows.Close()
	out, err := scanOutboxRows(rows, false)
	if err != nil {
		return nil, fmt.Errorf("store: list outbox: %w", err)
	}
	return out, nil
}

// OutboxCounts returns how many items are in each status; statuses with
// none are absent.
func (s *Store) OutboxCounts(ctx context.Context) (map[OutboxStatus]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM outbox GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: outbox counts: %w", err)
	}
	defer rows.Close()
	out := map[OutboxStatus]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: outbox counts: %w", err)
		}
		out[OutboxStatus(decText(st))] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: outbox counts: %w", err)
	}
	return out, nil
}

// requeueSet is the SET clause that puts an item back in the queue at a
// time given twice: due then, queued then, attempts counted afresh, and an
// explicit expiry moved by as much as the queueing time, so the item gets
// its whole retry window again.
const requeueSet = `status = 'queued', next_attempt_at = ?, attempts = 0, lease_owner = '', lease_until = 0,
	taken_over_from = '', data_sent_at = NULL, expires_at = CASE WHEN expires_at = 0 THEN 0 ELSE expires_at - queued_at + ? END,
	queued_at = ?`

// stateChange runs an admin action on one item: update (which must
// change one row when the item is in an allowed state, returning its
// submission_id), then the submission's new status. An item that exists
// in another state gives ErrWrongState.
func (s *Store) stateChange(ctx context.Context, id int64, update string, args []any, subStatus SubmissionStatus) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var subID sql.NullInt64
		err := s.txQueryRow(ctx, tx, update, args...).Scan(&subID)
		if errors.Is(err, sql.ErrNoRows) {
			var one int
			if err := s.txQueryRow(ctx, tx, `SELECT 1 FROM outbox WHERE id = ?`, id).Scan(&one); err != nil {
				return notFound(err)
			}
			return ErrWrongState
		}
		if err != nil {
			return err
		}
		if subID.Valid {
			_, err = s.txExec(ctx, tx, `UPDATE submissions SET status = ? WHERE id = ?`, subStatus, subID.Int64)
		}
		return err
	})
}

// RetryOutbox puts a failed, unknown or cancelled item back in the queue,
// due at now, with its attempts counted afresh; its submission becomes
// queued. Retrying an unknown item may deliver the message twice: it
// keeps its Message-ID, so the recipient can tell. Other states give
// ErrWrongState.
func (s *Store) RetryOutbox(ctx context.Context, id int64, now time.Time) error {
	n := micros(now)
	err := s.stateChange(ctx, id, `UPDATE outbox SET `+requeueSet+`, last_error = ''
		WHERE id = ? AND status IN ('failed', 'unknown', 'cancelled') RETURNING submission_id`,
		[]any{n, n, n, id}, SubmissionQueued)
	if err != nil {
		return fmt.Errorf("store: retry outbox item %d: %w", id, err)
	}
	return nil
}

// CancelOutbox cancels a queued or held item: it will not be sent, and
// its submission becomes cancelled. An item being sent, or finished,
// gives ErrWrongState.
func (s *Store) CancelOutbox(ctx context.Context, id int64) error {
	err := s.stateChange(ctx, id, `UPDATE outbox SET status = 'cancelled', lease_owner = '', lease_until = 0
		WHERE id = ? AND status IN ('queued', 'held') RETURNING submission_id`, []any{id}, SubmissionCancelled)
	if err != nil {
		return fmt.Errorf("store: cancel outbox item %d: %w", id, err)
	}
	return nil
}

// ReleaseSubmission releases a blocked submission: it becomes released
// and its held item is queued, due at now. A submission that is not
// blocked gives ErrWrongState; a missing one ErrNotFound.
func (s *Store) ReleaseSubmission(ctx context.Context, submissionID int64, now time.Time) error {
	n := micros(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE submissions SET status = ? WHERE id = ? AND status = ?`,
			SubmissionReleased, submissionID, SubmissionBlocked)
		if err := affected(res, err); errors.Is(err, ErrNotFound) {
			var one int
			if err := s.txQueryRow(ctx, tx, `SELECT 1 FROM submissions WHERE id = ?`, submissionID).Scan(&one); err != nil {
				return notFound(err)
			}
			return ErrWrongState
		} else if err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx, `UPDATE outbox SET `+requeueSet+` WHERE submission_id = ? AND status = 'held'`,
			n, n, n, submissionID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: release submission %d: %w", submissionID, err)
	}
	return nil
}

// PurgeOutbox deletes the sent, cancelled and held (blocked, never
// released) items queued before before, messages included, and returns
// how many it deleted; failed and unknown items stay for an admin. The
// history keeps each message's attempts. It deletes in batches, each its
// own transaction. The retention policy runs it with PurgeSubmissions.
func (s *Store) PurgeOutbox(ctx context.Context, before time.Time) (int, error) {
	return s.deleteBatches(ctx, "purge outbox", `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
			WHERE status IN ('sent', 'cancelled', 'held') AND queued_at < ? ORDER BY id LIMIT ?)`, micros(before))
}

// PurgeSubmissions deletes the contact submissions received before
// before, their files included, that no outbox item refers to any more
// (run PurgeOutbox first), and returns how many it deleted.
func (s *Store) PurgeSubmissions(ctx context.Context, before time.Time) (int, error) {
	return s.deleteBatches(ctx, "purge submissions", `DELETE FROM submissions WHERE id IN (SELECT id FROM submissions
			WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.submission_id = submissions.id)
			ORDER BY id LIMIT ?)`, micros(before))
}

// deleteBatches runs query, a DELETE whose last placeholder is the batch
// size, until it deletes less than a batch, and returns the total.
func (s *Store) deleteBatches(ctx context.Context, what, query string, args ...any) (int, error) {
	deleted := 0
	for {
		res, err := s.w.ExecContext(ctx, s.q(query), append(args, retentionBatch)...)
		if err != nil {
			return deleted, fmt.Errorf("store: %s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, fmt.Errorf("store: %s: %w", what, err)
		}
		deleted += int(n)
		if n < retentionBatch {
			return deleted, nil
		}
	}
}
