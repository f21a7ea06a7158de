package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/store"
)

// UnsubscribeCC reads CC's unsubscribed contacts; *ccclient.Client is one.
type UnsubscribeCC interface {
	UnsubscribedSince(ctx context.Context, since time.Time, maxPages int) (emails map[string]bool, pages int, complete bool, err error)
}

const (
	// unsubscribeFirstWindow is how far back the first run reads, before
	// any cursor exists: the bridge's imports are kept for reconciling as
	// long.
	unsubscribeFirstWindow = ReconcileWindow
	// unsubscribeSkew is taken off the cursor, so that clocks a little
	// apart lose no unsubscribe; one read twice is written twice, which
	// changes nothing.
	unsubscribeSkew = time.Minute
	// unsubscribeMaxPages bounds one run (500 contacts a page).
	unsubscribeMaxPages = 40
)

// handleUnsubscribes runs hubspot:unsubscribes: it reads the CC contacts
// unsubscribed since the last complete run and queues
// hs2cc_cc_status=unsubscribed for the bridge's enrollments among them. It
// spends at most a quarter of what today's CC budget has left, so that it
// never starves the imports; a run with pages left unread keeps its cursor
// and reads them next time.
func (w *Writer) handleUnsubscribes(ctx context.Context, _ *asynq.Task) error {
	if w.cc == nil {
		return nil
	}
	last, err := w.st.GetUnsubscribeSync(ctx)
	if err != nil {
		return err
	}
	started := w.now()
	run := store.UnsubscribeSync{SyncedTo: last.SyncedTo, RanAt: started}
	since := last.SyncedTo.Add(-unsubscribeSkew)
	if last.SyncedTo.IsZero() {
		since = started.Add(-unsubscribeFirstWindow)
	}
	pages := unsubscribeMaxPages
	if w.budget != nil {
		remaining, err := w.budget.Remaining(ctx)
		if err != nil {
			return err
		}
		pages = min(pages, remaining/4)
	}
	if pages < 1 {
		run.Outcome, run.Detail = store.SyncSkipped, "skipped: today's CC budget is nearly spent; the next run reads what this one did not"
		w.log.Warn("unsubscribe sync skipped for the CC budget")
		return w.st.SaveUnsubscribeSync(ctx, run)
	}
	emails, read, complete, err := w.cc.UnsubscribedSince(ctx, since, pages)
	run.CCPages = read
	if err != nil && !isFailure(err) {
		// CC not connected, throttled or over its quota: the next run
		// reads from the same cursor. Returned, the wait would be run
		// again for ever beside each new periodic run.
		run.Outcome, run.Detail = store.SyncSkipped, "skipped: "+err.Error()
		return w.st.SaveUnsubscribeSync(ctx, run)
	}
	if err != nil {
		run.Outcome, run.Detail = store.SyncFailed, err.Error()
		return joinSave(ctx, w.st, run, err)
	}
	list := make([]string, 0, len(emails))
	for e := range emails {
		list = append(list, e)
	}
	run.Found = len(list)
	if run.Marked, err = w.st.MarkUnsubscribed(ctx, list, started); err != nil {
		run.Outcome, run.Detail = store.SyncFailed, err.Error()
		return joinSave(ctx, w.st, run, err)
	}
	run.Outcome, run.Detail = store.SyncDone, fmt.Sprintf("read CC's unsubscribes since %s", since.UTC().Format(time.RFC3339))
	if complete {
		run.SyncedTo = started
	} else {
		run.Outcome = store.SyncPartial
		run.Detail = fmt.Sprintf("read %d pages of CC's unsubscribes since %s and left the rest for the next run",
			read, since.UTC().Format(time.RFC3339))
	}
	if err := w.st.SaveUnsubscribeSync(ctx, run); err != nil {
		return err
	}
	w.log.Info("unsubscribe sync", "found", run.Found, "marked", run.Marked, "cc_pages", read, "complete", complete)
	if run.Marked > 0 {
		return w.enq.EnqueueWriteback(ctx)
	}
	return nil
}

// joinSave records a failed run and returns the failure.
func joinSave(ctx context.Context, st WritebackStore, run store.UnsubscribeSync, err error) error {
	if serr := st.SaveUnsubscribeSync(context.WithoutCancel(ctx), run); serr != nil {
		return fmt.Errorf("%w (and recording the run: %v)", err, serr)
	}
	return err
}
