package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Attention kinds: what stopped work, named by its subject.
const (
	// AttentionMissingList is a CC list the routing rules name that does
	// not exist in CC and may not be created; its subject is the list name.
	AttentionMissingList = "missing_list"
	// AttentionMissingField is a CC custom field the rules map to that does
	// not exist and may not be created; its subject is the field's name.
	AttentionMissingField = "missing_field"
)

// Attention is one state that stops the bridge's work until a person acts:
// enrollments bound for its subject wait, and every place ops look names
// it.
type Attention struct {
	Kind    string
	Subject string
	// Detail says what is wrong and what to do, for a person.
	Detail string
	// Since is when the state was first found; CheckedAt when the subject
	// was last checked against CC.
	Since     time.Time
	CheckedAt time.Time
}

// RaiseAttention records that subject of kind stops work, or that it still
// does: the detail and the check time are updated, the first time found is
// kept.
func (s *DB) RaiseAttention(ctx context.Context, kind, subject, detail string) error {
	now := s.utcNow()
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO attention (kind, subject, detail, since, checked_at) VALUES (?, ?, ?, ?, ?)
		 ON DUPLICATE KEY UPDATE detail = VALUES(detail), checked_at = VALUES(checked_at)`,
		kind, truncate(subject, 255), truncate(strings.TrimSpace(detail), 1024), now, now)
	if err != nil {
		return fmt.Errorf("store: raise attention %s %q: %w", kind, subject, err)
	}
	return nil
}

// ClearAttention records that subject of kind no longer stops work.
func (s *DB) ClearAttention(ctx context.Context, kind, subject string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM attention WHERE kind = ? AND subject = ?`, kind, truncate(subject, 255)); err != nil {
		return fmt.Errorf("store: clear attention %s %q: %w", kind, subject, err)
	}
	return nil
}

// KeepAttention clears every state of kind whose subject is not in keep: a
// list the rules no longer name stops nothing, whatever an older
// configuration found.
func (s *DB) KeepAttention(ctx context.Context, kind string, keep []string) error {
	q := `DELETE FROM attention WHERE kind = ?`
	args := []any{kind}
	if len(keep) > 0 {
		q += ` AND subject NOT IN (` + placeholders(len(keep)) + `)`
		for _, k := range keep {
			args = append(args, truncate(k, 255))
		}
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store: prune attention %s: %w", kind, err)
	}
	return nil
}

// GetAttention returns the state of subject of kind, or ErrNotFound when
// nothing is recorded.
func (s *DB) GetAttention(ctx context.Context, kind, subject string) (*Attention, error) {
	a, err := scanAttention(s.db.QueryRowContext(ctx,
		`SELECT kind, subject, detail, since, checked_at FROM attention WHERE kind = ? AND subject = ?`,
		kind, truncate(subject, 255)))
	if err != nil {
		if err = translate(err); err == ErrNotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: get attention: %w", err)
	}
	return a, nil
}

// ListAttention returns every recorded state, oldest first.
func (s *DB) ListAttention(ctx context.Context) ([]*Attention, error) {
	out, err := queryAll(ctx, s.db, scanAttention,
		`SELECT kind, subject, detail, since, checked_at FROM attention ORDER BY since, kind, subject`)
	if err != nil {
		return nil, fmt.Errorf("store: list attention: %w", err)
	}
	return out, nil
}

func scanAttention(r rowScanner) (*Attention, error) {
	var a Attention
	if err := r.Scan(&a.Kind, &a.Subject, &a.Detail, &a.Since, &a.CheckedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

// CountWaitingFor counts the enrollments not yet imported (pending or
// importing) that are bound for the CC list named list: how many agents a
// missing list holds back.
func (s *DB) CountWaitingFor(ctx context.Context, list string) (int, error) {
	name, _ := json.Marshal(list)
	var n int
	err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM enrollments WHERE status IN (?, ?) AND JSON_CONTAINS(lists, ?)`,
		StatusPending, StatusImporting, string(name)).Scan(&n)
	if err != nil && err != sql.ErrNoRows {
		return 0, fmt.Errorf("store: count enrollments waiting for %q: %w", list, err)
	}
	return n, nil
}
