package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// migratedStore gives a command environment on a fresh migrated MySQL
// database and Redis, and the store on that database.
func migratedStore(t *testing.T) (getenv func(string) string, db *store.DB) {
	t.Helper()
	dsn := storetest.MySQLDSN(t)
	env := map[string]string{"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": storetest.RedisURL(t)}
	getenv = func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return getenv, db
}

// TestBackfillAndReplay: the commands queue exactly the rows their flags
// pick, a dry run only counts, and queued rows are pending with a task.
func TestBackfillAndReplay(t *testing.T) {
	ctx := context.Background()
	getenv, db := migratedStore(t)
	// Rows 0–2 failed (0 on "Gold Agents"), 3 rejected, 4 imported; row 2
	// failed two days ago.
	statuses := []string{store.StatusFailed, store.StatusFailed, store.StatusFailed, store.StatusRejected, store.StatusImported}
	for i, st := range statuses {
		lists := []string{"New Agents"}
		if i == 0 {
			lists = append(lists, "Gold Agents")
		}
		e := &store.Enrollment{PortalID: 1, ObjectKey: fmt.Sprint(i), Email: fmt.Sprintf("b%d@example.com", i), Lists: lists, ContentHash: fmt.Sprint(i)}
		res, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")}, e)
		if err != nil {
			t.Fatal(err)
		}
		age := time.Duration(0)
		if i == 2 {
			age = 48 * time.Hour
		}
		if _, err := db.SQL().ExecContext(ctx, `UPDATE enrollments SET status = ?, status_reason = 'x', updated_at = ? WHERE id = ?`,
			st, time.Now().UTC().Add(-age), res.EnrollmentID); err != nil {
			t.Fatal(err)
		}
	}
	opt, _ := asynq.ParseRedisURI(getenv("HS2CC_REDIS_URL"))
	ins := asynq.NewInspector(opt)
	defer ins.Close()
	queued := func() int {
		n := 0
		if q, err := ins.GetQueueInfo(jobs.Queue); err == nil {
			n = q.Size
		}
		return n
	}
	steps := []struct {
		args       []string
		wantOut    string
		wantQueued int // tasks in the queue afterwards (aggregating ones count)
	}{
		{[]string{"replay", "--dry-run"}, "replay: 3 enrollments match (dry run: nothing queued)", 0},
		{[]string{"replay", "--list", "Gold Agents"}, "replay: queued 1 enrollments", 1},
		{[]string{"backfill", "--since", "24h", "--dry-run"}, "backfill: 2 enrollments match", 1},
		{[]string{"backfill", "--since", "24h"}, "backfill: queued 2 enrollments", 2},
		{[]string{"replay", "--status", "rejected", "--since", "1h"}, "replay: queued 1 enrollments", 3},
		{[]string{"replay", "--status", "importing"}, "cannot be requeued", 3},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		err := run(ctx, s.args, getenv, &stdout, &stderr)
		got := stdout.String()
		if err != nil {
			got += err.Error()
		}
		if !strings.Contains(got, s.wantOut) {
			t.Errorf("%v: %q, want %q", s.args, got, s.wantOut)
		}
		if n := queued(); n != s.wantQueued {
			t.Errorf("%v: %d tasks queued, want %d", s.args, n, s.wantQueued)
		}
	}
	counts, _ := db.CountEnrollments(ctx)
	if counts[store.StatusPending] != 3 || counts[store.StatusFailed] != 1 || counts[store.StatusImported] != 1 {
		t.Errorf("enrollments %v, want 3 pending, 1 failed (two days old), 1 imported", counts)
	}
}
