package devstack

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// startMySQL starts an embedded server for one test and returns its DSN and
// a pool on it. Both are torn down by t.Cleanup.
func startMySQL(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn, stop, err := MySQL(context.Background(), "127.0.0.1:0", "hs2cc")
	if err != nil {
		t.Fatalf("MySQL: %v", err)
	}
	t.Cleanup(stop)
	db := openDB(t, dsn)
	return dsn, db
}

// openDB opens a pool on dsn and closes it before the server stops
// (cleanups run last-registered first).
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// startRedis starts miniredis for one test and returns its URL and a
// go-redis client on it.
func startRedis(t *testing.T) (string, *redis.Client) {
	t.Helper()
	u, stop, err := Redis("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Redis: %v", err)
	}
	t.Cleanup(stop)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redis.ParseURL(%q): %v", u, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return u, rdb
}

// mysqlErrNo returns the MySQL error number carried by err, or 0.
func mysqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// mustExec runs a statement that the test relies on as setup.
func mustExec(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) sql.Result {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
	return res
}

// waitFor polls cond until it holds or the deadline passes. It is how these
// tests wait for background work (queue servers, schedulers, TTLs) without
// asserting on timing.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMySQLDSN(t *testing.T) {
	dsn, _ := startMySQL(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("ParseDSN(%q): %v", dsn, err)
	}
	if cfg.User != "root" || cfg.Passwd != "" || cfg.DBName != "hs2cc" || cfg.Net != "tcp" {
		t.Errorf("DSN %q: user=%q passwd=%q db=%q net=%q", dsn, cfg.User, cfg.Passwd, cfg.DBName, cfg.Net)
	}
	if !cfg.ParseTime || !cfg.MultiStatements || cfg.Loc != time.UTC {
		t.Errorf("DSN %q: parseTime=%v multiStatements=%v loc=%v", dsn, cfg.ParseTime, cfg.MultiStatements, cfg.Loc)
	}
	// The driver keeps charset in an unexported field, so look at the text.
	if !strings.Contains(dsn, "charset=utf8mb4") || cfg.Params["time_zone"] != "'+00:00'" {
		t.Errorf("DSN %q: want charset=utf8mb4 and time_zone='+00:00'", dsn)
	}
}

func TestMySQLBadArguments(t *testing.T) {
	for _, tc := range []struct{ name, addr, db string }{
		{"empty db name", "127.0.0.1:0", ""},
		{"db name with slash", "127.0.0.1:0", "a/b"},
		{"unparseable addr", "not an address", "hs2cc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stop, err := MySQL(context.Background(), tc.addr, tc.db)
			if err == nil {
				stop()
				t.Fatal("MySQL succeeded, want error")
			}
		})
	}
}

func TestMySQLPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stop, err := MySQL(context.Background(), ln.Addr().String(), "hs2cc")
	if err == nil {
		stop()
		t.Fatal("MySQL on a taken port succeeded, want error")
	}
	if !strings.Contains(err.Error(), "listen on") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// TestMySQLStop checks that stop closes open client connections as well as
// the listener, and that calling it again (or concurrently with a
// cancelled context) is harmless.
func TestMySQLStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn, stop, err := MySQL(ctx, "127.0.0.1:0", "hs2cc")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatalf("Conn: %v", err)
	}
	defer conn.Close()
	if err := conn.PingContext(context.Background()); err != nil {
		t.Fatalf("ping before stop: %v", err)
	}

	stop()
	cancel()
	stop()

	if err := conn.PingContext(context.Background()); err == nil {
		t.Error("ping on a connection opened before stop succeeded; stop left it open")
	}
	if err := db.PingContext(context.Background()); err == nil {
		t.Error("ping through a new connection after stop succeeded")
	}
}

func TestMySQLStopsWhenContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dsn, stop, err := MySQL(ctx, "127.0.0.1:0", "hs2cc")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, 5*time.Second, "listener to close after cancel", func() bool {
		c, err := net.DialTimeout("tcp", cfg.Addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
}

func TestRedisStop(t *testing.T) {
	u, stop, err := Redis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "redis://127.0.0.1:") || !strings.HasSuffix(u, "/0") {
		t.Errorf("URL %q, want redis://127.0.0.1:PORT/0", u)
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1 // the ping after stop should fail fast, not retry
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	stop()
	stop()
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Error("ping after stop succeeded")
	}
}

func TestRedisPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, stop, err := Redis(ln.Addr().String()); err == nil {
		stop()
		t.Fatal("Redis on a taken port succeeded, want error")
	}
}
