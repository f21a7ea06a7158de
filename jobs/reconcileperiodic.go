package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// ReconcileWindow is how far back the periodic reconcile looks at imports,
// the same window `hs2cc reconcile` uses by default.
const ReconcileWindow = 30 * 24 * time.Hour

// reconcileHandler runs cc:reconcile: a report-only reconcile of the rules'
// lists, kept for /ops, that never repairs (a person decides that) and
// skips itself when it would spend more than half of what today's CC
// budget has left, so that a check never starves the imports.
func reconcileHandler(rc *Reconciler, lists func() []string, found func(ctx context.Context)) asynq.HandlerFunc {
	return func(ctx context.Context, _ *asynq.Task) error {
		run, err := rc.Run(ctx, ReconcileOptions{
			Source:  "periodic",
			Lists:   lists(),
			Since:   rc.now().Add(-ReconcileWindow),
			Approve: withinHalfBudget,
		})
		if run != nil && run.Missing+run.Unsubscribed > 0 {
			found(ctx)
		}
		if errors.Is(err, ErrReconcileRefused) {
			// The skip is recorded with the run and shown on /ops; it is
			// not a failure of the task.
			return nil
		}
		return err
	}
}

// withinHalfBudget refuses a phase that would spend more than half of the
// calls today's budget has left.
func withinHalfBudget(_ context.Context, p ReconcilePhase) error {
	if p.Remaining >= 0 && p.Calls > p.Remaining/2 {
		return fmt.Errorf("%w: skipped: the %s phase would spend %d CC calls, more than half of the %d left today",
			ErrReconcileRefused, p.Name, p.Calls, p.Remaining)
	}
	return nil
}

// newPeriodicReconciler builds the reconciler of cc:reconcile when the
// interval asks for one and the CC client and store can do it (test fakes
// usually cannot).
func newPeriodicReconciler(cfg Config, st Store, cc CC, im *Importer) (*Reconciler, bool) {
	rcc, ok := cc.(ReconcileCC)
	rst, ok2 := st.(ReconcileStore)
	if cfg.ReconcileInterval <= 0 || !ok || !ok2 {
		return nil, false
	}
	return NewReconciler(rcc, rst, im.budget, im.log), true
}
