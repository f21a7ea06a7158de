package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reconcile run outcomes.
const (
	ReconcileDone    = "done"    // every list read and compared
	ReconcilePlanned = "planned" // a dry run: the calls counted, none spent on members
	ReconcileRefused = "refused" // the calls it needed were over what it was allowed
	ReconcileFailed  = "failed"  // CC or the store failed part-way; Detail says how
)

// ReconcileRun is one comparison of the bridge's imports with CC's lists.
type ReconcileRun struct {
	ID         int64
	StartedAt  time.Time
	FinishedAt time.Time
	// Source is "command" (`hs2cc reconcile`) or "periodic" (cc:reconcile).
	Source  string
	Lists   []string
	Since   time.Time // zero for every import
	Outcome string
	Detail  string
	// Missing counts imported contacts CC no longer has on their list and
	// still accepts mail for; Unsubscribed those CC has unsubscribed;
	// Unknown the list members the bridge never imported onto that list;
	// Repaired the enrollments queued again.
	Missing, Unsubscribed, Unknown, Repaired int
	// CCCalls is what the run spent; AnnouncedCalls what it said it would.
	CCCalls, AnnouncedCalls int
}

// ListEnrollment is one enrollment bound for a list, as a reconcile compares
// it with CC's members.
type ListEnrollment struct {
	ID         int64
	Email      string // lower-cased
	Status     string
	ImportedAt time.Time // zero until imported
}

// ListEnrollments returns every enrollment bound for the CC list named list,
// whatever its status. It reads the whole table's list column (no index can
// serve JSON_CONTAINS), which a reconcile, run rarely, can afford.
func (s *DB) ListEnrollments(ctx context.Context, list string) ([]ListEnrollment, error) {
	name, _ := json.Marshal(list)
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, email, status, imported_at FROM enrollments WHERE JSON_CONTAINS(lists, ?) ORDER BY id`, string(name))
	if err != nil {
		return nil, fmt.Errorf("store: enrollments of list %q: %w", list, err)
	}
	defer rows.Close()
	var out []ListEnrollment
	for rows.Next() {
		var e ListEnrollment
		var imported sql.NullTime
		if err := rows.Scan(&e.ID, &e.Email, &e.Status, &imported); err != nil {
			return nil, fmt.Errorf("store: enrollments of list %q: %w", list, err)
		}
		e.Email = strings.ToLower(e.Email)
		if imported.Valid {
			e.ImportedAt = imported.Time.UTC()
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: enrollments of list %q: %w", list, err)
	}
	return out, nil
}

// RecordReconcileRun stores a finished run and sets its ID.
func (s *DB) RecordReconcileRun(ctx context.Context, r *ReconcileRun) error {
	lists, _ := json.Marshal(r.Lists)
	var since any
	if !r.Since.IsZero() {
		since = r.Since.UTC()
	}
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO reconcile_runs (started_at, finished_at, source, lists, since, outcome, detail,
		   missing, unsubscribed, unknown, repaired, cc_calls, announced_calls)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.StartedAt.UTC(), r.FinishedAt.UTC(), r.Source, string(lists), since, r.Outcome, truncate(r.Detail, 1024),
		r.Missing, r.Unsubscribed, r.Unknown, r.Repaired, r.CCCalls, r.AnnouncedCalls)
	if err != nil {
		return fmt.Errorf("store: record reconcile run: %w", err)
	}
	r.ID, _ = res.LastInsertId()
	return nil
}

// LastReconcileRun returns the newest run, or nil when none was made.
func (s *DB) LastReconcileRun(ctx context.Context) (*ReconcileRun, error) {
	var r ReconcileRun
	var lists string
	var since sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT id, started_at, finished_at, source, lists, since, outcome, detail,
		   missing, unsubscribed, unknown, repaired, cc_calls, announced_calls
		 FROM reconcile_runs ORDER BY started_at DESC, id DESC LIMIT 1`).
		Scan(&r.ID, &r.StartedAt, &r.FinishedAt, &r.Source, &lists, &since, &r.Outcome, &r.Detail,
			&r.Missing, &r.Unsubscribed, &r.Unknown, &r.Repaired, &r.CCCalls, &r.AnnouncedCalls)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: last reconcile run: %w", err)
	}
	if err := json.Unmarshal([]byte(lists), &r.Lists); err != nil {
		return nil, fmt.Errorf("store: last reconcile run %d lists: %w", r.ID, err)
	}
	r.StartedAt, r.FinishedAt = r.StartedAt.UTC(), r.FinishedAt.UTC()
	if since.Valid {
		r.Since = since.Time.UTC()
	}
	return &r, nil
}
