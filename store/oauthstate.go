package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyOAuthStatePrefix holds a pending OAuth authorization: the state value
// names it, and it is a hash of the PKCE verifier and the binding of the
// browser that started it.
const keyOAuthStatePrefix = "hs2cc:oauth:state:"

// ErrOAuthBinding means an OAuth state exists but was started by another
// browser: the binding presented is not the one saved with it. The state
// is left in place for the browser that did start it.
var ErrOAuthBinding = errors.New("store: the OAuth state was started by another browser")

// SaveOAuthState remembers a PKCE verifier under its state for ttl, bound
// to binding (a digest of a secret only the starting browser holds).
func (c *Redis) SaveOAuthState(ctx context.Context, state, binding, verifier string, ttl time.Duration) error {
	if binding == "" {
		return errors.New("store: save oauth state: empty binding")
	}
	key := keyOAuthStatePrefix + state
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "binding", binding, "verifier", verifier)
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save oauth state: %w", err)
	}
	return nil
}

// takeBoundState returns the verifier and deletes the state only when the
// binding matches; a mismatch returns 0 and leaves the state. The string
// comparison is not constant-time, which is harmless here: the binding is a
// digest, and learning a prefix of a digest reveals nothing of the secret
// behind it.
var takeBoundState = redis.NewScript(`
local b = redis.call("HGET", KEYS[1], "binding")
if not b then return false end
if b ~= ARGV[1] then return 0 end
local v = redis.call("HGET", KEYS[1], "verifier")
redis.call("DEL", KEYS[1])
return v`)

// TakeOAuthState returns the verifier saved under state and forgets it in
// the same step, so that a state works once. It returns ErrNotFound for an
// unknown, used or expired state, and ErrOAuthBinding, without spending the
// state, when binding is not the one it was saved with.
func (c *Redis) TakeOAuthState(ctx context.Context, state, binding string) (string, error) {
	res, err := takeBoundState.Run(ctx, c.rdb, []string{keyOAuthStatePrefix + state}, binding).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: take oauth state: %w", err)
	}
	v, ok := res.(string)
	if !ok {
		return "", ErrOAuthBinding
	}
	return v, nil
}
