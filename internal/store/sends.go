package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"sockmail/smtp"
)

// StatusRunning is the status of a send that has started and not finished.
// The other statuses are the outcomes smtp.StatusOf gives.
const StatusRunning smtp.Status = "running"

// Listing limits.
const (
	// DefaultSendLimit is the page size when SendFilter.Limit is 0.
	DefaultSendLimit = 50
	// MaxSendLimit is the largest page ListSends returns.
	MaxSendLimit = 500
	// MaxSendCount caps SendPage.Total: counting stops there, so that a
	// page costs the same however many sends match (see SendPage).
	// Counting is the dominant cost of a page: at 100,000 sends, counting
	// up to 10,000 matches of a broad search took 40 ms on SQLite and
	// 100-230 ms on PostgreSQL (each match's search text is read); up to
	// 1,000 keeps every page near 10 ms.
	MaxSendCount = 1000
	// retentionBatch is how many sends ApplyRetention deletes per
	// transaction, so that it never holds SQLite's write lock for long.
	retentionBatch = 1000
)

// Send is one send: a browser test, a CLI send or a contact-form delivery,
// with its envelope, message, outcome and full transcript.
type Send struct {
	ID         int64
	CreatedAt  time.Time
	FinishedAt *time.Time
	Source     string // "web", "cli", "contact", "alert", "monitor", "release", "check", "api:<token>"
	UserID     *int64
	ClientAddr string
	Server     string
	TLSMode    string
	MailFrom   string
	Rcpts      []string
	Subject    string
	// Headers is the message's header block as text.
	Headers string
	// Message is the .eml source, capped by the caller, who sets
	// MessageTruncated when it cut it.
	Message          []byte
	MessageTruncated bool
	Status           smtp.Status // StatusRunning or an outcome
	QueueID          string
	Recipients       []smtp.RecipientResult
	// Events is the transcript. Secret events are already redacted by the
	// smtp package; the store keeps exactly what it is given.
	Events []smtp.Event
	Error  string
	// Failure is Error as data (smtp.Classify), zero for a send that did
	// not fail and for one stored before failures were kept: explain those
	// from Error.
	Failure    smtp.Failure
	DurationMS float64
	ParentID   *int64 // the send this one resends
	FormID     *int64 // the contact form that caused it
	// Timings is where the time went (smtp.Conversation.Timings), set
	// when the send finishes; nil for a send stored before timings were
	// kept, or not finished.
	Timings *smtp.Timings
}

// SendSummary is a send as a list shows it: a Send without its Headers,
// Message and Events.
type SendSummary struct {
	ID               int64
	CreatedAt        time.Time
	FinishedAt       *time.Time
	Source           string
	UserID           *int64
	ClientAddr       string
	Server           string
	TLSMode          string
	MailFrom         string
	Rcpts            []string
	Subject          string
	MessageTruncated bool
	Status           smtp.Status
	QueueID          string
	Recipients       []smtp.RecipientResult
	Error            string
	Failure          smtp.Failure
	DurationMS       float64
	ParentID         *int64
	FormID           *int64
	Timings          *smtp.Timings
}

// SendFilter selects sends to list. Zero fields do not filter; the set
// fields must all match.
type SendFilter struct {
	Status smtp.Status // exact
	// Source is exact, or a prefix followed by "*" ("api:*": every
	// API token's sends).
	Source string
	// Recipient, Sender and Server match as case-insensitive substrings of
	// an envelope recipient, the envelope sender and the server.
	Recipient string
	Sender    string
	Server    string
	// Query is a text search over subject, envelope, server, queue id,
	// error, replies and transcript lines: every whitespace-separated word
	// must occur, as a case-insensitive substring.
	Query string
	Since time.Time // created at or after
	Until time.Time // created before
	// Limit is the page size: DefaultSendLimit if 0, at most MaxSendLimit.
	Limit int
	// Before is the keyset cursor: only sends with ID < Before; 0 starts
	// at the newest. Pass the previous page's NextBefore.
	Before int64
}

// SendPage is one page of sends, newest first.
type SendPage struct {
	Sends []SendSummary
	// Total is how many sends match the filter, regardless of Before. It is
	// exact up to MaxSendCount; beyond, counting stops, Total is
	// MaxSendCount and TotalCapped is set: show "1000+".
	Total       int
	TotalCapped bool
	// NextBefore is the cursor for the next page, 0 on the last page.
	NextBefore int64
}

// sendRow holds the stored, encoded form of a send's columns.
type sendRow struct {
	rcpts, recipients, events, search string
}

func encodeSend(snd *Send) (sendRow, error) {
	var r sendRow
	var err error
	if r.rcpts, err = encStrings(snd.Rcpts); err != nil {
		return r, err
	}
	if r.recipients, err = encRecipients(snd.Recipients); err != nil {
		return r, err
	}
	if r.events, err = encEvents(snd.Events); err != nil {
		return r, err
	}
	r.search = searchText(snd.Subject, snd.MailFrom, snd.Rcpts, snd.Server, snd.QueueID, snd.Error, snd.Recipients, snd.Events)
	return r, nil
}

// CreateSend stores a send as it starts. It sets snd.ID, fills a zero
// CreatedAt with now and an empty Status with StatusRunning; times are
// kept to the microsecond, and snd is updated to what was stored.
func (s *Store) CreateSend(ctx context.Context, snd *Send) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.insertSend(ctx, tx, snd) }); err != nil {
		return fmt.Errorf("store: create send: %w", err)
	}
	return nil
}

// insertSend inserts snd in tx and updates snd as CreateSend documents
// (only once tx commits do the changes matter).
func (s *Store) insertSend(ctx context.Context, tx *sql.Tx, snd *Send) error {
	b, err := s.insertSendRow(ctx, tx, snd)
	if err != nil {
		return err
	}
	return s.insertSendBodies(ctx, tx, []sendBody{b})
}

// sendBody is the send_bodies row of a send inserted by insertSendRow.
type sendBody struct {
	id             int64
	search, events string
	headers        any
	message        any
}

// insertSendRow inserts snd's sends row in tx, updates snd as CreateSend
// documents, and returns its send_bodies row for insertSendBodies, which
// must follow in the same transaction. The two are apart so that the
// bodies of several sends go in one statement: on SQLite the full-text
// index (FTS5) writes what it has gathered to disk at every statement
// savepoint, so one INSERT of a batch's bodies, last in the transaction,
// costs one write of the index instead of two a send.
func (s *Store) insertSendRow(ctx context.Context, tx *sql.Tx, snd *Send) (sendBody, error) {
	row, err := s.encodeSendRow(snd)
	if err != nil {
		return sendBody{}, err
	}
	var id int64
	if err := s.txQueryRow(ctx, tx, `INSERT INTO sends (`+sendRowColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
		?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, row.args...).Scan(&id); err != nil {
		return sendBody{}, err
	}
	row.stored(snd, id)
	body := row.body
	body.id = id
	return body, nil
}

// sendRowColumns are the columns of a sends row encodeSendRow encodes.
const sendRowColumns = `created_at, finished_at, source, user_id, client_addr, server, tls_mode, mail_from, rcpts,
	subject, status, queue_id, error, duration_ms, parent_id, form_id, message_truncated, recipients, failure_phase,
	failure_code, failure_enhanced, failure_kind, failure_reason, timings`

// encodedSend is a Send encoded for its sends row (args, in sendRowColumns
// order) and its send_bodies row (body, without its id).
type encodedSend struct {
	args     []any
	body     sendBody
	created  time.Time
	finished *time.Time
	status   smtp.Status
}

// encodeSendRow encodes snd for insertSendRow (and PostgreSQL's
// FinishAttempts).
func (s *Store) encodeSendRow(snd *Send) (encodedSend, error) {
	created := normTime(snd.CreatedAt)
	status := snd.Status
	if status == "" {
		status = StatusRunning
	}
	var finished *time.Time
	if snd.FinishedAt != nil {
		t := normTime(*snd.FinishedAt)
		finished = &t
	}
	r, err := encodeSend(snd)
	if err != nil {
		return encodedSend{}, err
	}
	timings, err := encTimings(snd.Timings)
	if err != nil {
		return encodedSend{}, err
	}
	var finishedArg any
	if finished != nil {
		finishedArg = micros(*finished)
	}
	return encodedSend{
		args: []any{micros(created), finishedArg, encText(snd.Source), nullInt64(snd.UserID), encText(snd.ClientAddr),
			encText(snd.Server), encText(snd.TLSMode), encText(snd.MailFrom), r.rcpts, encText(snd.Subject),
			encText(string(status)), encText(snd.QueueID), encText(snd.Error), snd.DurationMS, nullInt64(snd.ParentID),
			nullInt64(snd.FormID), snd.MessageTruncated, r.recipients, encText(string(snd.Failure.Phase)),
			snd.Failure.Code, encText(snd.Failure.EnhancedCode), encText(string(snd.Failure.Kind)),
			encText(string(snd.Failure.Reason)), timings},
		body:    sendBody{search: s.foldSearch(r.search), events: r.events, headers: encText(snd.Headers), message: nullBytes(snd.Message)},
		created: created, finished: finished, status: status,
	}, nil
}

// stored updates snd, stored with id, as CreateSend documents.
func (r encodedSend) stored(snd *Send, id int64) {
	snd.ID, snd.CreatedAt, snd.FinishedAt, snd.Status = id, r.created, r.finished, r.status
}

// insertSendBodies inserts the send_bodies rows of sends inserted by
// insertSendRow, in one statement.
func (s *Store) insertSendBodies(ctx context.Context, tx *sql.Tx, bodies []sendBody) error {
	if len(bodies) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO send_bodies (send_id, search_text, headers, events, message) VALUES `)
	args := make([]any, 0, 5*len(bodies))
	for i, b := range bodies {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, b.id, b.search, b.headers, b.events, b.message)
	}
	_, err := s.txExec(ctx, tx, q.String(), args...)
	return err
}

// FinishSend records a send's outcome: Status, QueueID, Recipients,
// Events, Error, Failure, Timings, FinishedAt (now if nil) and DurationMS. The other fields
// of snd are not written. It returns ErrNotFound if the send does not
// exist (retention may have removed it).
func (s *Store) FinishSend(ctx context.Context, snd *Send) error {
	finished := normTime(time.Time{})
	if snd.FinishedAt != nil {
		finished = normTime(*snd.FinishedAt)
	}
	recipients, err := encRecipients(snd.Recipients)
	if err != nil {
		return fmt.Errorf("store: finish send %d: %w", snd.ID, err)
	}
	events, err := encEvents(snd.Events)
	if err != nil {
		return fmt.Errorf("store: finish send %d: %w", snd.ID, err)
	}
	timings, err := encTimings(snd.Timings)
	if err != nil {
		return fmt.Errorf("store: finish send %d: %w", snd.ID, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var subject, from, rcptsJSON, server string
		f := snd.Failure
		err := s.txQueryRow(ctx, tx, `UPDATE sends SET status = ?, queue_id = ?, recipients = ?, error = ?,
			finished_at = ?, duration_ms = ?, failure_phase = ?, failure_code = ?, failure_enhanced = ?,
			failure_kind = ?, failure_reason = ?, timings = ? WHERE id = ? RETURNING subject, mail_from, rcpts, server`,
			encText(string(snd.Status)), encText(snd.QueueID), recipients, encText(snd.Error), micros(finished),
			snd.DurationMS, encText(string(f.Phase)), f.Code, encText(f.EnhancedCode), encText(string(f.Kind)),
			encText(string(f.Reason)), timings, snd.ID).Scan(&subject, &from, &rcptsJSON, &server)
		if err != nil {
			return notFound(err)
		}
		rcpts, err := decStrings(rcptsJSON)
		if err != nil {
			return err
		}
		// The searchable text is rebuilt from the stored envelope, so a
		// caller may pass a Send holding only the outcome.
		search := searchText(decText(subject), decText(from), rcpts, decText(server), snd.QueueID, snd.Error, snd.Recipients, snd.Events)
		return affected(s.txExec(ctx, tx, `UPDATE send_bodies SET events = ?, search_text = ? WHERE send_id = ?`,
			events, s.foldSearch(search), snd.ID))
	})
	if err != nil {
		return fmt.Errorf("store: finish send %d: %w", snd.ID, err)
	}
	snd.FinishedAt = &finished
	return nil
}

// summaryColumns are the columns scanSummary reads, from sends aliased s.
const summaryColumns = `s.id, s.created_at, s.finished_at, s.source, s.user_id, s.client_addr, s.server, s.tls_mode,
	s.mail_from, s.rcpts, s.subject, s.message_truncated, s.status, s.queue_id, s.recipients, s.error,
	s.duration_ms, s.parent_id, s.form_id, s.failure_phase, s.failure_code, s.failure_enhanced, s.failure_kind,
	s.failure_reason, s.timings`

// scanSummary reads summaryColumns, followed by extra destinations.
func scanSummary(row interface{ Scan(...any) error }, extra ...any) (*SendSummary, error) {
	var m SendSummary
	var created int64
	var finished, userID, parentID, formID sql.NullInt64
	var rcpts, recipients, phase, kind, reason, status, timings string
	f := &m.Failure
	dest := append([]any{&m.ID, &created, &finished, &m.Source, &userID, &m.ClientAddr, &m.Server, &m.TLSMode,
		&m.MailFrom, &rcpts, &m.Subject, &m.MessageTruncated, &status, &m.QueueID, &recipients, &m.Error,
		&m.DurationMS, &parentID, &formID, &phase, &f.Code, &f.EnhancedCode, &kind, &reason, &timings}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	m.CreatedAt = fromMicros(created)
	m.FinishedAt = ptrTime(finished)
	m.UserID, m.ParentID, m.FormID = ptrInt64(userID), ptrInt64(parentID), ptrInt64(formID)
	for _, p := range []*string{&m.Source, &m.ClientAddr, &m.Server, &m.TLSMode, &m.MailFrom, &m.Subject, &m.QueueID, &m.Error, &f.EnhancedCode} {
		*p = decText(*p)
	}
	m.Status = smtp.Status(decText(status))
	f.Phase, f.Kind, f.Reason = smtp.Phase(decText(phase)), smtp.Kind(decText(kind)), smtp.Reason(decText(reason))
	var err error
	if m.Rcpts, err = decStrings(rcpts); err != nil {
		return nil, err
	}
	if m.Recipients, err = decRecipients(recipients); err != nil {
		return nil, err
	}
	if m.Timings, err = decTimings(timings); err != nil {
		return nil, err
	}
	return &m, nil
}

// Send returns the send with that id, with its message and transcript, or
// ErrNotFound.
func (s *Store) Send(ctx context.Context, id int64) (*Send, error) {
	var headers, events string
	var message []byte
	m, err := scanSummary(s.r.QueryRowContext(ctx, s.q(`SELECT `+summaryColumns+`, b.headers, b.events, b.message
		FROM sends s JOIN send_bodies b ON b.send_id = s.id WHERE s.id = ?`), id), &headers, &events, &message)
	if err != nil {
		return nil, fmt.Errorf("store: send %d: %w", id, notFound(err))
	}
	evs, err := decEvents(events)
	if err != nil {
		return nil, fmt.Errorf("store: send %d: %w", id, err)
	}
	return &Send{
		ID: m.ID, CreatedAt: m.CreatedAt, FinishedAt: m.FinishedAt, Source: m.Source, UserID: m.UserID,
		ClientAddr: m.ClientAddr, Server: m.Server, TLSMode: m.TLSMode, MailFrom: m.MailFrom, Rcpts: m.Rcpts,
		Subject: m.Subject, Headers: decText(headers), Message: bytesOrNil(message),
		MessageTruncated: m.MessageTruncated, Status: m.Status, QueueID: m.QueueID, Recipients: m.Recipients,
		Events: evs, Error: m.Error, Failure: m.Failure, DurationMS: m.DurationMS, ParentID: m.ParentID, FormID: m.FormID,
		Timings: m.Timings,
	}, nil
}

// whereBuilder collects the conditions of a query and their arguments.
type whereBuilder struct {
	conds []string
	args  []any
}

func (w *whereBuilder) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *whereBuilder) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// containsPattern is a LIKE pattern matching s anywhere, lower-cased to
// compare with LOWER(column).
func containsPattern(s string) string { return "%" + escapeLike(strings.ToLower(s)) + "%" }

// sendQuery is a listing query under construction.
type sendQuery struct {
	from  string // the FROM clause; sends is aliased s
	idCol string // the send id column that orders and pages
	where whereBuilder
	// indexed are the search words matched through the SQLite full-text
	// index (send_fts MATCH), and plain the conditions of where but that
	// MATCH: the sends not indexed yet are matched against them
	// (pendingMatches). Empty when the index is not used.
	indexed []string
	plain   whereBuilder
}

// search adds a text search. Each word must occur in the send's
// search_text as a case-insensitive substring.
//
// SQLite: words of three or more characters go to the FTS5 trigram index,
// where a quoted phrase is a substring match. The query is then driven by
// the index (send_fts CROSS JOIN sends, ordered by the index's rowid), so
// FTS5 streams matches newest first and a page or a capped count stops
// early instead of materialising every match. Shorter words, which have no
// trigram, are matched with LIKE on the rows that remain. The sends stored
// since the indexer last ran are not in the index yet: ListSends matches
// them separately (pendingMatches), with q.indexed and q.plain.
//
// PostgreSQL: LIKE on the lowercased text (ILIKE on rows not folded yet,
// below: see foldedMatch), which the pg_trgm GIN index serves when
// installed; the planner chooses between the index (a rare word) and a
// backward walk of the newest sends (a common one).
func (q *sendQuery) search(backend string, words []string, below int64) {
	if len(words) == 0 {
		return
	}
	if backend == BackendPostgres {
		cond, args := foldedMatch(words, below)
		q.where.add(cond, args...)
		return
	}
	match, short := ftsPhrases(words)
	for _, word := range short {
		q.where.add(`EXISTS (SELECT 1 FROM send_bodies b WHERE b.send_id = s.id AND b.search_text LIKE ? ESCAPE '\')`,
			"%"+escapeLike(word)+"%")
	}
	if match != "" {
		q.plain = whereBuilder{conds: slices.Clone(q.where.conds), args: slices.Clone(q.where.args)}
		for _, word := range words {
			if utf8.RuneCountInString(word) >= 3 {
				q.indexed = append(q.indexed, word)
			}
		}
		q.from = `send_fts CROSS JOIN sends s ON s.id = send_fts.rowid`
		q.idCol = `send_fts.rowid`
		q.where.add(`send_fts MATCH ?`, match)
	}
}

// ListSends returns a page of the sends matching f, newest first.
func (s *Store) ListSends(ctx context.Context, f SendFilter) (SendPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultSendLimit
	}
	limit = min(limit, MaxSendLimit)
	q := sendQuery{from: `sends s`, idCol: `s.id`}
	w := &q.where
	if f.Status != "" {
		w.add(`s.status = ?`, encText(string(f.Status)))
	}
	if prefix, ok := strings.CutSuffix(f.Source, "*"); ok {
		w.add(`s.source LIKE ? ESCAPE '\'`, escapeLike(prefix)+"%")
	} else if f.Source != "" {
		w.add(`s.source = ?`, encText(f.Source))
	}
	for _, c := range []struct{ col, v string }{{"s.mail_from", f.Sender}, {"s.rcpts", f.Recipient}, {"s.server", f.Server}} {
		switch {
		case c.v == "":
		case !sqlText(c.v):
			// Stored text never holds NUL or invalid UTF-8 (encText),
			// so nothing matches; PostgreSQL would refuse the argument.
			w.add(`1 = 0`)
		default:
			w.add(`LOWER(`+c.col+`) LIKE ? ESCAPE '\'`, containsPattern(c.v))
		}
	}
	if !f.Since.IsZero() {
		w.add(`s.created_at >= ?`, micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(`s.created_at < ?`, micros(f.Until))
	}
	// The substring filters are also words of the searchable text, so the
	// search index can narrow the rows their LIKE has to look at.
	words := strings.Fields(f.Query)
	for _, v := range []string{f.Sender, f.Recipient, f.Server} {
		if utf8.RuneCountInString(v) >= 3 && searchable(v) {
			for _, word := range strings.Fields(v) {
				if utf8.RuneCountInString(word) >= 3 {
					words = append(words, word)
				}
			}
		}
	}
	if !sqlText(f.Query) {
		w.add(`1 = 0`) // the searchable text holds neither NUL nor invalid UTF-8
		words = nil
	}
	q.search(s.backend, words, s.fold.below.Load())
	if len(q.indexed) > 0 {
		return s.listSendsSearched(ctx, &q, f.Before, limit)
	}
	total, sends, err := s.readSendPage(ctx, s.r, &q, f.Before, limit)
	if err != nil {
		return SendPage{}, err
	}
	return s.sendPage(total, sends, limit), nil
}

// sendReader is what readSendPage reads through: the readers, or one
// read transaction of theirs.
type sendReader interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readSendPage reads q's count (capped at countCap+1) and up to limit+1
// of its sends below before, newest first. The count walks newest first,
// like the page: a capped count then stops among the recent sends the
// filters tend to select, instead of wading through old ones (SQLite:
// 17 ms -> 0.7 ms for a source and date filter at 100,000 sends).
func (s *Store) readSendPage(ctx context.Context, db sendReader, q *sendQuery, before int64, limit int) (int, []SendSummary, error) {
	w := whereBuilder{conds: slices.Clone(q.where.conds), args: slices.Clone(q.where.args)}
	var total int
	if err := db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM `+q.from+w.String()+
		` ORDER BY `+q.idCol+` DESC LIMIT ?) c`), append(slices.Clone(w.args), s.countCap+1)...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("store: count sends: %w", err)
	}
	if before > 0 {
		w.add(q.idCol+` < ?`, before)
	}
	rows, err := db.QueryContext(ctx, s.q(`SELECT `+summaryColumns+` FROM `+q.from+w.String()+
		` ORDER BY `+q.idCol+` DESC LIMIT ?`), append(w.args, limit+1)...)
	if err != nil {
		return 0, nil, fmt.Errorf("store: list sends: %w", err)
	}
	defer rows.Close()
	var sends []SendSummary
	for rows.Next() {
		m, err := scanSummary(rows)
		if err != nil {
			return 0, nil, fmt.Errorf("store: list sends: %w", err)
		}
		sends = append(sends, *m)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("store: list sends: %w", err)
	}
	return total, sends, nil
}

// sendPage makes the page of up to limit+1 sends (newest first) and
// total matches: the count capped at countCap, the cursor when there is
// more.
func (s *Store) sendPage(total int, sends []SendSummary, limit int) SendPage {
	page := SendPage{Total: total, Sends: sends}
	if page.Total > s.countCap {
		page.Total, page.TotalCapped = s.countCap, true
	}
	if len(page.Sends) > limit {
		page.Sends = page.Sends[:limit]
		page.NextBefore = page.Sends[limit-1].ID
	}
	return page
}

// listSendsSearched is ListSends for a search through the SQLite
// full-text index: the indexed sends that match (the index's own query,
// newest first, stopping early) and the matching sends not indexed yet
// (pendingMatches), read in one transaction and merged newest first.
func (s *Store) listSendsSearched(ctx context.Context, q *sendQuery, before int64, limit int) (SendPage, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return SendPage{}, fmt.Errorf("store: list sends: %w", err)
	}
	defer tx.Rollback()
	pending, err := s.pendingMatches(ctx, tx, q)
	if err != nil {
		return SendPage{}, fmt.Errorf("store: list sends: %w", err)
	}
	total, indexed, err := s.readSendPage(ctx, tx, q, before, limit)
	if err != nil {
		return SendPage{}, err
	}
	total += len(pending) // every queued match, whatever the cursor
	// Merge, newest first: both lists are in that order.
	var sends []SendSummary
	for len(sends) <= limit && (len(indexed) > 0 || len(pending) > 0) {
		var next SendSummary
		switch {
		case len(pending) > 0 && before > 0 && pending[0].ID >= before:
			pending = pending[1:]
			continue
		case len(indexed) == 0 || len(pending) > 0 && pending[0].ID > indexed[0].ID:
			next, pending = pending[0], pending[1:]
		default:
			next, indexed = indexed[0], indexed[1:]
		}
		sends = append(sends, next)
	}
	return s.sendPage(total, sends, limit), nil
}

// DeleteSend deletes a send and its transcript, or returns ErrNotFound.
// Resends of it keep existing, with ParentID cleared.
func (s *Store) DeleteSend(ctx context.Context, id int64) error {
	if err := affected(s.w.ExecContext(ctx, s.q(`DELETE FROM sends WHERE id = ?`), id)); err != nil {
		return fmt.Errorf("store: delete send %d: %w", id, err)
	}
	return nil
}

// ApplyRetention deletes the sends created before olderThan (unless it is
// zero) and those beyond the keepMax newest (unless keepMax <= 0), whatever
// their status, and returns how many it deleted. It deletes in batches of
// retentionBatch, each its own transaction, so sends in progress are not
// held up behind one long delete.
func (s *Store) ApplyRetention(ctx context.Context, olderThan time.Time, keepMax int) (int, error) {
	return s.applyRetention(ctx, olderThan, keepMax, retentionBatch)
}

func (s *Store) applyRetention(ctx context.Context, olderThan time.Time, keepMax, batch int) (int, error) {
	var w whereBuilder
	if !olderThan.IsZero() {
		w.add(`created_at < ?`, micros(olderThan))
	}
	if keepMax > 0 {
		// The keepMax-th newest id: everything older goes.
		var cut int64
		err := s.r.QueryRowContext(ctx, s.q(`SELECT id FROM sends ORDER BY id DESC LIMIT 1 OFFSET ?`), keepMax-1).Scan(&cut)
		switch {
		case err == nil:
			w.add(`id < ?`, cut)
		case err != sql.ErrNoRows:
			return 0, fmt.Errorf("store: retention: %w", err)
		}
	}
	if len(w.conds) == 0 {
		return 0, nil
	}
	cond := strings.Join(w.conds, " OR ")
	deleted := 0
	for {
		res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sends WHERE id IN (SELECT id FROM sends WHERE `+cond+
			` ORDER BY id LIMIT ?)`), append(w.args, batch)...)
		if err != nil {
			return deleted, fmt.Errorf("store: retention: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return deleted, fmt.Errorf("store: retention: %w", err)
		}
		deleted += int(n)
		if n < int64(batch) {
			return deleted, nil
		}
	}
}
