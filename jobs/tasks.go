package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hibiken/asynq"
)

// Task types; see the catalogue in doc.go.
const (
	TypeEnrollmentSync  = "enrollment:sync"
	TypeCCImport        = "cc:import"
	TypeCCActivity      = "cc:activity"
	TypeEnrollmentSweep = "enrollment:sweep"
	TypeTokenRefresh    = "cc:token-refresh"
)

// Queue is the one asynq queue the bridge uses. Aggregated tasks are always
// enqueued into their group's queue, so a second queue would not separate
// imports from enrollments anyway.
const Queue = "hs2cc"

type enrollmentPayload struct {
	EnrollmentID int64 `json:"enrollment_id"`
}

type importPayload struct {
	EnrollmentIDs []int64 `json:"enrollment_ids"`
}

type activityPayload struct {
	ImportID int64 `json:"import_id"`
}

// GroupKey names the asynq group for a set of target lists. Enrollments bound
// for the same lists are aggregated into one import; the key is readable in
// Asynqmon unless the names are too long, when it becomes a hash.
func GroupKey(lists []string) string {
	sorted := append([]string(nil), lists...)
	sort.Strings(sorted)
	key := "lists:" + strings.Join(sorted, "|")
	if len(key) <= 200 {
		return key
	}
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\x00")))
	return "lists:sha256:" + hex.EncodeToString(sum[:12])
}

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
