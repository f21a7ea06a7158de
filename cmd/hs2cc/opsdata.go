package main

import (
	"context"

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
// waiting version was received first (store.OldestWaiting, from an index).
func (o opsData) OldestUnimported(ctx context.Context) (*handlers.OldestEnrollment, error) {
	w, err := o.OldestWaiting(ctx)
	if err != nil || w == nil {
		return nil, err
	}
	return &handlers.OldestEnrollment{ID: w.ID, Status: w.Status, Since: w.Since}, nil
}
