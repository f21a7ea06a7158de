package handlers

import (
	"context"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// ReconcileRuns is the optional part of OpsData that /ops reads the last
// `hs2cc reconcile` (or cc:reconcile) run from; *store.DB is one.
type ReconcileRuns interface {
	LastReconcileRun(ctx context.Context) (*store.ReconcileRun, error)
}

// reconcileReport is the last comparison of the bridge's imports with CC's
// lists; null in status.json until one has run.
type reconcileReport struct {
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     time.Time  `json:"finished_at"`
	Source         string     `json:"source"`
	Lists          []string   `json:"lists"`
	Since          *time.Time `json:"since,omitempty"`
	Outcome        string     `json:"outcome"`
	Detail         string     `json:"detail,omitempty"`
	Missing        int        `json:"missing"`
	Unsubscribed   int        `json:"unsubscribed"`
	Unknown        int        `json:"unknown"`
	Repaired       int        `json:"repaired"`
	CCCalls        int        `json:"cc_calls"`
	AnnouncedCalls int        `json:"announced_calls"`
}

// reconcile reads the last reconcile run, when the ops data can.
func (c *opsCollector) reconcile() {
	rr, ok := c.cfg.Ops.(ReconcileRuns)
	if !ok {
		return
	}
	run, err := rr.LastReconcileRun(c.ctx)
	if err != nil {
		c.fail("reconcile", err)
		return
	}
	if run == nil {
		return
	}
	c.r.Reconcile = &reconcileReport{StartedAt: run.StartedAt.UTC(), FinishedAt: run.FinishedAt.UTC(), Source: run.Source,
		Lists: run.Lists, Since: timePtr(run.Since), Outcome: run.Outcome, Detail: run.Detail,
		Missing: run.Missing, Unsubscribed: run.Unsubscribed, Unknown: run.Unknown, Repaired: run.Repaired,
		CCCalls: run.CCCalls, AnnouncedCalls: run.AnnouncedCalls}
}
