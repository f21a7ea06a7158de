package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Enqueuer puts tasks on the queue. It is the only place enqueue options are
// chosen, so that every producer (webhook, sweep, replay) gets the same
// TaskIDs and groups and the same dedupe.
type Enqueuer struct {
	client *asynq.Client
}

// NewEnqueuer wraps an asynq client; the caller owns and closes it.
func NewEnqueuer(client *asynq.Client) *Enqueuer { return &Enqueuer{client: client} }

// EnqueueEnrollment queues one enrollment version for import into the group
// of its lists. A TaskID conflict means this version is already queued, which
// is success.
func (e *Enqueuer) EnqueueEnrollment(ctx context.Context, id int64, version int, lists []string) error {
	payload, err := json.Marshal(enrollmentPayload{EnrollmentID: id})
	if err != nil {
		return fmt.Errorf("jobs: enqueue enrollment %d: %w", id, err)
	}
	task := asynq.NewTask(TypeEnrollmentSync, payload)
	_, err = e.client.EnqueueContext(ctx, task,
		asynq.Queue(Queue),
		asynq.TaskID(enrollmentTaskID(id, version)),
		asynq.Group(GroupKey(lists)),
		asynq.MaxRetry(25),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue enrollment %d: %w", id, err)
	}
	return nil
}

// enqueueActivityPoll schedules the first poll of an import's activity.
func (e *Enqueuer) enqueueActivityPoll(ctx context.Context, importID int64, after time.Duration) error {
	payload, err := json.Marshal(activityPayload{ImportID: importID})
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(TypeCCActivity, payload),
		asynq.Queue(Queue),
		asynq.TaskID(fmt.Sprintf("cc:activity:%d", importID)),
		asynq.ProcessIn(after),
		asynq.MaxRetry(25),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue activity poll for import %d: %w", importID, err)
	}
	return nil
}

// resumeImport queues an import again under the task id that claimed it,
// after its task was lost: ClaimImport finds the claim by that id, so the
// resumed task carries on with the same rows and never claims new ones.
func (e *Enqueuer) resumeImport(ctx context.Context, taskID string) error {
	payload, err := json.Marshal(importPayload{})
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(TypeCCImport, payload),
		asynq.Queue(Queue),
		asynq.TaskID(taskID),
		asynq.MaxRetry(25),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: resume import task %s: %w", taskID, err)
	}
	return nil
}

// enqueueImport queues a cc:import for rows released from an import that
// would have been too large. Like an aggregated batch it has no TaskID, for
// the claim in MySQL makes a duplicate harmless.
func (e *Enqueuer) enqueueImport(ctx context.Context, group string, ids []int64) error {
	payload, err := json.Marshal(importPayload{Group: group, EnrollmentIDs: ids})
	if err != nil {
		return err
	}
	if _, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeCCImport, payload), asynq.Queue(Queue), asynq.MaxRetry(25)); err != nil {
		return fmt.Errorf("jobs: enqueue import of %d released rows: %w", len(ids), err)
	}
	return nil
}

// enqueueImportWait queues the waiting task of the list set lists unless it
// is queued already. It waits without a retry limit of its own: waitErrors
// spend none.
func (e *Enqueuer) enqueueImportWait(ctx context.Context, lists []string) error {
	payload, err := json.Marshal(importWaitPayload{Lists: lists})
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(TypeImportWait, payload),
		asynq.Queue(Queue),
		asynq.TaskID(importWaitTaskID(GroupKey(lists))),
		asynq.ProcessIn(importWaitPoll),
		asynq.MaxRetry(25),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue the wait of lists %v: %w", lists, err)
	}
	return nil
}

// listsCheckTaskID dedupes the checks asked for by connections: several
// connects in a row need one check.
const listsCheckTaskID = "cc:lists-check:connected"

// EnqueueListsCheck asks a worker to check the routing rules' CC lists now;
// Tokens.OnConnect calls it when CC gets connected, wherever that happens.
func (e *Enqueuer) EnqueueListsCheck(ctx context.Context) error {
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeListsCheck, nil),
		asynq.Queue(Queue), asynq.TaskID(listsCheckTaskID), asynq.MaxRetry(25))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue the CC lists check: %w", err)
	}
	return nil
}

// aggregate is the asynq GroupAggregator: one group's enrollment tasks become
// one cc:import task. It gets no TaskID on purpose: asynq keeps a group's set
// when the enqueue fails and would retry a conflicting id forever; duplicate
// batches are instead made harmless by claiming rows in MySQL.
func aggregate(group string, tasks []*asynq.Task) *asynq.Task {
	ids := make([]int64, 0, len(tasks))
	seen := make(map[int64]bool, len(tasks))
	for _, t := range tasks {
		var p enrollmentPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil || p.EnrollmentID == 0 || seen[p.EnrollmentID] {
			continue
		}
		seen[p.EnrollmentID] = true
		ids = append(ids, p.EnrollmentID)
	}
	payload, _ := json.Marshal(importPayload{Group: group, EnrollmentIDs: ids})
	return asynq.NewTask(TypeCCImport, payload, asynq.MaxRetry(25))
}

// EnqueueWriteback asks for the outbox's pending write-backs to be sent to
// HubSpot shortly. Requests within writebackDelay of each other share one
// task, so that imports settling together fill whole batches; a task
// already running does not swallow a later request, which gets the next
// window's task.
func (e *Enqueuer) EnqueueWriteback(ctx context.Context) error {
	window := time.Now().Truncate(writebackDelay).UnixMilli()
	_, err := e.client.EnqueueContext(ctx, asynq.NewTask(TypeWriteback, nil),
		asynq.Queue(Queue),
		asynq.TaskID(fmt.Sprintf("hubspot:writeback:%d", window)),
		asynq.ProcessIn(writebackDelay),
		asynq.MaxRetry(25),
	)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue the HubSpot write-back: %w", err)
	}
	return nil
}
