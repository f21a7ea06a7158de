package jobs_test

import (
	"context"
	"encoding/json"
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

// settleTimeout bounds one aggregation, import and activity poll.
const settleTimeout = 25 * time.Second

// unlimited is a sandbox without CC's 4 requests/s, for tests that count
// requests exactly: a throttled attempt is counted as a request too.
var unlimited = ccsandbox.Options{RateLimit: -1}

// TestWorkerAggregatesGroupsIntoImports runs the whole asynchronous path:
// enrollments enqueued into groups by list set, aggregated by asynq, imported
// with one contacts_json_import per group, polled, and settled in MySQL.
func TestWorkerAggregatesGroupsIntoImports(t *testing.T) {
	t.Parallel()
	type group struct {
		prefix string
		n      int
		lists  [][]string // the lists of each enrollment, cycled; order varies on purpose
		want   []string   // the list names every contact of the group must be on, and only those
	}
	twoSets := []group{
		{prefix: "east", n: 40, lists: [][]string{{"Agents East"}}, want: []string{"Agents East"}},
		{prefix: "west", n: 60, lists: [][]string{{"Agents West", "Newsletter"}, {"Newsletter", "Agents West"}},
			want: []string{"Agents West", "Newsletter"}},
	}
	tests := []struct {
		name      string
		opts      ccsandbox.Options
		groups    []group
		throttled bool // CC's rate limit is tight enough that some calls must be throttled
	}{
		{
			name:   "300 enrollments for one list become one import",
			opts:   unlimited,
			groups: []group{{prefix: "one", n: 300, lists: [][]string{{"New Agents"}}, want: []string{"New Agents"}}},
		},
		{
			name:   "two list sets become two imports, each contact on its own lists only",
			opts:   unlimited,
			groups: twoSets,
		},
		{
			// No shared rate limiter exists yet, so the worker meets CC's
			// 429 throttled; it must wait without failing and still import
			// each group once. Resolving two lists and posting the import
			// are three calls in a row against a burst of two, so at least
			// one is throttled.
			name:      "two list sets under a 2 requests/s rate limit",
			opts:      ccsandbox.Options{RateLimit: 2},
			groups:    twoSets,
			throttled: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts)
			listIDs := map[string]string{}
			for _, g := range tc.groups {
				for _, name := range g.want {
					listIDs[name] = e.sb.CreateList(name).ListID
				}
			}
			// A decoy list that nobody belongs on: an import to every list
			// would show up on it.
			e.sb.CreateList("Decoy")

			wantLists := map[string][]string{} // email → sorted list names
			var all []store.IngestResult
			for _, g := range tc.groups {
				ps := people(g.prefix, g.n)
				for i := range ps {
					ps[i].lists = g.lists[i%len(g.lists)]
					wantLists[ps[i].email] = sortedCopy(g.want)
				}
				all = append(all, e.ingest(ps)...)
			}
			// Everything is queued before the worker starts, so the groups
			// are complete when the aggregator first looks: the number of
			// imports is then exactly the number of list sets, whatever the
			// speed of the machine.
			e.enqueue(all)
			for _, g := range tc.groups {
				gk := jobs.GroupKey(g.want)
				agg, err := e.insp.ListAggregatingTasks(jobs.Queue, gk, asynq.PageSize(1000))
				if err != nil {
					t.Fatal(err)
				}
				if len(agg) != g.n {
					t.Fatalf("group %q holds %d tasks, want %d", gk, len(agg), g.n)
				}
			}
			start := time.Now()
			e.startWorker(testConfig())

			rows := e.waitSettled(ids(all), settleTimeout)
			t.Logf("%d rows settled %s after the worker started", len(rows), time.Since(start).Round(time.Millisecond))

			imps := e.imports()
			if len(imps) != len(tc.groups) {
				t.Fatalf("%d cc_imports rows, want %d: %+v", len(imps), len(tc.groups), imps)
			}
			st := e.sb.Stats()
			if got := st.Requests[importRoute]; got != len(tc.groups) && !tc.throttled {
				t.Errorf("contacts_json_import called %d times, want %d", got, len(tc.groups))
			}
			if st.Imports != len(tc.groups) {
				t.Errorf("sandbox accepted %d imports, want %d", st.Imports, len(tc.groups))
			}
			if tc.throttled && st.Throttled == 0 {
				t.Error("no call was throttled; the case tests nothing")
			}
			if archived, err := e.insp.ListArchivedTasks(jobs.Queue); err != nil || len(archived) != 0 {
				t.Errorf("archived tasks %v (err %v), want none", archived, err)
			}
			byID := map[int64]*store.Import{}
			for _, imp := range imps {
				byID[imp.ID] = imp
			}
			perImport := map[int64]int{}
			for _, r := range rows {
				if r.Status != store.StatusImported || r.StatusReason != "" || r.ImportedAt.IsZero() {
					t.Fatalf("row %d (%s): status %q reason %q imported_at %v, want imported",
						r.ID, r.Email, r.Status, r.StatusReason, r.ImportedAt)
				}
				imp := byID[r.ImportID]
				if imp == nil {
					t.Fatalf("row %d points at import %d, which does not exist", r.ID, r.ImportID)
				}
				if got := sortedCopy(imp.Lists); !slices.Equal(got, wantLists[r.Email]) {
					t.Errorf("row %s imported by an import for lists %v, want %v", r.Email, got, wantLists[r.Email])
				}
				perImport[r.ImportID]++
			}
			for _, imp := range imps {
				if imp.State != "completed" || imp.CompletedAt.IsZero() || imp.ActivityID == "" {
					t.Errorf("import %d: state %q completed_at %v activity %q, want completed with an activity",
						imp.ID, imp.State, imp.CompletedAt, imp.ActivityID)
				}
				n := perImport[imp.ID]
				if imp.ContactCount != n || imp.PersonCount != n || imp.ItemsTotalCount != n {
					t.Errorf("import %d counts: contacts %d persons %d items %d, want %d each",
						imp.ID, imp.ContactCount, imp.PersonCount, imp.ItemsTotalCount, n)
				}
				if imp.ErrorCount+imp.CorrectableCount+imp.CannotAddToListCount != 0 || len(imp.ActivityErrors) != 0 {
					t.Errorf("import %d reports problems: %+v", imp.ID, imp)
				}
				var wantIDs []string
				for _, name := range sortedCopy(imp.Lists) {
					wantIDs = append(wantIDs, listIDs[name])
				}
				if !slices.Equal(sortedCopy(imp.ListIDs), sortedCopy(wantIDs)) {
					t.Errorf("import %d list ids %v, want %v", imp.ID, imp.ListIDs, wantIDs)
				}
			}

			contacts := e.contactsByEmail()
			if len(contacts) != len(wantLists) {
				t.Errorf("sandbox holds %d contacts, want %d", len(contacts), len(wantLists))
			}
			for email, want := range wantLists {
				c, ok := contacts[email]
				if !ok {
					t.Errorf("contact %s missing from CC", email)
					continue
				}
				if got := sortedCopy(c.ListNames); !slices.Equal(got, want) {
					t.Errorf("contact %s is on lists %v, want %v", email, got, want)
				}
				if c.LastName != "Tester" || !strings.HasPrefix(c.FirstName, "Agent") {
					t.Errorf("contact %s has names %q %q", email, c.FirstName, c.LastName)
				}
			}
		})
	}
}

// TestWorkerDuplicateBatchImportsOnce hands the same batch out more than
// once, as asynq's at-least-once aggregation can, and checks that CC sees
// one import.
func TestWorkerDuplicateBatchImportsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	res := e.ingest(people("dup", 20, "Agents"))
	batch := ids(res)
	payload, err := json.Marshal(map[string][]int64{"enrollment_ids": batch})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enqueueImport := func(taskID string) {
		t.Helper()
		_, err := e.aq.EnqueueContext(ctx, asynq.NewTask(jobs.TypeCCImport, payload),
			asynq.Queue(jobs.Queue), asynq.TaskID(taskID), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatalf("enqueue %s: %v", taskID, err)
		}
	}
	// Two copies with different task ids, queued before the worker starts
	// so that they run concurrently.
	enqueueImport("batch-a")
	enqueueImport("batch-b")
	e.startWorker(testConfig())
	e.waitTaskCompleted("batch-a", settleTimeout)
	e.waitTaskCompleted("batch-b", settleTimeout)
	e.waitSettled(batch, settleTimeout)

	check := func(phase string) {
		t.Helper()
		if got := e.sb.Stats().Requests[importRoute]; got != 1 {
			t.Errorf("%s: contacts_json_import called %d times, want 1", phase, got)
		}
		imps := e.imports()
		if len(imps) != 1 {
			t.Fatalf("%s: %d cc_imports rows, want 1: %+v", phase, len(imps), imps)
		}
		if imps[0].ContactCount != len(batch) || imps[0].State != "completed" {
			t.Errorf("%s: import %+v, want %d contacts completed", phase, imps[0], len(batch))
		}
		for _, r := range e.rows(batch) {
			if r.Status != store.StatusImported || r.ImportID != imps[0].ID {
				t.Errorf("%s: row %d status %q import %d, want imported by %d", phase, r.ID, r.Status, r.ImportID, imps[0].ID)
			}
		}
		if n := len(e.sb.Contacts()); n != len(batch) {
			t.Errorf("%s: sandbox holds %d contacts, want %d", phase, n, len(batch))
		}
	}
	check("two concurrent copies")

	// A third copy under a new id, long after the rows were imported, as
	// when asynq repeats an aggregation after a crash.
	enqueueImport("batch-c")
	e.waitTaskCompleted("batch-c", settleTimeout)
	check("a late copy")
}

// TestWorkerRedeliveredTaskDoesNotPostAgain: a cc:import task that got
// CC's 201 and recorded the activity, but died before queueing the poll, runs
// again under the same task id. It must poll the recorded activity instead
// of posting the import a second time.
func TestWorkerRedeliveredTaskDoesNotPostAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, unlimited)
	list := e.sb.CreateList("Agents")
	ps := people("crash", 4, "Agents")
	res := e.ingest(ps)
	batch := ids(res)

	// The first run, up to the crash: claim, post, record the activity.
	imp, err := e.db.ClaimImport(ctx, "crashed-task", "", batch)
	if err != nil || imp == nil {
		t.Fatalf("claim: %v, %v", imp, err)
	}
	req := &ccclient.ImportRequest{ListIDs: []string{list.ListID}}
	for _, p := range ps {
		req.ImportData = append(req.ImportData, ccclient.ImportContact{Email: p.email, FirstName: p.first})
	}
	act, err := e.cc.ImportContacts(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.SubmitImport(ctx, imp.ID, []string{"Agents"}, []string{list.ListID}, act.ActivityID, act.State); err != nil {
		t.Fatal(err)
	}

	payload, _ := json.Marshal(map[string][]int64{"enrollment_ids": batch})
	if _, err := e.aq.EnqueueContext(ctx, asynq.NewTask(jobs.TypeCCImport, payload),
		asynq.Queue(jobs.Queue), asynq.TaskID("crashed-task")); err != nil {
		t.Fatal(err)
	}
	e.startWorker(testConfig())
	rows := e.waitSettled(batch, settleTimeout)
	for _, r := range rows {
		if r.Status != store.StatusImported || r.ImportID != imp.ID {
			t.Errorf("row %s: %q import %d, want imported by %d", r.Email, r.Status, r.ImportID, imp.ID)
		}
	}
	if got := e.sb.Stats().Requests[importRoute]; got != 1 {
		t.Errorf("contacts_json_import called %d times, want only the first run's", got)
	}
	imps := e.imports()
	if len(imps) != 1 || imps[0].ActivityID != act.ActivityID || imps[0].State != "completed" {
		t.Errorf("imports %+v, want the one recorded, completed", imps)
	}
}

// TestWorkerSettlesRowsFromActivityOutcome checks that a completed activity
// is read, not trusted: counters that say rows did not make it fail the
// import's rows with a reason, and a clean one imports them.
func TestWorkerSettlesRowsFromActivityOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		faults      ccsandbox.Faults
		unsubscribe int  // how many of the group's contacts unsubscribed in CC beforehand
		long        bool // the first contact has a 60-character first name
		wantStatus  string
		wantReason  []string // substrings of every row's status_reason
		wantState   string
		wantCannot  int
	}{
		{name: "clean import", wantStatus: store.StatusImported, wantState: "completed"},
		{
			// The unsubscribed contact explains CC's cannot_add_to_list
			// count: its row is rejected and the others are on the list.
			name: "completed with cannot_add_to_list", unsubscribe: 1,
			wantStatus: store.StatusImported, wantState: "completed", wantCannot: 1,
		},
		{
			// HubSpot allows longer names than CC's 50 characters; one such
			// contact is rejected with its reason and the rest still import.
			name: "a name over CC's limit rejects that row only", long: true,
			wantStatus: store.StatusImported, wantState: "completed",
		},
		{
			name: "activity failed", faults: ccsandbox.Faults{ImportOutcome: "failed"},
			wantStatus: store.StatusFailed, wantState: "failed",
			wantReason: []string{"CC activity failed"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, unlimited)
			e.sb.CreateList("Agents")
			if err := e.sb.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			ps := people("out", 5, "Agents")
			for _, p := range ps[:tc.unsubscribe] {
				e.sb.Unsubscribe(p.email)
			}
			longName := strings.Repeat("Ä", 10) + strings.Repeat("x", 50)
			if tc.long {
				ps[0].first = longName
			}
			res := e.ingest(ps)
			e.enqueue(res)
			e.startWorker(testConfig())
			rows := e.waitSettled(ids(res), settleTimeout)

			for _, r := range rows {
				if tc.unsubscribe > 0 && r.Email == ps[0].email {
					if r.Status != store.StatusRejected || !strings.Contains(r.StatusReason, "unsubscribed") {
						t.Errorf("unsubscribed row: %q %q, want rejected as unsubscribed", r.Status, r.StatusReason)
					}
					continue
				}
				if tc.long && r.Email == ps[0].email {
					if r.Status != store.StatusRejected || !strings.Contains(r.StatusReason, "first_name is 60 characters") {
						t.Errorf("long-named row: %q %q, want rejected naming first_name", r.Status, r.StatusReason)
					}
					continue
				}
				if r.Status != tc.wantStatus {
					t.Errorf("row %s: status %q (%q), want %q", r.Email, r.Status, r.StatusReason, tc.wantStatus)
				}
				for _, s := range tc.wantReason {
					if !strings.Contains(r.StatusReason, s) {
						t.Errorf("row %s: reason %q does not mention %q", r.Email, r.StatusReason, s)
					}
				}
				if len(tc.wantReason) == 0 && r.StatusReason != "" {
					t.Errorf("row %s: reason %q, want none", r.Email, r.StatusReason)
				}
			}
			imps := e.imports()
			if len(imps) != 1 {
				t.Fatalf("%d imports, want 1", len(imps))
			}
			imp := imps[0]
			if imp.State != tc.wantState || imp.CannotAddToListCount != tc.wantCannot || imp.CompletedAt.IsZero() {
				t.Errorf("import: state %q cannot_add_to_list %d completed_at %v, want %q %d and completed",
					imp.State, imp.CannotAddToListCount, imp.CompletedAt, tc.wantState, tc.wantCannot)
			}
			if got := e.sb.Stats().Requests[importRoute]; got != 1 {
				t.Errorf("contacts_json_import called %d times, want 1", got)
			}
			if tc.long {
				if c, ok := e.contactsByEmail()[ps[0].email]; ok {
					t.Errorf("rejected contact reached CC as %+v", c)
				}
			}
		})
	}
}

// TestWorkerRejectsRowsOverCCLimits: CC refuses a whole import with a 400
// for one email over 50 characters, so that row is rejected with its reason
// before the post and the rest of the batch imports in one call.
func TestWorkerRejectsRowsOverCCLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	ps := people("bad", 3, "Agents")
	ps[1].email = strings.Repeat("x", 45) + "@example.com"
	res := e.ingest(ps)
	e.enqueue(res)
	e.startWorker(testConfig())
	rows := e.waitSettled(ids(res), settleTimeout)
	for _, r := range rows {
		want := store.StatusImported
		if r.Email == ps[1].email {
			want = store.StatusRejected
			if !strings.Contains(r.StatusReason, "email is 57 characters") {
				t.Errorf("row %s: reason %q, want one naming the email's length", r.Email, r.StatusReason)
			}
		}
		if r.Status != want {
			t.Errorf("row %s: status %q (%q), want %q", r.Email, r.Status, r.StatusReason, want)
		}
	}
	if got := e.sb.Stats().Requests[importRoute]; got != 1 {
		t.Errorf("contacts_json_import called %d times, want 1", got)
	}
	if _, ok := e.contactsByEmail()[ps[1].email]; ok {
		t.Error("the rejected contact reached CC")
	}
}

// TestWorkerSweepReenqueuesLostTasks: rows whose tasks never reached Redis
// (serve stored them while Redis was down, and Redis came back with its
// data) are brought back by the periodic sweep once they are stale, while a
// row that has not waited long enough stays pending. The epoch marker is
// set first, so that the worker sees a Redis that kept its data and only
// the sweep acts; TestWorkerRecoversFromRedisFlush covers a Redis that
// lost it.
func TestWorkerSweepReenqueuesLostTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	e.sb.CreateList("Newsletter")
	ctx := context.Background()

	// Stale rows: received an hour ago, so their updated_at is old.
	e.db.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
	stale := e.ingest(people("stale", 12, "Agents"))
	e.db.SetClock(time.Now)
	// The fresh row is bound for another list: an import of the stale rows
	// takes every pending row for its own lists (ExtendImport), whatever
	// its age, so only a row for other lists shows what the sweep leaves.
	freshPerson := people("fresh", 1, "Newsletter")
	fresh := e.ingest(freshPerson)
	if _, _, err := store.NewRedis(e.rdb).MarkEpoch(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.SweepInterval = time.Second
	cfg.SweepAge = 10 * time.Minute
	e.startWorker(cfg)
	rows := e.waitSettled(ids(stale), settleTimeout)
	for _, r := range rows {
		if r.Status != store.StatusImported {
			t.Errorf("stale row %s: %q %q, want imported", r.Email, r.Status, r.StatusReason)
		}
	}
	f, err := e.db.GetEnrollment(ctx, fresh[0].EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != store.StatusPending {
		t.Errorf("fresh row swept too early: status %q", f.Status)
	}
	contacts := e.contactsByEmail()
	if len(contacts) != len(stale) {
		t.Errorf("sandbox holds %d contacts, want %d", len(contacts), len(stale))
	}
	if _, ok := contacts[freshPerson[0].email]; ok {
		t.Error("fresh contact reached CC")
	}
	if got := e.sb.Stats().Requests[importRoute]; got != 1 {
		t.Errorf("contacts_json_import called %d times, want 1", got)
	}
}

// TestWorkerRecoversFromRedisFlush: when Redis loses its data under a
// running worker, every row that was waiting is queued again from MySQL
// within seconds, on the default sweep age (10 minutes), and imported once.
func TestWorkerRecoversFromRedisFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unlimited)
	e.sb.CreateList("Agents")
	ctx := context.Background()
	cfg := testConfig()
	cfg.SweepAge = jobs.DefaultConfig().SweepAge
	// A grace longer than the test's flush takes keeps the tasks in their
	// group until Redis loses them.
	cfg.GroupGracePeriod, cfg.GroupMaxDelay = 5*time.Second, 10*time.Second
	e.startWorker(cfg)
	waitFor(t, 10*time.Second, func() (bool, string) {
		n, err := e.rdb.Exists(ctx, "hs2cc:epoch").Result()
		return err == nil && n == 1, "the worker has not marked Redis yet"
	})
	rows := e.ingest(people("flushed", 30, "Agents"))
	e.enqueue(rows)
	if err := e.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, r := range e.waitSettled(ids(rows), 30*time.Second) {
		if r.Status != store.StatusImported {
			t.Errorf("row %s: %q %q, want imported", r.Email, r.Status, r.StatusReason)
		}
	}
	t.Logf("all rows imported %s after the flush", time.Since(start).Round(time.Millisecond))
	if got := len(e.contactsByEmail()); got != len(rows) {
		t.Errorf("sandbox holds %d contacts, want %d", got, len(rows))
	}
	if got := e.sb.Stats().ImportRows; got != len(rows) {
		t.Errorf("CC received %d rows, want %d: a row was sent twice or not at all", got, len(rows))
	}
}
