package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Contact forms. A Form is configured by an admin; the public endpoint
// POST /f/{slug} turns a visitor's post into a Submission and an
// OutboxItem, stored together by EnqueueSubmission (outbox.go).

// SubmissionStatus is where a submission stands. A submission follows its
// outbox item: queued until delivered (sent), given up (failed), lost
// after the final "." (unknown) or cancelled by an admin; a blocked one
// (spam rules) has a held item until an admin releases it.
type SubmissionStatus string

// Submission statuses.
const (
	SubmissionQueued    SubmissionStatus = "queued"
	SubmissionBlocked   SubmissionStatus = "blocked"
	SubmissionReleased  SubmissionStatus = "released"
	SubmissionSent      SubmissionStatus = "sent"
	SubmissionFailed    SubmissionStatus = "failed"
	SubmissionUnknown   SubmissionStatus = "unknown"
	SubmissionCancelled SubmissionStatus = "cancelled"
)

// Captcha providers a form may use.
const (
	CaptchaNone      = ""
	CaptchaTurnstile = "turnstile"
	CaptchaHCaptcha  = "hcaptcha"
)

// Listing limits for submissions and the outbox.
const (
	// DefaultListLimit is the page size when a filter's Limit is 0.
	DefaultListLimit = 50
	// MaxListLimit is the largest page returned.
	MaxListLimit = 500
	// MaxSlugLength bounds a form's slug.
	MaxSlugLength = 64
)

// Form is a contact form: where its submissions go and what it accepts.
// Nothing in a submission can change the recipients, the sender or the
// server: they come from here.
type Form struct {
	ID int64
	// Slug is the public id in POST /f/{slug}: random and unguessable
	// when generated (24 base32 characters, 120 bits), unique. Letters,
	// digits, '-' and '_' only, at most MaxSlugLength.
	Slug string
	Name string
	// Recipients receive every submission.
	Recipients []string
	// ProfileID is the server profile to deliver through; 0 is the
	// built-in capture server.
	ProfileID int64
	// FromAddr and FromName make the From header (the site's own address).
	FromAddr string
	FromName string
	// AllowedOrigins are the origins (scheme://host[:port]) that may post
	// cross-origin and read the JSON answer.
	AllowedOrigins []string
	// SuccessURL and ErrorURL are where a plain HTML post is redirected.
	SuccessURL, ErrorURL string
	// SubjectTemplate is the Subject, with {{field}} replaced by the
	// submitted value, e.g. "Contact from {{name}}".
	SubjectTemplate string
	// Fields are the expected field names, shown first and in this order
	// in the mail; other submitted fields are kept after them.
	Fields         []string
	AllowUploads   bool
	MaxUploadBytes int64
	MaxFieldBytes  int64
	// CaptchaProvider is CaptchaNone, CaptchaTurnstile or CaptchaHCaptcha;
	// CaptchaSiteKey its public site key, for the widget in the embed
	// snippet; CaptchaSecretEnc its secret sealed with crypt.Box.
	CaptchaProvider  string
	CaptchaSiteKey   string
	CaptchaSecretEnc []byte
	// RatePerAddr and RatePerForm are submissions allowed per hour from
	// one client address and to the whole form; 0 means no limit.
	RatePerAddr int
	RatePerForm int
	Enabled     bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// FieldValue is one submitted field.
type FieldValue struct {
	Name, Value string
}

// SubmissionFile is one uploaded file.
type SubmissionFile struct {
	Name        string
	ContentType string
	// Data is the content. ListSubmissions leaves it nil and sets only
	// Size; Submission fills both.
	Data []byte
	// Size is len(Data) as stored (set on reads).
	Size int64
}

// Submission is one post to a form, kept whatever happens to it.
type Submission struct {
	ID         int64
	FormID     int64
	CreatedAt  time.Time
	ClientAddr string
	Origin     string
	UserAgent  string
	// Fields are the submitted fields, in order.
	Fields []FieldValue
	Files  []SubmissionFile
	// ReplyTo is the visitor's validated address, or "".
	ReplyTo string
	// Status is one of the Submission* constants.
	Status SubmissionStatus
	// BlockReason says why a blocked submission was blocked.
	BlockReason string
	// TokenHash is a digest of the time-trap token the submission was
	// posted with, or "". It is unique: EnqueueSubmission refuses a
	// second submission with the same one with ErrExists, so a token is
	// used once (SubmissionByToken finds the first). It is not read back.
	TokenHash string
}

// SubmissionFilter selects submissions to list. Zero fields do not filter.
type SubmissionFilter struct {
	FormID int64
	Status SubmissionStatus
	// Limit is the page size: DefaultListLimit if 0, at most MaxListLimit.
	Limit int
	// Before is the keyset cursor: only submissions with ID < Before.
	Before int64
}

// ErrInvalidSlug is returned by SaveForm for a slug with characters other
// than letters, digits, '-' and '_', or longer than MaxSlugLength.
var ErrInvalidSlug = errors.New("store: invalid form slug")

// NewSlug returns a random form slug: 24 lower-case base32 characters.
func NewSlug() string {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// validSlug reports whether s may be a slug.
func validSlug(s string) bool {
	if s == "" || len(s) > MaxSlugLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isForeignKeyViolation reports whether err is a foreign key failure on
// either backend.
func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503" // foreign_key_violation
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// formRow holds a form's encoded list columns.
type formRow struct{ recipients, origins, fields string }

func encodeForm(f *Form) (formRow, error) {
	var r formRow
	var err error
	if r.recipients, err = encStrings(f.Recipients); err != nil {
		return r, err
	}
	if r.origins, err = encStrings(f.AllowedOrigins); err != nil {
		return r, err
	}
	r.fields, err = encStrings(f.Fields)
	return r, err
}

// SaveForm inserts f when f.ID is 0, setting f.ID, f.CreatedAt and, when
// f.Slug is empty, a new random slug; otherwise it updates the form with
// that id (ErrNotFound if there is none), keeping the stored slug when
// f.Slug is empty. Either way it sets f.UpdatedAt. A slug used by another
// form gives ErrExists, a malformed one ErrInvalidSlug.
func (s *Store) SaveForm(ctx context.Context, f *Form) error {
	defer s.forms.changed()
	if f.Slug != "" && !validSlug(f.Slug) {
		return fmt.Errorf("store: save form %q: %w", f.Name, ErrInvalidSlug)
	}
	r, err := encodeForm(f)
	if err != nil {
		return fmt.Errorf("store: save form %q: %w", f.Name, err)
	}
	now := normTime(time.Time{})
	if f.ID != 0 {
		var created int64
		var slug string
		err = s.w.QueryRowContext(ctx, s.q(`UPDATE forms SET slug = CASE WHEN ? = '' THEN slug ELSE ? END, name = ?,
			recipients = ?, profile_id = ?, from_addr = ?, from_name = ?, allowed_origins = ?, success_url = ?,
			error_url = ?, subject_template = ?, fields = ?, allow_uploads = ?, max_upload_bytes = ?,
			max_field_bytes = ?, captcha_provider = ?, captcha_site_key = ?, captcha_secret_enc = ?, rate_per_addr = ?,
			rate_per_form = ?, enabled = ?, updated_at = ? WHERE id = ? RETURNING slug, created_at`),
			f.Slug, f.Slug, encText(f.Name), r.recipients, f.ProfileID, encText(f.FromAddr), encText(f.FromName),
			r.origins, encText(f.SuccessURL), encText(f.ErrorURL), encText(f.SubjectTemplate), r.fields,
			f.AllowUploads, f.MaxUploadBytes, f.MaxFieldBytes, encText(f.CaptchaProvider), encText(f.CaptchaSiteKey),
			nullBytes(f.CaptchaSecretEnc), f.RatePerAddr, f.RatePerForm, f.Enabled, micros(now), f.ID).Scan(&slug, &created)
		if err == nil {
			f.Slug, f.CreatedAt, f.UpdatedAt = slug, fromMicros(created), now
			return nil
		}
		if isUniqueViolation(err) {
			err = ErrExists
		}
		return fmt.Errorf("store: save form %q: %w", f.Name, notFound(err))
	}
	generated := f.Slug == ""
	for try := 0; ; try++ {
		slug := f.Slug
		if generated {
			slug = NewSlug()
		}
		var id int64
		err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO forms (slug, name, recipients, profile_id, from_addr,
			from_name, allowed_origins, success_url, error_url, subject_template, fields, allow_uploads,
			max_upload_bytes, max_field_bytes, captcha_provider, captcha_site_key, captcha_secret_enc, rate_per_addr,
			rate_per_form, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			slug, encText(f.Name), r.recipients, f.ProfileID, encText(f.FromAddr), encText(f.FromName), r.origins,
			encText(f.SuccessURL), encText(f.ErrorURL), encText(f.SubjectTemplate), r.fields, f.AllowUploads,
			f.MaxUploadBytes, f.MaxFieldBytes, encText(f.CaptchaProvider), encText(f.CaptchaSiteKey), nullBytes(f.CaptchaSecretEnc),
			f.RatePerAddr, f.RatePerForm, f.Enabled, micros(now), micros(now)).Scan(&id)
		if err == nil {
			f.ID, f.Slug, f.CreatedAt, f.UpdatedAt = id, slug, now, now
			return nil
		}
		if !isUniqueViolation(err) {
			break
		}
		// 120 random bits do not collide; a chosen slug may.
		if !generated || try == 2 {
			err = ErrExists
			break
		}
	}
	return fmt.Errorf("store: save form %q: %w", f.Name, err)
}

const formColumns = `id, slug, name, recipients, profile_id, from_addr, from_name, allowed_origins, success_url,
	error_url, subject_template, fields, allow_uploads, max_upload_bytes, max_field_bytes, captcha_provider,
	captcha_site_key, captcha_secret_enc, rate_per_addr, rate_per_form, enabled, created_at, updated_at`

func scanForm(row interface{ Scan(...any) error }) (*Form, error) {
	var f Form
	var recipients, origins, fields string
	var created, updated int64
	if err := row.Scan(&f.ID, &f.Slug, &f.Name, &recipients, &f.ProfileID, &f.FromAddr, &f.FromName, &origins,
		&f.SuccessURL, &f.ErrorURL, &f.SubjectTemplate, &fields, &f.AllowUploads, &f.MaxUploadBytes,
		&f.MaxFieldBytes, &f.CaptchaProvider, &f.CaptchaSiteKey, &f.CaptchaSecretEnc, &f.RatePerAddr, &f.RatePerForm, &f.Enabled,
		&created, &updated); err != nil {
		return nil, err
	}
	for _, p := range []*string{&f.Name, &f.FromAddr, &f.FromName, &f.SuccessURL, &f.ErrorURL, &f.SubjectTemplate, &f.CaptchaProvider, &f.CaptchaSiteKey} {
		*p = decText(*p)
	}
	var err error
	if f.Recipients, err = decStrings(recipients); err != nil {
		return nil, err
	}
	if f.AllowedOrigins, err = decStrings(origins); err != nil {
		return nil, err
	}
	if f.Fields, err = decStrings(fields); err != nil {
		return nil, err
	}
	f.CaptchaSecretEnc = bytesOrNil(f.CaptchaSecretEnc)
	f.CreatedAt, f.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &f, nil
}

// Form returns the form with that id, or ErrNotFound.
func (s *Store) Form(ctx context.Context, id int64) (*Form, error) {
	f, err := scanForm(s.r.QueryRowContext(ctx, s.q(`SELECT `+formColumns+` FROM forms WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: form %d: %w", id, notFound(err))
	}
	return f, nil
}

// FormBySlug returns the form with that slug, or ErrNotFound (also for a
// string that cannot be a slug).
func (s *Store) FormBySlug(ctx context.Context, slug string) (*Form, error) {
	if !validSlug(slug) {
		return nil, fmt.Errorf("store: form by slug: %w", ErrNotFound)
	}
	f, err := scanForm(s.r.QueryRowContext(ctx, s.q(`SELECT `+formColumns+` FROM forms WHERE slug = ?`), slug))
	if err != nil {
		return nil, fmt.Errorf("store: form %q: %w", slug, notFound(err))
	}
	return f, nil
}

// Forms returns every form ordered by name.
func (s *Store) Forms(ctx context.Context) ([]Form, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+formColumns+` FROM forms ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("store: forms: %w", err)
	}
	defer rows.Close()
	var out []Form
	for rows.Next() {
		f, err := scanForm(rows)
		if err != nil {
			return nil, fmt.Errorf("store: forms: %w", err)
		}
		out = append(out, *f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: forms: %w", err)
	}
	return out, nil
}

// DeleteForm deletes the form with that id and its submissions, or
// returns ErrNotFound. Outbox items already queued are still delivered
// (their SubmissionID becomes nil); held items of blocked submissions,
// which nobody could release any more, are cancelled.
func (s *Store) DeleteForm(ctx context.Context, id int64) error {
	defer s.forms.changed()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `UPDATE outbox SET status = ?, last_error = ?
			WHERE form_id = ? AND status = ?`, OutboxCancelled, "the form was deleted", id, OutboxHeld); err != nil {
			return err
		}
		return affected(s.txExec(ctx, tx, `DELETE FROM forms WHERE id = ?`, id))
	})
	if err != nil {
		return fmt.Errorf("store: delete form %d: %w", id, err)
	}
	return nil
}

// encFields stores submitted fields as a JSON array of [name, value].
func encFields(fields []FieldValue) (string, error) {
	out := make([][2]string, len(fields))
	for i, f := range fields {
		out[i] = [2]string{encText(f.Name), encText(f.Value)}
	}
	return marshalJSON(out)
}

// decFields reverses encFields; no fields is nil.
func decFields(s string) ([]FieldValue, error) {
	var in [][2]string
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]FieldValue, len(in))
	for i, f := range in {
		out[i] = FieldValue{Name: decText(f[0]), Value: decText(f[1])}
	}
	return out, nil
}

// insertSubmission inserts sub and its files in tx and returns the new id
// and the stored creation time; sub is not changed. A missing form gives
// ErrNotFound.
func (s *Store) insertSubmission(ctx context.Context, tx *sql.Tx, sub *Submission) (int64, time.Time, error) {
	created := normTime(sub.CreatedAt)
	fields, err := encFields(sub.Fields)
	if err != nil {
		return 0, created, err
	}
	var id int64
	var tokenHash any // NULL when there is none: NULLs never collide
	if sub.TokenHash != "" {
		tokenHash = sub.TokenHash
	}
	err = s.txQueryRow(ctx, tx, `INSERT INTO submissions (form_id, created_at, client_addr, origin, user_agent,
		fields, reply_to, status, block_reason, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		sub.FormID, micros(created), encText(sub.ClientAddr), encText(sub.Origin), encText(sub.UserAgent), fields,
		encText(sub.ReplyTo), encText(string(sub.Status)), encText(sub.BlockReason), tokenHash).Scan(&id)
	if err != nil {
		if isForeignKeyViolation(err) {
			return 0, created, fmt.Errorf("form %d: %w", sub.FormID, ErrNotFound)
		}
		if isUniqueViolation(err) {
			return 0, created, fmt.Errorf("submission with this token: %w", ErrExists)
		}
		return 0, created, err
	}
	for i, f := range sub.Files {
		data := f.Data
		if data == nil {
			data = []byte{}
		}
		if _, err := s.txExec(ctx, tx, `INSERT INTO submission_files (submission_id, position, name,
			content_type, data) VALUES (?, ?, ?, ?, ?)`, id, i, encText(f.Name), encText(f.ContentType), data); err != nil {
			return 0, created, err
		}
	}
	return id, created, nil
}

const submissionColumns = `id, form_id, created_at, client_addr, origin, user_agent, fields, reply_to, status, block_reason`

func scanSubmission(row interface{ Scan(...any) error }) (*Submission, error) {
	var m Submission
	var created int64
	var fields string
	if err := row.Scan(&m.ID, &m.FormID, &created, &m.ClientAddr, &m.Origin, &m.UserAgent, &fields, &m.ReplyTo,
		&m.Status, &m.BlockReason); err != nil {
		return nil, err
	}
	m.CreatedAt = fromMicros(created)
	for _, p := range []*string{&m.ClientAddr, &m.Origin, &m.UserAgent, &m.ReplyTo, &m.BlockReason} {
		*p = decText(*p)
	}
	var err error
	if m.Fields, err = decFields(fields); err != nil {
		return nil, err
	}
	return &m, nil
}

// SubmissionByToken returns the id of the submission posted with the
// token whose digest is hash (Submission.TokenHash), or ErrNotFound.
func (s *Store) SubmissionByToken(ctx context.Context, hash string) (int64, error) {
	var id int64
	if err := s.readQueryRow(ctx, `SELECT id FROM submissions WHERE token_hash = ?`, hash).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: submission by token: %w", notFound(err))
	}
	return id, nil
}

// Submission returns the submission with that id, with its files, or
// ErrNotFound.
func (s *Store) Submission(ctx context.Context, id int64) (*Submission, error) {
	m, err := scanSubmission(s.r.QueryRowContext(ctx, s.q(`SELECT `+submissionColumns+` FROM submissions WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: submission %d: %w", id, notFound(err))
	}
	if err := s.loadFiles(ctx, []*Submission{m}, true); err != nil {
		return nil, fmt.Errorf("store: submission %d: %w", id, err)
	}
	return m, nil
}

// loadFiles fills the Files of subs, with their data when withData.
func (s *Store) loadFiles(ctx context.Context, subs []*Submission, withData bool) error {
	if len(subs) == 0 {
		return nil
	}
	byID := make(map[int64]*Submission, len(subs))
	marks := make([]string, len(subs))
	args := make([]any, len(subs))
	for i, m := range subs {
		byID[m.ID] = m
		marks[i], args[i] = "?", m.ID
	}
	data := `NULL`
	if withData {
		data = `data`
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT submission_id, name, content_type, `+data+`, LENGTH(data)
		FROM submission_files WHERE submission_id IN (`+strings.Join(marks, ", ")+`) ORDER BY submission_id, position`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var f SubmissionFile
		if err := rows.Scan(&id, &f.Name, &f.ContentType, &f.Data, &f.Size); err != nil {
			return err
		}
		f.Name, f.ContentType = decText(f.Name), decText(f.ContentType)
		if withData && f.Data == nil {
			f.Data = []byte{}
		}
		if m := byID[id]; m != nil {
			m.Files = append(m.Files, f)
		}
	}
	return rows.Err()
}

// listLimit applies the default and maximum page sizes.
func listLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return min(n, MaxListLimit)
}

// ListSubmissions returns a page of the submissions matching f, newest
// first, with their fields and the names, types and sizes of their files
// (not the data).
func (s *Store) ListSubmissions(ctx context.Context, f SubmissionFilter) ([]Submission, error) {
	var w whereBuilder
	if f.FormID != 0 {
		w.add(`form_id = ?`, f.FormID)
	}
	if f.Status != "" {
		w.add(`status = ?`, encText(string(f.Status)))
	}
	if f.Before > 0 {
		w.add(`id < ?`, f.Before)
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+submissionColumns+` FROM submissions`+w.String()+
		` ORDER BY id DESC LIMIT ?`), append(w.args, listLimit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("store: list submissions: %w", err)
	}
	var out []Submission
	for rows.Next() {
		m, err := scanSubmission(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list submissions: %w", err)
		}
		out = append(out, *m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list submissions: %w", err)
	}
	ptrs := make([]*Submission, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := s.loadFiles(ctx, ptrs, false); err != nil {
		return nil, fmt.Errorf("store: list submissions: %w", err)
	}
	return out, nil
}

// EnqueueLimited is EnqueueSubmission behind rate limits, as TakeRate
// counts them (limits with a Max; each needs its Window): the post is
// counted under every such limit and stored, or, when a limit refuses
// it, neither counted nor stored, and that limit is returned with its
// RetryAfter (the error is nil then). On SQLite the count and the record
// are one transaction, inside the group commit, so a refused or failed
// post is never counted and the counters cost no write of their own. On
// PostgreSQL the count commits first (a short transaction, so posts to
// one form do not wait for each other's commits), then the submission is
// stored, both sent in one round trip (enqueuePostgres), or the count is
// one this Store took ahead (rateAhead) and only the submission is sent;
// a post the database then refuses to store hands its count to this
// Store's next post of that key (one whose answer a lost connection cut
// keeps it: it may be stored), a repeated one (a stored submission has
// its token) is not counted.
func (s *Store) EnqueueLimited(ctx context.Context, sub *Submission, item *OutboxItem, limits []Limit, at time.Time) (*Limit, error) {
	active, err := rateLimits(limits)
	if err != nil {
		return nil, fmt.Errorf("store: enqueue submission: %w", err)
	}
	return s.enqueue(ctx, sub, item, active, at)
}

// IntakeCount returns how many submissions this Store has stored since
// it was opened (EnqueueSubmission, EnqueueLimited): a count that grows
// while visitors post, for the outbox worker's Deps.Intake.
func (s *Store) IntakeCount() uint64 { return s.intake.Load() }

// IntakeStoring returns how many submissions this Store is storing at
// this moment (EnqueueSubmission and EnqueueLimited calls that have not
// returned): above zero while visitors wait for their answers, for the
// outbox worker's Deps.Storing.
func (s *Store) IntakeStoring() int { return int(s.storing.Load()) }

// enqueue does EnqueueSubmission and EnqueueLimited; active is from
// rateLimits.
func (s *Store) enqueue(ctx context.Context, sub *Submission, item *OutboxItem, active []Limit, at time.Time) (*Limit, error) {
	c := *sub
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	subStatus, it, err := checkEnqueue(&c, item)
	if err != nil {
		return nil, fmt.Errorf("store: enqueue submission: %w", err)
	}
	s.storing.Add(1)
	defer s.storing.Add(-1)
	var res enqueued
	var over *Limit
	if s.backend == BackendSQLite {
		// Stored first, then counted: a repeated token (ErrExists) is
		// answered as such even when its limit is now reached; a refused
		// post rolls both back.
		err = s.groupWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
			var err error
			if res, err = s.insertEnqueue(ctx, tx, &c, subStatus, it); err != nil {
				return err
			}
			if over, err = s.takeRate(ctx, tx, active, at); err != nil {
				return err
			}
			if over != nil {
				return errOverLimit
			}
			return nil
		}, groupDurable)
	} else if res, over, err = s.enqueuePostgres(ctx, &c, subStatus, it, active, at); over != nil {
		return over, nil
	}
	if errors.Is(err, errOverLimit) {
		return over, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: enqueue submission: %w", err)
	}
	s.intake.Add(1)
	sub.ID, sub.CreatedAt, sub.Status = res.subID, res.subTime, subStatus
	for i := range sub.Files {
		sub.Files[i].Size = int64(len(sub.Files[i].Data))
	}
	*item = res.item
	return nil, nil
}
