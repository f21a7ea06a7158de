package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// CC is the part of the Constant Contact client the worker uses.
type CC interface {
	ImportContacts(ctx context.Context, req *ccclient.ImportRequest) (*ccclient.Activity, error)
	GetActivity(ctx context.Context, id string) (*ccclient.Activity, error)
	ContactListByName(ctx context.Context, name string) (*ccclient.ContactList, error)
}

// Store is the part of the store the worker uses.
type Store interface {
	ClaimImport(ctx context.Context, taskID, listKey string, ids []int64) (*store.Import, error)
	ImportRows(ctx context.Context, importID int64) ([]*store.Enrollment, error)
	SubmitImport(ctx context.Context, importID int64, lists, listIDs []string, activityID, state string) error
	RejectRows(ctx context.Context, importID int64, reasons map[int64]string) error
	RecordActivity(ctx context.Context, importID int64, a store.ActivityResult, clean bool, reason string) error
	FailImport(ctx context.Context, importID int64, reason string) error
	GetImport(ctx context.Context, id int64) (*store.Import, error)
	StalePending(ctx context.Context, before time.Time, limit int) ([]store.PendingRef, error)
	StaleImports(ctx context.Context, before time.Time, limit int) ([]*store.Import, error)
}

// Importer handles cc:import and cc:activity.
type Importer struct {
	store        Store
	cc           CC
	enq          *Enqueuer
	log          *slog.Logger
	pollInterval time.Duration
	pollMax      time.Duration
	now          func() time.Time

	mu      sync.Mutex
	listIDs map[string]string // list name → CC list id, cached for the process
}

func newImporter(st Store, cc CC, enq *Enqueuer, log *slog.Logger, pollInterval, pollMax time.Duration) *Importer {
	return &Importer{store: st, cc: cc, enq: enq, log: log, pollInterval: pollInterval, pollMax: pollMax,
		now: time.Now, listIDs: map[string]string{}}
}

// handleEnrollment runs an enrollment:sync task that reached a handler
// without being aggregated (enqueued with no group): it is imported alone.
func (im *Importer) handleEnrollment(ctx context.Context, t *asynq.Task) error {
	p, err := decode[enrollmentPayload](t)
	if err != nil {
		return err
	}
	return im.importBatch(ctx, "", []int64{p.EnrollmentID})
}

// handleImport runs one cc:import task.
func (im *Importer) handleImport(ctx context.Context, t *asynq.Task) error {
	p, err := decode[importPayload](t)
	if err != nil {
		return err
	}
	return im.importBatch(ctx, p.Group, p.EnrollmentIDs)
}

func (im *Importer) importBatch(ctx context.Context, group string, ids []int64) error {
	taskID, _ := asynq.GetTaskID(ctx)
	imp, err := im.store.ClaimImport(ctx, taskID, group, ids)
	if err != nil {
		return err
	}
	if imp == nil {
		im.log.Info("import batch had nothing left to claim", "task_id", taskID, "enrollments", len(ids))
		return nil
	}
	if !imp.CompletedAt.IsZero() {
		// asynq delivers at least once, so the task may run again after its
		// import settled; going on would only overwrite the recorded
		// outcome (submit fails an import it finds no rows under).
		return nil
	}
	if imp.ActivityID != "" {
		// An earlier run of this task got CC's 201 but stopped before the
		// poll was queued; never post the same import twice.
		return im.enq.enqueueActivityPoll(ctx, imp.ID, im.pollInterval)
	}
	err = im.submit(ctx, imp)
	if err == nil {
		return nil
	}
	if permanent(err) || lastAttempt(ctx) {
		if ferr := im.store.FailImport(ctx, imp.ID, err.Error()); ferr != nil {
			return errors.Join(err, ferr)
		}
		im.log.Error("import failed for good; its rows are marked failed and can be replayed",
			"import_id", imp.ID, "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

func (im *Importer) submit(ctx context.Context, imp *store.Import) error {
	rows, err := im.store.ImportRows(ctx, imp.ID)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		// Nothing is left under this claim; settle the import so that the
		// sweep does not keep resuming it.
		return im.store.FailImport(ctx, imp.ID, "no rows left under the claim")
	}
	lists := rows[0].Lists
	listIDs, err := im.resolveLists(ctx, lists)
	if err != nil {
		return err
	}
	contacts, rejected := contactsFor(rows)
	if err := im.store.RejectRows(ctx, imp.ID, rejected); err != nil {
		return err
	}
	if len(rejected) > 0 {
		im.log.Warn("rows rejected before import: values over CC's limits", "import_id", imp.ID, "rejected", len(rejected))
	}
	if len(contacts) == 0 {
		return im.store.FailImport(ctx, imp.ID, "every row was rejected before import")
	}
	req := &ccclient.ImportRequest{ImportData: contacts, ListIDs: listIDs}
	act, err := im.cc.ImportContacts(ctx, req)
	if err != nil {
		return fmt.Errorf("import %d: %w", imp.ID, err)
	}
	if err := im.store.SubmitImport(ctx, imp.ID, lists, listIDs, act.ActivityID, act.State); err != nil {
		return err
	}
	im.log.Info("import submitted to Constant Contact", "import_id", imp.ID, "activity_id", act.ActivityID,
		"contacts", len(req.ImportData), "lists", len(listIDs))
	return im.enq.enqueueActivityPoll(ctx, imp.ID, im.pollInterval)
}

// contactsFor maps enrollment rows to CC import contacts. A row with a value
// CC would refuse is rejected with its reason instead of sent, since CC
// refuses a whole import for one bad contact; nothing is cut short. The same
// email twice keeps the newest row (rows come oldest first), since CC upserts
// by lower-cased email and the last one would win there anyway.
func contactsFor(rows []*store.Enrollment) ([]ccclient.ImportContact, map[int64]string) {
	index := make(map[string]int, len(rows))
	out := make([]ccclient.ImportContact, 0, len(rows))
	rejected := map[int64]string{}
	for _, r := range rows {
		if reason := overCCLimits(r); reason != "" {
			rejected[r.ID] = reason
			continue
		}
		c := ccclient.ImportContact{Email: r.Email, FirstName: r.FirstName, LastName: r.LastName, Country: r.Country}
		key := strings.ToLower(r.Email)
		if i, ok := index[key]; ok {
			out[i] = c
			continue
		}
		index[key] = len(out)
		out = append(out, c)
	}
	return out, rejected
}

// ccTextMax is CC's maxLength for email, first_name, last_name and country
// in contacts_json_import.
const ccTextMax = 50

// overCCLimits names the first field of r that CC would refuse, or "".
func overCCLimits(r *store.Enrollment) string {
	for _, f := range []struct{ name, value string }{
		{"email", r.Email}, {"first_name", r.FirstName}, {"last_name", r.LastName}, {"country", r.Country},
	} {
		if n := utf8.RuneCountInString(f.value); n > ccTextMax {
			return fmt.Sprintf("%s is %d characters; Constant Contact accepts at most %d", f.name, n, ccTextMax)
		}
	}
	return ""
}

// resolveLists turns list names into CC list ids, caching them for the life
// of the process; list ids never change once a list exists.
func (im *Importer) resolveLists(ctx context.Context, names []string) ([]string, error) {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	ids := make([]string, 0, len(sorted))
	for _, name := range sorted {
		im.mu.Lock()
		id, ok := im.listIDs[name]
		im.mu.Unlock()
		if !ok {
			l, err := im.cc.ContactListByName(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("resolve CC list %q: %w", name, err)
			}
			id = l.ListID
			im.mu.Lock()
			im.listIDs[name] = id
			im.mu.Unlock()
		}
		ids = append(ids, id)
	}
	return ids, nil
}

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
			reason := fmt.Sprintf("CC activity %s not found", imp.ActivityID)
			if ferr := im.store.FailImport(ctx, imp.ID, reason); ferr != nil {
				return ferr
			}
			return nil
		}
		if lastAttempt(ctx) {
			if ferr := im.store.FailImport(ctx, imp.ID, "polling gave up: "+err.Error()); ferr != nil {
				return errors.Join(err, ferr)
			}
		}
		return err
	}
	res := store.ActivityResult{
		State: act.State, Final: act.Final(),
		ItemsTotalCount: act.Status.ItemsTotalCount, PersonCount: act.Status.PersonCount,
		ErrorCount: act.Status.ErrorCount, CorrectableCount: act.Status.CorrectableCount,
		CannotAddToListCount: act.Status.CannotAddToListCount, ActivityErrors: act.ActivityErrors,
	}
	clean := act.Clean()
	reason := ""
	if res.Final && !clean {
		reason = activityProblem(act)
	}
	if err := im.store.RecordActivity(ctx, imp.ID, res, clean, reason); err != nil {
		return err
	}
	if !res.Final {
		return &waitError{after: im.pollDelay(imp.CreatedAt), reason: "activity " + act.State}
	}
	level := slog.LevelInfo
	if !clean {
		level = slog.LevelWarn
	}
	im.log.Log(ctx, level, "import finished", "import_id", imp.ID, "activity_id", imp.ActivityID,
		"state", act.State, "clean", clean, "person_count", res.PersonCount, "error_count", res.ErrorCount,
		"cannot_add_to_list_count", res.CannotAddToListCount)
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

// permanent reports whether CC refused a request in a way that repeating it
// cannot fix (validation, unsupported media type, unknown resource), or the
// client refused to send it for breaking CC's limits.
func permanent(err error) bool {
	// A request the client refuses to send would be refused again.
	if errors.Is(err, ccclient.ErrImportTooLarge) || errors.Is(err, ccclient.ErrInvalidImport) {
		return true
	}
	var apiErr *ccclient.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.StatusCode {
	case 400, 404, 409, 413, 415, 422:
		return true
	}
	return false
}

// lastAttempt reports whether a failure now exhausts the task's retries, so
// that the handler can leave its rows failed (replayable) instead of stuck.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= max
}
