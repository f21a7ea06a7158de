package jobs

import (
	"context"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
)

// listsChanged reports whether CC's refusal of an import may come from its
// lists: it looks them up again, uncached, and compares the ids with those
// sent. A list now missing comes back as the blocking error; a lookup that
// fails otherwise leaves the refusal as it was.
func (im *Importer) listsChanged(ctx context.Context, lists, sent []string) (bool, error) {
	im.resolver.Forget(lists)
	now, err := im.resolver.Resolve(ctx, lists)
	if err != nil {
		return false, err
	}
	return !slices.Equal(now, sent), nil
}

// park gives an import's rows back to pending when its lists cannot be used
// yet (a list is missing, CC is not connected), and leaves one waiting task
// per list set that sends them on once they can. No retry is spent and no
// row fails: they wait as pending, however long a person takes.
func (im *Importer) park(ctx context.Context, imp *store.Import, cause error) error {
	lists, err := im.store.ImportLists(ctx, imp.ID)
	if err != nil {
		return err
	}
	n, err := im.store.AbandonImport(ctx, imp.ID)
	if err != nil {
		return err
	}
	if lists == nil {
		return nil
	}
	if err := im.enq.enqueueImportWait(ctx, lists); err != nil {
		return err
	}
	im.log.Warn("enrollments wait: their CC lists cannot be used yet", "import_id", imp.ID, "rows", n, "lists", lists, "why", cause)
	return nil
}

// importWaitPoll is how often a waiting list set asks whether it can go
// on; the CC calls behind it are bounded by recheck.
const importWaitPoll = 10 * time.Second

// handleImportWait runs cc:import-wait, the one waiting task of a list set
// whose rows were parked. It waits, spending no retry, until CC is
// connected and every list resolves, then queues the set's pending rows.
func (im *Importer) handleImportWait(ctx context.Context, t *asynq.Task) error {
	p, err := decode[importWaitPayload](t)
	if err != nil {
		return err
	}
	if im.tokens != nil {
		if _, err := im.tokens.Token(ctx); err != nil {
			return im.waitOr(err)
		}
	}
	if _, err := im.resolver.Resolve(ctx, p.Lists); err != nil {
		return im.waitOr(err)
	}
	n, err := im.requeueSet(ctx, GroupKey(p.Lists))
	if err != nil {
		return err
	}
	im.log.Info("waiting enrollments go on to CC", "lists", p.Lists, "rows", n)
	return nil
}

// waitOr turns a blocking or passing error into a wait of importWaitPoll.
func (im *Importer) waitOr(err error) error {
	if blocked(err) || passing(err) {
		return &waitError{after: importWaitPoll, reason: err.Error()}
	}
	return err
}

// requeueSet queues every pending row of the list set listKey as imports of
// at most one import's worth each, and returns how many rows it queued. A
// row queued twice is claimed once.
func (im *Importer) requeueSet(ctx context.Context, listKey string) (int, error) {
	var after int64
	total := 0
	for {
		ids, err := im.store.PendingIDs(ctx, listKey, after, im.maxContacts)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		if err := im.enq.enqueueImport(ctx, listKey, ids); err != nil {
			return total, err
		}
		total += len(ids)
		after = ids[len(ids)-1]
	}
}
