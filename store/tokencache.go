package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// fieldCachedAccess is the associated data of the access token's Redis
// copy. It differs from MySQL's column label, so a ciphertext copied from
// cc_tokens (the refresh token's included) does not open as the cache.
const fieldCachedAccess = "redis:" + keyAccessToken

// SetTokenKeys sets the keys that seal and open the cached access token,
// the same keys as the MySQL copy's. Without them the cache holds nothing:
// a token in plain text in Redis would sit in its memory, its replicas and
// its AOF or RDB files, readable by anyone who can read those.
func (c *Redis) SetTokenKeys(k *TokenKeys) { c.keys = k }

// AccessToken returns the cached access token, or "" when none is cached.
// A value that does not open under the configured keys (tampered with,
// sealed under a key since removed, a plain-text copy left by a version
// before sealing, or no keys configured) is a miss too: the caller then
// reads MySQL, which holds the truth, and caches it again over that value.
func (c *Redis) AccessToken(ctx context.Context) (string, error) {
	v, err := c.rdb.Get(ctx, keyAccessToken).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: cached token: %w", err)
	}
	if c.keys == nil {
		return "", nil
	}
	tok, err := c.keys.openTagged(fieldCachedAccess, v)
	if err != nil {
		return "", nil
	}
	return tok, nil
}

// SetAccessToken caches the access token, sealed, for ttl. Without keys it
// refuses with ErrTokenKey rather than write the token in plain text.
func (c *Redis) SetAccessToken(ctx context.Context, token string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	if c.keys == nil {
		return fmt.Errorf("%w: HS2CC_TOKEN_KEY is not set, so the access token is not cached in Redis", ErrTokenKey)
	}
	if err := c.rdb.Set(ctx, keyAccessToken, c.keys.sealTagged(fieldCachedAccess, token), ttl).Err(); err != nil {
		return fmt.Errorf("store: cache token: %w", err)
	}
	return nil
}

// DropAccessToken forgets the cached token, but only if it is still the one
// given, so that a slow caller cannot evict a token another process just
// refreshed. Each seal differs, so the value is opened to compare and then
// deleted only while it is still that same ciphertext.
func (c *Redis) DropAccessToken(ctx context.Context, token string) error {
	v, err := c.rdb.Get(ctx, keyAccessToken).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: drop cached token: %w", err)
	}
	if c.keys == nil {
		return nil
	}
	if cached, err := c.keys.openTagged(fieldCachedAccess, v); err != nil || cached != token {
		return nil
	}
	if err := compareAndDelete.Run(ctx, c.rdb, []string{keyAccessToken}, v).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: drop cached token: %w", err)
	}
	return nil
}
