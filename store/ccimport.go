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

// Import states as the bridge records them. The CC activity states
// (initialized, processing, completed, failed, cancelled, timed_out) are
// stored as CC sends them once an activity exists.
const (
	ImportClaimed  = "claimed"  // rows claimed, not yet accepted by CC
	ImportRejected = "rejected" // CC refused the request itself; rows failed
)

// Import is one contacts_json_import call and what came of it.
type Import struct {
	ID           int64
	TaskID       string
	Lists        []string
	ListIDs      []string
	ActivityID   string
	State        string
	ContactCount int
	ActivityCounts
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CompletedAt time.Time
	// PostedAt is when the import was last sent to CC without an answer
	// yet (zero otherwise), and PostedContacts how many contacts it
	// carried: a retry looks for that import among CC's activities before
	// it posts again.
	PostedAt       time.Time
	PostedContacts int
}

// ClaimImport turns a batch of enrollment ids into one import, keyed by the
// asynq task id. Claiming is a status transition (pending → importing) in
// MySQL, so a batch that asynq hands out twice imports its rows once: the
// second claim finds nothing pending and returns (nil, nil). A retried task
// finds the import its first run created and carries on with it.
//
// With a listKey, only rows still bound for that list set are claimed: a
// contact whose lists changed while its old task waited is left to the task
// of its new version, so it never lands on the lists it left.
func (s *DB) ClaimImport(ctx context.Context, taskID, listKey string, ids []int64) (*Import, error) {
	if existing, err := s.importByTask(ctx, taskID); err == nil {
		return existing, nil
	} else if err != ErrNotFound {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	now := s.utcNow()
	var imp *Import
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx,
			`INSERT INTO cc_imports (task_id, lists, list_ids, state, contact_count, items_total_count, person_count,
			   error_count, correctable_count, cannot_add_to_list_count, activity_errors, created_at, updated_at)
			 VALUES (?, '[]', '[]', ?, 0, 0, 0, 0, 0, 0, '[]', ?, ?)`, taskID, ImportClaimed, now, now)
		if err != nil {
			return err
		}
		importID, err := r.LastInsertId()
		if err != nil {
			return err
		}
		args := make([]any, 0, len(ids)+5)
		args = append(args, StatusImporting, importID, now, StatusPending)
		filter := ""
		if listKey != "" {
			filter = " AND list_key = ?"
			args = append(args, listKey)
		}
		for _, id := range ids {
			args = append(args, id)
		}
		r, err = tx.ExecContext(ctx,
			`UPDATE enrollments SET status = ?, import_id = ?, updated_at = ?
			 WHERE status = ?`+filter+` AND id IN (`+placeholders(len(ids))+`)`, args...)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			// Nothing left to claim: every row was imported or claimed by
			// another copy of this batch. Leave no empty import behind.
			_, err := tx.ExecContext(ctx, `DELETE FROM cc_imports WHERE id = ?`, importID)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cc_imports SET contact_count = ? WHERE id = ?`, n, importID); err != nil {
			return err
		}
		imp = &Import{ID: importID, TaskID: taskID, State: ImportClaimed, ContactCount: int(n), CreatedAt: now, UpdatedAt: now}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim import: %w", translate(err))
	}
	return imp, nil
}

const importColumns = `id, task_id, lists, list_ids, activity_id, state, contact_count, items_total_count, person_count,
  error_count, correctable_count, cannot_add_to_list_count, activity_errors, created_at, updated_at, completed_at,
  posted_at, posted_contacts`

func scanImport(r rowScanner) (*Import, error) {
	var imp Import
	var lists, listIDs, errs string
	var activityID sql.NullString
	var completedAt, postedAt sql.NullTime
	var postedContacts sql.NullInt64
	if err := r.Scan(&imp.ID, &imp.TaskID, &lists, &listIDs, &activityID, &imp.State, &imp.ContactCount,
		&imp.ItemsTotalCount, &imp.PersonCount, &imp.ErrorCount, &imp.CorrectableCount, &imp.CannotAddToListCount,
		&errs, &imp.CreatedAt, &imp.UpdatedAt, &completedAt, &postedAt, &postedContacts); err != nil {
		return nil, err
	}
	imp.ActivityID, imp.CompletedAt = activityID.String, completedAt.Time
	imp.PostedAt, imp.PostedContacts = postedAt.Time, int(postedContacts.Int64)
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{lists, &imp.Lists}, {listIDs, &imp.ListIDs}, {errs, &imp.ActivityErrors}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return nil, fmt.Errorf("import %d: %w", imp.ID, err)
		}
	}
	return &imp, nil
}

func (s *DB) importByTask(ctx context.Context, taskID string) (*Import, error) {
	imp, err := scanImport(s.db.QueryRowContext(ctx, `SELECT `+importColumns+` FROM cc_imports WHERE task_id = ?`, taskID))
	if err != nil {
		err = translate(err)
		if err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: import by task: %w", err)
	}
	return imp, nil
}

// GetImport loads one import by id.
func (s *DB) GetImport(ctx context.Context, id int64) (*Import, error) {
	imp, err := scanImport(s.db.QueryRowContext(ctx, `SELECT `+importColumns+` FROM cc_imports WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: get import %d: %w", id, translate(err))
	}
	return imp, nil
}

// RecentImports returns the newest imports first.
func (s *DB) RecentImports(ctx context.Context, limit int) ([]*Import, error) {
	imps, err := queryAll(ctx, s.db, scanImport, `SELECT `+importColumns+` FROM cc_imports ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: recent imports: %w", err)
	}
	return imps, nil
}

// ImportRows returns the enrollments an import still holds (status
// importing), oldest update first. It holds every row, properties included,
// in memory at once; the worker streams them with EachImportRow instead.
func (s *DB) ImportRows(ctx context.Context, importID int64) ([]*Enrollment, error) {
	var rows []*Enrollment
	err := s.EachImportRow(ctx, importID, func(e *Enrollment) error {
		rows = append(rows, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// EachImportRow calls fn with each enrollment an import still holds (status
// importing), oldest update first, as ImportRows orders them, scanning every
// row into a fresh Enrollment that fn may keep. Nothing is accumulated, so
// an import of 40,000 contacts with all their HubSpot properties costs one
// row's memory at a time rather than all of them.
//
// The query's connection stays busy until the last row has been read, so fn
// should be quick; it may use the store, which then takes another pooled
// connection. An error from fn stops the scan and is returned as it is.
func (s *DB) EachImportRow(ctx context.Context, importID int64, fn func(*Enrollment) error) error {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+enrollmentColumns+` FROM enrollments WHERE import_id = ? AND status = ? ORDER BY updated_at, id`,
		importID, StatusImporting)
	if err != nil {
		return fmt.Errorf("store: import rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEnrollment(rows)
		if err != nil {
			return fmt.Errorf("store: import rows: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: import rows: %w", err)
	}
	return nil
}

// SubmitImport records that CC accepted the import as an activity. It is
// written as soon as the 201 arrives so that a retry never posts twice.
func (s *DB) SubmitImport(ctx context.Context, importID int64, lists, listIDs []string, activityID, state string) error {
	l, _ := json.Marshal(nonNilSlice(lists))
	ids, _ := json.Marshal(nonNilSlice(listIDs))
	_, err := s.db.ExecContext(ctx,
		`UPDATE cc_imports SET lists = ?, list_ids = ?, activity_id = ?, state = ?, updated_at = ? WHERE id = ?`,
		string(l), string(ids), activityID, state, s.utcNow(), importID)
	if err != nil {
		return fmt.Errorf("store: submit import %d: %w", importID, err)
	}
	return nil
}

// ActivityResult is what CC reported about an activity.
type ActivityResult struct {
	State string
	Final bool
	ActivityCounts
}

// ActivityCounts are CC's counters of an import's activity and its errors,
// as an Import keeps them and as a poll reports them.
type ActivityCounts struct {
	ItemsTotalCount      int
	PersonCount          int
	ErrorCount           int
	CorrectableCount     int
	CannotAddToListCount int
	ActivityErrors       []string
}

// RecordActivity stores CC's latest report on an import. When the report is
// final it also settles the import's rows in the same transaction: imported
// when clean is true, otherwise failed with reason, so that they can be
// replayed. Rows that changed meanwhile (a new version) are left pending.
func (s *DB) RecordActivity(ctx context.Context, importID int64, a ActivityResult, clean bool, reason string) error {
	errs, _ := json.Marshal(nonNilSlice(a.ActivityErrors))
	now := s.utcNow()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var completed sql.NullTime
		if a.Final {
			completed = sql.NullTime{Time: now, Valid: true}
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE cc_imports SET state = ?, items_total_count = ?, person_count = ?, error_count = ?,
			   correctable_count = ?, cannot_add_to_list_count = ?, activity_errors = ?, updated_at = ?, completed_at = ?
			 WHERE id = ?`,
			a.State, a.ItemsTotalCount, a.PersonCount, a.ErrorCount, a.CorrectableCount, a.CannotAddToListCount,
			string(errs), now, completed, importID); err != nil {
			return err
		}
		if !a.Final {
			return nil
		}
		return s.settleRows(ctx, tx, importID, clean, reason, now)
	})
	if err != nil {
		return fmt.Errorf("store: record activity for import %d: %w", importID, err)
	}
	return nil
}

// FailImport marks an import that CC refused outright (a request it will
// never accept) and fails its rows with the reason.
func (s *DB) FailImport(ctx context.Context, importID int64, reason string) error {
	now := s.utcNow()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		errs, _ := json.Marshal([]string{reason})
		if _, err := tx.ExecContext(ctx,
			`UPDATE cc_imports SET state = ?, activity_errors = ?, updated_at = ?, completed_at = ? WHERE id = ?`,
			ImportRejected, string(errs), now, now, importID); err != nil {
			return err
		}
		return s.settleRows(ctx, tx, importID, false, reason, now)
	})
	if err != nil {
		return fmt.Errorf("store: fail import %d: %w", importID, err)
	}
	return nil
}

// RejectRows marks rows of an import that cannot be sent to CC as they are,
// or that CC refused, each with its reason, so that they are visible and
// never silently dropped or truncated. A replay of failed rows leaves them
// alone: sending them again as they are would meet the same refusal.
func (s *DB) RejectRows(ctx context.Context, importID int64, reasons map[int64]string) error {
	if err := s.markRows(ctx, importID, StatusRejected, reasons); err != nil {
		return fmt.Errorf("store: reject rows of import %d: %w", importID, err)
	}
	return nil
}

// FailRows marks rows of an import failed, each with its reason: whether CC
// took them cannot be told, and a replay sends them again.
func (s *DB) FailRows(ctx context.Context, importID int64, reasons map[int64]string) error {
	if err := s.markRows(ctx, importID, StatusFailed, reasons); err != nil {
		return fmt.Errorf("store: fail rows of import %d: %w", importID, err)
	}
	return nil
}

// markRows settles rows still importing under importID with status, each
// with its reason, in one transaction. Rows sharing a reason (thousands of
// them, when CC refused rows it did not name) go a thousand at a time.
func (s *DB) markRows(ctx context.Context, importID int64, status string, reasons map[int64]string) error {
	if len(reasons) == 0 {
		return nil
	}
	byReason := map[string][]int64{}
	for id, reason := range reasons {
		byReason[reason] = append(byReason[reason], id)
	}
	now := s.utcNow()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for reason, ids := range byReason {
			for start := 0; start < len(ids); start += 1000 {
				chunk := ids[start:min(start+1000, len(ids))]
				args := []any{status, truncate(reason, 1024), now, importID, StatusImporting}
				for _, id := range chunk {
					args = append(args, id)
				}
				if _, err := tx.ExecContext(ctx,
					`UPDATE enrollments SET status = ?, status_reason = ?, updated_at = ?
					 WHERE import_id = ? AND status = ? AND id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
					return err
				}
				if err := s.queueWriteback(ctx, tx, chunk, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// settleRows settles the rows an import still holds, imported when clean
// and otherwise failed with reason, and queues their write-back to HubSpot
// in the same transaction.
func (s *DB) settleRows(ctx context.Context, tx *sql.Tx, importID int64, clean bool, reason string, now time.Time) error {
	var ids []int64
	if s.writeback {
		var err error
		if ids, err = idsWhere(ctx, tx, `SELECT id FROM enrollments WHERE import_id = ? AND status = ?`,
			importID, StatusImporting); err != nil {
			return err
		}
	}
	if clean {
		if _, err := tx.ExecContext(ctx,
			`UPDATE enrollments SET status = ?, status_reason = '', imported_at = ?, updated_at = ?
			 WHERE import_id = ? AND status = ?`, StatusImported, now, now, importID, StatusImporting); err != nil {
			return err
		}
	} else if _, err := tx.ExecContext(ctx,
		`UPDATE enrollments SET status = ?, status_reason = ?, updated_at = ? WHERE import_id = ? AND status = ?`,
		StatusFailed, truncate(strings.TrimSpace(reason), 1024), now, importID, StatusImporting); err != nil {
		return err
	}
	return s.queueWriteback(ctx, tx, ids, now)
}

// StaleImports returns imports that are neither settled nor touched since
// before: their task may have been lost with Redis. The caller checks
// whether the task still exists before resuming one.
func (s *DB) StaleImports(ctx context.Context, before time.Time, limit int) ([]*Import, error) {
	imps, err := queryAll(ctx, s.db, scanImport,
		`SELECT `+importColumns+` FROM cc_imports
		 WHERE state IN (?, 'initialized', 'processing') AND updated_at < ? ORDER BY id LIMIT ?`,
		ImportClaimed, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: stale imports: %w", err)
	}
	return imps, nil
}

// ExtendImport adds to a claimed, not yet submitted import the other rows
// still pending for the same lists, oldest first, up to max rows in all. One
// CC call then carries everything that waited for those lists, which keeps
// CC calls per contact low however the queue grouped the tasks; the tasks
// of the rows taken here later find nothing to claim. It returns how many
// rows were added.
func (s *DB) ExtendImport(ctx context.Context, importID int64, max int) (int, error) {
	now := s.utcNow()
	added := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var state string
		var activityID sql.NullString
		var count int
		if err := tx.QueryRowContext(ctx,
			`SELECT state, activity_id, contact_count FROM cc_imports WHERE id = ? FOR UPDATE`, importID).
			Scan(&state, &activityID, &count); err != nil {
			return err
		}
		if state != ImportClaimed || activityID.Valid || count >= max {
			return nil
		}
		var listKey string
		err := tx.QueryRowContext(ctx,
			`SELECT list_key FROM enrollments WHERE import_id = ? AND status = ? LIMIT 1`, importID, StatusImporting).
			Scan(&listKey)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx,
			`UPDATE enrollments SET status = ?, import_id = ?, updated_at = ?
			 WHERE status = ? AND list_key = ? ORDER BY id LIMIT ?`,
			StatusImporting, importID, now, StatusPending, listKey, max-count)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		added = int(n)
		if n > 0 {
			_, err = tx.ExecContext(ctx, `UPDATE cc_imports SET contact_count = contact_count + ?, updated_at = ? WHERE id = ?`,
				n, now, importID)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: extend import %d: %w", importID, translate(err))
	}
	return added, nil
}

// ReleaseRows hands rows of a claimed import back to pending, for another
// import to take: an import that would exceed CC's 4 MB body keeps what
// fits and releases the rest.
func (s *DB) ReleaseRows(ctx context.Context, importID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := s.utcNow()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(ids); start += 1000 {
			chunk := ids[start:min(start+1000, len(ids))]
			args := make([]any, 0, len(chunk)+4)
			args = append(args, StatusPending, now, importID, StatusImporting)
			for _, id := range chunk {
				args = append(args, id)
			}
			r, err := tx.ExecContext(ctx,
				`UPDATE enrollments SET status = ?, import_id = NULL, updated_at = ?
				 WHERE import_id = ? AND status = ? AND id IN (`+placeholders(len(chunk))+`)`, args...)
			if err != nil {
				return err
			}
			n, err := r.RowsAffected()
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE cc_imports SET contact_count = contact_count - ? WHERE id = ?`, n, importID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: release rows of import %d: %w", importID, err)
	}
	return nil
}

// ImportLists returns the CC list names of the rows an import holds (every
// row of an import shares its list set), or nil when it holds none. The
// importer resolves them before it takes more rows or maps any.
func (s *DB) ImportLists(ctx context.Context, importID int64) ([]string, error) {
	var raw string
	err := s.db.QueryRowContext(ctx,
		`SELECT lists FROM enrollments WHERE import_id = ? AND status = ? LIMIT 1`, importID, StatusImporting).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: lists of import %d: %w", importID, err)
	}
	var lists []string
	if err := json.Unmarshal([]byte(raw), &lists); err != nil {
		return nil, fmt.Errorf("store: lists of import %d: %w", importID, err)
	}
	return lists, nil
}

// AbandonImport gives every row of an import CC never accepted back to
// pending and deletes the import: its lists cannot be used yet (a list is
// missing, CC is not connected), and the rows wait, untouched and with no
// failure, for a later import. Only a claimed import can be abandoned: one
// with an activity id is CC's, and a settled one is the record of what
// happened to its rows. It returns how many rows went back.
func (s *DB) AbandonImport(ctx context.Context, importID int64) (int, error) {
	now := s.utcNow()
	released := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var activityID sql.NullString
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT activity_id, state FROM cc_imports WHERE id = ? FOR UPDATE`, importID).
			Scan(&activityID, &state); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if activityID.Valid && activityID.String != "" {
			return fmt.Errorf("import %d was accepted by CC as activity %s", importID, activityID.String)
		}
		if state != ImportClaimed {
			return fmt.Errorf("import %d is %s, not claimed", importID, state)
		}
		r, err := tx.ExecContext(ctx,
			`UPDATE enrollments SET status = ?, import_id = NULL, updated_at = ? WHERE import_id = ? AND status = ?`,
			StatusPending, now, importID, StatusImporting)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		released = int(n)
		_, err = tx.ExecContext(ctx, `DELETE FROM cc_imports WHERE id = ?`, importID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: abandon import %d: %w", importID, err)
	}
	return released, nil
}

// MarkPosted records that the import is about to be sent to CC with
// contacts contacts, so that a retry which never learned CC's answer looks
// for it before posting again.
func (s *DB) MarkPosted(ctx context.Context, importID int64, contacts int) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE cc_imports SET posted_at = ?, posted_contacts = ?, updated_at = ? WHERE id = ?`,
		s.utcNow(), contacts, s.utcNow(), importID); err != nil {
		return fmt.Errorf("store: mark import %d posted: %w", importID, err)
	}
	return nil
}

// ClearPosted records that CC answered the import's post with a refusal:
// nothing was queued, and the next attempt posts without looking.
func (s *DB) ClearPosted(ctx context.Context, importID int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE cc_imports SET posted_at = NULL, posted_contacts = NULL WHERE id = ?`, importID); err != nil {
		return fmt.Errorf("store: clear import %d posted: %w", importID, err)
	}
	return nil
}

// ImportByActivity returns the import CC accepted as activityID, or
// ErrNotFound.
func (s *DB) ImportByActivity(ctx context.Context, activityID string) (*Import, error) {
	imp, err := scanImport(s.db.QueryRowContext(ctx, `SELECT `+importColumns+` FROM cc_imports WHERE activity_id = ?`, activityID))
	if err != nil {
		if err = translate(err); err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: import by activity: %w", err)
	}
	return imp, nil
}
