package jobs

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
)

// Task types; see the catalogue in doc.go.
const (
	TypeEnrollmentSync  = "enrollment:sync"
	TypeCCImport        = "cc:import"
	TypeCCActivity      = "cc:activity"
	TypeEnrollmentSweep = "enrollment:sweep"
	TypeTokenRefresh    = "cc:token-refresh"
	TypeRetentionPurge  = "retention:purge"
	TypeImportWait      = "cc:import-wait"
	TypeListsCheck      = "cc:lists-check"
	TypeReconcile       = "cc:reconcile"
	TypeWriteback       = "hubspot:writeback"
	TypeUnsubscribes    = "hubspot:unsubscribes"
)

// Queue is the one asynq queue the bridge uses. Aggregated tasks are always
// enqueued into their group's queue, so a second queue would not separate
// imports from enrollments anyway.
const Queue = "hs2cc"

type enrollmentPayload struct {
	EnrollmentID int64 `json:"enrollment_id"`
}

type importPayload struct {
	// Group is the list key the batch was aggregated under; empty for an
	// enrollment imported alone.
	Group         string  `json:"group,omitempty"`
	EnrollmentIDs []int64 `json:"enrollment_ids"`
}

type importWaitPayload struct {
	// Lists are the CC list names of the waiting set; its group key is
	// made from them.
	Lists []string `json:"lists"`
}

type activityPayload struct {
	ImportID int64 `json:"import_id"`
}

// GroupKey names the asynq group for a set of target lists: enrollments
// bound for the same lists are aggregated into one import. It is the list
// key the store keeps on each row, so that claiming a batch can check that a
// row is still bound for the batch's lists.
func GroupKey(lists []string) string { return store.ListKey(lists) }

func enrollmentTaskID(id int64, version int) string {
	return fmt.Sprintf("enrollment:%d:v%d", id, version)
}

func decode[T any](t *asynq.Task) (T, error) {
	var p T
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return p, nil
}

// importWaitTaskID names the one waiting task of a list set, so that however
// many imports of the set park, one task waits for it.
func importWaitTaskID(listKey string) string { return "cc:import-wait:" + listKey }
