package devstack

import (
	"context"
	"sync"
	"time"

	vtmysql "github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
)

// lockWaitTimeout bounds how long a statement waits for another
// connection's open transaction before failing with MySQL error 1205, the
// error InnoDB returns when innodb_lock_wait_timeout expires. It is far
// shorter than InnoDB's 50s default because in dev mode the usual cause is a
// bug (a goroutine that holds a transaction and then queries through the pool
// on another connection), and a dev should see that quickly.
const lockWaitTimeout = 10 * time.Second

// serialGate makes the embedded server execute one statement at a time and
// one explicit transaction at a time.
//
// go-mysql-server's in-memory backend is documented as not thread-safe, and
// its transactions are per-session copies of whole tables that COMMIT writes
// back wholesale, so two interleaved transactions silently lose one side's
// writes: without the gate, 8 connections committing 200 SELECT … FOR
// UPDATE + UPDATE increments of one row left it at about 45, with no error
// to anyone. The service runs webhook handlers and queue workers
// concurrently against one pool, so dev mode needs the gate. With it, each
// transaction runs alone, i.e. serializable isolation: stricter than
// InnoDB's REPEATABLE READ, so code that is correct on production MySQL
// stays correct here. The converse does not hold, since here FOR UPDATE is
// never what makes code correct.
//
// A connection takes the gate when a statement arrives and gives it back when
// the statement ends, unless the statement left a transaction open (the
// server reports that with the SERVER_STATUS_IN_TRANS flag), in which case it
// keeps the gate until COMMIT, ROLLBACK or disconnect.
type serialGate struct {
	sem chan struct{}

	mu      sync.Mutex
	holder  uint32 // connection ID that holds sem; valid when held is true
	held    bool
	timeout time.Duration
}

func newSerialGate() *serialGate {
	return &serialGate{sem: make(chan struct{}, 1), timeout: lockWaitTimeout}
}

// wrap is a server.HandlerWrapper.
func (g *serialGate) wrap(h vtmysql.Handler) (vtmysql.Handler, error) {
	return &serialHandler{Handler: h, gate: g}, nil
}

// acquire blocks until connection id holds the gate. It is reentrant for the
// connection that already holds it, which is how an open transaction keeps
// it across statements.
func (g *serialGate) acquire(ctx context.Context, id uint32) error {
	g.mu.Lock()
	if g.held && g.holder == id {
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()

	timer := time.NewTimer(g.timeout)
	defer timer.Stop()
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return vtmysql.NewSQLError(vtmysql.ERLockWaitTimeout, vtmysql.SSUnknownSQLState,
			"Lock wait timeout exceeded; try restarting transaction (hs2cc dev server: another connection held a transaction open for %s)", g.timeout)
	}
	g.mu.Lock()
	g.holder, g.held = id, true
	g.mu.Unlock()
	return nil
}

// release gives the gate back unless keep is true. It is a no-op for a
// connection that does not hold the gate.
func (g *serialGate) release(id uint32, keep bool) {
	if keep {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held || g.holder != id {
		return
	}
	g.held = false
	<-g.sem
}

// serialHandler puts every command that touches the engine behind the gate.
// Commands it does not override (handshake bookkeeping, warning counts,
// parser options) only read per-connection state.
type serialHandler struct {
	vtmysql.Handler
	gate *serialGate
}

var _ vtmysql.Handler = (*serialHandler)(nil)

// done releases the gate after a command unless the connection is now inside
// a transaction. The wrapped handler updates c.StatusFlags after every
// successful statement; after a failed one the flags keep their previous
// value, which is also the right answer (a failed statement inside a
// transaction leaves the transaction open, as in MySQL).
func (s *serialHandler) done(c *vtmysql.Conn) {
	inTx := c.StatusFlags&uint16(vtmysql.ServerInTransaction) != 0
	s.gate.release(c.ConnectionID, inTx)
}

func (s *serialHandler) ComInitDB(c *vtmysql.Conn, schemaName string) error {
	if err := s.gate.acquire(context.Background(), c.ConnectionID); err != nil {
		return err
	}
	defer s.done(c)
	return s.Handler.ComInitDB(c, schemaName)
}

func (s *serialHandler) ComQuery(ctx context.Context, c *vtmysql.Conn, query string, callback vtmysql.ResultSpoolFn) error {
	if err := s.gate.acquire(ctx, c.ConnectionID); err != nil {
		return err
	}
	defer s.done(c)
	return s.Handler.ComQuery(ctx, c, query, callback)
}

func (s *serialHandler) ComMultiQuery(ctx context.Context, c *vtmysql.Conn, query string, callback vtmysql.ResultSpoolFn) (string, error) {
	// The server calls this once per statement of a multi-statement query,
	// so a migration that contains BEGIN … COMMIT keeps the gate in between
	// just as separate ComQuery calls would.
	if err := s.gate.acquire(ctx, c.ConnectionID); err != nil {
		return "", err
	}
	defer s.done(c)
	remainder, err := s.Handler.ComMultiQuery(ctx, c, query, callback)
	if err != nil {
		// MySQL stops a multi-statement query at the first failing
		// statement. The vitess connection loop instead sends the error
		// and then runs the remainder, which applies statements the client
		// believes were skipped and leaves their results unread on the
		// wire. Dropping the remainder restores MySQL's behaviour.
		return "", err
	}
	return remainder, nil
}

func (s *serialHandler) ComPrepare(ctx context.Context, c *vtmysql.Conn, query string, prepare *vtmysql.PrepareData) ([]*querypb.Field, error) {
	if err := s.gate.acquire(ctx, c.ConnectionID); err != nil {
		return nil, err
	}
	defer s.done(c)
	return s.Handler.ComPrepare(ctx, c, query, prepare)
}

func (s *serialHandler) ComStmtExecute(ctx context.Context, c *vtmysql.Conn, prepare *vtmysql.PrepareData, callback func(*sqltypes.Result) error) error {
	if err := s.gate.acquire(ctx, c.ConnectionID); err != nil {
		return err
	}
	defer s.done(c)
	return s.Handler.ComStmtExecute(ctx, c, prepare, callback)
}

func (s *serialHandler) ComResetConnection(c *vtmysql.Conn) error {
	if err := s.gate.acquire(context.Background(), c.ConnectionID); err != nil {
		return err
	}
	defer s.done(c)
	return s.Handler.ComResetConnection(c)
}

// ConnectionClosed always gives the gate back: a client that disconnects in
// the middle of a transaction has its transaction discarded, as in MySQL, and
// must not leave every other connection waiting.
func (s *serialHandler) ConnectionClosed(c *vtmysql.Conn) {
	// Session teardown touches the engine too, so it waits its turn; if the
	// wait times out, tear down anyway rather than leak the session.
	err := s.gate.acquire(context.Background(), c.ConnectionID)
	s.Handler.ConnectionClosed(c)
	if err == nil {
		s.gate.release(c.ConnectionID, false)
	}
}
