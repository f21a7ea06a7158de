package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// checkImportedOnce checks that every row was imported, each contact is on
// exactly its one list in CC, no contact was sent twice (the sandbox's
// ImportRows counts every row of every completed import), and each
// cc_imports row counts exactly the rows it imported.
func (e *env) checkImportedOnce(rows []*store.Enrollment, listID string) []*store.Import {
	e.t.Helper()
	t := e.t
	perImport := map[int64]int{}
	for _, r := range rows {
		if r.Status != store.StatusImported {
			t.Errorf("row %s: %q %q, want imported", r.Email, r.Status, r.StatusReason)
		}
		perImport[r.ImportID]++
	}
	imps := e.imports()
	for _, imp := range imps {
		if imp.ContactCount != perImport[imp.ID] || imp.State != "completed" {
			t.Errorf("import %d: contact_count %d state %q, want %d rows and completed", imp.ID, imp.ContactCount, imp.State, perImport[imp.ID])
		}
	}
	st := e.sb.Stats()
	if st.ImportRows != len(rows) || st.ImportRowsDropped != 0 {
		t.Errorf("CC received %d rows (%d dropped), want each of the %d once", st.ImportRows, st.ImportRowsDropped, len(rows))
	}
	if st.Imports != len(imps) {
		t.Errorf("CC accepted %d imports, cc_imports has %d", st.Imports, len(imps))
	}
	contacts := e.contactsByEmail()
	if len(contacts) != len(rows) {
		t.Errorf("CC holds %d contacts, want %d", len(contacts), len(rows))
	}
	for _, r := range rows {
		if c := contacts[r.Email]; !slices.Equal(c.ListIDs, []string{listID}) {
			t.Errorf("contact %s is on lists %v, want only %s", r.Email, c.ListIDs, listID)
		}
	}
	return imps
}

// TestWorkerSplitsImportsByBytes: an import whose body would pass the byte
// limit keeps what fits and hands the rest back, for further imports, until
// every row is imported once.
func TestWorkerSplitsImportsByBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		n        int
		maxBytes int
		// oneEach: the limit is below a single contact's size, so each
		// import carries exactly one contact.
		oneEach        bool
		wantMinImports int
	}{
		// About 100 bytes a contact: around 200 fit in 20 KB.
		{name: "1,000 enrollments under a 20 KB limit", n: 1000, maxBytes: 20_000, wantMinImports: 4},
		{name: "a limit smaller than one contact still moves one at a time", n: 3, maxBytes: 50, oneEach: true, wantMinImports: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, unlimited)
			list := e.sb.CreateList("Agents").ListID
			res := e.ingest(people("split", tc.n, "Agents"))
			e.enqueue(res)
			cfg := testConfig()
			cfg.ImportMaxBytes = tc.maxBytes
			e.startWorker(cfg)
			rows := e.waitSettled(ids(res), 30*time.Second)

			imps := e.checkImportedOnce(rows, list)
			if len(imps) < tc.wantMinImports {
				t.Errorf("%d imports, want at least %d", len(imps), tc.wantMinImports)
			}
			sizes := e.importBodySizes()
			if len(sizes) != len(imps) {
				t.Errorf("%d import bodies sent, want one per import (%d)", len(sizes), len(imps))
			}
			for i, n := range sizes {
				if !tc.oneEach && n > tc.maxBytes {
					t.Errorf("import body %d is %d bytes, over the %d limit", i, n, tc.maxBytes)
				}
			}
			if tc.oneEach {
				for _, imp := range imps {
					if imp.ContactCount != 1 {
						t.Errorf("import %d carries %d contacts, want 1", imp.ID, imp.ContactCount)
					}
				}
			}
			if archived, err := e.insp.ListArchivedTasks(jobs.Queue); err != nil || len(archived) != 0 {
				t.Errorf("archived tasks %v (err %v), want none", archived, err)
			}
		})
	}
}

// TestWorkerFirstImportAbsorbsQueuedBatches: asynq hands out a large group
// in several batches, a grace period apart; the first import takes every
// row already pending for its lists, so one CC call carries them all and
// the later batches find nothing left to claim.
func TestWorkerFirstImportAbsorbsQueuedBatches(t *testing.T) {
	t.Parallel()
	const n, batch = 3000, 600
	e := newEnv(t, unlimited)
	list := e.sb.CreateList("Agents").ListID
	res := e.ingest(people("absorb", n, "Agents"))
	e.enqueue(res)
	cfg := testConfig()
	cfg.GroupMaxSize = batch // five batches, one per aggregation check
	e.startWorker(cfg)
	rows := e.waitSettled(ids(res), settleTimeout)

	// Every batch reaches a handler: it either made an import or found
	// its rows taken. Waiting for all five shows the later ones were real
	// batches that claimed nothing, not batches that never ran.
	var imps []*store.Import
	waitFor(t, settleTimeout, func() (bool, string) {
		imps = e.imports()
		empty := strings.Count(e.logs.String(), "import batch had nothing left to claim")
		return len(imps)+empty == n/batch, fmt.Sprintf("%d imports and %d empty batches, want %d batches", len(imps), empty, n/batch)
	})
	e.checkImportedOnce(rows, list)
	if st := e.sb.Stats(); st.Imports > 2 || st.Requests[importRoute] > 2 {
		t.Errorf("CC got %d imports (%d posts) for %d rows in %d batches, want at most 2", st.Imports, st.Requests[importRoute], n, n/batch)
	}
	// Under load a second batch can claim its own rows before the first
	// import extends; whichever extends first then takes all the rest.
	largest := 0
	for _, imp := range imps {
		largest = max(largest, imp.ContactCount)
	}
	if largest < n-batch {
		t.Errorf("the largest import took %d rows, want at least %d", largest, n-batch)
	}
}

// TestWorkerSameEmailInOneBatch: two rows with one email (in any case)
// become one contact with the newer row's data; both rows are imported.
func TestWorkerSameEmailInOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	list := e.sb.CreateList("Agents").ListID
	ps := people("twin", 4, "Agents")
	older, newer := ps[:1], ps[3:]
	older[0].email, older[0].first = "Twin@Example.com", "Older"
	newer[0].email, newer[0].first = "twin@example.com", "Newer"
	// Ingested one after the other, so that the newer row arrives later.
	res := slices.Concat(e.ingest(older), e.ingest(ps[1:3]), e.ingest(newer))
	e.enqueue(res)
	e.startWorker(testConfig())
	rows := e.waitSettled(ids(res), settleTimeout)

	imps := e.imports()
	if len(imps) != 1 || imps[0].ContactCount != 4 || imps[0].State != "completed" {
		t.Fatalf("imports %+v, want one of 4 rows, completed", imps)
	}
	for _, r := range rows {
		if r.Status != store.StatusImported || r.ImportID != imps[0].ID {
			t.Errorf("row %s: %q %q import %d, want imported by %d", r.Email, r.Status, r.StatusReason, r.ImportID, imps[0].ID)
		}
	}
	contacts := e.contactsByEmail()
	if len(contacts) != 3 {
		t.Errorf("CC holds %d contacts, want 3", len(contacts))
	}
	if c := contacts["twin@example.com"]; c.FirstName != "Newer" || !slices.Equal(c.ListIDs, []string{list}) {
		t.Errorf("twin contact %+v, want the newer row's name on the list", c)
	}
	if st := e.sb.Stats(); st.ImportRows != 3 {
		t.Errorf("CC received %d rows, want 3: the twin once", st.ImportRows)
	}
}

// TestWorkerUnsubscribedContacts: CC never adds an unsubscribed contact to
// a list and only counts them in cannot_add_to_list_count. Rows whose
// contact is unsubscribed are rejected with the reason, a row CC's errors
// name (a contact already on 50 lists) is rejected with CC's message, and
// every other row is imported: one contact CC cannot take holds back no
// other.
func TestWorkerUnsubscribedContacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// full: one of the other contacts is already on 50 lists, so the
		// activity also reports an error that names it.
		full bool
	}{
		{name: "3 of 50 unsubscribed"},
		{name: "3 of 50 unsubscribed and a contact already on 50 lists", full: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, unlimited)
			list := e.sb.CreateList("Agents").ListID
			ps := people("unsub", 50, "Agents")
			unsub := map[string]bool{ps[4].email: true, ps[17].email: true, ps[41].email: true}
			for email := range unsub {
				e.sb.Unsubscribe(strings.ToUpper(email))
			}
			if tc.full {
				var fifty []string
				for i := range 50 {
					fifty = append(fifty, e.sb.CreateList(fmt.Sprintf("Other %02d", i)).ListID)
				}
				a, err := e.cc.ImportContacts(ctx, &ccclient.ImportRequest{
					ImportData: []ccclient.ImportContact{{Email: ps[9].email}}, ListIDs: fifty})
				if err != nil {
					t.Fatal(err)
				}
				waitFor(t, 5*time.Second, func() (bool, string) {
					act, err := e.cc.GetActivity(ctx, a.ActivityID)
					return err == nil && act.Clean(), fmt.Sprintf("seeding activity %+v, %v", act, err)
				})
			}
			res := e.ingest(ps)
			e.enqueue(res)
			e.startWorker(testConfig())
			rows := e.waitSettled(ids(res), settleTimeout)

			for _, r := range rows {
				if unsub[r.Email] {
					if r.Status != store.StatusRejected || !strings.Contains(r.StatusReason, "unsubscribed in Constant Contact") {
						t.Errorf("unsubscribed row %s: %q %q, want rejected as unsubscribed", r.Email, r.Status, r.StatusReason)
					}
					continue
				}
				if tc.full && r.Email == ps[9].email {
					if r.Status != store.StatusRejected || !strings.Contains(r.StatusReason, "already on 50 lists") {
						t.Errorf("row on 50 lists %s: %q %q, want rejected with CC's message", r.Email, r.Status, r.StatusReason)
					}
					continue
				}
				if r.Status != store.StatusImported {
					t.Errorf("row %s: %q %q, want imported", r.Email, r.Status, r.StatusReason)
				}
			}
			imps := e.imports()
			if len(imps) != 1 || imps[0].State != "completed" || imps[0].CannotAddToListCount != 3 {
				t.Fatalf("imports %+v, want one completed with 3 that cannot be added", imps)
			}
			contacts := e.contactsByEmail()
			for i, p := range ps {
				if tc.full && i == 9 {
					continue // it has no room for another list
				}
				c := contacts[p.email]
				onList := slices.Contains(c.ListIDs, list)
				if unsub[p.email] == onList {
					t.Errorf("contact %s: on the list %v, permission %q", p.email, onList, c.Permission)
				}
			}
			if c := contacts[ps[9].email]; tc.full && (len(c.ListIDs) != 50 || slices.Contains(c.ListIDs, list)) {
				t.Errorf("contact on 50 lists: %d lists, on Agents %v; want 50 without Agents", len(c.ListIDs), slices.Contains(c.ListIDs, list))
			}
			if n := e.sb.Stats().Requests["GET /v3/contacts"]; n != 1 {
				t.Errorf("unsubscribed contacts read with %d requests, want 1", n)
			}
		})
	}
}

// TestWorkerGivesUpOnStuckActivity: an activity CC never finishes has its
// rows failed with the reason once PollGiveUp has passed, so they can be
// replayed, instead of being polled for ever.
func TestWorkerGivesUpOnStuckActivity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	if err := e.sb.SetFaults(ccsandbox.Faults{ImportOutcome: "stuck"}); err != nil {
		t.Fatal(err)
	}
	res := e.ingest(people("stuck", 5, "Agents"))
	e.enqueue(res)
	cfg := testConfig()
	// asynq schedules in whole seconds, so the first poll may come a
	// second after the post; 2 s leaves room for one that finds the
	// activity still processing before the one that gives up.
	cfg.PollGiveUp = 2 * time.Second
	e.startWorker(cfg)
	rows := e.waitSettled(ids(res), settleTimeout)

	imps := e.imports()
	if len(imps) != 1 {
		t.Fatalf("%d imports, want 1", len(imps))
	}
	imp := imps[0]
	for _, r := range rows {
		if r.Status != store.StatusFailed || !strings.Contains(r.StatusReason, imp.ActivityID+" still processing after 2s") {
			t.Errorf("row %s: %q %q, want failed naming the stuck activity", r.Email, r.Status, r.StatusReason)
		}
	}
	if imp.State != store.ImportRejected || imp.CompletedAt.IsZero() {
		t.Errorf("import %+v, want settled as rejected", imp)
	}
	polls := e.sb.Stats().Requests["GET /v3/activities/{id}"]
	if polls < 2 {
		t.Errorf("activity polled %d times, want it polled until the give-up", polls)
	}
	// Settled means settled: no poll is left queued.
	time.Sleep(time.Second)
	if again := e.sb.Stats().Requests["GET /v3/activities/{id}"]; again != polls {
		t.Errorf("activity polled %d more times after the give-up", again-polls)
	}
}

// lowBudget is a jobs.Budget with almost nothing left today.
type lowBudget struct{}

func (lowBudget) Remaining(context.Context) (int, error) { return 10, nil }
func (lowBudget) Budget() int                            { return 10000 }

// TestWorkerBudgetHoldOnLastAttempt: asynq archives a task that has used
// up its retries whatever it returns, a wait included (retries are counted
// only for failures, so this takes 25 of them). The rows of an import held
// for the budget on that last run are then failed with the reason, where a
// replay finds them, instead of staying "importing" under an archived task.
func TestWorkerBudgetHoldOnLastAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	res := e.ingest(people("hold", 3, "Agents"))
	payload, _ := json.Marshal(map[string]any{"group": jobs.GroupKey([]string{"Agents"}), "enrollment_ids": ids(res)})
	if _, err := e.aq.EnqueueContext(ctx, asynq.NewTask(jobs.TypeCCImport, payload),
		asynq.Queue(jobs.Queue), asynq.TaskID("held"), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	e.startWorker(testConfig(), jobs.WithBudget(lowBudget{}))
	rows := e.waitSettled(ids(res), settleTimeout)
	for _, r := range rows {
		if r.Status != store.StatusFailed || !strings.Contains(r.StatusReason, "budget is low") {
			t.Errorf("row %s: %q %q, want failed with the hold's reason", r.Email, r.Status, r.StatusReason)
		}
	}
	waitFor(t, settleTimeout, func() (bool, string) {
		info, err := e.insp.GetTaskInfo(jobs.Queue, "held")
		if err != nil {
			return false, err.Error()
		}
		return info.State == asynq.TaskStateArchived, fmt.Sprintf("task %v", info.State)
	})
	if imps := e.imports(); len(imps) != 1 || imps[0].State != store.ImportRejected {
		t.Errorf("imports %+v, want one, settled as rejected", imps)
	}
	if n := e.sb.Stats().Requests[importRoute]; n != 0 {
		t.Errorf("contacts_json_import called %d times during the hold", n)
	}
}
