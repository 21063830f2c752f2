package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// APIToken is a token for the HTTP API. Only the SHA-256 of the token
// (Hash, hex) is stored; the token itself is shown once when made.
type APIToken struct {
	ID         int64
	Name       string
	Hash       string
	Scopes     []string
	ExpiresAt  *time.Time // nil: never expires
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt *time.Time // nil: never used
	RevokedAt  *time.Time // nil: not revoked
}

// Usable reports why the token cannot be used at now ("revoked",
// "expired"), or "" when it can.
func (t *APIToken) Usable(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return "expired"
	}
	return ""
}

// zeroTime binds an optional time as 0 when nil.
func zeroTime(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return micros(*t)
}

// timeOrNil reads a time stored as 0 for "none".
func timeOrNil(us int64) *time.Time {
	if us == 0 {
		return nil
	}
	t := fromMicros(us)
	return &t
}

// CreateAPIToken stores t (ID and CreatedAt are set). It returns ErrExists
// if a token with the same name or hash exists.
func (s *Store) CreateAPIToken(ctx context.Context, t *APIToken) error {
	if t.Name == "" || t.Hash == "" || len(t.Scopes) == 0 {
		return fmt.Errorf("store: create api token: name, hash and scopes are required")
	}
	t.CreatedAt = normTime(t.CreatedAt)
	err := s.w.QueryRowContext(ctx, s.q(`INSERT INTO api_tokens (name, hash, scopes, expires_at, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
		encText(t.Name), t.Hash, strings.Join(t.Scopes, ","), zeroTime(t.ExpiresAt), encText(t.CreatedBy), micros(t.CreatedAt)).Scan(&t.ID)
	if isUniqueViolation(err) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("store: create api token %q: %w", t.Name, err)
	}
	return nil
}

const apiTokenColumns = `id, name, hash, scopes, expires_at, created_by, created_at, last_used_at, revoked_at`

func scanAPIToken(row interface{ Scan(...any) error }) (*APIToken, error) {
	var t APIToken
	var scopes string
	var expires, created, used, revoked int64
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &scopes, &expires, &t.CreatedBy, &created, &used, &revoked); err != nil {
		return nil, err
	}
	t.Name, t.CreatedBy = decText(t.Name), decText(t.CreatedBy)
	if scopes != "" {
		t.Scopes = strings.Split(scopes, ",")
	}
	t.ExpiresAt, t.CreatedAt, t.LastUsedAt, t.RevokedAt = timeOrNil(expires), fromMicros(created), timeOrNil(used), timeOrNil(revoked)
	return &t, nil
}

// APITokenByHash returns the token whose SHA-256 (hex) is hash, revoked
// or expired ones included (the caller tells them apart), or ErrNotFound.
// The hash is looked up by the index, so no token is compared byte by
// byte with what a client sent.
func (s *Store) APITokenByHash(ctx context.Context, hash string) (*APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx, s.q(`SELECT `+apiTokenColumns+` FROM api_tokens WHERE hash = ?`), hash))
	if err != nil {
		return nil, fmt.Errorf("store: api token by hash: %w", notFound(err))
	}
	return t, nil
}

// APITokens lists every token, newest first.
func (s *Store) APITokens(ctx context.Context) ([]*APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: list api tokens: %w", err)
	}
	defer rows.Close()
	var out []*APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list api tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list api tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken marks the token revoked at at. Revoking a revoked token
// keeps the first time. It returns ErrNotFound for an unknown id.
func (s *Store) RevokeAPIToken(ctx context.Context, id int64, at time.Time) error {
	err := affected(s.w.ExecContext(ctx, s.q(`UPDATE api_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`),
		micros(normTime(at)), id))
	if err != nil {
		return fmt.Errorf("store: revoke api token %d: %w", id, err)
	}
	return nil
}

// TouchAPIToken records that the token was used at at.
func (s *Store) TouchAPIToken(ctx context.Context, id int64, at time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`), micros(normTime(at)), id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: touch api token %d: %w", id, err)
	}
	return nil
}
