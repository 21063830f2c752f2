package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrProfileInUse is returned by DeleteUnusedProfile when contact forms or
// waiting outbox items still deliver through the profile.
var ErrProfileInUse = errors.New("store: the server profile is in use")

// FormRef names a contact form.
type FormRef struct {
	ID   int64
	Name string
}

// ProfileUse is what still delivers through a server profile.
type ProfileUse struct {
	// Forms are the contact forms configured with the profile, by name.
	Forms []FormRef
	// Waiting counts the outbox items that will still be delivered
	// through the profile without an admin's action: queued, being sent,
	// or held for review. An item keeps the profile it was queued with
	// even when its form has been switched to another one since.
	Waiting int
}

// InUse reports whether anything still delivers through the profile.
func (u ProfileUse) InUse() bool { return len(u.Forms) > 0 || u.Waiting > 0 }

// waitingStatuses are the outbox statuses counted in ProfileUse.Waiting.
const waitingStatuses = `'` + string(OutboxQueued) + `', '` + string(OutboxSending) + `', '` + string(OutboxHeld) + `'`

// ProfileUse returns what delivers through the profile with that id. A
// profile that does not exist is used by nothing.
func (s *Store) ProfileUse(ctx context.Context, id int64) (ProfileUse, error) {
	u, err := profileUse(ctx, s, s.r, id)
	if err != nil {
		return ProfileUse{}, fmt.Errorf("store: use of profile %d: %w", id, err)
	}
	return u, nil
}

// queryer is what profileUse reads through: the pool or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func profileUse(ctx context.Context, s *Store, q queryer, id int64) (ProfileUse, error) {
	var u ProfileUse
	rows, err := q.QueryContext(ctx, s.q(`SELECT id, name FROM forms WHERE profile_id = ? ORDER BY name, id`), id)
	if err != nil {
		return u, err
	}
	defer rows.Close()
	for rows.Next() {
		var f FormRef
		if err := rows.Scan(&f.ID, &f.Name); err != nil {
			return u, err
		}
		f.Name = decText(f.Name)
		u.Forms = append(u.Forms, f)
	}
	if err := rows.Err(); err != nil {
		return u, err
	}
	err = q.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM outbox WHERE profile_id = ? AND status IN (`+waitingStatuses+`)`), id).
		Scan(&u.Waiting)
	return u, err
}

// DeleteUnusedProfile deletes the profile with that id unless something
// still delivers through it. When contact forms use it or outbox items
// wait to be delivered through it, nothing is deleted and it returns what
// uses it with an error matching ErrProfileInUse; a profile that does not
// exist gives ErrNotFound. The check and the delete are one transaction,
// serialised with every other write on SQLite. On PostgreSQL a form saved
// with the profile at the very moment it is deleted can slip through; its
// deliveries then fail with "the server profile no longer exists" and
// stay in the outbox with that error: nothing is lost.
func (s *Store) DeleteUnusedProfile(ctx context.Context, id int64) (ProfileUse, error) {
	var u ProfileUse
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var got int64
		if err := s.txQueryRow(ctx, tx, `SELECT id FROM profiles WHERE id = ?`, id).Scan(&got); err != nil {
			return notFound(err)
		}
		var err error
		if u, err = profileUse(ctx, s, tx, id); err != nil {
			return err
		}
		if u.InUse() {
			return ErrProfileInUse
		}
		return affected(s.txExec(ctx, tx, `DELETE FROM profiles WHERE id = ?`, id))
	})
	if err != nil {
		return u, fmt.Errorf("store: delete profile %d: %w", id, err)
	}
	return u, nil
}
