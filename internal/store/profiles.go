package store

import (
	"context"
	"fmt"
	"time"
)

// Profile is a saved SMTP server: where to connect and how to sign in.
type Profile struct {
	ID                 int64
	Name               string // unique
	Host               string
	Port               int
	TLSMode            string
	InsecureSkipVerify bool
	AuthMech           string
	Username           string
	// PasswordEnc is the password sealed with crypt.Box; the store never
	// sees it in clear.
	PasswordEnc []byte
	HeloName    string
	// AllowInsecureAuth lets AUTH run over a connection without TLS:
	// the password then crosses the network in clear (test servers only).
	AllowInsecureAuth bool
	// MaxConnections is how many connections the contact-form outbox
	// keeps open to this server at most; 0 takes the instance's default.
	MaxConnections int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SaveProfile inserts p when p.ID is 0, setting p.ID and p.CreatedAt, and
// otherwise updates the profile with that id (ErrNotFound if there is
// none). Either way it sets p.UpdatedAt. A name already used by another
// profile gives ErrExists.
func (s *Store) SaveProfile(ctx context.Context, p *Profile) error {
	now := normTime(time.Time{})
	var err error
	if p.ID == 0 {
		created := now
		var id int64
		err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO profiles (name, host, port, tls_mode, insecure_skip_verify,
			auth_mech, username, password_enc, helo_name, allow_insecure_auth, max_connections, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			encText(p.Name), encText(p.Host), p.Port, encText(p.TLSMode), p.InsecureSkipVerify, encText(p.AuthMech),
			encText(p.Username), nullBytes(p.PasswordEnc), encText(p.HeloName), p.AllowInsecureAuth, p.MaxConnections, micros(created), micros(now)).Scan(&id)
		if err == nil {
			p.ID, p.CreatedAt, p.UpdatedAt = id, created, now
			return nil
		}
	} else {
		var created int64
		err = s.w.QueryRowContext(ctx, s.q(`UPDATE profiles SET name = ?, host = ?, port = ?, tls_mode = ?,
			insecure_skip_verify = ?, auth_mech = ?, username = ?, password_enc = ?, helo_name = ?,
			allow_insecure_auth = ?, max_connections = ?, updated_at = ? WHERE id = ? RETURNING created_at`),
			encText(p.Name), encText(p.Host), p.Port, encText(p.TLSMode), p.InsecureSkipVerify, encText(p.AuthMech),
			encText(p.Username), nullBytes(p.PasswordEnc), encText(p.HeloName), p.AllowInsecureAuth, p.MaxConnections, micros(now), p.ID).Scan(&created)
		if err == nil {
			p.CreatedAt, p.UpdatedAt = fromMicros(created), now
			return nil
		}
		err = notFound(err)
	}
	if isUniqueViolation(err) {
		err = ErrExists
	}
	return fmt.Errorf("store: save profile %q: %w", p.Name, err)
}

const profileColumns = `id, name, host, port, tls_mode, insecure_skip_verify, auth_mech, username,
	password_enc, helo_name, allow_insecure_auth, max_connections, created_at, updated_at`

func scanProfile(row interface{ Scan(...any) error }) (*Profile, error) {
	var p Profile
	var created, updated int64
	if err := row.Scan(&p.ID, &p.Name, &p.Host, &p.Port, &p.TLSMode, &p.InsecureSkipVerify, &p.AuthMech,
		&p.Username, &p.PasswordEnc, &p.HeloName, &p.AllowInsecureAuth, &p.MaxConnections, &created, &updated); err != nil {
		return nil, err
	}
	for _, f := range []*string{&p.Name, &p.Host, &p.TLSMode, &p.AuthMech, &p.Username, &p.HeloName} {
		*f = decText(*f)
	}
	p.PasswordEnc = bytesOrNil(p.PasswordEnc)
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &p, nil
}

// Profile returns the profile with that id, or ErrNotFound.
func (s *Store) Profile(ctx context.Context, id int64) (*Profile, error) {
	p, err := scanProfile(s.r.QueryRowContext(ctx, s.q(`SELECT `+profileColumns+` FROM profiles WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("store: profile %d: %w", id, notFound(err))
	}
	return p, nil
}

// ProfileByName returns the profile with that name, or ErrNotFound.
func (s *Store) ProfileByName(ctx context.Context, name string) (*Profile, error) {
	p, err := scanProfile(s.r.QueryRowContext(ctx, s.q(`SELECT `+profileColumns+` FROM profiles WHERE name = ?`), encText(name)))
	if err != nil {
		return nil, fmt.Errorf("store: profile %q: %w", name, notFound(err))
	}
	return p, nil
}

// Profiles returns every profile ordered by name.
func (s *Store) Profiles(ctx context.Context) ([]Profile, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+profileColumns+` FROM profiles ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("store: profiles: %w", err)
	}
	defer rows.Close()
	var out []Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("store: profiles: %w", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: profiles: %w", err)
	}
	return out, nil
}

// DeleteProfile deletes the profile with that id, or returns ErrNotFound.
func (s *Store) DeleteProfile(ctx context.Context, id int64) error {
	if err := affected(s.w.ExecContext(ctx, s.q(`DELETE FROM profiles WHERE id = ?`), id)); err != nil {
		return fmt.Errorf("store: delete profile %d: %w", id, err)
	}
	return nil
}
