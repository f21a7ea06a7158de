package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// handleActivity polls one import's activity.
func (im *Importer) handleActivity(ctx context.Context, t *asynq.Task) error {
	p, err := decode[activityPayload](t)
	if err != nil {
		return err
	}
	imp, err := im.store.GetImport(ctx, p.ImportID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("import %d: %w", p.ImportID, asynq.SkipRetry)
		}
		return err
	}
	if !imp.CompletedAt.IsZero() {
		return nil
	}
	act, err := im.cc.GetActivity(ctx, imp.ActivityID)
	if err != nil {
		var apiErr *ccclient.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == 404 {
			// CC keeps activities for 10 days; a missing one cannot tell us
			// anything more, so its rows fail and can be replayed.
			return im.failImport(ctx, imp.ID, fmt.Sprintf("CC activity %s not found", imp.ActivityID))
		}
		if lastAttempt(ctx) {
			if ferr := im.store.FailImport(ctx, imp.ID, "polling gave up: "+err.Error()); ferr != nil {
				return errors.Join(err, ferr)
			}
		}
		return err
	}
	res := store.ActivityResult{State: act.State, Final: act.Final(), ActivityCounts: store.ActivityCounts{
		ItemsTotalCount: act.Status.ItemsTotalCount, PersonCount: act.Status.PersonCount,
		ErrorCount: act.Status.ErrorCount, CorrectableCount: act.Status.CorrectableCount,
		CannotAddToListCount: act.Status.CannotAddToListCount, ActivityErrors: act.ActivityErrors,
	}}
	clean := act.Clean()
	reason := ""
	if res.Final && !clean {
		reason = activityProblem(act)
		if act.State == ccclient.StateCompleted {
			// A completed import with problems took most of its rows:
			// the ones CC did not take are found and settled one by one,
			// and the rest are on their lists.
			if err := im.settleRefusals(ctx, imp, act); err != nil {
				return err
			}
			clean = true
		}
	}
	if !res.Final && im.pollGiveUp > 0 && im.now().Sub(imp.CreatedAt) > im.pollGiveUp {
		reason := fmt.Sprintf("CC activity %s still %s after %s; its rows are failed and can be replayed",
			imp.ActivityID, act.State, im.pollGiveUp)
		im.log.Error("gave up polling a CC activity", "import_id", imp.ID, "activity_id", imp.ActivityID, "state", act.State)
		return im.failImport(ctx, imp.ID, reason)
	}
	if err := im.store.RecordActivity(ctx, imp.ID, res, clean, reason); err != nil {
		return err
	}
	if res.Final && clean && im.metrics != nil {
		im.metrics.ImportSettled(ctx, imp.ID)
	}
	if !res.Final {
		return &waitError{after: im.pollDelay(imp.CreatedAt), reason: "activity " + act.State}
	}
	im.writebackDue(ctx, imp.ID)
	level := slog.LevelInfo
	if !clean {
		level = slog.LevelWarn
	}
	im.log.Log(ctx, level, "import finished", "import_id", imp.ID, "activity_id", imp.ActivityID,
		"state", act.State, "clean", clean, "person_count", res.PersonCount, "error_count", res.ErrorCount,
		"cannot_add_to_list_count", res.CannotAddToListCount)
	return nil
}

// failImport fails an import's rows, replayable, with reason, and asks
// for their write-back to HubSpot.
func (im *Importer) failImport(ctx context.Context, importID int64, reason string) error {
	if err := im.store.FailImport(ctx, importID, reason); err != nil {
		return err
	}
	im.writebackDue(ctx, importID)
	return nil
}

// pollDelay grows with the age of the import, so short imports are seen
// finished quickly and long ones do not spend CC's daily quota on polls.
func (im *Importer) pollDelay(created time.Time) time.Duration {
	d := im.now().Sub(created) / 4
	if d < im.pollInterval {
		d = im.pollInterval
	}
	if d > im.pollMax {
		d = im.pollMax
	}
	return d
}

func activityProblem(a *ccclient.Activity) string {
	parts := []string{"CC activity " + a.State}
	s := a.Status
	for _, c := range []struct {
		n    int
		what string
	}{{s.ErrorCount, "errors"}, {s.CorrectableCount, "correctable"}, {s.CannotAddToListCount, "cannot be added to lists (unsubscribed)"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(a.ActivityErrors) > 0 {
		errs := a.ActivityErrors
		if len(errs) > 5 {
			errs = errs[:5]
		}
		parts = append(parts, strings.Join(errs, "; "))
	}
	return strings.Join(parts, ", ")
}
