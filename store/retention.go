package store

import (
	"context"
	"fmt"
	"time"
)

// PurgeBodies empties the raw bodies of deliveries received before cutoff,
// at most limit of them, and deletes quarantined requests as old (they are
// nothing but a body and headers); it returns how many rows it touched. The
// delivery rows and the enrollments stay: only the personal data in the
// raw body goes.
func (s *DB) PurgeBodies(ctx context.Context, before time.Time, limit int) (int, error) {
	q, err := s.db.ExecContext(ctx, `DELETE FROM quarantine WHERE received_at < ? ORDER BY received_at LIMIT ?`, before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("store: purge quarantine: %w", err)
	}
	quarantined, _ := q.RowsAffected()
	r, err := s.db.ExecContext(ctx,
		`UPDATE deliveries SET body = '', purged_at = ? WHERE received_at < ? AND purged_at IS NULL ORDER BY received_at LIMIT ?`,
		s.utcNow(), before.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("store: purge delivery bodies: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: purge delivery bodies: %w", err)
	}
	return int(n + quarantined), nil
}
