package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// fakeBudget is a Budget with fixed numbers.
type fakeBudget struct {
	remaining, budget int
	err               error
}

func (b fakeBudget) Remaining(context.Context) (int, error) { return b.remaining, b.err }
func (b fakeBudget) Budget() int                            { return b.budget }

// ingestRow stores one more enrollment for lists and returns its id.
func (e *importerEnv) ingestRow(t *testing.T, key, email, first string, lists []string) int64 {
	t.Helper()
	// The body stands for the content, as a real one does: the same body
	// about the same contact would be an exact repeat, and change nothing.
	body := []byte(fmt.Sprintf(`{"key":%q,"first":%q,"lists":%q}`, key, first, lists))
	res, err := e.db.Ingest(context.Background(),
		&store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: body},
		&store.Enrollment{PortalID: 1, ObjectKey: key, Email: email, FirstName: first, LastName: "L",
			Lists: lists, ContentHash: key + first})
	if err != nil {
		t.Fatal(err)
	}
	return res.EnrollmentID
}

// runBatch runs the cc:import handler on a batch aggregated for lists, as
// asynq hands it over (without a task id, so every run is the same task).
func (e *importerEnv) runBatch(t *testing.T, lists []string, ids []int64) error {
	t.Helper()
	payload, _ := json.Marshal(importPayload{Group: GroupKey(lists), EnrollmentIDs: ids})
	return e.im.handleImport(context.Background(), asynq.NewTask(TypeCCImport, payload))
}

// only returns the one import of the env.
func (e *importerEnv) only(t *testing.T) *store.Import {
	t.Helper()
	imps, err := e.db.RecentImports(context.Background(), 10)
	if err != nil || len(imps) != 1 {
		t.Fatalf("imports %+v (err %v), want one", imps, err)
	}
	return imps[0]
}

// TestBudgetHold: when less than a tenth of today's CC budget is left, an
// import that is not full waits (5 minutes at a time, and never past two
// hours after its oldest row arrived) so that more rows share its call; a
// full import, or one whose rows waited long enough, goes at once.
func TestBudgetHold(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	lists := []string{"Agents"}
	tests := []struct {
		name        string
		budget      fakeBudget
		maxContacts int           // 0: CC's limit
		age         time.Duration // of the oldest row when the task runs
		wantHold    time.Duration // 0: posted now
	}{
		{name: "plenty left", budget: fakeBudget{remaining: 5000, budget: 10000}},
		{name: "exactly a tenth left", budget: fakeBudget{remaining: 1000, budget: 10000}},
		{name: "under a tenth, fresh rows: wait 5 minutes", budget: fakeBudget{remaining: 999, budget: 10000},
			wantHold: 5 * time.Minute},
		{name: "none left, fresh rows: wait 5 minutes", budget: fakeBudget{remaining: 0, budget: 10000},
			wantHold: 5 * time.Minute},
		{name: "under a tenth, oldest row 1h58m old: wait the 2 minutes left", budget: fakeBudget{remaining: 10, budget: 10000},
			age: 118 * time.Minute, wantHold: 2 * time.Minute},
		{name: "under a tenth, oldest row 2h old: go", budget: fakeBudget{remaining: 10, budget: 10000},
			age: 2 * time.Hour},
		{name: "under a tenth but the import is full: go", budget: fakeBudget{remaining: 10, budget: 10000},
			maxContacts: 3},
		{name: "the budget cannot be read: go rather than stall", budget: fakeBudget{err: errors.New("redis down"), budget: 10000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newImporterEnv(t, redisURL, ccsandbox.Options{}, staticToken, nil, lists,
				"ann@example.com", "bob@example.com", "cy@example.com")
			e.im.budget = tc.budget
			if tc.maxContacts > 0 {
				e.im.maxContacts = tc.maxContacts
			}
			oldest := time.Now()
			for _, r := range e.rowsOf(t) {
				if r.ReceivedAt.Before(oldest) {
					oldest = r.ReceivedAt
				}
			}
			e.im.now = func() time.Time { return oldest.Add(tc.age) }

			err := e.runBatch(t, lists, e.ids)
			imp := e.only(t)
			posts := e.sb.Stats().Requests[importRoute]
			if tc.wantHold == 0 {
				if err != nil || posts != 1 || imp.ActivityID == "" || imp.ContactCount != 3 {
					t.Fatalf("run: %v; %d posts, import %+v; want 3 contacts posted at once", err, posts, imp)
				}
				return
			}
			var w *waitError
			if !errors.As(err, &w) || w.after != tc.wantHold {
				t.Fatalf("run: %v, want a wait of %s", err, tc.wantHold)
			}
			if isFailure(err) {
				t.Error("a budget hold counts as a failure")
			}
			if d := retryDelay(time.Now)(0, err, asynq.NewTask(TypeCCImport, nil)); d != tc.wantHold {
				t.Errorf("retry delay %s, want %s", d, tc.wantHold)
			}
			if posts != 0 || imp.State != store.ImportClaimed || imp.ActivityID != "" {
				t.Errorf("%d posts, import %+v; want nothing posted and the import still claimed", posts, imp)
			}
			for _, r := range e.rowsOf(t) {
				if r.Status != store.StatusImporting || r.ImportID != imp.ID {
					t.Errorf("row %s: %q import %d, want importing under %d", r.Email, r.Status, r.ImportID, imp.ID)
				}
			}

			// Rows that arrive while the import waits join it, and once the
			// budget is back the one call carries them all.
			late := e.ingestRow(t, "late", "dee@example.com", "Dee", lists)
			e.im.budget = fakeBudget{remaining: 10000, budget: 10000}
			if err := e.runBatch(t, lists, e.ids); err != nil {
				t.Fatalf("run after the hold: %v", err)
			}
			imp = e.only(t)
			if n := e.sb.Stats().Requests[importRoute]; n != 1 || imp.ContactCount != 4 || imp.ActivityID == "" {
				t.Errorf("%d posts, import %+v; want one post of 4 contacts", n, imp)
			}
			if r, err := e.db.GetEnrollment(ctx, late); err != nil || r.ImportID != imp.ID {
				t.Errorf("the late row: %+v, %v; want it in import %d", r, err, imp.ID)
			}
		})
	}
}

// rowsOf loads the env's rows.
func (e *importerEnv) rowsOf(t *testing.T) []*store.Enrollment {
	t.Helper()
	var out []*store.Enrollment
	for _, id := range e.ids {
		r, err := e.db.GetEnrollment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestSameEmailNewestRowWins: two rows with one email become one contact
// with the newest row's data, and both rows share its outcome, whichever
// row the task claimed and whichever ExtendImport added afterwards.
func TestSameEmailNewestRowWins(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	lists := []string{"Agents"}
	tests := []struct {
		name  string
		claim string // which rows the task's batch names: "both", "newer", "older"
	}{
		{name: "both rows in the batch", claim: "both"},
		{name: "the batch names the newer row; the older joins by ExtendImport", claim: "newer"},
		{name: "the batch names the older row; the newer joins by ExtendImport", claim: "older"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, lists)
			older := e.ingestRow(t, "older", "Twin@Example.com", "Older", lists)
			other := e.ingestRow(t, "other", "solo@example.com", "Solo", lists)
			newer := e.ingestRow(t, "newer", "twin@example.com", "Newer", lists)
			batch := map[string][]int64{"both": {older, other, newer}, "newer": {newer}, "older": {older}}[tc.claim]
			if err := e.runBatch(t, lists, batch); err != nil {
				t.Fatalf("import: %v", err)
			}
			imp := e.only(t)
			payload, _ := json.Marshal(activityPayload{ImportID: imp.ID})
			if err := e.im.handleActivity(ctx, asynq.NewTask(TypeCCActivity, payload)); err != nil {
				t.Fatalf("poll: %v", err)
			}
			contacts := map[string]ccsandbox.SandboxContact{}
			for _, c := range e.sb.Contacts() {
				contacts[c.Email] = c
			}
			if len(contacts) != 2 || contacts["twin@example.com"].FirstName != "Newer" {
				t.Errorf("sandbox contacts %+v, want twin@example.com with the newer row's name and solo@example.com", contacts)
			}
			if st := e.sb.Stats(); st.ImportRows != 2 {
				t.Errorf("CC received %d rows, want 2 (the twin once)", st.ImportRows)
			}
			for _, id := range []int64{older, other, newer} {
				r, err := e.db.GetEnrollment(ctx, id)
				if err != nil || r.Status != store.StatusImported || r.ImportID != imp.ID {
					t.Errorf("row %d: %+v, %v; want imported by import %d", id, r, err, imp.ID)
				}
			}
		})
	}
}

// mapperFunc adapts a function to Mapper.
type mapperFunc func(e *store.Enrollment) (ccclient.ImportContact, string)

func (f mapperFunc) Contact(e *store.Enrollment) (ccclient.ImportContact, string) { return f(e) }

// TestImporterUsesMapper: with a Mapper, it alone decides what each contact
// carries and which rows cannot be sent; the built-in length checks do not
// apply on top.
func TestImporterUsesMapper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lists := []string{"Agents"}
	long := strings.Repeat("x", 60) // over the built-in 50-character check
	e := newImporterEnv(t, storetest.RedisURL(t), ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, lists)
	e.sb.CreateCustomField("agency_id")
	keep := e.ingestRow(t, "keep", "ann@example.com", long, lists)
	drop := e.ingestRow(t, "drop", "bob@example.com", "Bob", lists)
	e.im.mapper = mapperFunc(func(r *store.Enrollment) (ccclient.ImportContact, string) {
		if r.FirstName == "Bob" {
			return ccclient.ImportContact{}, "no agency id for this contact"
		}
		return ccclient.ImportContact{Email: r.Email, FirstName: "Mapped", City: "Oslo",
			CustomFields: map[string]string{"agency_id": "A-1"}}, ""
	})
	if err := e.runBatch(t, lists, []int64{keep, drop}); err != nil {
		t.Fatalf("import: %v", err)
	}
	imp := e.only(t)
	payload, _ := json.Marshal(activityPayload{ImportID: imp.ID})
	if err := e.im.handleActivity(ctx, asynq.NewTask(TypeCCActivity, payload)); err != nil {
		t.Fatalf("poll: %v", err)
	}
	cs := e.sb.Contacts()
	if len(cs) != 1 || cs[0].FirstName != "Mapped" || cs[0].Fields["city"] != "Oslo" || cs[0].CustomFields["agency_id"] != "A-1" {
		t.Errorf("sandbox contacts %+v, want ann as the mapper made her", cs)
	}
	if r, _ := e.db.GetEnrollment(ctx, keep); r.Status != store.StatusImported {
		t.Errorf("mapped row: %q %q, want imported", r.Status, r.StatusReason)
	}
	if r, _ := e.db.GetEnrollment(ctx, drop); r.Status != store.StatusRejected || r.StatusReason != "no agency id for this contact" {
		t.Errorf("refused row: %q %q, want rejected with the mapper's reason", r.Status, r.StatusReason)
	}
}

// TestFitImport: a batch is cut where the next contact would take the body
// past the byte limit or the import past the contact limit, measured with
// the encoder that sends it.
func TestFitImport(t *testing.T) {
	lists := []string{"04fe9a97-a579-43c5-bb1a-58ed29bf0a6a"}
	contacts := make([]ccclient.ImportContact, 5)
	for i := range contacts {
		contacts[i] = ccclient.ImportContact{Email: fmt.Sprintf("agent%d@example.com", i), FirstName: "Zoë"}
	}
	body := func(n int) int {
		b, _ := json.Marshal(ccclient.ImportRequest{ImportData: contacts[:n], ListIDs: lists})
		return len(b)
	}
	tests := []struct {
		name                  string
		maxBytes, maxContacts int
		want                  int
	}{
		{"everything fits", 1 << 20, 100, 5},
		{"three bodies' worth exactly", body(3), 100, 3},
		{"a byte short of three", body(3) - 1, 100, 2},
		{"the contact limit first", 1 << 20, 4, 4},
		{"not even one", body(1) - 1, 100, 0},
	}
	for _, tc := range tests {
		if got := fitImport(contacts, lists, tc.maxBytes, tc.maxContacts); got != tc.want {
			t.Errorf("%s: fitImport = %d, want %d", tc.name, got, tc.want)
		}
	}
}
