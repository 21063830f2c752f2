package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// User is an admin account.
type User struct {
	ID           int64
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

// emailKey is the stored unique form of an email: addresses compare
// without regard to case, so Admin@Example.org and admin@example.org are
// one user. (Bytes that are not UTF-8 are compared exactly.)
func emailKey(email string) string {
	email = strings.TrimSpace(email)
	if utf8.ValidString(email) {
		email = strings.ToLower(email)
	}
	return encText(email)
}

// SettingSetupCode is the setting that holds the one-time code the first
// sign-up in the browser needs while no account exists. CreateUser
// deletes it: the code ends with the first account, however it was made
// (the sign-up page or "sockmail user add").
const SettingSetupCode = "signup.setup_code"

// CreateUser adds an admin. It returns ErrExists if a user with the same
// email (compared without regard to case) exists. It deletes the setup
// code (SettingSetupCode) in the same transaction.
func (s *Store) CreateUser(ctx context.Context, email, passwordHash string) (*User, error) {
	u := &User{Email: email, PasswordHash: passwordHash, CreatedAt: normTime(time.Time{})}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.txQueryRow(ctx, tx, `INSERT INTO users (email, email_key, password_hash, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (email_key) DO NOTHING RETURNING id`,
			encText(email), emailKey(email), encText(passwordHash), micros(u.CreatedAt)).Scan(&u.ID)
		if err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx, `DELETE FROM settings WHERE key = ?`, encText(SettingSetupCode))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrExists
	}
	if err != nil {
		return nil, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

const userColumns = `u.id, u.email, u.password_hash, u.created_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &created); err != nil {
		return nil, err
	}
	u.Email, u.PasswordHash, u.CreatedAt = decText(u.Email), decText(u.PasswordHash), fromMicros(created)
	return &u, nil
}

// UserByEmail returns the user with that email, compared without regard
// to case, or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.q(`SELECT `+userColumns+` FROM users u WHERE u.email_key = ?`), emailKey(email)))
	if err != nil {
		return nil, fmt.Errorf("store: user by email: %w", notFound(err))
	}
	return u, nil
}

// UserByID returns the user with that id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.q(`SELECT `+userColumns+` FROM users u WHERE u.id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: user by id: %w", notFound(err))
	}
	return u, nil
}

// Users returns every user, oldest first.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users u ORDER BY u.id`)
	if err != nil {
		return nil, fmt.Errorf("store: users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: users: %w", err)
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: users: %w", err)
	}
	return out, nil
}

// CountUsers returns how many users exist (zero before the first admin is
// created).
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count users: %w", err)
	}
	return n, nil
}

// SetPasswordHash replaces a user's password hash. It returns ErrNotFound
// if the user does not exist. It does not end the user's sessions: call
// DeleteUserSessions for that.
func (s *Store) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	err := affected(s.w.ExecContext(ctx, s.q(`UPDATE users SET password_hash = ? WHERE id = ?`), encText(hash), id))
	if err != nil {
		return fmt.Errorf("store: set password: %w", err)
	}
	return nil
}

// sessionKey is what is stored for a session id: its SHA-256, so that a
// copy of the database does not hold usable session ids.
func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// CreateSession records a server-side session for a user until expires.
// Only a hash of id is stored.
func (s *Store) CreateSession(ctx context.Context, id string, userID int64, expires time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`),
		sessionKey(id), userID, micros(time.Now()), micros(expires))
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// SessionUser returns the user of a session that has not expired at now,
// or ErrNotFound when the session is absent, expired or revoked.
func (s *Store) SessionUser(ctx context.Context, id string, now time.Time) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.q(`SELECT `+userColumns+`
		FROM sessions x JOIN users u ON u.id = x.user_id
		WHERE x.id_hash = ? AND x.expires_at > ?`), sessionKey(id), micros(now)))
	if err != nil {
		return nil, fmt.Errorf("store: session user: %w", notFound(err))
	}
	return u, nil
}

// DeleteSession ends a session. Ending a session that does not exist is
// not an error, so that signing out twice is harmless.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE id_hash = ?`), sessionKey(id)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user (after a password
// change, or "sign out everywhere").
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("store: delete user sessions: %w", err)
	}
	return nil
}

// PurgeExpiredSessions deletes the sessions that have expired at now.
func (s *Store) PurgeExpiredSessions(ctx context.Context, now time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE expires_at <= ?`), micros(now)); err != nil {
		return fmt.Errorf("store: purge sessions: %w", err)
	}
	return nil
}
