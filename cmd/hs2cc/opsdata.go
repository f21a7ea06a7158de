package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
)

// opsData is what /ops reads: the store's own methods, plus the oldest
// enrollment still waiting for CC.
type opsData struct {
	*store.DB
}

var _ handlers.OpsData = opsData{}

// OldestUnimported finds the pending, importing or failed enrollment whose
// waiting version was received first. A changed contact's row keeps the
// receipt of its first version, so the waiting version's receipt is that of
// its latest accepted delivery; a row with no such delivery falls back to
// its own receipt.
func (o opsData) OldestUnimported(ctx context.Context) (*handlers.OldestEnrollment, error) {
	var e handlers.OldestEnrollment
	err := o.SQL().QueryRowContext(ctx,
		`SELECT e.id, e.status, COALESCE(MAX(d.received_at), e.received_at) AS since
		 FROM enrollments e LEFT JOIN deliveries d ON d.enrollment_id = e.id AND d.verdict = ?
		 WHERE e.status IN (?, ?, ?)
		 GROUP BY e.id, e.status, e.received_at
		 ORDER BY since, e.id LIMIT 1`,
		store.VerdictAccepted, store.StatusPending, store.StatusImporting, store.StatusFailed).
		Scan(&e.ID, &e.Status, &e.Since)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oldest unimported enrollment: %w", err)
	}
	e.Since = e.Since.UTC()
	return &e, nil
}
