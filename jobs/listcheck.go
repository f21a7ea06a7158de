package jobs

import (
	"context"
	"errors"
	"github.com/hs2cc/hs2cc/ccauth"
	"time"

	"github.com/hibiken/asynq"
)

// checkListsAtStart checks the rules' lists and custom fields when the
// worker starts, in the background: CC's throttling, 5xx and network faults are waited out with a
// growing pause, never an exit; before CC is connected there is nothing to
// check, and the check that connecting queues (cc:lists-check) does it then.
func (w *Worker) checkListsAtStart(ctx context.Context) {
	r := w.importer.resolver
	delay := time.Second
	for {
		missing, err := r.CheckAll(ctx)
		switch {
		case err == nil:
			if len(missing) == 0 {
				w.log.Info("the routing rules' CC lists and custom fields are ready", "lists", len(r.policy.Lists),
					"custom_fields", len(r.policy.Fields))
			}
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, ccauth.ErrNotConnected):
			w.log.Warn("Constant Contact is not connected yet: the routing rules' lists and custom fields are checked once it is (/oauth/connect or hs2cc connect)")
			return
		}
		w.log.Warn("could not check the routing rules' CC lists and custom fields yet; trying again", "err", err, "in", delay)
		if sleepCtx(ctx, delay) != nil {
			return
		}
		delay = min(2*delay, time.Minute)
	}
}

// handleListsCheck runs cc:lists-check: queued when CC gets connected, so
// that the lists are checked (and created, when the rules allow it) right
// then, and periodically, so that a missing list that appeared in CC
// leaves /ops even when no enrollment waits for it.
func (im *Importer) handleListsCheck(ctx context.Context, _ *asynq.Task) error {
	_, err := im.resolver.CheckAll(ctx)
	switch {
	case err == nil, errors.Is(err, ccauth.ErrNotConnected):
		// Before CC is connected there is nothing to check; connecting
		// queues this task again.
		return nil
	case passing(err) && !lastAttempt(ctx):
		return &waitError{after: 5 * time.Second, reason: "checking the CC lists: " + err.Error()}
	case passing(err):
		// A periodic run has no retries; the next period checks again.
		im.log.Warn("could not check the routing rules' CC lists; the next check will", "err", err)
		return nil
	}
	return err
}
