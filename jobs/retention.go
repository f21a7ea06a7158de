package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// BodyPurger empties old raw delivery bodies; *store.DB is one.
type BodyPurger interface {
	PurgeBodies(ctx context.Context, before time.Time, limit int) (int, error)
}

// purgeBatch bounds one UPDATE, so that the purge never holds many row
// locks at once against the webhook's inserts.
const purgeBatch = 1000

// purgeHandler runs retention:purge: raw bodies older than retention are
// emptied in batches until none is left or the task's time is up.
func purgeHandler(p BodyPurger, retention time.Duration, log *slog.Logger) asynq.HandlerFunc {
	return func(ctx context.Context, _ *asynq.Task) error {
		before := time.Now().Add(-retention)
		total := 0
		for ctx.Err() == nil {
			n, err := p.PurgeBodies(ctx, before, purgeBatch)
			if err != nil {
				return err
			}
			total += n
			if n < purgeBatch {
				break
			}
		}
		if total > 0 {
			log.Info("purged raw delivery bodies past the retention", "count", total, "before", before)
		}
		return nil
	}
}
