package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
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
	queued, err := s.requeue(ctx, refs, true)
	if err != nil {
		return err
	}
	if queued > 0 {
		s.log.Warn("sweep re-enqueued stale pending enrollments", "count", queued)
	}
	stale := s.now().Add(-s.age)
	return s.resumeImports(ctx, stale, stale)
}

// requeue enqueues each row again under its version's task id, which is a
// no-op for a row whose task still waits in an asynq group. With
// skipWaiting, rows of a list set that has a waiting task
// (cc:import-wait) are left to it: they are parked on purpose, and queuing
// them would only park them again.
func (s *Sweeper) requeue(ctx context.Context, refs []store.PendingRef, skipWaiting bool) (int, error) {
	waiting := map[string]bool{}
	queued := 0
	for _, r := range refs {
		key := GroupKey(r.Lists)
		if skipWaiting && s.tasks != nil {
			w, ok := waiting[key]
			if !ok {
				_, err := s.tasks.GetTaskInfo(Queue, importWaitTaskID(key))
				if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
					return queued, err
				}
				w = err == nil
				waiting[key] = w
			}
			if w {
				continue
			}
		}
		if err := s.enq.EnqueueEnrollment(ctx, r.ID, r.Version, r.Lists); err != nil {
			return queued, err
		}
		queued++
	}
	return queued, nil
}

// recoverPage is how many pending rows Recover reads at a time.
const recoverPage = 1000

// inFlight bounds how long an import can be in the middle of its CC call:
// the client's 30 s timeout and the wait for a rate slot. An import
// touched more recently may still be running in some worker after Redis
// lost its task, and resuming it then could post it twice; Recover leaves
// such imports to its second pass.
const inFlight = 45 * time.Second

// Recover queues again everything MySQL knows to be waiting, right after
// Redis lost its data: every pending row, under its version's task id (so
// a row queued again since the loss is not queued twice), the poll of
// every unsettled activity (its task id makes that a no-op when it
// exists), and every claimed import whose task is gone and that was not
// touched since before. It returns how many rows it queued.
func (s *Sweeper) Recover(ctx context.Context, before time.Time) (int, error) {
	var cur store.PendingCursor
	total := 0
	for {
		refs, next, err := s.store.PendingPage(ctx, cur, recoverPage)
		if err != nil {
			return total, err
		}
		n, err := s.requeue(ctx, refs, false)
		total += n
		if err != nil {
			return total, err
		}
		if len(refs) < recoverPage {
			break
		}
		cur = next
	}
	return total, s.resumeImports(ctx, s.now(), before)
}

// redisWatchEvery is how often each worker checks that Redis still holds
// its data; a check is one SETNX.
const redisWatchEvery = 2 * time.Second

// EpochMarker tells when Redis was last found without its data, and
// whether this call found it so; *store.Redis is one.
type EpochMarker interface {
	MarkEpoch(ctx context.Context) (time.Time, bool, error)
}

// watch notices within seconds that Redis lost its data (a FLUSHDB, a
// restart without persistence, a failover to an empty replica): the
// queues, the groups and the marker go together, and the one worker that
// sets the marker again queues what MySQL knows to be waiting. A claimed
// import that may still have been in its CC call at the loss gets a second
// pass once that call must have ended; every worker makes it, and one
// started since the loss too, since the worker that recovered may die
// before then. The periodic sweep remains for rows whose enqueue failed
// while Redis kept its data.
func (s *Sweeper) watch(ctx context.Context, marker EpochMarker) {
	tick := time.NewTicker(redisWatchEvery)
	defer tick.Stop()
	var seen, passFor time.Time
	var pass <-chan time.Time
	for {
		since, lost, err := marker.MarkEpoch(ctx)
		switch {
		case err != nil:
			// Redis is unreachable: nothing can be queued now, and when it
			// comes back without its data the marker says so.
		case lost:
			s.recoverLoss(ctx, since)
		}
		if err == nil && !since.Equal(seen) {
			seen, passFor = since, since
			pass = time.After(max(since.Add(inFlight).Sub(s.now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-pass:
			pass = nil
			if err := s.resumeImports(ctx, passFor, passFor); err != nil && ctx.Err() == nil {
				s.log.Error("resuming the imports Redis lost failed; the periodic sweep resumes them", "err", err)
			}
		case <-tick.C:
		}
	}
}

// recoverLoss runs Recover once this worker found Redis without its
// marker, unless MySQL has never recorded one: the first Redis the bridge
// uses held nothing to lose, and queuing every pending row again would only
// duplicate the tasks it already holds. When MySQL cannot say, it recovers:
// a duplicate task is claimed once, a lost one waits for the sweep.
func (s *Sweeper) recoverLoss(ctx context.Context, since time.Time) {
	prev, err := s.store.SwapRedisEpoch(ctx, since.Format(time.RFC3339Nano))
	switch {
	case err != nil:
		s.log.Warn("could not read the last Redis epoch; queuing the waiting enrollments again to be safe", "err", err)
	case prev == "":
		s.log.Info("the first Redis this bridge uses: nothing to recover")
		return
	}
	n, err := s.Recover(ctx, since.Add(-inFlight))
	switch {
	case ctx.Err() != nil:
	case err != nil:
		s.log.Error("Redis lost its data; queuing the waiting enrollments again failed part way, the periodic sweep finishes it", "queued", n, "err", err)
	default:
		s.log.Warn("Redis lost its data: the waiting enrollments are queued again from MySQL", "queued", n)
	}
}

// resumeImports finds imports that stopped moving: an activity nobody
// polls any more (touched before pollsBefore), or rows claimed (importing)
// whose task Redis lost (touched before claimsBefore). A claimed import
// whose task still exists (waiting on a reconnect, say) is left alone;
// otherwise it is queued again under its own task id, so that it continues
// with its claim rather than posting a second import. An activity poll's
// task id is deterministic, so re-enqueuing one that exists is a no-op.
func (s *Sweeper) resumeImports(ctx context.Context, pollsBefore, claimsBefore time.Time) error {
	imps, err := s.store.StaleImports(ctx, later(pollsBefore, claimsBefore), 500)
	if err != nil {
		return err
	}
	resumed := 0
	for _, imp := range imps {
		if imp.ActivityID != "" {
			if imp.UpdatedAt.Before(pollsBefore) {
				if err := s.enq.enqueueActivityPoll(ctx, imp.ID, 0); err != nil {
					return err
				}
			}
			continue
		}
		if s.tasks == nil || !imp.UpdatedAt.Before(claimsBefore) {
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

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
