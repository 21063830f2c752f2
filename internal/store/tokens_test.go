package store

import (
	"slices"
	"testing"
	"time"
)

// TestAPITokens, on both backends: a token is stored with its hash and
// scopes, found by hash, listed, touched, revoked (the first revocation
// time kept); names and hashes are unique; unknown hashes and ids are
// ErrNotFound; Usable tells revoked and expired tokens.
func TestAPITokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		tok := &APIToken{Name: "ci", Hash: "aa11", Scopes: []string{"send", "read"}, ExpiresAt: &exp, CreatedBy: "admin@example.org"}
		wantErr(t, "create", s.CreateAPIToken(ctx, tok), nil)
		wantErr(t, "same name", s.CreateAPIToken(ctx, &APIToken{Name: "ci", Hash: "bb22", Scopes: []string{"read"}}), ErrExists)
		wantErr(t, "same hash", s.CreateAPIToken(ctx, &APIToken{Name: "other", Hash: "aa11", Scopes: []string{"read"}}), ErrExists)
		if err := s.CreateAPIToken(ctx, &APIToken{Name: "x", Hash: "cc33"}); err == nil {
			t.Fatal("create without scopes: no error")
		}
		got, err := s.APITokenByHash(ctx, "aa11")
		wantErr(t, "by hash", err, nil)
		if got.ID != tok.ID || got.Name != "ci" || !slices.Equal(got.Scopes, []string{"send", "read"}) ||
			got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.CreatedBy != "admin@example.org" ||
			got.LastUsedAt != nil || got.RevokedAt != nil || !got.CreatedAt.Equal(tok.CreatedAt) {
			t.Fatalf("by hash: got %+v, want %+v", got, tok)
		}
		_, err = s.APITokenByHash(ctx, "nope")
		wantErr(t, "unknown hash", err, ErrNotFound)

		used := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
		wantErr(t, "touch", s.TouchAPIToken(ctx, tok.ID, used), nil)
		r1 := used.Add(time.Hour)
		wantErr(t, "revoke", s.RevokeAPIToken(ctx, tok.ID, r1), nil)
		wantErr(t, "revoke again", s.RevokeAPIToken(ctx, tok.ID, r1.Add(time.Hour)), nil)
		wantErr(t, "revoke unknown", s.RevokeAPIToken(ctx, tok.ID+100, r1), ErrNotFound)
		list, err := s.APITokens(ctx)
		wantErr(t, "list", err, nil)
		if len(list) != 1 || list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(used) || list[0].RevokedAt == nil || !list[0].RevokedAt.Equal(r1) {
			t.Fatalf("list: got %+v", list)
		}
		tests := []struct {
			name string
			tok  APIToken
			now  time.Time
			want string
		}{
			{"usable", APIToken{ExpiresAt: &exp}, exp.Add(-time.Second), ""},
			{"no expiry", APIToken{}, exp, ""},
			{"expired at the instant", APIToken{ExpiresAt: &exp}, exp, "expired"},
			{"revoked", APIToken{RevokedAt: &r1}, r1, "revoked"},
		}
		for _, tc := range tests {
			if got := tc.tok.Usable(tc.now); got != tc.want {
				t.Errorf("%s: Usable = %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}
