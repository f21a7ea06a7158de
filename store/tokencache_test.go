package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// cacheKey is where the access token's copy lives in Redis, the key an
// attacker with a Redis dump or the AOF file reads.
const cacheKey = "hs2cc:cc:access_token"

// A JWT-shaped bearer token, long enough that finding it in random base64
// by chance is impossible.
const bearer = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudHMifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"

// TestCachedTokenIsSealed: the Redis copy of the access token is sealed
// under HS2CC_TOKEN_KEY, so that neither Redis's memory nor its files give
// the bearer token, and it still reads back for the processes that hold
// the key, a key rotation included.
func TestCachedTokenIsSealed(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	oldKey, newKey := store.NewTokenKey(), store.NewTokenKey()
	c := store.NewRedis(rdb)
	c.SetTokenKeys(mustKeys(t, oldKey))
	if err := c.SetAccessToken(ctx, bearer, time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.Get(ctx, cacheKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{bearer, base64.StdEncoding.EncodeToString([]byte(bearer)), base64.RawStdEncoding.EncodeToString([]byte(bearer))}
	for _, part := range append(forms, strings.Split(bearer, ".")...) {
		if strings.Contains(raw, part) {
			t.Errorf("Redis value %q holds %q of the bearer token", raw, part)
		}
	}
	if pttl := rdb.PTTL(ctx, cacheKey).Val(); pttl <= 50*time.Second || pttl > time.Minute {
		t.Errorf("cached for %s, want the ttl given (1m)", pttl)
	}

	readers := []struct {
		name, keys string
		want       string
	}{
		{"the sealing key", oldKey, bearer},
		{"during a rotation (new,old)", newKey + "," + oldKey, bearer},
		{"after the old key was removed", newKey, ""},
	}
	for _, r := range readers {
		rc := store.NewRedis(rdb)
		rc.SetTokenKeys(mustKeys(t, r.keys))
		if got, err := rc.AccessToken(ctx); err != nil || got != r.want {
			t.Errorf("%s: AccessToken = %q, %v; want %q", r.name, got, err, r.want)
		}
	}
}

// TestCachedTokenMiss: a Redis value that does not open is a cache miss,
// never a token handed to CC and never an error that stops the caller, who
// then reads MySQL. That covers a value changed in Redis, a ciphertext
// copied from MySQL's cc_tokens (sealed under the same key, for another
// place), a plain-text token left by a version before sealing, and a
// process without keys, which also refuses to write the token in plain
// text.
func TestCachedTokenMiss(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	db, keys := keyedDB(t)
	if _, err := db.SaveToken(ctx, store.Token{AccessToken: bearer, RefreshToken: "refresh-" + bearer, ExpiresAt: time.Now().Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	row := readRawToken(t, db)
	c := store.NewRedis(rdb)
	c.SetTokenKeys(keys)
	if err := c.SetAccessToken(ctx, bearer, time.Minute); err != nil {
		t.Fatal(err)
	}
	good := rdb.Get(ctx, cacheKey).Val()
	id, sealed, _ := strings.Cut(good, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 0x01
		return string(b)
	}

	cases := []struct {
		name  string
		value string
	}{
		{"a bit flipped in the ciphertext", id + "." + flip(sealed, len(sealed)-5)},
		{"a bit flipped in the nonce", id + "." + flip(sealed, len("hs2cc-aesgcm-v1:")+2)},
		{"cut short", good[:len(good)-10]},
		{"another key id", strings.Repeat("0", len(id)) + "." + sealed},
		{"no key id", sealed},
		{"MySQL's access_token ciphertext", row.KeyID + "." + row.Access},
		{"MySQL's refresh_token ciphertext", row.KeyID + "." + row.Refresh},
		{"plain text from before sealing", bearer},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.Set(ctx, cacheKey, tc.value, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := c.AccessToken(ctx); err != nil || got != "" {
				t.Errorf("AccessToken = %q, %v; want a miss", got, err)
			}
			// A miss is refilled over the bad value, sealed.
			if err := c.SetAccessToken(ctx, bearer, time.Minute); err != nil {
				t.Fatal(err)
			}
			if got, err := c.AccessToken(ctx); err != nil || got != bearer {
				t.Errorf("after refilling: AccessToken = %q, %v; want the token", got, err)
			}
		})
	}

	t.Run("no keys", func(t *testing.T) {
		if err := rdb.Set(ctx, cacheKey, good, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		bare := store.NewRedis(rdb)
		if got, err := bare.AccessToken(ctx); err != nil || got != "" {
			t.Errorf("AccessToken without keys = %q, %v; want a miss", got, err)
		}
		if err := rdb.Del(ctx, cacheKey).Err(); err != nil {
			t.Fatal(err)
		}
		if err := bare.SetAccessToken(ctx, bearer, time.Minute); !errors.Is(err, store.ErrTokenKey) {
			t.Errorf("SetAccessToken without keys: %v, want ErrTokenKey", err)
		}
		if _, err := rdb.Get(ctx, cacheKey).Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("a process without keys wrote the cache: %v", err)
		}
	})
}

// TestDropCachedToken: eviction compares tokens, not ciphertexts, and
// leaves a token another process cached since.
func TestDropCachedToken(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	keys := storetest.TokenKeys(t)
	a, b := store.NewRedis(rdb), store.NewRedis(rdb)
	a.SetTokenKeys(keys)
	b.SetTokenKeys(keys)
	steps := []struct {
		name        string
		cache, drop string // token cached by b first ("" none), token a drops
		want        string // cached after the drop
	}{
		{"another token stays", "tok-current-123456", "tok-dead-123456", "tok-current-123456"},
		{"the same token goes", "tok-dead-123456", "tok-dead-123456", ""},
		{"nothing cached", "", "tok-dead-123456", ""},
	}
	for _, st := range steps {
		rdb.Del(ctx, cacheKey)
		if st.cache != "" {
			if err := b.SetAccessToken(ctx, st.cache, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.DropAccessToken(ctx, st.drop); err != nil {
			t.Fatalf("%s: DropAccessToken: %v", st.name, err)
		}
		if got, err := a.AccessToken(ctx); err != nil || got != st.want {
			t.Errorf("%s: cached %q, %v; want %q", st.name, got, err, st.want)
		}
	}
}
