package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// RequeueFilter picks enrollments for a backfill or a replay.
type RequeueFilter struct {
	Statuses []string  // required: the statuses to take, e.g. failed
	Since    time.Time // only rows last changed at or after this; zero for all
	List     string    // only rows bound for this CC list; "" for any
	// IDs, when set, keeps only these enrollments: a reconcile's repair
	// names the imported rows CC lost.
	IDs []int64
}

func (f RequeueFilter) where() (string, []any, error) {
	if len(f.Statuses) == 0 {
		return "", nil, fmt.Errorf("store: requeue: no status given")
	}
	q := "status IN (" + placeholders(len(f.Statuses)) + ")"
	args := make([]any, 0, len(f.Statuses)+2)
	for _, s := range f.Statuses {
		args = append(args, s)
	}
	if !f.Since.IsZero() {
		q += " AND updated_at >= ?"
		args = append(args, f.Since.UTC())
	}
	if f.List != "" {
		// lists is a JSON array of names; JSON_CONTAINS works on MySQL 8
		// and MariaDB alike.
		name, _ := json.Marshal(f.List)
		q += " AND JSON_CONTAINS(lists, ?)"
		args = append(args, string(name))
	}
	if len(f.IDs) > 0 {
		q += " AND id IN (" + placeholders(len(f.IDs)) + ")"
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	return q, args, nil
}

// CountRequeue counts the enrollments f picks; a dry run reports it.
func (s *DB) CountRequeue(ctx context.Context, f RequeueFilter) (int, error) {
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM enrollments WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count requeue: %w", err)
	}
	return n, nil
}

// RequeueBatch moves up to limit of the enrollments f picks, with ids above
// afterID, back to pending (clearing the reason and the old import) and
// returns what the caller must enqueue, in id order. Each row is taken by
// a status transition, so two replays running at once queue a row once.
func (s *DB) RequeueBatch(ctx context.Context, f RequeueFilter, afterID int64, limit int) ([]PendingRef, error) {
	where, args, err := f.where()
	if err != nil {
		return nil, err
	}
	var refs []PendingRef
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		refs = refs[:0]
		rows, err := tx.QueryContext(ctx,
			`SELECT id, version, lists, status FROM enrollments WHERE id > ? AND `+where+` ORDER BY id LIMIT ? FOR UPDATE`,
			append(append([]any{afterID}, args...), limit)...)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var r PendingRef
			var lists, status string
			if err := rows.Scan(&r.ID, &r.Version, &lists, &status); err != nil {
				rows.Close()
				return err
			}
			if err := json.Unmarshal([]byte(lists), &r.Lists); err != nil {
				rows.Close()
				return fmt.Errorf("enrollment %d lists: %w", r.ID, err)
			}
			refs = append(refs, r)
			if status != StatusPending {
				ids = append(ids, r.ID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		now := s.utcNow()
		// The outcome each row reached is kept, since the row forgets it.
		if err := archiveAttempts(ctx, tx, EndedByReplay, now, ids); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE enrollments SET status = ?, status_reason = '', import_id = NULL, updated_at = ?
			 WHERE id IN (`+placeholders(len(ids))+`)`, append([]any{StatusPending, now}, ids...)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: requeue: %w", translate(err))
	}
	return refs, nil
}

// ParseStatuses checks a comma-separated status list against the known
// ones; importing rows belong to a running import and are never taken.
func ParseStatuses(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case StatusPending, StatusFailed, StatusRejected:
			out = append(out, p)
		case "":
		default:
			return nil, fmt.Errorf("store: status %q cannot be requeued (pending, failed or rejected)", p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("store: name a status to requeue")
	}
	return out, nil
}
