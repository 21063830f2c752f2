package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Captured is a message received by the built-in capture SMTP server.
type Captured struct {
	ID         int64
	ReceivedAt time.Time
	MailFrom   string
	Rcpts      []string
	Subject    string
	Size       int64 // of Raw, in bytes
	Raw        []byte
	RemoteAddr string
	TLS        bool
	AuthUser   string
}

// SaveCaptured stores a received message with its searchable text
// (SearchCaptured). It sets c.ID, fills a zero ReceivedAt with now and a
// zero Size with len(c.Raw).
func (s *Store) SaveCaptured(ctx context.Context, c *Captured) error {
	received := normTime(c.ReceivedAt)
	size := c.Size
	if size == 0 {
		size = int64(len(c.Raw))
	}
	rcpts, err := encStrings(c.Rcpts)
	if err != nil {
		return fmt.Errorf("store: save captured: %w", err)
	}
	search := newCapturedSearch(c)
	var id int64
	err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO captured (received_at, mail_from, rcpts, subject, size,
		remote_addr, tls, auth_user, raw, search_from, search_to, search_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		micros(received), encText(c.MailFrom), rcpts, encText(c.Subject), size, encText(c.RemoteAddr), c.TLS,
		encText(c.AuthUser), nullBytes(c.Raw), search.from, search.to, search.text).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: save captured: %w", err)
	}
	c.ID, c.ReceivedAt, c.Size = id, received, size
	return nil
}

const capturedColumns = `id, received_at, mail_from, rcpts, subject, size, remote_addr, tls, auth_user`

func scanCaptured(row interface{ Scan(...any) error }, extra ...any) (*Captured, error) {
	var c Captured
	var received int64
	var rcpts string
	if err := row.Scan(append([]any{&c.ID, &received, &c.MailFrom, &rcpts, &c.Subject, &c.Size, &c.RemoteAddr,
		&c.TLS, &c.AuthUser}, extra...)...); err != nil {
		return nil, err
	}
	c.ReceivedAt = fromMicros(received)
	c.MailFrom, c.Subject, c.RemoteAddr, c.AuthUser = decText(c.MailFrom), decText(c.Subject), decText(c.RemoteAddr), decText(c.AuthUser)
	var err error
	if c.Rcpts, err = decStrings(rcpts); err != nil {
		return nil, err
	}
	return &c, nil
}

// Captured returns the captured message with that id, with its raw
// source, or ErrNotFound.
func (s *Store) Captured(ctx context.Context, id int64) (*Captured, error) {
	var raw []byte
	c, err := scanCaptured(s.r.QueryRowContext(ctx, s.q(`SELECT `+capturedColumns+`, raw FROM captured WHERE id = ?`), id), &raw)
	if err != nil {
		return nil, fmt.Errorf("store: captured %d: %w", id, notFound(err))
	}
	c.Raw = bytesOrNil(raw)
	return c, nil
}

// ListCaptured returns up to limit captured messages (DefaultSendLimit if
// limit <= 0, at most MaxSendLimit), newest first, without their Raw
// source. before is a keyset cursor: only ids below it; 0 starts at the
// newest.
func (s *Store) ListCaptured(ctx context.Context, limit int, before int64) ([]Captured, error) {
	if limit <= 0 {
		limit = DefaultSendLimit
	}
	limit = min(limit, MaxSendLimit)
	var rows *sql.Rows
	var err error
	if before > 0 {
		rows, err = s.r.QueryContext(ctx, s.q(`SELECT `+capturedColumns+` FROM captured WHERE id < ? ORDER BY id DESC LIMIT ?`), before, limit)
	} else {
		rows, err = s.r.QueryContext(ctx, s.q(`SELECT `+capturedColumns+` FROM captured ORDER BY id DESC LIMIT ?`), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("store: list captured: %w", err)
	}
	defer rows.Close()
	var out []Captured
	for rows.Next() {
		c, err := scanCaptured(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list captured: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list captured: %w", err)
	}
	return out, nil
}

// DeleteCaptured deletes a captured message, or returns ErrNotFound.
func (s *Store) DeleteCaptured(ctx context.Context, id int64) error {
	if err := affected(s.w.ExecContext(ctx, s.q(`DELETE FROM captured WHERE id = ?`), id)); err != nil {
		return fmt.Errorf("store: delete captured %d: %w", id, err)
	}
	return nil
}

// DeleteAllCaptured deletes every captured message and returns how many
// there were.
func (s *Store) DeleteAllCaptured(ctx context.Context) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM captured`)
	if err != nil {
		return 0, fmt.Errorf("store: delete all captured: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete all captured: %w", err)
	}
	return int(n), nil
}

// CapturedLimits bound what the capture server keeps. Zero fields do not
// limit.
type CapturedLimits struct {
	// MaxMessages is how many messages are kept: the newest.
	MaxMessages int
	// MaxBytes bounds the total size of the messages kept: the newest
	// whose sizes add up to at most MaxBytes.
	MaxBytes int64
	// OlderThan drops messages received before it (the retention
	// policy's age limit).
	OlderThan time.Time
}

// PruneCaptured deletes the captured messages beyond the limits, oldest
// first, and returns how many it deleted.
func (s *Store) PruneCaptured(ctx context.Context, l CapturedLimits) (int, error) {
	deleted := 0
	del := func(query string, args ...any) error {
		res, err := s.w.ExecContext(ctx, s.q(query), args...)
		if err != nil {
			return fmt.Errorf("store: prune captured: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: prune captured: %w", err)
		}
		deleted += int(n)
		return nil
	}
	if !l.OlderThan.IsZero() {
		if err := del(`DELETE FROM captured WHERE received_at < ?`, micros(l.OlderThan)); err != nil {
			return deleted, err
		}
	}
	if l.MaxMessages > 0 {
		// Everything up to the (MaxMessages+1)-th newest id goes.
		if err := del(`DELETE FROM captured WHERE id <= (SELECT id FROM captured ORDER BY id DESC LIMIT 1 OFFSET ?)`, l.MaxMessages); err != nil {
			return deleted, err
		}
	}
	if l.MaxBytes > 0 {
		// Running totals from the newest: the first message over the
		// limit and every older one go.
		if err := del(`DELETE FROM captured WHERE id <= (SELECT MAX(id) FROM
			(SELECT id, SUM(size) OVER (ORDER BY id DESC) AS total FROM captured) AS t WHERE total > ?)`, l.MaxBytes); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}
