package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Setting returns the value stored under key, or ErrNotFound.
func (s *Store) Setting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT value FROM settings WHERE key = ?`), encText(key)).Scan(&v); err != nil {
		return nil, fmt.Errorf("store: setting %q: %w", key, notFound(err))
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SetSettingIfAbsent stores value under key unless a value is already
// there, and returns the value that is stored. Instances starting at the
// same time each generate a session key and call this: all of them get
// the one that won.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	if value == nil {
		value = []byte{}
	}
	var stored []byte
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, encText(key), value); err != nil {
			return err
		}
		// On PostgreSQL a concurrent insert of the same key made ours wait
		// until it committed; this statement's fresh snapshot sees it.
		return s.txQueryRow(ctx, tx, `SELECT value FROM settings WHERE key = ?`, encText(key)).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("store: set setting %q if absent: %w", key, err)
	}
	if stored == nil {
		stored = []byte{}
	}
	return stored, nil
}

// SetSetting stores value under key, replacing any value there.
func (s *Store) SetSetting(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`), encText(key), value)
	if err != nil {
		return fmt.Errorf("store: set setting %q: %w", key, err)
	}
	return nil
}
