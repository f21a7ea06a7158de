package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Errors that callers branch on. Driver errors are translated here so that no
// other package needs to know MySQL error numbers.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate means a unique key was violated (MySQL error 1062).
	ErrDuplicate = errors.New("store: duplicate")
	// ErrSchemaOutdated means the database has not been migrated to the
	// version this binary needs; serve and work refuse to start on it.
	ErrSchemaOutdated = errors.New("store: schema is outdated, run `hs2cc migrate`")
	// ErrConflict means a compare-and-swap lost to a concurrent writer.
	ErrConflict = errors.New("store: concurrent update")
)

// DB is the MySQL side of the store.
type DB struct {
	db   *sql.DB
	now  func() time.Time
	keys *TokenKeys // seal and open the CC token pair; nil refuses both
	// writeback queues each settled enrollment for HubSpot (EnableWriteback).
	writeback bool
}

// Open connects to MySQL with the DSN given and checks that it answers. The
// DSN is adjusted so that times are parsed and stored as UTC, which every
// query here relies on; the driver already talks utf8mb4 by default.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parse dsn: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Sessions run in UTC so NOW() and stored DATETIMEs agree whatever the
	// server's own zone is.
	cfg.Params["time_zone"] = "'+00:00'"
	// Each statement with arguments would otherwise be a server-side
	// prepare, execute and close: two round trips instead of one, on the
	// webhook's path where every millisecond before the answer counts. The
	// driver escapes values itself for utf8mb4 (and falls back to a prepare
	// for the charsets it cannot escape safely).
	cfg.InterpolateParams = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connector: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: ping: %w", err)
	}
	return &DB{db: db, now: time.Now}, nil
}

// Close closes the connection pool.
func (s *DB) Close() error { return s.db.Close() }

// Ping reports whether MySQL answers.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// SQL exposes the pool for tests and one-off tools.
func (s *DB) SQL() *sql.DB { return s.db }

// SetClock replaces the clock; tests use it to control timestamps.
func (s *DB) SetClock(now func() time.Time) { s.now = now }

func (s *DB) utcNow() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// translate maps driver errors onto the package's sentinels.
func translate(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1062 {
		return fmt.Errorf("%w: %s", ErrDuplicate, me.Message)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// inTx runs fn in a transaction, committing when fn returns nil. InnoDB
// picks a deadlock victim (1213) or times out a lock wait (1205) and rolls
// the whole transaction back, so such a transaction is simply run again, a
// few times, instead of failing its task: claims and extensions of imports
// lock rows through different indexes and can meet that way.
func (s *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.inTxOnce(ctx, fn)
		if err == nil || attempt == 3 || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// retryable reports whether a transaction failed only because of another
// transaction (deadlock, lock wait timeout) and may simply run again.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func (s *DB) inTxOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// countBy runs a "SELECT key, COUNT(*) … GROUP BY key" query into a map.
func countBy(ctx context.Context, db *sql.DB, query string) (map[string]int, error) {
	type pair struct {
		key string
		n   int
	}
	pairs, err := queryAll(ctx, db, func(r rowScanner) (pair, error) {
		var p pair
		return p, r.Scan(&p.key, &p.n)
	}, query)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(pairs))
	for _, p := range pairs {
		out[p.key] = p.n
	}
	return out, nil
}

// placeholders returns "?,?,…" for n values, for IN lists.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}
