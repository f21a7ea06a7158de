// Package storetest gives tests a real, private MySQL database and a real,
// private Redis database. Tests never share state: each MySQL test gets a
// fresh database that is dropped afterwards, and each Redis user gets a
// numbered Redis database that it holds exclusively and flushes.
//
// Where the servers are missing a test is skipped on a laptop, but fails in
// CI (CI=true), so that a green CI run always means the tests really ran.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/store"
)

// Environment variables that point the tests at servers.
const (
	EnvMySQL = "HS2CC_TEST_MYSQL_DSN" // server DSN without a database, e.g. root@tcp(127.0.0.1:3306)/
	EnvRedis = "HS2CC_TEST_REDIS_URL" // e.g. redis://127.0.0.1:6379/0
)

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI but unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable (set %s/%s or run scripts/test): %v", what, EnvMySQL, EnvRedis, err)
}

func serverDSN() string {
	if v := os.Getenv(EnvMySQL); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// MySQLDSN creates an empty database for this test and returns its DSN. The
// database is dropped when the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(serverDSN())
	if err != nil {
		t.Fatalf("parse %s: %v", EnvMySQL, err)
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		unavailable(t, "MySQL", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "hs2cc_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// MySQL returns a store on a fresh, migrated database.
func MySQL(t testing.TB) *store.DB {
	t.Helper()
	dsn := MySQLDSN(t)
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db.SetTokenKeys(TokenKeys(t))
	return db
}

// TokenKeys returns a fresh random token key, as `hs2cc keygen` makes one.
func TokenKeys(t testing.TB) *store.TokenKeys {
	t.Helper()
	k, err := store.ParseTokenKeys(store.NewTokenKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// RedisURL reserves a Redis database (1–15) for this test alone, flushes it,
// and returns its URL. Go runs test binaries of different packages at once,
// and asynq cannot prefix its keys, so a private database number is the only
// way for two packages' tests not to see each other's queues.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvRedis)
	if base == "" {
		base = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvRedis, err)
	}
	ctx := context.Background()
	var b [8]byte
	_, _ = rand.Read(b[:])
	owner := hex.EncodeToString(b[:])
	deadline := time.Now().Add(60 * time.Second)
	for {
		for n := 1; n <= 15; n++ {
			o := *opt
			o.DB = n
			rdb := redis.NewClient(&o)
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := rdb.Ping(pctx).Err()
			cancel()
			if err != nil {
				rdb.Close()
				unavailable(t, "Redis", err)
			}
			// The claim lives in database 0 so that flushing database n
			// cannot drop it.
			o0 := *opt
			o0.DB = 0
			claims := redis.NewClient(&o0)
			key := fmt.Sprintf("hs2cc:test:db:%d", n)
			ok, err := claims.SetNX(ctx, key, owner, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("claim redis db: %v", err)
			}
			if !ok {
				claims.Close()
				rdb.Close()
				continue
			}
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flush redis db %d: %v", n, err)
			}
			t.Cleanup(func() {
				_ = rdb.FlushDB(context.Background()).Err()
				rdb.Close()
				if v, _ := claims.Get(context.Background(), key).Result(); v == owner {
					claims.Del(context.Background(), key)
				}
				claims.Close()
			})
			return fmt.Sprintf("redis://%s/%d", o.Addr, n)
		}
		if time.Now().After(deadline) {
			t.Fatal("no free Redis database (1-15) for this test")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Redis returns a client on a private, flushed Redis database.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
