package jobs

import (
	"context"
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
	log   *slog.Logger
	age   time.Duration
	now   func() time.Time
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
	return nil
}
