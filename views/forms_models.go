package views

import "time"

// FormFields are the fields of the admin form that creates or edits a
// contact form, as typed (numbers too, so that a bad one is shown back).
type FormFields struct {
	Name            string
	Slug            string
	Recipients      string // one per line or comma-separated
	Profile         string // "0" for the built-in capture server, or a profile id
	FromAddr        string
	FromName        string
	AllowedOrigins  string // one per line
	SuccessURL      string
	ErrorURL        string
	SubjectTemplate string
	Fields          string // comma- or space-separated names
	AllowUploads    bool
	MaxUploadKiB    string
	MaxFieldKiB     string
	RatePerAddr     string
	RatePerForm     string
	CaptchaProvider string
	CaptchaSiteKey  string // public; goes into the embed snippet
	CaptchaSecret   string // typed; never shown back
	ClearSecret     bool
	Enabled         bool
}

// FormRow is one contact form in the list.
type FormRow struct {
	ID         int64
	Name       string
	Slug       string
	Recipients []string
	Server     string
	Enabled    bool
}

// FormEdit is the create/edit page of a contact form; ID is 0 for a new
// one.
type FormEdit struct {
	ID           int64
	Form         *FormFields
	Errors       map[string]string
	Servers      []Option
	HasSecret    bool
	MaxUploadKiB int64
}

// FormOverview is a contact form's page: its settings and embed snippets.
type FormOverview struct {
	ID              int64
	Name            string
	Slug            string
	Endpoint        string
	Enabled         bool
	Recipients      []string
	Server          string
	From            string
	AllowedOrigins  []string
	SuccessURL      string
	ErrorURL        string
	SubjectTemplate string
	Fields          []string
	AllowUploads    bool
	MaxUpload       int64
	MaxField        int64
	RatePerAddr     int
	RatePerForm     int
	Captcha         string
	SiteKey         string
	HasSecret       bool
	SnippetPlain    string
	SnippetFetch    string
}

// StatusCount is how many outbox items have a status.
type StatusCount struct {
	Status string
	N      int
}

// OutboxRow is one message in the outbox list.
type OutboxRow struct {
	ID           int64
	Created      time.Time
	FormID       int64
	FormName     string
	SubmissionID int64
	Rcpts        []string
	Subject      string
	Status       string
	Attempts     int
	NextAttempt  time.Time
	ExpiresAt    time.Time
	LastError    string
	LastSendID   int64
	TakenOver    bool
	CanRetry     bool
	CanCancel    bool
	// ProfileID is the server profile the message goes through (0: the
	// built-in capture server); ProfileProblem says what keeps that
	// profile from being used now and how to fix it.
	ProfileID      int64
	ProfileProblem string
}

// OutboxPage is the outbox: counts by status and a page of items.
type OutboxPage struct {
	Counts []StatusCount
	Total  int
	// Status and FormID are the filters in use ("" and 0 for all).
	Status string
	FormID int64
	Rows   []OutboxRow
	// Older is the cursor of the next page, 0 when there is none.
	Older int64
}

// SubmissionRow is one submission in a list.
type SubmissionRow struct {
	ID          int64
	FormID      int64
	Created     time.Time
	Status      string
	BlockReason string
	ClientAddr  string
	Origin      string
	ReplyTo     string
	Preview     string
	Files       int
	CanRelease  bool
}

// SubmissionsPage lists the submissions of a form.
type SubmissionsPage struct {
	FormID   int64
	FormName string
	Status   string
	Statuses []string
	Rows     []SubmissionRow
	Older    int64
}

// FileRow is a file of a submission.
type FileRow struct {
	Name        string
	ContentType string
	Size        int64
}

// SubmissionDetail is one submission in full.
type SubmissionDetail struct {
	SubmissionRow
	FormName     string
	UserAgent    string
	Fields       []ContactField
	FileList     []FileRow
	OutboxID     int64
	OutboxStatus string
	LastSendID   int64
}
