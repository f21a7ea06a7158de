package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Token is the CC OAuth token pair as kept durably. Version increases with
// every save so that writers can compare-and-swap.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Version      int64
	UpdatedAt    time.Time
}

// tokenRow is the single row that holds the bridge's one CC connection.
const tokenRow = 1

// LoadToken returns the stored token pair, or ErrNotFound before the first
// connection.
func (s *DB) LoadToken(ctx context.Context) (*Token, error) {
	var t Token
	err := s.db.QueryRowContext(ctx,
		`SELECT access_token, refresh_token, expires_at, version, updated_at FROM cc_tokens WHERE id = ?`, tokenRow).
		Scan(&t.AccessToken, &t.RefreshToken, &t.ExpiresAt, &t.Version, &t.UpdatedAt)
	if err != nil {
		err = translate(err)
		if err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: load token: %w", err)
	}
	return &t, nil
}

// SaveToken stores a token pair. With prevVersion 0 it replaces whatever is
// stored (a fresh connection); otherwise it only writes over that version and
// returns ErrConflict when another writer got there first, so that a refresh
// never overwrites a newer rotating refresh token. It returns the new
// version.
func (s *DB) SaveToken(ctx context.Context, t Token, prevVersion int64) (int64, error) {
	now := s.utcNow()
	if prevVersion == 0 {
		var cur int64
		err := s.db.QueryRowContext(ctx, `SELECT version FROM cc_tokens WHERE id = ?`, tokenRow).Scan(&cur)
		if err != nil && err != sql.ErrNoRows {
			return 0, fmt.Errorf("store: save token: %w", err)
		}
		_, err = s.db.ExecContext(ctx,
			`INSERT INTO cc_tokens (id, access_token, refresh_token, expires_at, version, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			 ON DUPLICATE KEY UPDATE access_token = VALUES(access_token), refresh_token = VALUES(refresh_token),
			   expires_at = VALUES(expires_at), version = VALUES(version), updated_at = VALUES(updated_at)`,
			tokenRow, t.AccessToken, t.RefreshToken, t.ExpiresAt.UTC(), cur+1, now)
		if err != nil {
			return 0, fmt.Errorf("store: save token: %w", err)
		}
		return cur + 1, nil
	}
	r, err := s.db.ExecContext(ctx,
		`UPDATE cc_tokens SET access_token = ?, refresh_token = ?, expires_at = ?, version = ?, updated_at = ?
		 WHERE id = ? AND version = ?`,
		t.AccessToken, t.RefreshToken, t.ExpiresAt.UTC(), prevVersion+1, now, tokenRow, prevVersion)
	if err != nil {
		return 0, fmt.Errorf("store: save token: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return 0, fmt.Errorf("store: save token: %w", err)
	} else if n == 0 {
		return 0, ErrConflict
	}
	return prevVersion + 1, nil
}
