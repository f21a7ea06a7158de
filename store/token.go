package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Token states. A token CC refused (invalid_grant) stays stored, marked
// needs_reconnect, until a person connects CC again.
const (
	TokenConnected      = "connected"
	TokenNeedsReconnect = "needs_reconnect"
)

// Token is the CC OAuth token pair as kept durably. Version increases with
// every save so that writers can compare-and-swap.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Version      int64
	UpdatedAt    time.Time
	Status       string
	StatusReason string
}

// TokenState is what can be said about the stored token without opening it:
// readiness checks, metrics and `hs2cc status` use it, and it needs no key.
type TokenState struct {
	Status       string // TokenConnected or TokenNeedsReconnect
	StatusReason string
	StatusAt     time.Time
	ExpiresAt    time.Time
	Version      int64
	KeyID        string // the key that sealed the pair; "" for plain text
	ConnectedAt  time.Time
	RefreshedAt  time.Time
	RefreshUntil time.Time // a refresh is under way until then
}

// tokenRow is the single row that holds the bridge's one CC connection.
const tokenRow = 1

// Column names double as the associated data that binds each ciphertext to
// its column.
const (
	fieldAccess  = "cc_tokens.access_token"
	fieldRefresh = "cc_tokens.refresh_token"
)

// SetTokenKeys sets the keys that seal and open the token pair. Without
// them LoadToken and SaveToken refuse with ErrTokenKey.
func (s *DB) SetTokenKeys(k *TokenKeys) { s.keys = k }

// LoadToken returns the stored token pair, or ErrNotFound before the first
// connection. A pair stored in plain text by an older version is sealed
// here, on its first read.
func (s *DB) LoadToken(ctx context.Context) (*Token, error) {
	if s.keys == nil {
		return nil, fmt.Errorf("%w: HS2CC_TOKEN_KEY is not set", ErrTokenKey)
	}
	var t Token
	var keyID string
	err := s.db.QueryRowContext(ctx,
		`SELECT access_token, refresh_token, expires_at, version, updated_at, key_id, status, status_reason
		 FROM cc_tokens WHERE id = ?`, tokenRow).
		Scan(&t.AccessToken, &t.RefreshToken, &t.ExpiresAt, &t.Version, &t.UpdatedAt, &keyID, &t.Status, &t.StatusReason)
	if err != nil {
		err = translate(err)
		if err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: load token: %w", err)
	}
	if keyID == "" && !strings.HasPrefix(t.AccessToken, sealedPrefix) {
		if err := s.sealPlain(ctx, &t); err != nil {
			return nil, err
		}
		return &t, nil
	}
	if t.AccessToken, err = s.keys.open(keyID, fieldAccess, t.AccessToken); err != nil {
		return nil, err
	}
	if t.RefreshToken, err = s.keys.open(keyID, fieldRefresh, t.RefreshToken); err != nil {
		return nil, err
	}
	return &t, nil
}

// sealPlain rewrites a plain-text pair sealed. The version stays: the pair
// is the same, and a concurrent refresh that bumps it wins.
func (s *DB) sealPlain(ctx context.Context, t *Token) error {
	_, err := s.db.ExecContext(ctx,
		`UPDATE cc_tokens SET access_token = ?, refresh_token = ?, key_id = ? WHERE id = ? AND version = ? AND key_id = ''`,
		s.keys.seal(fieldAccess, t.AccessToken), s.keys.seal(fieldRefresh, t.RefreshToken), s.keys.ID(), tokenRow, t.Version)
	if err != nil {
		return fmt.Errorf("store: seal plain-text token: %w", err)
	}
	return nil
}

// TokenState returns the stored token's state, or ErrNotFound before the
// first connection.
func (s *DB) TokenState(ctx context.Context) (*TokenState, error) {
	var st TokenState
	var statusAt, connectedAt, refreshedAt, refreshUntil sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT status, status_reason, status_at, expires_at, version, key_id, connected_at, refreshed_at, refresh_until
		 FROM cc_tokens WHERE id = ?`, tokenRow).
		Scan(&st.Status, &st.StatusReason, &statusAt, &st.ExpiresAt, &st.Version, &st.KeyID, &connectedAt, &refreshedAt, &refreshUntil)
	if err != nil {
		err = translate(err)
		if err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: token state: %w", err)
	}
	st.StatusAt, st.ConnectedAt, st.RefreshedAt, st.RefreshUntil = statusAt.Time, connectedAt.Time, refreshedAt.Time, refreshUntil.Time
	return &st, nil
}

// SaveToken stores a token pair, sealed, and marks it connected. With
// prevVersion 0 it replaces whatever is stored (a fresh connection, which
// also clears a needs_reconnect mark); otherwise it only writes over that
// version and returns ErrConflict when another writer got there first, so
// that a refresh never overwrites a newer rotating refresh token. Either way
// it ends any refresh claim. It returns the new version.
func (s *DB) SaveToken(ctx context.Context, t Token, prevVersion int64) (int64, error) {
	if s.keys == nil {
		return 0, fmt.Errorf("%w: HS2CC_TOKEN_KEY is not set", ErrTokenKey)
	}
	now := s.utcNow()
	access, refresh := s.keys.seal(fieldAccess, t.AccessToken), s.keys.seal(fieldRefresh, t.RefreshToken)
	if prevVersion == 0 {
		var cur int64
		err := s.db.QueryRowContext(ctx, `SELECT version FROM cc_tokens WHERE id = ?`, tokenRow).Scan(&cur)
		if err != nil && err != sql.ErrNoRows {
			return 0, fmt.Errorf("store: save token: %w", err)
		}
		_, err = s.db.ExecContext(ctx,
			`INSERT INTO cc_tokens (id, access_token, refresh_token, expires_at, version, updated_at, key_id,
			   status, status_reason, status_at, refresh_owner, refresh_until, connected_at, refreshed_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, '', NULL, ?, NULL)
			 ON DUPLICATE KEY UPDATE access_token = VALUES(access_token), refresh_token = VALUES(refresh_token),
			   expires_at = VALUES(expires_at), version = VALUES(version), updated_at = VALUES(updated_at),
			   key_id = VALUES(key_id), status = VALUES(status), status_reason = '', status_at = VALUES(status_at),
			   refresh_owner = '', refresh_until = NULL, connected_at = VALUES(connected_at), refreshed_at = NULL`,
			tokenRow, access, refresh, t.ExpiresAt.UTC(), cur+1, now, s.keys.ID(), TokenConnected, now, now)
		if err != nil {
			return 0, fmt.Errorf("store: save token: %w", err)
		}
		return cur + 1, nil
	}
	r, err := s.db.ExecContext(ctx,
		// status_at is assigned before status on purpose: MySQL applies
		// SET left to right, so the IF still sees the old status.
		`UPDATE cc_tokens SET access_token = ?, refresh_token = ?, expires_at = ?, version = ?, updated_at = ?,
		   key_id = ?, status_at = IF(status = ?, status_at, ?), status = ?, status_reason = '',
		   refresh_owner = '', refresh_until = NULL, refreshed_at = ?
		 WHERE id = ? AND version = ?`,
		access, refresh, t.ExpiresAt.UTC(), prevVersion+1, now, s.keys.ID(), TokenConnected, now, TokenConnected, now,
		tokenRow, prevVersion)
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

// ClaimRefresh fences one refresh of the stored pair in MySQL: it succeeds
// for one caller while the pair is still at version, still connected, and
// no other claim is live (not even the same owner's: callers use a fresh
// owner per attempt). The Redis lock already serialises refreshers; this fence holds even
// when Redis loses that lock (a flush, a failover), because spending a
// rotating refresh token twice would disconnect the bridge.
func (s *DB) ClaimRefresh(ctx context.Context, version int64, owner string, ttl time.Duration) (bool, error) {
	now := s.utcNow()
	r, err := s.db.ExecContext(ctx,
		`UPDATE cc_tokens SET refresh_owner = ?, refresh_until = ?
		 WHERE id = ? AND version = ? AND status = ? AND (refresh_until IS NULL OR refresh_until < ?)`,
		owner, now.Add(ttl), tokenRow, version, TokenConnected, now)
	if err != nil {
		return false, fmt.Errorf("store: claim refresh: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim refresh: %w", err)
	}
	return n == 1, nil
}

// ReleaseRefresh ends owner's refresh claim, if it still holds it; a save
// ends it too.
func (s *DB) ReleaseRefresh(ctx context.Context, owner string) error {
	if _, err := s.db.ExecContext(ctx,
		`UPDATE cc_tokens SET refresh_owner = '', refresh_until = NULL WHERE id = ? AND refresh_owner = ?`,
		tokenRow, owner); err != nil {
		return fmt.Errorf("store: release refresh: %w", err)
	}
	return nil
}

// MarkNeedsReconnect records that CC refused the refresh token of version:
// every process stops refreshing it and readiness reports it until a person
// connects again. A newer version (a reconnect that raced) is left alone.
func (s *DB) MarkNeedsReconnect(ctx context.Context, version int64, reason string) error {
	// truncate cuts on a rune boundary: a cut inside a multi-byte character
	// is invalid UTF-8, which MySQL in strict mode refuses outright.
	reason = truncate(reason, 255)
	if _, err := s.db.ExecContext(ctx,
		`UPDATE cc_tokens SET status = ?, status_reason = ?, status_at = ?, refresh_owner = '', refresh_until = NULL
		 WHERE id = ? AND version = ?`,
		TokenNeedsReconnect, reason, s.utcNow(), tokenRow, version); err != nil {
		return fmt.Errorf("store: mark needs reconnect: %w", err)
	}
	return nil
}
