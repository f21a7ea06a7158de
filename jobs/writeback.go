package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/store"
)

// HubSpot is the part of HubSpot's CRM API the write-back uses;
// *crm.Client is one.
type HubSpot interface {
	EnsureProperties(ctx context.Context) error
	BatchUpdateContacts(ctx context.Context, updates []crm.ContactUpdate) (crm.BatchResult, error)
}

// WritebackStore is the outbox of write-backs and the unsubscribe sync's
// cursor; *store.DB is one.
type WritebackStore interface {
	AttentionStore
	ClaimWriteback(ctx context.Context, claim string, n int, lease time.Duration) ([]store.WritebackRow, error)
	FinishWriteback(ctx context.Context, claim string, done []store.WritebackDone) error
	ReleaseWriteback(ctx context.Context, claim, why string, counted bool) error
	MarkUnsubscribed(ctx context.Context, emails []string, at time.Time) (int, error)
	QueueUnwritten(ctx context.Context, after int64, n int) (int, int64, error)
	GetUnsubscribeSync(ctx context.Context) (store.UnsubscribeSync, error)
	SaveUnsubscribeSync(ctx context.Context, u store.UnsubscribeSync) error
}

// WritebackMetrics counts what the write-back does, for the process's
// metrics; nil counts nothing.
type WritebackMetrics interface {
	// WritebackDone counts contacts by what became of them: written,
	// missing, no_id, failed or retry.
	WritebackDone(state string, n int)
}

// AttentionHubSpot is the attention kind of a HubSpot state that stops the
// write-back until a person acts (a token HubSpot refuses, properties it
// will not create); the subject names which.
const AttentionHubSpot = "hubspot"

const (
	// writebackLease is how long a claimed batch is held before another
	// task may claim it again: far longer than a call with its retries.
	writebackLease = 2 * time.Minute
	// writebackMaxAttempts is how often HubSpot may fail one contact's
	// write (not the call: a 207 entry of its own) before it is failed.
	writebackMaxAttempts = 5
	// writebackBatchesPerTask bounds one task's run; it queues another to
	// carry on, so that a backlog does not hold one worker slot for hours.
	writebackBatchesPerTask = 200
	// writebackDelay gathers the outcomes of imports settling close
	// together into full batches before a task sends them.
	writebackDelay = 2 * time.Second
	// WritebackInterval is how often the periodic hubspot:writeback drains
	// what no task was queued for (a lost Redis, a crash after a settle).
	WritebackInterval = time.Minute
)

// Writer sends the outbox's write-backs to HubSpot, at most crm.MaxBatch
// contacts a call (hubspot:writeback), and reads CC's unsubscribes into it
// (hubspot:unsubscribes).
type Writer struct {
	hs      HubSpot
	st      WritebackStore
	cc      UnsubscribeCC // nil: no unsubscribe sync
	budget  Budget
	enq     *Enqueuer
	log     *slog.Logger
	metrics WritebackMetrics
	now     func() time.Time
	// ready is set once the properties are known to exist in HubSpot.
	ready atomic.Bool
	// caughtUp is set once this process has queued every enrollment
	// settled before the write-back was turned on; catchingUp lets one
	// task at a time do it.
	caughtUp   atomic.Bool
	catchingUp sync.Mutex
}

// NewWriter builds the write-back; cc and budget serve the unsubscribe
// sync and may be nil when it does not run.
func NewWriter(hs HubSpot, st WritebackStore, cc UnsubscribeCC, budget Budget, enq *Enqueuer, log *slog.Logger, m WritebackMetrics) *Writer {
	return &Writer{hs: hs, st: st, cc: cc, budget: budget, enq: enq, log: log, metrics: m, now: time.Now}
}

// handleWriteback runs hubspot:writeback: it sends pending write-backs in
// batches until none is left.
func (w *Writer) handleWriteback(ctx context.Context, _ *asynq.Task) error {
	err := w.drain(ctx)
	if errors.Is(err, errWritebackStopped) {
		return nil
	}
	return err
}

// errWritebackStopped ends a write-back task quietly, its rows pending: a
// long wait on HubSpot, or a refusal a person must mend.
var errWritebackStopped = errors.New("jobs: HubSpot write-back stopped")

// drain sends batches until the outbox is empty, HubSpot stops it, or the
// task has sent its share.
func (w *Writer) drain(ctx context.Context) error {
	if err := w.ensureProperties(ctx); err != nil {
		return err
	}
	if err := w.catchUp(ctx); err != nil {
		return err
	}
	for range writebackBatchesPerTask {
		claim := "wb:" + rand.Text()
		rows, err := w.st.ClaimWriteback(ctx, claim, crm.MaxBatch, writebackLease)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		if err := w.send(ctx, claim, rows); err != nil {
			return err
		}
	}
	return w.enq.EnqueueWriteback(ctx)
}

// catchUp queues, once per process, the enrollments settled before the
// write-back was turned on (the bridge ran without HS2CC_HUBSPOT_TOKEN
// first, as deployments do), so that HubSpot learns of them too; the
// batches then carry them like any other.
func (w *Writer) catchUp(ctx context.Context) error {
	if w.caughtUp.Load() || !w.catchingUp.TryLock() {
		return nil
	}
	defer w.catchingUp.Unlock()
	var after int64
	total := 0
	for {
		n, last, err := w.st.QueueUnwritten(ctx, after, 1000)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		total, after = total+n, last
	}
	if total > 0 {
		w.log.Info("queued the enrollments settled before the HubSpot write-back was on", "count", total)
	}
	w.caughtUp.Store(true)
	return nil
}

// ensureProperties makes the hs2cc properties once per process. A refused
// token or scope stops the write-back until a person acts: it becomes
// attention, and the rows wait in the outbox.
func (w *Writer) ensureProperties(ctx context.Context) error {
	if w.ready.Load() {
		return nil
	}
	if err := w.hs.EnsureProperties(ctx); err != nil {
		return w.stopped(ctx, "properties", err)
	}
	w.ready.Store(true)
	return w.resumed(ctx)
}

// resumed clears what stopped the write-back, once HubSpot took a call
// with the token again.
func (w *Writer) resumed(ctx context.Context) error {
	for _, subject := range []string{"properties", "token"} {
		if err := w.st.ClearAttention(ctx, AttentionHubSpot, subject); err != nil {
			return err
		}
	}
	return nil
}

// stopped turns err into what the task returns. A wait for HubSpot's
// limits of up to WritebackInterval is a waitError, run again when it ends;
// a longer one, and a refusal only a person can mend (which becomes
// attention), are errWritebackStopped: the task ends with the rows pending
// in the outbox, and the periodic hubspot:writeback is the retry. asynq runs a wait again however
// often it is returned, so a task that waited for ever, queued anew every
// minute, would pile up. Anything else is returned to be retried.
func (w *Writer) stopped(ctx context.Context, subject string, err error) error {
	var hw *store.HubSpotWaitError
	after, _, limited := crm.IsRateLimited(err)
	switch {
	case errors.As(err, &hw):
		after, limited = hw.Until.Sub(w.now()), true
	case limited:
	default:
		var apiErr *crm.APIError
		if !errors.As(err, &apiErr) || (apiErr.StatusCode != http.StatusUnauthorized && apiErr.StatusCode != http.StatusForbidden) {
			return err
		}
		detail := fmt.Sprintf("HubSpot refused the private app token (%s): check HS2CC_HUBSPOT_TOKEN and its scopes "+
			"crm.objects.contacts.write and crm.schemas.contacts.write; write-backs wait until it is mended", err)
		if rerr := w.st.RaiseAttention(ctx, AttentionHubSpot, subject, detail); rerr != nil {
			return errors.Join(err, rerr)
		}
		w.log.Error("HubSpot write-back stopped", "subject", subject, "err", err)
		return errWritebackStopped
	}
	if after > WritebackInterval {
		w.log.Warn("HubSpot asked the write-back to wait; the periodic one resumes after", "wait", after.Round(time.Second), "err", err)
		return errWritebackStopped
	}
	return &waitError{after: max(after, time.Second), reason: "HubSpot's limits: " + err.Error()}
}

// send writes one claimed batch and records what became of each contact.
func (w *Writer) send(ctx context.Context, claim string, rows []store.WritebackRow) error {
	now := w.now()
	var updates []crm.ContactUpdate
	var done []store.WritebackDone
	byID := map[string][]store.WritebackRow{}
	for _, r := range rows {
		id, ok := hubSpotID(r.ObjectKey)
		if !ok {
			done = append(done, store.WritebackDone{EnrollmentID: r.EnrollmentID, State: store.WritebackNoID,
				Error: "the webhook carried no HubSpot object id, so the contact cannot be written back"})
			continue
		}
		if byID[id] == nil {
			updates = append(updates, crm.ContactUpdate{ID: id, Properties: writebackValues(r, now)})
		}
		byID[id] = append(byID[id], r)
	}
	var res crm.BatchResult
	if len(updates) > 0 {
		var err error
		res, err = w.hs.BatchUpdateContacts(ctx, updates)
		if err != nil {
			var apiErr *crm.APIError
			if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
				// A property someone deleted in HubSpot is made again
				// before the next batch.
				w.ready.Store(false)
			}
			counted := !isWait(err)
			if rerr := w.st.ReleaseWriteback(ctx, claim, err.Error(), counted); rerr != nil {
				return errors.Join(err, rerr)
			}
			w.count("retry", len(rows)-len(done))
			return w.stopped(ctx, "token", err)
		}
	}
	done = append(done, outcomes(updates, byID, res)...)
	if err := w.st.FinishWriteback(ctx, claim, done); err != nil {
		return err
	}
	w.record(done, res.Missing)
	return w.resumed(ctx)
}

// isWait reports an error that is a wait on HubSpot's limits rather than a
// fault of the call.
func isWait(err error) bool {
	var hw *store.HubSpotWaitError
	_, _, limited := crm.IsRateLimited(err)
	return errors.As(err, &hw) || limited
}

// outcomes says what became of each sent contact's rows: written when
// HubSpot updated it, missing when it no longer has it, and otherwise back
// to pending for another try, failed after writebackMaxAttempts.
func outcomes(updates []crm.ContactUpdate, byID map[string][]store.WritebackRow, res crm.BatchResult) []store.WritebackDone {
	updated := map[string]bool{}
	for _, id := range res.Updated {
		updated[id] = true
	}
	missing := map[string]bool{}
	for _, id := range res.Missing {
		missing[id] = true
	}
	var done []store.WritebackDone
	for _, u := range updates {
		for _, r := range byID[u.ID] {
			d := store.WritebackDone{EnrollmentID: r.EnrollmentID}
			switch {
			case updated[u.ID]:
				d.State, d.Status = store.WritebackWritten, u.Properties[crm.PropStatus]
			case missing[u.ID]:
				d.State, d.Error = store.WritebackMissing, "HubSpot has no contact "+u.ID+" (deleted or merged)"
			case r.Attempts+1 >= writebackMaxAttempts:
				d.State, d.Error = store.WritebackFailed, "HubSpot did not update the contact in its batch answer, "+strconv.Itoa(writebackMaxAttempts)+" times"
			default:
				d.State, d.Error = store.WritebackPending, "HubSpot did not update the contact in its batch answer"
			}
			done = append(done, d)
		}
	}
	return done
}

// record counts and logs what a batch did.
func (w *Writer) record(done []store.WritebackDone, missing []string) {
	by := map[string]int{}
	for _, d := range done {
		by[d.State]++
	}
	for state, n := range by {
		if state == store.WritebackPending {
			state = "retry"
		}
		w.count(state, n)
	}
	if len(missing) > 0 {
		// A contact deleted in HubSpot is not an error of the bridge's;
		// it is skipped, never blocking the others, and named here.
		w.log.Warn("HubSpot contacts no longer exist; their write-back is skipped", "ids", missing)
	}
}

func (w *Writer) count(state string, n int) {
	if w.metrics != nil && n > 0 {
		w.metrics.WritebackDone(state, n)
	}
}

// hubSpotID returns the HubSpot object id an enrollment's object key holds:
// the key itself when it is all digits (the webhook carried an id), else
// none (the key was made from the email).
func hubSpotID(objectKey string) (string, bool) {
	if objectKey == "" || len(objectKey) > 20 {
		return "", false
	}
	for _, r := range objectKey {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return objectKey, true
}

// Write-back reasons that the bridge words itself.
const (
	reasonUnsubscribed = "unsubscribed in Constant Contact"
	reasonWaiting      = "waiting to be imported into Constant Contact"
)

// writebackValues is the one policy for what the hs2cc properties say of a
// contact, from its enrollment as it is now:
//
//   - unsubscribed when CC was seen to unsubscribe it after its last import
//     (an unsubscribed contact is on no list: CC takes it off all of them);
//   - removed, with the lists it is still on, when a reconcile found it
//     taken off lists in CC after its last import;
//   - imported, with the CC lists it was put on, when its last import was
//     clean;
//   - rejected, with CC's or the bridge's reason, when it cannot be sent as
//     it is;
//   - pending otherwise: waiting, or failed and due to be replayed, with the
//     reason.
func writebackValues(r store.WritebackRow, now time.Time) map[string]string {
	status, lists, reason := crm.StatusPending, "", r.StatusReason
	since := func(t time.Time) bool { return !t.IsZero() && (r.ImportedAt.IsZero() || !r.ImportedAt.After(t)) }
	switch {
	case since(r.UnsubscribedAt):
		status, reason = crm.StatusUnsubscribed, reasonUnsubscribed
	case since(r.RemovedAt) && len(r.RemovedFrom) > 0:
		var kept []string
		for _, l := range r.Lists {
			if !slices.Contains(r.RemovedFrom, l) {
				kept = append(kept, l)
			}
		}
		status, lists = crm.StatusRemoved, strings.Join(kept, "; ")
		reason = "removed in Constant Contact from " + strings.Join(r.RemovedFrom, "; ")
	case r.Status == store.StatusImported:
		status, lists, reason = crm.StatusImported, strings.Join(r.Lists, "; "), ""
	case r.Status == store.StatusRejected:
		status = crm.StatusRejected
	case r.Status == store.StatusPending || r.Status == store.StatusImporting:
		reason = reasonWaiting
	}
	return map[string]string{
		crm.PropStatus:   status,
		crm.PropLists:    lists,
		crm.PropReason:   reason,
		crm.PropSyncedAt: strconv.FormatInt(now.UnixMilli(), 10),
	}
}
