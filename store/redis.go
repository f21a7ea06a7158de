package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys owned by the store. They share one prefix so that ops can find
// them and so that they never collide with asynq's own "asynq:" keys.
const (
	keyAccessToken = "hs2cc:cc:access_token"
	keyLockPrefix  = "hs2cc:lock:"
)

// Redis is the Redis side of the store: the access-token cache, the
// cross-process locks and leases, the OAuth states of connections under
// way, and the epoch marker. Losing its data loses nothing, since MySQL
// holds the truth.
type Redis struct {
	rdb  redis.UniversalClient
	keys *TokenKeys // seal and open the cached access token; nil refuses to cache it
}

// NewRedis wraps a Redis client.
func NewRedis(rdb redis.UniversalClient) *Redis { return &Redis{rdb: rdb} }

// ParseRedisURL turns redis://host:port/db into client options.
func ParseRedisURL(u string) (*redis.Options, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("store: parse redis url: %w", err)
	}
	return opt, nil
}

// Ping reports whether Redis answers.
func (c *Redis) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: redis ping: %w", err)
	}
	return nil
}

// compareAndDelete deletes a key only while it holds the expected value; it
// backs both lock release and token eviction.
var compareAndDelete = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Lock takes a named cross-process lock for at most ttl. It returns a release
// func and true when this caller holds the lock. The owner token makes sure a
// caller whose lock expired cannot release someone else's.
func (c *Redis) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
	}
	owner := hex.EncodeToString(b[:])
	key := keyLockPrefix + name
	ok, err := c.rdb.SetNX(ctx, key, owner, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
	}
	if !ok {
		return func() {}, false, nil
	}
	release := func() {
		// A fresh context: the release must happen even when the caller's
		// context was cancelled, or the lock would block others until ttl.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = compareAndDelete.Run(rctx, c.rdb, []string{key}, owner).Err()
	}
	return release, true, nil
}

// keyEpoch marks a Redis that has been seen by the bridge. It has no
// expiry, so it is gone only when Redis lost its data: a FLUSHDB, a restart
// without persistence, a failover to an empty replica.
const keyEpoch = "hs2cc:epoch"

// MarkEpoch sets the marker when it is absent, and returns when the marker
// was set and whether this call set it: true means Redis is new or has
// lost its data since, and this caller, the only one to see true for that
// loss, should queue again what MySQL knows to be waiting. A marker that
// vanishes between the two commands is set again at the next call.
func (c *Redis) MarkEpoch(ctx context.Context) (time.Time, bool, error) {
	now := time.Now().UTC()
	ok, err := c.rdb.SetNX(ctx, keyEpoch, now.Format(time.RFC3339Nano), 0).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: mark redis epoch: %w", err)
	}
	if ok {
		return now, true, nil
	}
	v, err := c.rdb.Get(ctx, keyEpoch).Result()
	if errors.Is(err, redis.Nil) {
		return now, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: read redis epoch: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: redis epoch %q: %w", v, err)
	}
	return t, false, nil
}

// Lease is a named cross-process lock held for a while and renewed by its
// holder: the scheduler's leadership uses it.
type Lease struct {
	rdb   redis.UniversalClient
	key   string
	owner string
	ttl   time.Duration
}

// renewIfOwner extends a key's expiry only while it holds the owner token.
var renewIfOwner = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// Acquire takes the lease name for ttl; it returns nil, nil when another
// owner holds it.
func (c *Redis) Acquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("store: lease %s: %w", name, err)
	}
	l := &Lease{rdb: c.rdb, key: keyLockPrefix + name, owner: hex.EncodeToString(b[:]), ttl: ttl}
	ok, err := c.rdb.SetNX(ctx, l.key, l.owner, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("store: lease %s: %w", name, err)
	}
	if !ok {
		return nil, nil
	}
	return l, nil
}

// Renew extends the lease by its ttl; false means it was lost (expired and
// taken, or deleted) and the holder must stop acting on it.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	n, err := renewIfOwner.Run(ctx, l.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store: renew lease: %w", err)
	}
	return n == 1, nil
}

// Release gives the lease up if it is still held.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = compareAndDelete.Run(ctx, l.rdb, []string{l.key}, l.owner).Err()
}
