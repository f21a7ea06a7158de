package devstack

import (
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	vtmysql "github.com/dolthub/vitess/go/mysql"
	"github.com/go-sql-driver/mysql"
)

func TestSerialGate(t *testing.T) {
	ctx := context.Background()

	t.Run("reentrant for the holder, exclusive for others", func(t *testing.T) {
		g := newSerialGate()
		g.timeout = 50 * time.Millisecond
		if err := g.acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := g.acquire(ctx, 1); err != nil {
			t.Fatalf("holder re-acquiring: %v", err)
		}
		err := g.acquire(ctx, 2)
		var se *vtmysql.SQLError
		if !errors.As(err, &se) || se.Number() != vtmysql.ERLockWaitTimeout {
			t.Fatalf("second connection: %v, want MySQL error 1205", err)
		}
		g.release(2, false) // not the holder: must not free the gate
		if err := g.acquire(ctx, 3); err == nil {
			t.Fatal("release by a non-holder freed the gate")
		}
		g.release(1, true) // still in a transaction: keeps it
		if err := g.acquire(ctx, 3); err == nil {
			t.Fatal("release with keep=true freed the gate")
		}
		g.release(1, false)
		if err := g.acquire(ctx, 3); err != nil {
			t.Fatalf("after release: %v", err)
		}
		g.release(3, false)
	})

	t.Run("waiter is woken by release", func(t *testing.T) {
		g := newSerialGate()
		if err := g.acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- g.acquire(ctx, 2) }()
		g.release(1, false)
		if err := <-got; err != nil {
			t.Fatalf("waiter: %v", err)
		}
		g.release(2, false)
	})

	t.Run("waiting honours context cancellation", func(t *testing.T) {
		g := newSerialGate()
		if err := g.acquire(ctx, 1); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := g.acquire(cctx, 2); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v, want context.Canceled", err)
		}
	})
}

// TestMySQLDisconnectReleasesGate checks that a client that vanishes in the
// middle of a transaction does not block everyone else.
func TestMySQLDisconnectReleasesGate(t *testing.T) {
	ctx := context.Background()
	dsn, db := startMySQL(t)
	mustExec(t, db, `CREATE TABLE k (id INT PRIMARY KEY)`)

	// A bare driver connection, not a pool: database/sql would keep the
	// connection of an unfinished transaction open until it is finished.
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := connector.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.(driver.ConnBeginTx).BeginTx(ctx, driver.TxOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.(driver.ExecerContext).ExecContext(ctx, `INSERT INTO k VALUES (1)`, nil); err != nil {
		t.Fatal(err)
	}
	// Drop the connection without COMMIT or ROLLBACK.
	_ = raw.Close()

	var n int
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.QueryRowContext(qctx, `SELECT COUNT(*) FROM k`).Scan(&n); err != nil {
		t.Fatalf("query after the other client vanished: %v", err)
	}
	if n != 0 {
		t.Errorf("uncommitted row of a vanished client is visible: %d rows", n)
	}
}
