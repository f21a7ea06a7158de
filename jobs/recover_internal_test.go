package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestRecoverQueuesWhatRedisLost: after Redis lost its data, Recover queues
// every pending row again, but a row queued since (its task waits in its
// asynq group) is not queued twice; a claimed import whose task is gone is
// resumed under its own task id once it cannot still be in its CC call,
// and one touched more recently is left for the second pass; an activity's
// poll is queued again however recent, since a poll twice is harmless.
func TestRecoverQueuesWhatRedisLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	opt, err := asynq.ParseRedisURI(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	aq := asynq.NewClient(opt)
	t.Cleanup(func() { aq.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { insp.Close() })
	enq := NewEnqueuer(aq)
	lists := []string{"Agents"}
	ingest := func(key string) store.IngestResult {
		res, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")},
			&store.Enrollment{PortalID: 1, ObjectKey: key, Email: key + "@example.com", Lists: lists, ContentHash: key})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// 2,100 pending rows take three pages; the first was queued again
	// since the loss.
	var pending []int64
	for i := range 2*recoverPage + 100 {
		pending = append(pending, ingest(fmt.Sprint("p", i)).EnrollmentID)
	}
	if err := enq.EnqueueEnrollment(ctx, pending[0], 1, lists); err != nil {
		t.Fatal(err)
	}
	// Two claimed imports whose tasks are gone: one claimed before the
	// cut-off, one after it.
	old, recent := ingest("old"), ingest("recent")
	db.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
	if _, err := db.ClaimImport(ctx, "task-old", "", []int64{old.EnrollmentID}); err != nil {
		t.Fatal(err)
	}
	db.SetClock(time.Now)
	if _, err := db.ClaimImport(ctx, "task-recent", "", []int64{recent.EnrollmentID}); err != nil {
		t.Fatal(err)
	}
	polled, err := db.ClaimImport(ctx, "task-polled", "", []int64{ingest("polled").EnrollmentID})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SubmitImport(ctx, polled.ID, lists, []string{"list-id"}, "activity-1", "processing"); err != nil {
		t.Fatal(err)
	}

	sw := &Sweeper{store: db, enq: enq, tasks: insp, log: slog.New(slog.DiscardHandler), now: time.Now}
	n, err := sw.Recover(ctx, time.Now().Add(-inFlight))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(pending) {
		t.Errorf("Recover queued %d rows, want %d", n, len(pending))
	}
	grouped, err := insp.ListAggregatingTasks(Queue, GroupKey(lists), asynq.PageSize(5000))
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, task := range grouped {
		p, err := decode[enrollmentPayload](asynq.NewTask(task.Type, task.Payload))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.EnrollmentID)
	}
	slices.Sort(got)
	if !slices.Equal(got, pending) {
		t.Errorf("the group holds %d tasks, want each of the %d pending rows once", len(got), len(pending))
	}
	if _, err := insp.GetTaskInfo(Queue, "task-old"); err != nil {
		t.Errorf("the import claimed before the cut-off was not resumed: %v", err)
	}
	if _, err := insp.GetTaskInfo(Queue, "task-recent"); err == nil {
		t.Error("an import that may still be in its CC call was resumed")
	}
	if _, err := insp.GetTaskInfo(Queue, fmt.Sprintf("cc:activity:%d", polled.ID)); err != nil {
		t.Errorf("the poll of an accepted import was not queued again: %v", err)
	}
}
