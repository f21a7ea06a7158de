package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

func enrollment(key, email, first, hash string) *store.Enrollment {
	return &store.Enrollment{
		PortalID: 62515, ObjectKey: key, Email: email, FirstName: first, LastName: "Øster", Country: "US",
		EnrolledAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
		Properties: map[string]string{"email": email, "firstname": first}, Lists: []string{"New Agents"},
		ContentHash: hash,
	}
}

// workflowDelivery is a delivery whose body stands for e's content, as a
// real body does: two deliveries of different content never share a body,
// which would make the second an exact repeat of the first.
func workflowDelivery(e *store.Enrollment) *store.Delivery {
	return &store.Delivery{Kind: store.KindWorkflow,
		Body: []byte(fmt.Sprintf(`{"hs_object_id":%q,"content":%q,"lists":%q}`, e.ObjectKey, e.ContentHash, e.Lists))}
}

func TestMigrateAndSchemaCheck(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("empty database: CheckSchema = %v, want ErrSchemaOutdated", err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[len(applied)-1] != store.LatestVersion() {
		t.Fatalf("applied %v, latest %d", applied, store.LatestVersion())
	}
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatalf("after migrate: %v", err)
	}
	again, err := db.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v, err %v; want nothing", again, err)
	}
}

// TestIngestOutcomes: one contact through new, repeated, changed and
// replayed bodies. A v1/v2 body (no send time) seen before about the same
// contact is an exact repeat: counted on the delivery that stored it,
// nothing stored, nothing rolled back, even when its content is older than
// the row's.
func TestIngestOutcomes(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	bodyA, bodyA2, bodyB, bodyC := []byte(`{"vid":1,"firstname":"Ann"}`), []byte(`{"firstname":"Ann","vid":1}`),
		[]byte(`{"vid":1,"firstname":"Anna"}`), []byte(`{"vid":2,"firstname":"Bob"}`)
	steps := []struct {
		name        string
		body        []byte
		e           *store.Enrollment
		wantOutcome store.Outcome
		wantVersion int
		wantVerdict string // of the stored delivery the result names
		repeatOf    int    // the step whose delivery counts this one; -1 for none
	}{
		{"first delivery creates", bodyA, enrollment("101", "ann@example.com", "Ann", "h1"), store.OutcomeCreated, 1, store.VerdictAccepted, -1},
		{"identical repeat is counted, not stored", bodyA, enrollment("101", "ann@example.com", "Ann", "h1"), store.OutcomeUnchanged, 1, store.VerdictAccepted, 0},
		{"the same content in another body is a duplicate", bodyA2, enrollment("101", "ann@example.com", "Ann", "h1"), store.OutcomeUnchanged, 1, store.VerdictDuplicate, -1},
		{"changed content is a new version", bodyB, enrollment("101", "ann@example.com", "Anna", "h2"), store.OutcomeUpdated, 2, store.VerdictAccepted, -1},
		{"the first body replayed rolls nothing back", bodyA, enrollment("101", "ann@example.com", "Ann", "h1"), store.OutcomeUnchanged, 2, store.VerdictAccepted, 0},
		{"another contact is separate", bodyC, enrollment("102", "bob@example.com", "Bob", "h1"), store.OutcomeCreated, 1, store.VerdictAccepted, -1},
	}
	var firstID int64
	deliveryOf := make([]int64, len(steps))
	for i, st := range steps {
		d := &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v2", Body: st.body}
		res, err := db.Ingest(ctx, d, st.e)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		deliveryOf[i] = res.DeliveryID
		if res.Outcome != st.wantOutcome || res.Version != st.wantVersion || res.Repeat != (st.repeatOf >= 0) {
			t.Errorf("%s: outcome %v version %d repeat %v, want %v %d %v", st.name, res.Outcome, res.Version, res.Repeat,
				st.wantOutcome, st.wantVersion, st.repeatOf >= 0)
		}
		if st.repeatOf >= 0 && res.DeliveryID != deliveryOf[st.repeatOf] {
			t.Errorf("%s: delivery %d, want the repeat counted on %d", st.name, res.DeliveryID, deliveryOf[st.repeatOf])
		}
		got, err := db.GetDelivery(ctx, res.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Verdict != st.wantVerdict || got.EnrollmentID != res.EnrollmentID || string(got.Body) != string(st.body) {
			t.Errorf("%s: delivery %+v", st.name, got)
		}
		if st.e.ObjectKey == "101" {
			if firstID == 0 {
				firstID = res.EnrollmentID
			} else if res.EnrollmentID != firstID {
				t.Errorf("%s: id %d, want %d", st.name, res.EnrollmentID, firstID)
			}
		}
	}
	e, err := db.GetEnrollment(ctx, firstID)
	if err != nil {
		t.Fatal(err)
	}
	if e.FirstName != "Anna" || e.LastName != "Øster" || e.Version != 2 || e.Status != store.StatusPending ||
		len(e.Lists) != 1 || e.Lists[0] != "New Agents" || !e.EnrolledAt.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("stored enrollment %+v", e)
	}
	first, err := db.GetDelivery(ctx, deliveryOf[0])
	if err != nil {
		t.Fatal(err)
	}
	if first.Repeats != 2 || first.LastRepeatAt.IsZero() {
		t.Errorf("first delivery: %d repeats, last at %v; want 2 and a time", first.Repeats, first.LastRepeatAt)
	}
	counts, err := db.CountDeliveries(ctx)
	if err != nil || counts[store.VerdictAccepted] != 3 || counts[store.VerdictDuplicate] != 1 || len(counts) != 2 {
		t.Errorf("delivery verdicts %v, %v; want 3 accepted and 1 duplicate", counts, err)
	}
}

// TestIngestConcurrentSameContact: the same body sent 16 times at once
// makes one enrollment and one delivery that counts the other 15.
func TestIngestConcurrentSameContact(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	var wg sync.WaitGroup
	results := make([]store.IngestResult, 16)
	errs := make([]error, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &store.Delivery{Kind: store.KindWorkflow, Body: []byte("{}")}
			results[i], errs[i] = db.Ingest(ctx, d, enrollment("777", "c@example.com", "C", "same"))
		}()
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ingest %d: %v", i, err)
		}
		if results[i].Outcome == store.OutcomeCreated {
			created++
		}
		if results[i].EnrollmentID != results[0].EnrollmentID || results[i].DeliveryID != results[0].DeliveryID {
			t.Fatalf("results differ: %+v vs %+v", results[i], results[0])
		}
	}
	if created != 1 {
		t.Fatalf("created %d times, want exactly 1", created)
	}
	counts, err := db.CountDeliveries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.GetDelivery(ctx, results[0].DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.VerdictAccepted] != 1 || len(counts) != 1 || d.Repeats != 15 {
		t.Fatalf("delivery verdicts %v, repeats %d; want 1 accepted delivery with 15 repeats", counts, d.Repeats)
	}
}

func ingestN(t *testing.T, db *store.DB, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := 0; i < n; i++ {
		res, err := db.Ingest(context.Background(), &store.Delivery{Kind: store.KindWorkflow, Body: []byte("{}")},
			enrollment(fmt.Sprint(1000+i), fmt.Sprintf("a%d@example.com", i), "A", "h"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.EnrollmentID)
	}
	return ids
}

func TestClaimImportOnce(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	ids := ingestN(t, db, 5)

	imp, err := db.ClaimImport(ctx, "task-1", store.ListKey([]string{"New Agents"}), ids)
	if err != nil || imp == nil || imp.ContactCount != 5 {
		t.Fatalf("first claim: %+v, %v", imp, err)
	}
	// The same task retried gets the same import back.
	again, err := db.ClaimImport(ctx, "task-1", store.ListKey([]string{"New Agents"}), ids)
	if err != nil || again == nil || again.ID != imp.ID {
		t.Fatalf("retried claim: %+v, %v", again, err)
	}
	// The same batch handed out again under another task id claims nothing.
	dup, err := db.ClaimImport(ctx, "task-2", "", ids)
	if err != nil || dup != nil {
		t.Fatalf("duplicate batch: %+v, %v; want nil, nil", dup, err)
	}
	rows, err := db.ImportRows(ctx, imp.ID)
	if err != nil || len(rows) != 5 {
		t.Fatalf("import rows: %d, %v", len(rows), err)
	}
	for _, r := range rows {
		if r.Status != store.StatusImporting || r.ImportID != imp.ID {
			t.Fatalf("row %+v", r)
		}
	}
}

func TestRecordActivitySettlesRows(t *testing.T) {
	cases := []struct {
		name       string
		clean      bool
		wantStatus string
	}{
		{"clean completion imports rows", true, store.StatusImported},
		{"completion with errors fails rows", false, store.StatusFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MySQL(t)
			ids := ingestN(t, db, 3)
			imp, err := db.ClaimImport(ctx, "t", "", ids)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.SubmitImport(ctx, imp.ID, []string{"New Agents"}, []string{"l-1"}, "act-1", "initialized"); err != nil {
				t.Fatal(err)
			}
			// A new version arriving mid-import must not be marked imported.
			changed := enrollment("1000", "a0@example.com", "Changed", "h-new")
			if _, err := db.Ingest(ctx, workflowDelivery(changed), changed); err != nil {
				t.Fatal(err)
			}
			if err := db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "processing"}, false, ""); err != nil {
				t.Fatal(err)
			}
			if e, _ := db.GetEnrollment(ctx, ids[1]); e.Status != store.StatusImporting {
				t.Fatalf("non-final report changed row status to %s", e.Status)
			}
			res := store.ActivityResult{State: "completed", Final: true, ActivityCounts: store.ActivityCounts{PersonCount: 2, ErrorCount: 1, ActivityErrors: []string{"x"}}}
			if err := db.RecordActivity(ctx, imp.ID, res, tc.clean, "1 error"); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				e, err := db.GetEnrollment(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.wantStatus
				if i == 0 {
					want = store.StatusPending
				}
				if e.Status != want {
					t.Errorf("row %d status %s, want %s", i, e.Status, want)
				}
			}
			got, err := db.GetImport(ctx, imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != "completed" || got.ActivityID != "act-1" || got.ErrorCount != 1 || got.CompletedAt.IsZero() ||
				len(got.ActivityErrors) != 1 || got.ListIDs[0] != "l-1" {
				t.Errorf("import %+v", got)
			}
		})
	}
}

func TestStalePending(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	now := time.Now()
	db.SetClock(func() time.Time { return now.Add(-time.Hour) })
	old := ingestN(t, db, 2)
	db.SetClock(func() time.Time { return now })
	fresh := enrollment("fresh", "f@example.com", "F", "h")
	res, err := db.Ingest(ctx, workflowDelivery(fresh), fresh)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := db.StalePending(ctx, now.Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].ID != old[0] || refs[1].ID != old[1] {
		t.Fatalf("stale %+v, want ids %v (not %d)", refs, old, res.EnrollmentID)
	}
}

func TestTokenCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	// The pair is sealed at rest, so the store needs a key to save or load.
	db.SetTokenKeys(mustKeys(t, store.NewTokenKey()))
	if _, err := db.LoadToken(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty: %v", err)
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	v1, err := db.SaveToken(ctx, store.Token{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp}, 0)
	if err != nil || v1 != 1 {
		t.Fatalf("first save: %d, %v", v1, err)
	}
	v2, err := db.SaveToken(ctx, store.Token{AccessToken: "a2", RefreshToken: "r2", ExpiresAt: exp}, v1)
	if err != nil || v2 != 2 {
		t.Fatalf("cas save: %d, %v", v2, err)
	}
	if _, err := db.SaveToken(ctx, store.Token{AccessToken: "a3", RefreshToken: "r3", ExpiresAt: exp}, v1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale cas: %v, want ErrConflict", err)
	}
	tok, err := db.LoadToken(ctx)
	if err != nil || tok.RefreshToken != "r2" || tok.Version != 2 || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("loaded %+v, %v", tok, err)
	}
}

func TestCacheLockAndToken(t *testing.T) {
	ctx := context.Background()
	c := store.NewRedis(storetest.Redis(t))
	// The token is cached sealed, so the cache needs the keys.
	c.SetTokenKeys(storetest.TokenKeys(t))
	release, ok, err := c.Lock(ctx, "refresh", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok2, err := c.Lock(ctx, "refresh", time.Minute); err != nil || ok2 {
		t.Fatalf("second lock while held: %v %v", ok2, err)
	}
	release()
	if rel, ok3, err := c.Lock(ctx, "refresh", time.Minute); err != nil || !ok3 {
		t.Fatalf("lock after release: %v %v", ok3, err)
	} else {
		rel()
	}
	if err := c.SetAccessToken(ctx, "tok-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.DropAccessToken(ctx, "tok-other"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.AccessToken(ctx); v != "tok-1" {
		t.Fatalf("dropping another token evicted ours: %q", v)
	}
	if err := c.DropAccessToken(ctx, "tok-1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.AccessToken(ctx); v != "" {
		t.Fatalf("token still cached: %q", v)
	}
}

// TestClaimImportLeavesRowsWhoseListsChanged: a contact re-routed to other
// lists while its old task waited must be left to its new version's task.
func TestClaimImportLeavesRowsWhoseListsChanged(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	ids := ingestN(t, db, 3)
	moved := enrollment("1001", "a1@example.com", "A", "h-moved")
	moved.Lists = []string{"Gold Agents"}
	if _, err := db.Ingest(ctx, workflowDelivery(moved), moved); err != nil {
		t.Fatal(err)
	}
	imp, err := db.ClaimImport(ctx, "old-group", store.ListKey([]string{"New Agents"}), ids)
	if err != nil || imp == nil || imp.ContactCount != 2 {
		t.Fatalf("claim for the old lists: %+v, %v; want 2 rows", imp, err)
	}
	if e, _ := db.GetEnrollment(ctx, ids[1]); e.Status != store.StatusPending {
		t.Fatalf("moved row is %s, want pending for its new group", e.Status)
	}
	gold, err := db.ClaimImport(ctx, "new-group", store.ListKey([]string{"Gold Agents"}), []int64{ids[1]})
	if err != nil || gold == nil || gold.ContactCount != 1 {
		t.Fatalf("claim for the new lists: %+v, %v", gold, err)
	}
}

func TestRejectRows(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	ids := ingestN(t, db, 2)
	imp, err := db.ClaimImport(ctx, "t", "", ids)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RejectRows(ctx, imp.ID, map[int64]string{ids[0]: "email is 60 characters"}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.ImportRows(ctx, imp.ID)
	if err != nil || len(rows) != 1 || rows[0].ID != ids[1] {
		t.Fatalf("rows left in the import: %+v, %v", rows, err)
	}
	e, err := db.GetEnrollment(ctx, ids[0])
	if err != nil || e.Status != store.StatusRejected || e.StatusReason != "email is 60 characters" {
		t.Fatalf("rejected row %+v, %v", e, err)
	}
}
