// Package devstack starts the embedded infrastructure behind `hs2cc dev`: an
// in-memory MySQL-compatible server (dolthub/go-mysql-server) and an
// in-memory Redis (alicebob/miniredis).
//
// It exists so that a fresh checkout can run the whole bridge with
// `go run ./cmd/hs2cc dev` and nothing else installed. It is for dev mode
// only: `serve` and `work` must never import it, because neither embedded
// server persists data, and the MySQL one does not implement InnoDB's locking
// (see MySQL for the exact guarantees it does and does not give). Production
// runs MySQL 8 / MariaDB 10.11 and a real Redis, which the dev command also
// uses when HS2CC_MYSQL_DSN / HS2CC_REDIS_URL are set.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	vtlog "github.com/dolthub/vitess/go/vt/log"
	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
)

// quietLogsOnce makes the logging change below happen once per process: it
// mutates package-level state of logrus and vitess, which must not race with
// servers that are already running.
var quietLogsOnce sync.Once

// quietLogs silences go-mysql-server's Info/Warn chatter (one line per
// connection open/close, "Server ready", ...) and keeps its errors.
// go-mysql-server logs only through logrus' global standard logger (it also
// points the vitess log package there), so that global is the only knob
// there is. hs2cc itself does not log through logrus, so raising the
// standard logger's level affects no one else.
func quietLogs() {
	quietLogsOnce.Do(func() {
		if logrus.GetLevel() > logrus.ErrorLevel {
			logrus.SetLevel(logrus.ErrorLevel)
		}
		// stop closes client connections from the server side, and each
		// connection's read loop then logs "Error reading packet ... use of
		// closed network connection" at error level. Those errors are our
		// own doing, so drop exactly them; a client that disconnects shows
		// up as EOF or a reset instead and still gets logged.
		errorf := vtlog.Errorf
		vtlog.Errorf = func(format string, args ...any) {
			for _, a := range args {
				if err, ok := a.(error); ok && isClosedConn(err) {
					return
				}
			}
			errorf(format, args...)
		}
		// The driver logs "closing bad idle connection: unexpected EOF"
		// when a pool outlives the server; that is expected at dev
		// shutdown, and real failures still come back as errors.
		_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	})
}

// isClosedConn reports whether err comes from using a connection after our
// side closed it. vitess wraps errors with a Cause method but no Unwrap, so
// errors.Is alone does not see through its wrappers.
func isClosedConn(err error) bool {
	for err != nil {
		if errors.Is(err, net.ErrClosed) {
			return true
		}
		c, ok := err.(interface{ Cause() error })
		if !ok {
			return false
		}
		err = c.Cause()
	}
	return false
}

// MySQL starts an in-memory MySQL-compatible server listening on addr
// ("127.0.0.1:0" picks a free port) with one empty database named dbName. The
// server accepts any user name with any or no password, so the returned DSN
// uses root with no password, as a fresh local MySQL install would.
//
// The DSN is for github.com/go-sql-driver/mysql and carries the parameters
// the service should also use in production: parseTime=true with loc=UTC
// (the driver's default, so FormatDSN leaves it out) so DATETIME columns
// scan into UTC time.Time, time_zone='+00:00' so NOW(6) and
// CURRENT_TIMESTAMP(6) are UTC too, multiStatements=true so a migration file
// can be sent in one Exec, and charset=utf8mb4.
//
// What callers must know about the embedded engine (the tests in this
// package pin each point):
//   - Data lives in memory and is gone after stop.
//   - Its own transactions are per-session copies of whole tables that
//     COMMIT writes back wholesale, and SELECT … FOR UPDATE locks nothing,
//     so interleaved transactions would silently lose updates. The server
//     therefore runs one statement at a time and one explicit transaction
//     at a time (see serialGate): serializable, but a connection that
//     reads while another holds a transaction open waits for it, and gives
//     up with MySQL error 1205 after 10s.
//   - Every read and write scans the table, so statements slow down as
//     tables grow (about 2 ms per upsert transaction with a few hundred
//     rows, over 10 ms with several thousand). Fine for a demo, not a
//     load test.
//
// Cancelling ctx stops the server, as does calling stop; stop is safe to call
// more than once and from several goroutines.
func MySQL(ctx context.Context, addr, dbName string) (dsn string, stop func(), err error) {
	if dbName == "" {
		return "", nil, errors.New("devstack: mysql: empty database name")
	}
	if strings.ContainsAny(dbName, "`/?") {
		return "", nil, fmt.Errorf("devstack: mysql: database name %q contains a character that cannot appear in a DSN path", dbName)
	}
	quietLogs()

	engine, provider := newMemoryEngine(dbName)

	// Listening ourselves, rather than letting go-mysql-server do it, lets
	// "127.0.0.1:0" work: we learn the chosen port from the listener, and a
	// port that is taken fails here with a clear error instead of later.
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("devstack: mysql: listen on %s: %w", addr, err)
	}
	ln := newTrackingListener(inner)
	cfg := server.Config{
		Protocol: "tcp",
		Address:  ln.Addr().String(),
		Listener: ln,
	}
	gate := newSerialGate()
	srv, err := server.NewServerWithHandler(cfg, engine, sql.NewContext, memory.NewSessionBuilder(provider), nil, gate.wrap)
	if err != nil {
		_ = ln.Close()
		return "", nil, fmt.Errorf("devstack: mysql: create server: %w", err)
	}

	done := make(chan struct{})
	go func() {
		// Start blocks in the accept loop until Close; its error after a
		// deliberate Close carries no information.
		_ = srv.Start()
		close(done)
	}()

	var once sync.Once
	stop = func() {
		once.Do(func() {
			// Server.Close only stops accepting; connections already open
			// would go on being served, so close them too.
			_ = srv.Close()
			<-done
			ln.closeConns()
			_ = engine.Close()
		})
	}
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()

	return mysqlDSN(ln.Addr().String(), dbName), stop, nil
}

// newMemoryEngine returns a query engine over one empty in-memory database
// named dbName, and the provider that sessions of the server look it up in.
func newMemoryEngine(dbName string) (*sqle.Engine, *memory.DbProvider) {
	db := memory.NewDatabase(dbName)
	// This exposes each table's primary key to the planner as an index, as
	// MySQL does, so query plans resemble production's. It is not a
	// speed-up: the memory engine still scans rows underneath, so every
	// lookup and write costs time proportional to the table's size.
	db.EnablePrimaryKeyIndexes()
	provider := memory.NewDBProvider(db)
	return sqle.NewDefault(provider), provider
}

// mysqlDSN returns the DSN of database dbName on the server at addr, with
// the parameters that MySQL's doc comment lists, as root with no password.
func mysqlDSN(addr, dbName string) string {
	dsnCfg := mysql.NewConfig()
	dsnCfg.User = "root"
	dsnCfg.Net = "tcp"
	dsnCfg.Addr = addr
	dsnCfg.DBName = dbName
	dsnCfg.ParseTime = true
	dsnCfg.Loc = time.UTC
	dsnCfg.MultiStatements = true
	dsnCfg.Params = map[string]string{
		"charset": "utf8mb4",
		// The embedded server's session time zone is the host's (SYSTEM),
		// so on a laptop outside UTC, NOW(6) and DEFAULT
		// CURRENT_TIMESTAMP(6) would store local wall-clock time that
		// loc=UTC then reads back labelled as UTC. Pinning the session to
		// UTC makes server-side timestamps agree with Go-side ones.
		"time_zone": "'+00:00'",
	}
	return dsnCfg.FormatDSN()
}

// Redis starts miniredis on addr ("127.0.0.1:0" picks a free port) and
// returns a redis://host:port/0 URL for go-redis and asynq.ParseRedisURI.
// stop is safe to call more than once.
//
// miniredis keeps its clock frozen unless told otherwise, which would make
// keys with a TTL never expire; asynq relies on expiring keys (task ID
// uniqueness, server heartbeats, locks), so a goroutine advances the
// miniredis clock in step with the wall clock until stop.
func Redis(addr string) (redisURL string, stop func(), err error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return "", nil, fmt.Errorf("devstack: redis: listen on %s: %w", addr, err)
	}

	quit := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		const step = 100 * time.Millisecond
		t := time.NewTicker(step)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()

	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			<-ticked
			m.Close()
		})
	}
	u := url.URL{Scheme: "redis", Host: m.Addr(), Path: "/0"}
	return u.String(), stop, nil
}

// trackingListener remembers the connections it accepted so that stop can
// close them; go-mysql-server's Server.Close only closes the listener.
type trackingListener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTrackingListener(l net.Listener) *trackingListener {
	return &trackingListener{Listener: l, conns: make(map[net.Conn]struct{})}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// closeConns closes every open connection and makes later Accepts fail.
func (l *trackingListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = make(map[net.Conn]struct{})
	l.mu.Unlock()
	for c := range conns {
		_ = c.(*trackedConn).Conn.Close()
	}
}

// trackedConn removes itself from its listener when closed, so a long-running
// dev server does not accumulate closed connections.
type trackedConn struct {
	net.Conn
	l *trackingListener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
