package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// CheckOptions are the options of a check run from the web page, stored
// so that it can be run again the same way.
type CheckOptions struct {
	// Port is the port a domain's MX hosts are checked on (0: 25).
	Port int `json:"port,omitempty"`
	// ImplicitTLS says the server speaks TLS from its first byte.
	ImplicitTLS bool `json:"implicit_tls,omitempty"`
	// From, IP and DKIMSelector ask for the sender side of the From
	// domain (check.SenderOptions).
	From         string `json:"from,omitempty"`
	IP           string `json:"ip,omitempty"`
	DKIMSelector string `json:"dkim_selector,omitempty"`
	// RelayTest asks for the open relay test.
	RelayTest bool `json:"relay_test,omitempty"`
	// SendTo, if set, asks for a real test message to it, from SendFrom,
	// through the saved profile Profile (0: through the checked server).
	SendTo   string `json:"send_to,omitempty"`
	SendFrom string `json:"send_from,omitempty"`
	Profile  int64  `json:"profile,omitempty"`
}

// Check is a stored check (sockmail check) of a domain or a server.
type Check struct {
	ID      int64
	Target  string
	Options CheckOptions
	Started time.Time
	// Finished is zero while the check runs.
	Finished time.Time
	// Worst is the worst status of its findings; empty while it runs.
	Worst string
	// Report is check.Report's JSON; nil while it runs and in lists.
	Report []byte
	// Sends maps the number of each SMTP conversation of the report to
	// the send (source "check") that keeps it in the history.
	Sends map[int]int64
}

// Running reports whether the check has not finished.
func (c *Check) Running() bool { return c.Finished.IsZero() }

// CreateCheck records a check that starts now (c.Started, or now if
// zero) and sets c.ID.
func (s *Store) CreateCheck(ctx context.Context, c *Check) error {
	started := normTime(c.Started)
	opts, err := json.Marshal(c.Options)
	if err != nil {
		return fmt.Errorf("store: create check: %w", err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO checks (target, options, started_at) VALUES (?, ?, ?) RETURNING id`),
		encText(c.Target), string(opts), micros(started)).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: create check: %w", err)
	}
	c.ID, c.Started = id, started
	return nil
}

// FinishCheck stores the outcome of a check: when it ended, its worst
// status, its report (JSON) and the sends keeping its conversations, or
// ErrNotFound.
func (s *Store) FinishCheck(ctx context.Context, id int64, finished time.Time, worst string, report []byte, sends map[int]int64) error {
	if sends == nil {
		sends = map[int]int64{}
	}
	sendsJSON, err := json.Marshal(sends)
	if err != nil {
		return fmt.Errorf("store: finish check %d: %w", id, err)
	}
	if err := affected(s.w.ExecContext(ctx, s.q(`UPDATE checks SET finished_at = ?, worst = ?, report = ?, sends = ? WHERE id = ?`),
		micros(normTime(finished)), worst, string(report), string(sendsJSON), id)); err != nil {
		return fmt.Errorf("store: finish check %d: %w", id, err)
	}
	return nil
}

const checkColumns = `id, target, options, started_at, finished_at, worst, sends`

func scanCheck(row interface{ Scan(...any) error }, extra ...any) (*Check, error) {
	var c Check
	var opts, sends string
	var started, finished int64
	if err := row.Scan(append([]any{&c.ID, &c.Target, &opts, &started, &finished, &c.Worst, &sends}, extra...)...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(sends), &c.Sends); err != nil {
		return nil, fmt.Errorf("sends of check %d: %w", c.ID, err)
	}
	c.Target = decText(c.Target)
	if err := json.Unmarshal([]byte(opts), &c.Options); err != nil {
		return nil, fmt.Errorf("options of check %d: %w", c.ID, err)
	}
	c.Started = fromMicros(started)
	if finished != 0 {
		c.Finished = fromMicros(finished)
	}
	return &c, nil
}

// Check returns the check with that id, with its report, or ErrNotFound.
func (s *Store) Check(ctx context.Context, id int64) (*Check, error) {
	var report sql.NullString
	c, err := scanCheck(s.r.QueryRowContext(ctx, s.q(`SELECT `+checkColumns+`, report FROM checks WHERE id = ?`), id), &report)
	if err != nil {
		return nil, fmt.Errorf("store: check %d: %w", id, notFound(err))
	}
	if report.Valid {
		c.Report = []byte(report.String)
	}
	return c, nil
}

// ListChecks returns up to limit checks (DefaultSendLimit if limit <= 0,
// at most MaxSendLimit), newest first, without their reports. before is
// a keyset cursor: only ids below it; 0 starts at the newest.
func (s *Store) ListChecks(ctx context.Context, limit int, before int64) ([]Check, error) {
	if limit <= 0 {
		limit = DefaultSendLimit
	}
	limit = min(limit, MaxSendLimit)
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+checkColumns+` FROM checks WHERE id < ? ORDER BY id DESC LIMIT ?`), before, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list checks: %w", err)
	}
	defer rows.Close()
	var out []Check
	for rows.Next() {
		c, err := scanCheck(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list checks: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list checks: %w", err)
	}
	return out, nil
}
