package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// noAnswer reports a post that may have reached CC without its answer
// reaching us: no HTTP answer at all (a timeout, a reset, a connection
// closed mid-answer). A refusal (any *APIError) or a call never sent (the
// budget, the token) is not one.
func noAnswer(err error) bool {
	var apiErr *ccclient.APIError
	return !errors.As(err, &apiErr) && ccclient.Transient(err)
}

// recentActivities is how many of CC's newest activities are read to find
// an import whose answer was lost; it was posted moments ago, and one page
// of them costs one call.
const recentActivities = 50

// postedSkew is taken off the time of the lost post when comparing it with
// CC's created_at, so that clocks a little apart miss nothing.
const postedSkew = time.Minute

// postedPatience is how long a lost post's import may stay uncounted in
// CC's activities (CC fills items_total_count once it starts) before the
// rows are posted again rather than waited for.
const postedPatience = 2 * time.Minute

// findPosted looks among CC's newest activities for the import imp posted
// last without an answer: created since that post, with as many rows as it
// carried, and recorded by no other import. It returns nil when there is
// none, so that the caller posts again, or a wait while a candidate is not
// counted yet.
func (im *Importer) findPosted(ctx context.Context, imp *store.Import) (*ccclient.Activity, error) {
	acts, err := im.cc.RecentActivities(ctx, recentActivities)
	if err != nil {
		return nil, err
	}
	since := imp.PostedAt.Add(-postedSkew)
	uncounted := false
	for i := range acts {
		a := &acts[i]
		if a.ActivityID == "" || a.CreatedAt.Before(since) {
			continue
		}
		switch n := a.Status.ItemsTotalCount; {
		case n == 0 && !a.Final():
			uncounted = true
			continue
		case n != imp.PostedContacts:
			continue
		}
		switch _, err := im.store.ImportByActivity(ctx, a.ActivityID); {
		case errors.Is(err, store.ErrNotFound):
			im.log.Warn("an import whose answer was lost was found in CC's activities; it is polled, not posted again",
				"import_id", imp.ID, "activity_id", a.ActivityID, "contacts", imp.PostedContacts)
			return a, nil
		case err != nil:
			return nil, err
		}
	}
	if uncounted && im.now().Sub(imp.PostedAt) < postedPatience {
		return nil, &waitError{after: 5 * time.Second, reason: "an import whose answer was lost may be among CC's activities not yet counted"}
	}
	im.log.Warn("an import whose answer was lost is not among CC's activities; posting it again", "import_id", imp.ID)
	return nil, nil
}
