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

// Write-back states: what became of an enrollment's outcome on its HubSpot
// contact (table hubspot_writeback).
const (
	WritebackPending = "pending" // to be written
	WritebackWritten = "written" // HubSpot took the last value
	WritebackMissing = "missing" // HubSpot no longer has the contact
	WritebackNoID    = "no_id"   // the webhook carried no HubSpot object id
	WritebackFailed  = "failed"  // HubSpot refused it writebackMaxAttempts times
)

// WritebackStates lists every state, in the order ops read them.
var WritebackStates = []string{WritebackPending, WritebackWritten, WritebackMissing, WritebackNoID, WritebackFailed}

// EnableWriteback makes every settle of an enrollment queue its outcome for
// HubSpot in the same transaction. Off (the default, and with no HubSpot
// token) nothing is queued and the outbox stays empty.
func (s *DB) EnableWriteback() { s.writeback = true }

// WritebackEnabled reports whether settles queue write-backs.
func (s *DB) WritebackEnabled() bool { return s.writeback }

// queueWriteback queues the enrollments ids for write-back inside tx. A row
// already queued is queued again and loses any claim on it, so that a batch
// in flight with the older outcome cannot mark it written.
func (s *DB) queueWriteback(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time) error {
	if !s.writeback {
		return nil
	}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		var q strings.Builder
		q.WriteString(`INSERT INTO hubspot_writeback (enrollment_id, state, queued_at, attempts, last_error, written_status, updated_at) VALUES `)
		args := make([]any, 0, 3*len(chunk))
		for i, id := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(`(?, 'pending', ?, 0, '', '', ?)`)
			args = append(args, id, now, now)
		}
		q.WriteString(` ON DUPLICATE KEY UPDATE state = 'pending', queued_at = VALUES(queued_at), claim = NULL,
		   claimed_until = NULL, attempts = 0, last_error = '', updated_at = VALUES(updated_at)`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("queue write-back: %w", err)
		}
	}
	return nil
}

// idsWhere returns the ids of the enrollments the query selects, in tx.
func idsWhere(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// QueueUnwritten queues for write-back up to n settled enrollments (imported,
// rejected or failed) after id after that the outbox has never held: those
// settled before the write-back was turned on. It returns how many it
// queued and the last id it looked at, for the next call's after; zero
// when none is left.
func (s *DB) QueueUnwritten(ctx context.Context, after int64, n int) (queued int, last int64, err error) {
	if !s.writeback {
		return 0, 0, nil
	}
	now := s.utcNow()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := idsWhere(ctx, tx,
			`SELECT e.id FROM enrollments e
			 WHERE e.id > ? AND e.status IN (?, ?, ?)
			   AND NOT EXISTS (SELECT 1 FROM hubspot_writeback w WHERE w.enrollment_id = e.id)
			 ORDER BY e.id LIMIT ?`, after, StatusImported, StatusRejected, StatusFailed, n)
		if err != nil || len(ids) == 0 {
			return err
		}
		queued, last = len(ids), ids[len(ids)-1]
		return s.queueWriteback(ctx, tx, ids, now)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: queue unwritten enrollments: %w", err)
	}
	return queued, last, nil
}

// MarkUnsubscribed records that CC has the contacts with these addresses
// unsubscribed, as learned at, and queues a write-back for every enrollment
// of theirs not already known unsubscribed since its last import. It
// returns how many enrollments it marked; with write-back off it does
// nothing.
func (s *DB) MarkUnsubscribed(ctx context.Context, emails []string, at time.Time) (int, error) {
	if !s.writeback || len(emails) == 0 {
		return 0, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	now := s.utcNow()
	marked := 0
	for start := 0; start < len(emails); start += 500 {
		chunk := emails[start:min(start+500, len(emails))]
		args := make([]any, len(chunk))
		for i, e := range chunk {
			args[i] = strings.ToLower(strings.TrimSpace(e))
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			// An enrollment already known unsubscribed since its last
			// import is left alone, so that the sync's overlapping windows
			// and repeated reconciles write each unsubscribe once.
			ids, err := idsWhere(ctx, tx,
				`SELECT e.id FROM enrollments e LEFT JOIN hubspot_writeback w ON w.enrollment_id = e.id
				 WHERE e.email IN (`+placeholders(len(chunk))+`)
				   AND (w.unsubscribed_at IS NULL OR (e.imported_at IS NOT NULL AND e.imported_at > w.unsubscribed_at))`, args...)
			if err != nil || len(ids) == 0 {
				return err
			}
			if err := s.queueWriteback(ctx, tx, ids, now); err != nil {
				return err
			}
			uargs := []any{at, at, now}
			for _, id := range ids {
				uargs = append(uargs, id)
			}
			// The newest time wins: a contact unsubscribed, imported
			// again and unsubscribed once more is unsubscribed now.
			if _, err := tx.ExecContext(ctx,
				`UPDATE hubspot_writeback SET unsubscribed_at = CASE
				   WHEN unsubscribed_at IS NULL OR unsubscribed_at < ? THEN ? ELSE unsubscribed_at END, updated_at = ?
				 WHERE enrollment_id IN (`+placeholders(len(ids))+`)`, uargs...); err != nil {
				return err
			}
			marked += len(ids)
			return nil
		})
		if err != nil {
			return marked, fmt.Errorf("store: mark unsubscribed: %w", err)
		}
	}
	return marked, nil
}

// MarkRemoved records that a reconcile found enrollments taken off CC lists
// they were imported onto, as learned at: removed maps each enrollment id to
// the names of those lists. It queues their write-back and returns how many
// it marked; with write-back off it does nothing.
func (s *DB) MarkRemoved(ctx context.Context, removed map[int64][]string, at time.Time) (int, error) {
	if !s.writeback || len(removed) == 0 {
		return 0, nil
	}
	at = at.UTC().Truncate(time.Microsecond)
	now := s.utcNow()
	byLists := map[string][]int64{}
	for id, lists := range removed {
		key := strings.Join(lists, "; ")
		byLists[key] = append(byLists[key], id)
	}
	marked := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for from, ids := range byLists {
			for start := 0; start < len(ids); start += 1000 {
				chunk := ids[start:min(start+1000, len(ids))]
				if err := s.queueWriteback(ctx, tx, chunk, now); err != nil {
					return err
				}
				args := []any{at, truncate(from, 1024), now}
				for _, id := range chunk {
					args = append(args, id)
				}
				r, err := tx.ExecContext(ctx,
					`UPDATE hubspot_writeback SET removed_at = ?, removed_from = ?, updated_at = ?
					 WHERE enrollment_id IN (`+placeholders(len(chunk))+`)`, args...)
				if err != nil {
					return err
				}
				n, _ := r.RowsAffected()
				marked += int(n)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: mark removed: %w", err)
	}
	return marked, nil
}

// WritebackRow is one claimed write-back with what is needed to work out
// the value: the enrollment as it is now.
type WritebackRow struct {
	EnrollmentID int64
	// ObjectKey is the enrollment's dedupe key: the HubSpot object id when
	// it is all digits.
	ObjectKey      string
	Email          string
	Status         string
	StatusReason   string
	Lists          []string
	ImportedAt     time.Time // zero when never imported
	UnsubscribedAt time.Time // zero when CC was never seen to unsubscribe it
	// RemovedAt is when a reconcile found the contact taken off the CC
	// lists RemovedFrom; zero when none did.
	RemovedAt   time.Time
	RemovedFrom []string
	Attempts    int
}

// ClaimWriteback claims at most n pending write-backs, oldest first, for
// lease under claim, and returns them. A claim whose holder died expires
// after its lease and the rows are claimed again.
func (s *DB) ClaimWriteback(ctx context.Context, claim string, n int, lease time.Duration) ([]WritebackRow, error) {
	now := s.utcNow()
	if _, err := s.db.ExecContext(ctx,
		`UPDATE hubspot_writeback SET claim = ?, claimed_until = ?
		 WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY queued_at LIMIT ?`,
		claim, now.Add(lease), now, n); err != nil {
		return nil, fmt.Errorf("store: claim write-backs: %w", err)
	}
	rows, err := queryAll(ctx, s.db, scanWritebackRow,
		`SELECT w.enrollment_id, e.object_key, e.email, e.status, e.status_reason, e.lists, e.imported_at,
		   w.unsubscribed_at, w.removed_at, w.removed_from, w.attempts
		 FROM hubspot_writeback w JOIN enrollments e ON e.id = w.enrollment_id
		 WHERE w.claim = ? ORDER BY w.enrollment_id`, claim)
	if err != nil {
		return nil, fmt.Errorf("store: read claimed write-backs: %w", err)
	}
	return rows, nil
}

func scanWritebackRow(r rowScanner) (WritebackRow, error) {
	var w WritebackRow
	var lists string
	var imported, unsub, removed sql.NullTime
	var from string
	if err := r.Scan(&w.EnrollmentID, &w.ObjectKey, &w.Email, &w.Status, &w.StatusReason, &lists, &imported,
		&unsub, &removed, &from, &w.Attempts); err != nil {
		return w, err
	}
	if from != "" {
		w.RemovedFrom = strings.Split(from, "; ")
	}
	w.RemovedAt = removed.Time
	if err := json.Unmarshal([]byte(lists), &w.Lists); err != nil {
		return w, fmt.Errorf("enrollment %d lists: %w", w.EnrollmentID, err)
	}
	w.ImportedAt, w.UnsubscribedAt = imported.Time, unsub.Time
	return w, nil
}

// WritebackDone is what became of one claimed write-back.
type WritebackDone struct {
	EnrollmentID int64
	// State is the row's new state; WritebackPending puts it back for
	// another attempt, counted.
	State string
	// Status is the value written (with State written); Error why it was
	// not.
	Status string
	Error  string
}

// FinishWriteback records what became of write-backs claimed under claim.
// A row queued again since it was claimed has lost the claim and stays
// pending for its newer value.
func (s *DB) FinishWriteback(ctx context.Context, claim string, done []WritebackDone) error {
	type key struct{ state, status, err string }
	groups := map[key][]int64{}
	for _, d := range done {
		k := key{d.State, d.Status, truncate(d.Error, 1024)}
		groups[k] = append(groups[k], d.EnrollmentID)
	}
	now := s.utcNow()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for k, ids := range groups {
			var written sql.NullTime
			if k.state == WritebackWritten {
				written = sql.NullTime{Time: now, Valid: true}
			}
			args := []any{k.state, k.err, now, k.status, k.status, written, claim}
			for _, id := range ids {
				args = append(args, id)
			}
			// written_status and written_at keep the last value written
			// when this answer wrote nothing.
			if _, err := tx.ExecContext(ctx,
				`UPDATE hubspot_writeback SET state = ?, attempts = attempts + 1, last_error = ?, updated_at = ?,
				   written_status = CASE WHEN ? <> '' THEN ? ELSE written_status END,
				   written_at = COALESCE(?, written_at), claim = NULL, claimed_until = NULL
				 WHERE claim = ? AND enrollment_id IN (`+placeholders(len(ids))+`)`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: finish write-backs: %w", err)
	}
	return nil
}

// ReleaseWriteback gives back every row still claimed under claim, pending,
// with why; counted adds an attempt to each (a fault of the call, not a
// wait on HubSpot's limits).
func (s *DB) ReleaseWriteback(ctx context.Context, claim, why string, counted bool) error {
	n := 0
	if counted {
		n = 1
	}
	if _, err := s.db.ExecContext(ctx,
		`UPDATE hubspot_writeback SET claim = NULL, claimed_until = NULL, attempts = attempts + ?, last_error = ?, updated_at = ?
		 WHERE claim = ?`, n, truncate(why, 1024), s.utcNow(), claim); err != nil {
		return fmt.Errorf("store: release write-backs: %w", err)
	}
	return nil
}

// WritebackSummary is the outbox at a glance, for /ops, status and metrics.
type WritebackSummary struct {
	// Counts holds the rows in each state.
	Counts map[string]int
	// OldestPending is when the longest-waiting pending row was queued;
	// zero when none waits.
	OldestPending time.Time
	// LastError is the newest error on a pending or failed row.
	LastError string
	// LastWritten is when HubSpot last took a value.
	LastWritten time.Time
}

// SummarizeWriteback counts the outbox by state.
func (s *DB) SummarizeWriteback(ctx context.Context) (WritebackSummary, error) {
	sum := WritebackSummary{}
	counts, err := countBy(ctx, s.db, `SELECT state, COUNT(*) FROM hubspot_writeback GROUP BY state`)
	if err != nil {
		return sum, fmt.Errorf("store: count write-backs: %w", err)
	}
	sum.Counts = counts
	var oldest, written sql.NullTime
	if err := s.db.QueryRowContext(ctx,
		`SELECT MIN(queued_at) FROM hubspot_writeback WHERE state = 'pending'`).Scan(&oldest); err != nil {
		return sum, fmt.Errorf("store: oldest write-back: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(written_at) FROM hubspot_writeback`).Scan(&written); err != nil {
		return sum, fmt.Errorf("store: last write-back: %w", err)
	}
	sum.OldestPending, sum.LastWritten = oldest.Time, written.Time
	err = s.db.QueryRowContext(ctx,
		`SELECT last_error FROM hubspot_writeback WHERE state IN ('pending', 'failed') AND last_error <> ''
		 ORDER BY updated_at DESC LIMIT 1`).Scan(&sum.LastError)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return sum, fmt.Errorf("store: last write-back error: %w", err)
	}
	return sum, nil
}

// UnsubscribeSync is the cursor and last run of hubspot:unsubscribes.
type UnsubscribeSync struct {
	// SyncedTo is the time up to which CC's unsubscribes have been read;
	// zero before the first complete run.
	SyncedTo time.Time
	RanAt    time.Time
	// Outcome is done, partial (pages left unread; the cursor stays),
	// skipped (the CC budget) or failed; Detail says more.
	Outcome string
	Detail  string
	// Found is how many unsubscribed CC contacts the run read, Marked how
	// many of the bridge's enrollments they matched; CCPages the pages
	// read (one CC call each).
	Found, Marked, CCPages int
}

// Unsubscribe sync outcomes.
const (
	SyncDone    = "done"
	SyncPartial = "partial"
	SyncSkipped = "skipped"
	SyncFailed  = "failed"
)

// GetUnsubscribeSync returns the cursor and last run; the zero value before
// the first run.
func (s *DB) GetUnsubscribeSync(ctx context.Context) (UnsubscribeSync, error) {
	var u UnsubscribeSync
	var to sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT synced_to, ran_at, outcome, detail, found, marked, cc_pages FROM hubspot_unsubscribe_sync WHERE id = 1`).
		Scan(&to, &u.RanAt, &u.Outcome, &u.Detail, &u.Found, &u.Marked, &u.CCPages)
	if errors.Is(err, sql.ErrNoRows) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("store: read unsubscribe sync: %w", err)
	}
	u.SyncedTo = to.Time
	return u, nil
}

// SaveUnsubscribeSync records a run of hubspot:unsubscribes and its cursor.
func (s *DB) SaveUnsubscribeSync(ctx context.Context, u UnsubscribeSync) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO hubspot_unsubscribe_sync (id, synced_to, ran_at, outcome, detail, found, marked, cc_pages)
		 VALUES (1, ?, ?, ?, ?, ?, ?, ?)
		 ON DUPLICATE KEY UPDATE synced_to = VALUES(synced_to), ran_at = VALUES(ran_at), outcome = VALUES(outcome),
		   detail = VALUES(detail), found = VALUES(found), marked = VALUES(marked), cc_pages = VALUES(cc_pages)`,
		nullTime(u.SyncedTo), u.RanAt.UTC(), u.Outcome, truncate(u.Detail, 1024), u.Found, u.Marked, u.CCPages)
	if err != nil {
		return fmt.Errorf("store: save unsubscribe sync: %w", err)
	}
	return nil
}
