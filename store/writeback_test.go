package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// writebackStates reads every outbox row's state by enrollment id.
func writebackStates(t *testing.T, db *store.DB) map[int64]string {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT enrollment_id, state FROM hubspot_writeback`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

// settleImport claims ids as one import, submits it and settles it the way
// settle says.
func settleImport(t *testing.T, db *store.DB, ids []int64, settle func(ctx context.Context, imp *store.Import) error) *store.Import {
	t.Helper()
	ctx := context.Background()
	imp, err := db.ClaimImport(ctx, fmt.Sprintf("t-%d", ids[0]), store.ListKey([]string{"New Agents"}), ids)
	if err != nil || imp == nil {
		t.Fatalf("claim: %+v %v", imp, err)
	}
	if err := db.SubmitImport(ctx, imp.ID, []string{"New Agents"}, []string{"l-1"}, "act-"+fmt.Sprint(imp.ID), "initialized"); err != nil {
		t.Fatal(err)
	}
	if err := settle(ctx, imp); err != nil {
		t.Fatal(err)
	}
	return imp
}

var completed = store.ActivityResult{State: "completed", Final: true}

// TestWritebackQueuedWithTheSettle: every way an import settles its rows
// queues them for HubSpot in the same transaction when the write-back is
// on, and queues nothing when it is off (no token: the bridge otherwise
// unchanged).
func TestWritebackQueuedWithTheSettle(t *testing.T) {
	cases := []struct {
		name   string
		on     bool
		settle func(ctx context.Context, db *store.DB, imp *store.Import, ids []int64) error
		// want is each row's enrollment status; queued whether the outbox
		// holds them all.
		want   []string
		queued bool
	}{
		{name: "clean completion", on: true, want: []string{"imported", "imported", "imported"}, queued: true,
			settle: func(ctx context.Context, db *store.DB, imp *store.Import, _ []int64) error {
				return db.RecordActivity(ctx, imp.ID, completed, true, "")
			}},
		{name: "CC refused one row, the rest imported", on: true, want: []string{"rejected", "imported", "imported"}, queued: true,
			settle: func(ctx context.Context, db *store.DB, imp *store.Import, ids []int64) error {
				if err := db.RejectRows(ctx, imp.ID, map[int64]string{ids[0]: "Constant Contact refused this row: bad"}); err != nil {
					return err
				}
				return db.RecordActivity(ctx, imp.ID, completed, true, "")
			}},
		{name: "import failed", on: true, want: []string{"failed", "failed", "failed"}, queued: true,
			settle: func(ctx context.Context, db *store.DB, imp *store.Import, _ []int64) error {
				return db.FailImport(ctx, imp.ID, "CC activity not found")
			}},
		{name: "rows failed one by one", on: true, want: []string{"failed", "imported", "imported"}, queued: true,
			settle: func(ctx context.Context, db *store.DB, imp *store.Import, ids []int64) error {
				if err := db.FailRows(ctx, imp.ID, map[int64]string{ids[0]: "not named"}); err != nil {
					return err
				}
				return db.RecordActivity(ctx, imp.ID, completed, true, "")
			}},
		{name: "write-back off", on: false, want: []string{"rejected", "imported", "imported"}, queued: false,
			settle: func(ctx context.Context, db *store.DB, imp *store.Import, ids []int64) error {
				if err := db.RejectRows(ctx, imp.ID, map[int64]string{ids[0]: "bad"}); err != nil {
					return err
				}
				return db.RecordActivity(ctx, imp.ID, completed, true, "")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.MySQL(t)
			if tc.on {
				db.EnableWriteback()
			}
			ids := ingestN(t, db, 3)
			settleImport(t, db, ids, func(ctx context.Context, imp *store.Import) error { return tc.settle(ctx, db, imp, ids) })
			states := writebackStates(t, db)
			for i, id := range ids {
				e, err := db.GetEnrollment(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if e.Status != tc.want[i] {
					t.Errorf("row %d status %s, want %s", i, e.Status, tc.want[i])
				}
				if _, ok := states[id]; ok != tc.queued {
					t.Errorf("row %d queued %v, want %v", i, ok, tc.queued)
				}
			}
			if !tc.queued && len(states) != 0 {
				t.Errorf("outbox holds %v with the write-back off", states)
			}
		})
	}
}

// TestWritebackClaims: a claim takes pending rows once; a row queued again
// while its batch is in flight loses the claim, so the older answer cannot
// mark it written; a released claim counts an attempt only for a fault; and
// an expired claim is taken again.
func TestWritebackClaims(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	db.EnableWriteback()
	base := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	db.SetClock(func() time.Time { return base })
	ids := ingestN(t, db, 5)
	settleImport(t, db, ids, func(ctx context.Context, imp *store.Import) error {
		return db.RecordActivity(ctx, imp.ID, completed, true, "")
	})

	a, err := db.ClaimWriteback(ctx, "a", 3, time.Minute)
	if err != nil || len(a) != 3 {
		t.Fatalf("claim a: %d rows, %v", len(a), err)
	}
	for _, r := range a {
		if r.Status != store.StatusImported || !slices.Equal(r.Lists, []string{"New Agents"}) || r.ImportedAt.IsZero() {
			t.Errorf("claimed row %+v", r)
		}
	}
	b, err := db.ClaimWriteback(ctx, "b", 10, time.Minute)
	if err != nil || len(b) != 2 {
		t.Fatalf("claim b: %d rows, %v; want the 2 left", len(b), err)
	}
	// a[0]'s contact unsubscribes in CC while batch a is in flight.
	if n, err := db.MarkUnsubscribed(ctx, []string{a[0].Email}, base); err != nil || n != 1 {
		t.Fatalf("mark unsubscribed: %d, %v", n, err)
	}
	// Read again by the next sync's overlapping window: already known,
	// so not marked or queued twice.
	if n, err := db.MarkUnsubscribed(ctx, []string{strings.ToUpper(a[0].Email)}, base.Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("mark unsubscribed again: %d, %v; want 0", n, err)
	}
	var done []store.WritebackDone
	for _, r := range a {
		done = append(done, store.WritebackDone{EnrollmentID: r.EnrollmentID, State: store.WritebackWritten, Status: "imported"})
	}
	if err := db.FinishWriteback(ctx, "a", done); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseWriteback(ctx, "b", "HubSpot answered 429", false); err != nil {
		t.Fatal(err)
	}
	states := writebackStates(t, db)
	want := map[int64]string{a[0].EnrollmentID: "pending", a[1].EnrollmentID: "written", a[2].EnrollmentID: "written",
		b[0].EnrollmentID: "pending", b[1].EnrollmentID: "pending"}
	if !maps.Equal(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
	sum, err := db.SummarizeWriteback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts["pending"] != 3 || sum.Counts["written"] != 2 || !sum.LastWritten.Equal(base) ||
		sum.LastError != "HubSpot answered 429" || !sum.OldestPending.Equal(base) {
		t.Errorf("summary %+v", sum)
	}

	// The three pending rows come back, the unsubscribed one with its time
	// and none with an attempt spent on the 429.
	c, err := db.ClaimWriteback(ctx, "c", 10, time.Minute)
	if err != nil || len(c) != 3 {
		t.Fatalf("claim c: %d rows, %v", len(c), err)
	}
	for _, r := range c {
		if r.Attempts != 0 {
			t.Errorf("row %d attempts %d after a wait, want 0", r.EnrollmentID, r.Attempts)
		}
		if unsub := !r.UnsubscribedAt.IsZero(); unsub != (r.EnrollmentID == a[0].EnrollmentID) {
			t.Errorf("row %d unsubscribed at %v", r.EnrollmentID, r.UnsubscribedAt)
		}
	}
	if err := db.ReleaseWriteback(ctx, "c", "HubSpot answered 502", true); err != nil {
		t.Fatal(err)
	}
	// Claimed and never finished: the claim expires after its lease.
	if d, err := db.ClaimWriteback(ctx, "d", 10, time.Minute); err != nil || len(d) != 3 || d[0].Attempts != 1 {
		t.Fatalf("claim d: %+v, %v; want 3 rows with one attempt", d, err)
	}
	if e, err := db.ClaimWriteback(ctx, "e", 10, time.Minute); err != nil || len(e) != 0 {
		t.Fatalf("claim e within the lease: %d rows, %v", len(e), err)
	}
	db.SetClock(func() time.Time { return base.Add(2 * time.Minute) })
	if f, err := db.ClaimWriteback(ctx, "f", 10, time.Minute); err != nil || len(f) != 3 {
		t.Fatalf("claim f after the lease: %d rows, %v", len(f), err)
	}
}

// TestUnsubscribeSyncRoundTrip: the cursor is absent before the first run
// and kept as saved.
func TestUnsubscribeSyncRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	got, err := db.GetUnsubscribeSync(ctx)
	if err != nil || !got.RanAt.IsZero() || !got.SyncedTo.IsZero() {
		t.Fatalf("before any run: %+v, %v", got, err)
	}
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for _, u := range []store.UnsubscribeSync{
		{RanAt: at, Outcome: store.SyncPartial, Detail: "more pages", Found: 500, Marked: 3, CCPages: 1},
		{SyncedTo: at, RanAt: at.Add(time.Minute), Outcome: store.SyncDone, Found: 2, Marked: 2, CCPages: 1},
	} {
		if err := db.SaveUnsubscribeSync(ctx, u); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetUnsubscribeSync(ctx)
		if err != nil || !got.RanAt.Equal(u.RanAt) || !got.SyncedTo.Equal(u.SyncedTo) || got.Outcome != u.Outcome ||
			got.Found != u.Found || got.Marked != u.Marked || got.CCPages != u.CCPages || got.Detail != u.Detail {
			t.Errorf("saved %+v, read %+v, %v", u, got, err)
		}
	}
}

// TestMarkRemoved: a reconcile's removals queue the enrollments again with
// the lists they left, and do nothing with the write-back off.
func TestMarkRemoved(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("write-back %v", on), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			if on {
				db.EnableWriteback()
			}
			ids := ingestN(t, db, 3)
			at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
			n, err := db.MarkRemoved(ctx, map[int64][]string{ids[0]: {"New Agents"}, ids[2]: {"New Agents", "Gold"}}, at)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.ClaimWriteback(ctx, "r", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if !on {
				if n != 0 || len(rows) != 0 {
					t.Errorf("marked %d, claimed %d with the write-back off; want none", n, len(rows))
				}
				return
			}
			got := map[int64][]string{}
			for _, r := range rows {
				if !r.RemovedAt.Equal(at) {
					t.Errorf("row %d removed at %v, want %v", r.EnrollmentID, r.RemovedAt, at)
				}
				got[r.EnrollmentID] = r.RemovedFrom
			}
			if n != 2 || len(got) != 2 || !slices.Equal(got[ids[0]], []string{"New Agents"}) || !slices.Equal(got[ids[2]], []string{"New Agents", "Gold"}) {
				t.Errorf("marked %d, claimed %v", n, got)
			}
		})
	}
}
