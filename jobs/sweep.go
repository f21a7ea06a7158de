package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// Sweeper re-enqueues enrollments whose task Redis lost or never received.
// MySQL is the source of truth: any row still pending long after its group
// should have been aggregated is enqueued again, and the TaskID makes that a
// no-op when the task does still exist.
type Sweeper struct {
	store Store
	enq   *Enqueuer
	tasks TaskLookup
	log   *slog.Logger
	age   time.Duration
	now   func() time.Time
}

// TaskLookup finds a task in Redis; *asynq.Inspector is one.
type TaskLookup interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// handle enqueues one page of stale rows per run. The rows stay pending
// until they are imported, so paging further would find the same rows
// again; the next run picks up whatever this one left.
func (s *Sweeper) handle(ctx context.Context, _ *asynq.Task) error {
	refs, err := s.store.StalePending(ctx, s.now().Add(-s.age), 1000)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if err := s.enq.EnqueueEnrollment(ctx, r.ID, r.Version, r.Lists); err != nil {
			return err
		}
	}
	if len(refs) > 0 {
		s.log.Warn("sweep re-enqueued stale pending enrollments", "count", len(refs))
	}
	return s.resumeImports(ctx)
}

// resumeImports finds imports that stopped moving: rows claimed (importing)
// whose task Redis lost, or an activity nobody polls any more. A claimed
// import whose task still exists (waiting on a reconnect, say) is left
// alone; otherwise it is queued again under its own task id, so that it
// continues with its claim rather than posting a second import. An activity
// poll's task id is deterministic, so re-enqueuing one that exists is a
// no-op.
func (s *Sweeper) resumeImports(ctx context.Context) error {
	imps, err := s.store.StaleImports(ctx, s.now().Add(-s.age), 500)
	if err != nil {
		return err
	}
	resumed := 0
	for _, imp := range imps {
		if imp.ActivityID != "" {
			if err := s.enq.enqueueActivityPoll(ctx, imp.ID, 0); err != nil {
				return err
			}
			continue
		}
		if s.tasks == nil {
			continue
		}
		_, err := s.tasks.GetTaskInfo(Queue, imp.TaskID)
		if err == nil {
			continue
		}
		if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			return err
		}
		if err := s.enq.resumeImport(ctx, imp.TaskID); err != nil {
			return err
		}
		resumed++
	}
	if resumed > 0 {
		s.log.Warn("sweep resumed imports whose task was lost", "count", resumed)
	}
	return nil
}
