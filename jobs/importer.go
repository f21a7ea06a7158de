package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// CC is the part of the Constant Contact client the worker uses.
type CC interface {
	Catalog
	ImportContacts(ctx context.Context, req *ccclient.ImportRequest) (*ccclient.Activity, error)
	GetActivity(ctx context.Context, id string) (*ccclient.Activity, error)
	UnsubscribedEmails(ctx context.Context, maxPages int) (map[string]bool, bool, error)
	UpdatedEmails(ctx context.Context, listID string, since time.Time, maxPages int) (map[string]bool, bool, error)
	RecentActivities(ctx context.Context, limit int) ([]ccclient.Activity, error)
}

// Mapper turns an enrollment into the CC contact sent for it, or a reason
// it cannot be sent; *routing.Rules is one.
type Mapper interface {
	Contact(e *store.Enrollment) (ccclient.ImportContact, string)
}

// Budget reports what is left of today's CC calls; *store.CCLimits is one.
type Budget interface {
	Remaining(ctx context.Context) (int, error)
	Budget() int
}

// Store is the part of the store the worker uses.
type Store interface {
	AttentionStore
	ClaimImport(ctx context.Context, taskID, listKey string, ids []int64) (*store.Import, error)
	EachImportRow(ctx context.Context, importID int64, fn func(*store.Enrollment) error) error
	SubmitImport(ctx context.Context, importID int64, lists, listIDs []string, activityID, state string) error
	RejectRows(ctx context.Context, importID int64, reasons map[int64]string) error
	FailRows(ctx context.Context, importID int64, reasons map[int64]string) error
	MarkPosted(ctx context.Context, importID int64, contacts int) error
	ClearPosted(ctx context.Context, importID int64) error
	ImportByActivity(ctx context.Context, activityID string) (*store.Import, error)
	RecordActivity(ctx context.Context, importID int64, a store.ActivityResult, clean bool, reason string) error
	FailImport(ctx context.Context, importID int64, reason string) error
	MarkUnsubscribed(ctx context.Context, emails []string, at time.Time) (int, error)
	ExtendImport(ctx context.Context, importID int64, max int) (int, error)
	ReleaseRows(ctx context.Context, importID int64, ids []int64) error
	ImportLists(ctx context.Context, importID int64) ([]string, error)
	AbandonImport(ctx context.Context, importID int64) (int, error)
	PendingIDs(ctx context.Context, listKey string, afterID int64, limit int) ([]int64, error)
	PendingPage(ctx context.Context, after store.PendingCursor, limit int) ([]store.PendingRef, store.PendingCursor, error)
	GetImport(ctx context.Context, id int64) (*store.Import, error)
	StalePending(ctx context.Context, before time.Time, limit int) ([]store.PendingRef, error)
	StaleImports(ctx context.Context, before time.Time, limit int) ([]*store.Import, error)
	SwapRedisEpoch(ctx context.Context, epoch string) (string, error)
}

// Importer handles cc:import (here) and cc:activity (activity.go).
type Importer struct {
	store        Store
	cc           CC
	enq          *Enqueuer
	log          *slog.Logger
	pollInterval time.Duration
	pollMax      time.Duration
	pollGiveUp   time.Duration
	maxContacts  int // contacts in one CC import
	maxBytes     int // encoded body of one CC import
	mapper       Mapper
	budget       Budget
	metrics      Metrics
	now          func() time.Time
	// resolver turns the rules' list names into ids and makes sure their
	// custom fields exist; every import asks it.
	resolver *Resolver
	// tokens, when set, tells a waiting list set whether CC is connected
	// before it sends rows to an import that would only find it is not.
	tokens ccclient.TokenSource
	// writer, when set, is told when rows settle, for their HubSpot
	// write-back.
	writer *Writer
}

// writebackDue asks for the write-back of rows an import just settled.
// A failure to ask loses nothing: the rows are in the outbox, and the
// periodic hubspot:writeback sends them within a minute.
func (im *Importer) writebackDue(ctx context.Context, importID int64) {
	if im.writer == nil {
		return
	}
	if err := im.enq.EnqueueWriteback(ctx); err != nil {
		im.log.Warn("could not queue the HubSpot write-back; the periodic one will send it", "import_id", importID, "err", err)
	}
}

// newImporter builds the importer; its resolver knows no policy until the
// worker gives it one (WithPolicy), and then creates nothing.
func newImporter(st Store, cc CC, enq *Enqueuer, log *slog.Logger, cfg Config) *Importer {
	return &Importer{store: st, cc: cc, enq: enq, log: log, pollInterval: cfg.PollInterval, pollMax: cfg.PollMaxInterval,
		pollGiveUp: cfg.PollGiveUp, maxContacts: cmp.Or(cfg.ImportMaxContacts, ccclient.MaxImportContacts),
		maxBytes: cmp.Or(cfg.ImportMaxBytes, importBodyLimit), now: time.Now,
		resolver: NewResolver(cc, st, Policy{}, log)}
}

// importBodyLimit keeps an import body clear of CC's 4 MB: CC silently drops
// whatever lies past it, and whether "4 MB" means 4,000,000 or 4,194,304
// bytes is not documented, so the lower reading with a margin is used.
const importBodyLimit = ccclient.MaxImportBytes - 50_000

// Budget-aware batching: once fewer than a tenth of today's calls remain,
// an import that is not yet full waits (up to lowBudgetHold at a time, and
// no longer than lowBudgetMaxAge after its oldest row arrived) so that more
// rows join it and fewer calls carry them.
const (
	lowBudgetHold   = 5 * time.Minute
	lowBudgetMaxAge = 2 * time.Hour
)

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
	if blocked(err) {
		return im.park(ctx, imp, err)
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
	// The lists come first: while one is missing or CC is not connected
	// the rows go back to wait (park), and neither taking more rows nor
	// mapping them would serve anything.
	lists, err := im.store.ImportLists(ctx, imp.ID)
	if err != nil {
		return err
	}
	if lists == nil {
		// Nothing is left under this claim; settle the import so that the
		// sweep does not keep resuming it.
		return im.store.FailImport(ctx, imp.ID, "no rows left under the claim")
	}
	listIDs, err := im.resolver.Resolve(ctx, lists)
	if err != nil {
		return err
	}
	if !imp.PostedAt.IsZero() {
		// The last post of this import got no answer (a timeout, a reset,
		// or a worker that died before saving CC's 201), so CC may have
		// queued it: finding it costs one call, posting again a second
		// import. It is looked for before any row is added to the claim.
		act, err := im.findPosted(ctx, imp)
		if err != nil {
			return err
		}
		if act != nil {
			return im.submitted(ctx, imp, lists, listIDs, act, imp.PostedContacts)
		}
	}
	contacts, err := im.gather(ctx, imp, lists, listIDs)
	if err != nil || contacts == nil {
		return err
	}
	return im.post(ctx, imp, lists, &ccclient.ImportRequest{ImportData: contacts, ListIDs: listIDs})
}

// gather takes every row already waiting for the import's lists, maps the
// rows to contacts, rejects those CC could not take as they are, and keeps
// what fits one import, releasing the rest for another. It returns nil
// contacts (and settles or holds the import) when there is nothing to send
// now.
func (im *Importer) gather(ctx context.Context, imp *store.Import, lists, listIDs []string) ([]ccclient.ImportContact, error) {
	// Take along every row already waiting for the same lists, up to one
	// import's worth: however asynq grouped the tasks, one call carries it.
	added, err := im.store.ExtendImport(ctx, imp.ID, im.maxContacts)
	if err != nil {
		return nil, err
	}
	// The rows are mapped as they are read, in the same pass that finds
	// what budgetHold needs, so that the import's rows (each with every
	// HubSpot property of its contact) are never all in memory at once. A
	// separate query for the hold would save mapping an import that then
	// waits, but holds come only when the day's budget runs low, while the
	// query would cost every import a round trip and, as rows change under
	// the claim between the two reads, could disagree with what is mapped.
	set, err := im.contactsFor(ctx, imp.ID, imp.ContactCount+added)
	if err != nil {
		return nil, err
	}
	if set.rows == 0 {
		// Nothing is left under this claim; settle the import so that the
		// sweep does not keep resuming it.
		return nil, im.store.FailImport(ctx, imp.ID, "no rows left under the claim")
	}
	if wait := im.budgetHold(ctx, set.rows, set.oldest); wait > 0 {
		return nil, &waitError{after: wait, reason: "today's CC budget is low; letting the import grow"}
	}
	contacts, owners, rejected := set.contacts, set.owners, set.rejected
	if err := im.store.RejectRows(ctx, imp.ID, rejected); err != nil {
		return nil, err
	}
	if len(rejected) > 0 {
		im.log.Warn("rows rejected before import: they cannot be sent to CC as they are", "import_id", imp.ID, "rejected", len(rejected))
	}
	if len(contacts) == 0 {
		return nil, im.store.FailImport(ctx, imp.ID, "every row was rejected before import")
	}
	// At least one contact goes, even one larger than maxBytes alone:
	// releasing every row would hand the same rows to a new task that
	// releases them again, forever. ImportContacts still refuses a body
	// over CC's own limit, which fails the row visibly.
	keep := max(fitImport(contacts, listIDs, im.maxBytes, im.maxContacts), 1)
	if keep < len(contacts) {
		if err := im.release(ctx, imp, lists, owners[keep:]); err != nil {
			return nil, err
		}
		contacts = contacts[:keep]
	}
	return contacts, nil
}

// post sends the import to CC, marked posted first so that a retry whose
// answer was lost looks for it before posting again.
func (im *Importer) post(ctx context.Context, imp *store.Import, lists []string, req *ccclient.ImportRequest) error {
	if err := im.store.MarkPosted(ctx, imp.ID, len(req.ImportData)); err != nil {
		return err
	}
	act, err := im.cc.ImportContacts(ctx, req)
	if err == nil {
		return im.submitted(ctx, imp, lists, req.ListIDs, act, len(req.ImportData))
	}
	if !noAnswer(err) {
		// CC answered, with a refusal, or the call was never sent:
		// nothing was queued, and the next attempt need not look.
		if cerr := im.store.ClearPosted(ctx, imp.ID); cerr != nil {
			return errors.Join(err, cerr)
		}
	}
	if permanent(err) {
		// A list deleted (or replaced) in CC after its id was cached
		// makes CC refuse the import: post again with the ids CC knows
		// now, or wait for the list if it is gone for good.
		switch changed, lerr := im.listsChanged(ctx, lists, req.ListIDs); {
		case blocked(lerr):
			return lerr
		case changed:
			return &waitError{after: time.Second, reason: "a CC list changed since its id was cached; posting again"}
		}
	}
	return fmt.Errorf("import %d: %w", imp.ID, err)
}

// submitted records that CC accepted the import as act and queues its
// first poll.
func (im *Importer) submitted(ctx context.Context, imp *store.Import, lists, listIDs []string, act *ccclient.Activity, contacts int) error {
	if err := im.store.SubmitImport(ctx, imp.ID, lists, listIDs, act.ActivityID, act.State); err != nil {
		return err
	}
	im.log.Info("import submitted to Constant Contact", "import_id", imp.ID, "activity_id", act.ActivityID,
		"contacts", contacts, "lists", len(listIDs))
	return im.enq.enqueueActivityPoll(ctx, imp.ID, im.pollInterval)
}

// budgetHold says how long a not yet full import of rows rows, the oldest
// received at oldest, should wait for more rows because today's CC budget
// is running low, or 0 to send it now.
func (im *Importer) budgetHold(ctx context.Context, rows int, oldest time.Time) time.Duration {
	if im.budget == nil || rows >= im.maxContacts {
		return 0
	}
	remaining, err := im.budget.Remaining(ctx)
	if err != nil || remaining*10 >= im.budget.Budget() {
		return 0
	}
	left := lowBudgetMaxAge - im.now().Sub(oldest)
	if left <= 0 {
		return 0
	}
	return min(left, lowBudgetHold)
}

// release hands the rows of contacts that did not fit back to pending and
// queues an import for them at once.
func (im *Importer) release(ctx context.Context, imp *store.Import, lists []string, owners [][]int64) error {
	var ids []int64
	for _, o := range owners {
		ids = append(ids, o...)
	}
	if err := im.store.ReleaseRows(ctx, imp.ID, ids); err != nil {
		return err
	}
	im.log.Info("import split to stay within CC's limits", "import_id", imp.ID, "released", len(ids))
	return im.enq.enqueueImport(ctx, GroupKey(lists), ids)
}

// fitImport returns how many of contacts fit in one import: at most
// maxContacts, and an encoded body (contacts, list ids and the envelope)
// of at most maxBytes, measured with the encoder that sends it.
func fitImport(contacts []ccclient.ImportContact, listIDs []string, maxBytes, maxContacts int) int {
	size := ccclient.ImportEnvelopeSize(listIDs)
	for i := range contacts {
		if i == maxContacts {
			return i
		}
		if i > 0 {
			size++ // the comma between contacts; the first has none
		}
		size += ccclient.EncodedSize(&contacts[i])
		if size > maxBytes {
			return i
		}
	}
	return len(contacts)
}

// contactSet is what an import keeps of its rows once they are mapped:
// the contacts and the ids of the rows behind each, never the rows
// themselves, whose properties can be a hundred times the contact's size.
type contactSet struct {
	lists    []string  // the first row's; every row of an import shares its list set
	rows     int       // rows read, rejected ones included
	oldest   time.Time // when the oldest row arrived
	contacts []ccclient.ImportContact
	owners   [][]int64        // the rows behind each contact
	rejected map[int64]string // row id → why CC cannot take it
}

// rowAge is what newerRow compares of the row whose data a contact carries.
type rowAge struct {
	receivedAt time.Time
	id         int64
}

// contactsFor streams an import's rows and maps each to a CC import
// contact as it arrives; sizeHint (the import's row count, as far as it is
// known) only presizes the result. A row CC would refuse is rejected with
// its reason instead of sent, since CC refuses a whole import for one bad
// contact; nothing is cut short. The same email twice keeps the newest
// row's data, since CC upserts by lower-cased email and the last one would
// win there anyway; both rows share the contact's outcome.
func (im *Importer) contactsFor(ctx context.Context, importID int64, sizeHint int) (*contactSet, error) {
	sizeHint = min(max(sizeHint, 0), max(im.maxContacts, 0))
	set := &contactSet{
		contacts: make([]ccclient.ImportContact, 0, sizeHint),
		owners:   make([][]int64, 0, sizeHint),
		rejected: map[int64]string{},
	}
	// index and source only serve the dedupe, so they live as long as the
	// scan and are garbage before the body is encoded.
	index := make(map[string]int, sizeHint)
	source := make([]rowAge, 0, sizeHint) // of the row whose data each contact carries
	err := im.store.EachImportRow(ctx, importID, func(r *store.Enrollment) error {
		if set.rows == 0 {
			set.lists = r.Lists
		}
		if set.rows == 0 || r.ReceivedAt.Before(set.oldest) {
			set.oldest = r.ReceivedAt
		}
		set.rows++
		c, reason := im.contact(r)
		if reason != "" {
			set.rejected[r.ID] = reason
			return nil
		}
		age := rowAge{receivedAt: r.ReceivedAt, id: r.ID}
		key := strings.ToLower(c.Email)
		if i, ok := index[key]; ok {
			// Rows come in claim order, which is not their age once
			// ExtendImport has added older rows after the claimed ones, so
			// the newer row is chosen by when it arrived.
			if newerRow(age, source[i]) {
				set.contacts[i], source[i] = c, age
			}
			set.owners[i] = append(set.owners[i], r.ID)
			return nil
		}
		index[key] = len(set.contacts)
		set.contacts = append(set.contacts, c)
		set.owners = append(set.owners, []int64{r.ID})
		source = append(source, age)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// newerRow reports whether a arrived after b; ids break ties, since they
// grow with arrival too.
func newerRow(a, b rowAge) bool {
	if !a.receivedAt.Equal(b.receivedAt) {
		return a.receivedAt.After(b.receivedAt)
	}
	return a.id > b.id
}

func (im *Importer) contact(r *store.Enrollment) (ccclient.ImportContact, string) {
	if im.mapper != nil {
		return im.mapper.Contact(r)
	}
	if reason := overCCLimits(r); reason != "" {
		return ccclient.ImportContact{}, reason
	}
	return ccclient.ImportContact{Email: r.Email, FirstName: r.FirstName, LastName: r.LastName, Country: r.Country}, ""
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
