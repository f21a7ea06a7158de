package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Enrollment statuses. A row moves pending → importing → imported, or to
// failed or rejected; a changed version of a contact puts it back to pending.
const (
	StatusPending   = "pending"   // stored, waiting for a CC import
	StatusImporting = "importing" // claimed by one CC import
	StatusImported  = "imported"  // CC reported the import clean
	StatusFailed    = "failed"    // CC refused it or reported errors; replayable
	StatusRejected  = "rejected"  // cannot be sent to CC as it is (e.g. a value over CC's limits)
)

// ListKey names a set of CC lists independently of their order. Enrollments
// with the same key are imported together (it is the asynq group); the key
// is readable unless the names are long or hold the separator, when it
// becomes a hash, so ["a|b"] and ["a","b"] never share one.
func ListKey(lists []string) string {
	sorted := append([]string(nil), lists...)
	sort.Strings(sorted)
	key := "lists:" + strings.Join(sorted, "|")
	if len(key) <= 191 && strings.Count(key, "|") == max(len(sorted)-1, 0) {
		return key
	}
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\x00")))
	return "lists:sha256:" + hex.EncodeToString(sum[:12])
}

// Enrollment is one HubSpot contact as the bridge keeps it.
type Enrollment struct {
	ID           int64
	PortalID     int64
	ObjectKey    string
	Email        string
	FirstName    string
	LastName     string
	Country      string
	EnrolledAt   time.Time // zero when HubSpot sent none
	Properties   map[string]string
	Lists        []string // names of the CC lists this contact belongs on
	ContentHash  string
	Version      int
	Status       string
	StatusReason string
	ImportID     int64
	ReceivedAt   time.Time
	UpdatedAt    time.Time
	ImportedAt   time.Time
}

// Outcome says what an ingest did to the enrollment row.
type Outcome int

// Outcomes of Ingest.
const (
	OutcomeCreated   Outcome = iota + 1 // first delivery for this contact
	OutcomeUpdated                      // changed content: a new version
	OutcomeUnchanged                    // same content as stored: a no-op
)

func (o Outcome) String() string {
	switch o {
	case OutcomeCreated:
		return "created"
	case OutcomeUpdated:
		return "updated"
	case OutcomeUnchanged:
		return "unchanged"
	}
	return "unknown"
}

// IngestResult tells the webhook handler what to enqueue.
type IngestResult struct {
	EnrollmentID int64
	DeliveryID   int64
	Version      int
	Status       string
	Lists        []string
	Outcome      Outcome
}

// Ingest stores a delivery and upserts its enrollment in one transaction, so
// that a 2xx to HubSpot always means both are durable. The same content is a
// no-op; changed content becomes a new version that is imported again.
//
// The row is written first with INSERT … ON DUPLICATE KEY UPDATE, which takes
// the row lock without the gap locks a SELECT … FOR UPDATE on a missing key
// would take; concurrent first deliveries of one contact then queue on the
// row instead of deadlocking. Deadlocks that still happen are retried.
func (s *DB) Ingest(ctx context.Context, d *Delivery, e *Enrollment) (IngestResult, error) {
	props, err := json.Marshal(nonNilMap(e.Properties))
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	lists, err := json.Marshal(nonNilSlice(e.Lists))
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", err)
	}
	var res IngestResult
	for attempt := 0; ; attempt++ {
		res, err = s.ingestOnce(ctx, d, e, string(props), string(lists))
		if err == nil || attempt == 3 || !retryable(err) {
			break
		}
	}
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest: %w", translate(err))
	}
	return res, nil
}

func (s *DB) ingestOnce(ctx context.Context, d *Delivery, e *Enrollment, props, lists string) (IngestResult, error) {
	now := s.utcNow()
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = now
	}
	var enrolledAt sql.NullTime
	if !e.EnrolledAt.IsZero() {
		enrolledAt = sql.NullTime{Time: e.EnrolledAt.UTC(), Valid: true}
	}
	var res IngestResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx,
			`INSERT INTO enrollments (portal_id, object_key, email, first_name, last_name, country, enrolled_at,
			   properties, lists, list_key, content_hash, version, status, status_reason, received_at, updated_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, '', ?, ?)
			 ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)`,
			e.PortalID, e.ObjectKey, e.Email, e.FirstName, e.LastName, e.Country, enrolledAt,
			props, lists, ListKey(e.Lists), e.ContentHash, StatusPending, now, now)
		if err != nil {
			return err
		}
		id, err := r.LastInsertId()
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		res.EnrollmentID = id
		res.Lists = e.Lists
		if n == 1 {
			res.Outcome, res.Version, res.Status = OutcomeCreated, 1, StatusPending
		} else {
			var hash, status, storedLists string
			if err := tx.QueryRowContext(ctx,
				`SELECT content_hash, version, status, lists FROM enrollments WHERE id = ? FOR UPDATE`, id).
				Scan(&hash, &res.Version, &status, &storedLists); err != nil {
				return err
			}
			if hash == e.ContentHash {
				res.Outcome, res.Status = OutcomeUnchanged, status
				// The stored lists are the ones its task was queued with;
				// decode into a fresh slice, never into the caller's.
				var stored []string
				if err := json.Unmarshal([]byte(storedLists), &stored); err != nil {
					return fmt.Errorf("enrollment %d lists: %w", id, err)
				}
				res.Lists = stored
			} else {
				res.Outcome, res.Version, res.Status = OutcomeUpdated, res.Version+1, StatusPending
				if _, err := tx.ExecContext(ctx,
					`UPDATE enrollments SET email = ?, first_name = ?, last_name = ?, country = ?, enrolled_at = ?,
					   properties = ?, lists = ?, list_key = ?, content_hash = ?, version = ?, status = ?, status_reason = '',
					   import_id = NULL, updated_at = ?
					 WHERE id = ?`,
					e.Email, e.FirstName, e.LastName, e.Country, enrolledAt, props, lists, ListKey(e.Lists), e.ContentHash,
					res.Version, StatusPending, now, id); err != nil {
					return err
				}
			}
		}
		d.EnrollmentID = id
		d.Verdict = VerdictAccepted
		if res.Outcome == OutcomeUnchanged {
			d.Verdict = VerdictDuplicate
		}
		if err := insertDelivery(ctx, tx, d); err != nil {
			return err
		}
		res.DeliveryID = d.ID
		return nil
	})
	return res, err
}

// retryable reports whether a transaction failed only because of another
// transaction (deadlock, lock wait timeout) and may simply run again.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

const enrollmentColumns = `id, portal_id, object_key, email, first_name, last_name, country, enrolled_at,
  properties, lists, content_hash, version, status, status_reason, import_id, received_at, updated_at, imported_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanEnrollment(r rowScanner) (*Enrollment, error) {
	var e Enrollment
	var enrolledAt, importedAt sql.NullTime
	var importID sql.NullInt64
	var props, lists string
	if err := r.Scan(&e.ID, &e.PortalID, &e.ObjectKey, &e.Email, &e.FirstName, &e.LastName, &e.Country,
		&enrolledAt, &props, &lists, &e.ContentHash, &e.Version, &e.Status, &e.StatusReason, &importID,
		&e.ReceivedAt, &e.UpdatedAt, &importedAt); err != nil {
		return nil, err
	}
	e.EnrolledAt, e.ImportedAt, e.ImportID = enrolledAt.Time, importedAt.Time, importID.Int64
	if err := json.Unmarshal([]byte(props), &e.Properties); err != nil {
		return nil, fmt.Errorf("enrollment %d properties: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(lists), &e.Lists); err != nil {
		return nil, fmt.Errorf("enrollment %d lists: %w", e.ID, err)
	}
	return &e, nil
}

// GetEnrollment loads one enrollment by id.
func (s *DB) GetEnrollment(ctx context.Context, id int64) (*Enrollment, error) {
	e, err := scanEnrollment(s.db.QueryRowContext(ctx,
		`SELECT `+enrollmentColumns+` FROM enrollments WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: get enrollment %d: %w", id, translate(err))
	}
	return e, nil
}

// CountEnrollments returns how many enrollments are in each status.
func (s *DB) CountEnrollments(ctx context.Context) (map[string]int, error) {
	counts, err := countBy(ctx, s.db, `SELECT status, COUNT(*) FROM enrollments GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count enrollments: %w", err)
	}
	return counts, nil
}

// PendingRef is what the sweep needs to enqueue an enrollment again.
type PendingRef struct {
	ID      int64
	Version int
	Lists   []string
}

// StalePending lists enrollments that have waited in pending since before
// the cutoff: their task was lost (Redis restarted, or Redis was down when
// they arrived), so the sweep enqueues them again.
func (s *DB) StalePending(ctx context.Context, before time.Time, limit int) ([]PendingRef, error) {
	refs, err := queryAll(ctx, s.db, func(r rowScanner) (PendingRef, error) {
		var p PendingRef
		var lists string
		if err := r.Scan(&p.ID, &p.Version, &lists); err != nil {
			return p, err
		}
		return p, json.Unmarshal([]byte(lists), &p.Lists)
	}, `SELECT id, version, lists FROM enrollments WHERE status = ? AND updated_at < ? ORDER BY updated_at, id LIMIT ?`,
		StatusPending, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: stale pending: %w", err)
	}
	return refs, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
