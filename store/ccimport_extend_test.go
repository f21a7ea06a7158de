package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

var (
	agents = []string{"New Agents"}
	gold   = []string{"Gold Agents", "New Agents"}
)

// ingestLists stores n new enrollments bound for lists and returns their
// ids, oldest first.
func ingestLists(t *testing.T, db *store.DB, prefix string, n int, lists []string) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		e := enrollment(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s%d@example.com", prefix, i), "A", prefix)
		e.Lists = lists
		res, err := db.Ingest(context.Background(), &store.Delivery{Kind: store.KindWorkflow, Body: []byte("{}")}, e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.EnrollmentID)
	}
	return ids
}

// rowState is where one enrollment stands.
type rowState struct {
	status   string
	importID int64
}

func rowStates(t *testing.T, db *store.DB, ids []int64) []rowState {
	t.Helper()
	out := make([]rowState, len(ids))
	for i, id := range ids {
		e, err := db.GetEnrollment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = rowState{e.Status, e.ImportID}
	}
	return out
}

func states(status string, importID int64, n int) []rowState {
	out := make([]rowState, n)
	for i := range out {
		out[i] = rowState{status, importID}
	}
	return out
}

// TestExtendImport: an import takes the other rows pending for its lists,
// oldest first, up to max rows in all, and only while it is claimed and not
// yet posted; rows for other lists, and rows that are not pending, stay
// where they are.
func TestExtendImport(t *testing.T) {
	t.Parallel()
	type fixture struct {
		claimed []int64 // claimed by the import under test
		same    []int64 // pending for the same lists, oldest first
		other   []int64 // pending for other lists
		imp     *store.Import
		others  []int64 // ids of other imports a case made
	}
	tests := []struct {
		name string
		max  int
		// prepare runs after the claim and may change the import or rows.
		prepare   func(t *testing.T, db *store.DB, f *fixture)
		wantAdded int
		// want is the state of claimed, then same, then other.
		want func(f *fixture) []rowState
	}{
		{
			name: "takes every pending row for its lists", max: 100, wantAdded: 5,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 8), states(store.StatusPending, 0, 2))
			},
		},
		{
			name: "max counts the rows already claimed; the oldest go first", max: 6, wantAdded: 3,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 6), states(store.StatusPending, 0, 4))
			},
		},
		{
			name: "already full", max: 3, wantAdded: 0,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3), states(store.StatusPending, 0, 7))
			},
		},
		{
			name: "a submitted import is not extended", max: 100, wantAdded: 0,
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.SubmitImport(context.Background(), f.imp.ID, agents, []string{"l1"}, "act-1", "initialized"); err != nil {
					t.Fatal(err)
				}
			},
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3), states(store.StatusPending, 0, 7))
			},
		},
		{
			name: "a settled import is not extended", max: 100, wantAdded: 0,
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.FailImport(context.Background(), f.imp.ID, "refused"); err != nil {
					t.Fatal(err)
				}
			},
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusFailed, f.imp.ID, 3), states(store.StatusPending, 0, 7))
			},
		},
		{
			name: "rows held by another import or already settled stay put", max: 100, wantAdded: 3,
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				ctx := context.Background()
				other, err := db.ClaimImport(ctx, "other-task", store.ListKey(agents), f.same[:1])
				if err != nil || other == nil {
					t.Fatalf("claim by another import: %v, %v", other, err)
				}
				rejected, err := db.ClaimImport(ctx, "rejecting-task", store.ListKey(agents), f.same[1:2])
				if err != nil || rejected == nil {
					t.Fatalf("claim by a third import: %v, %v", rejected, err)
				}
				if err := db.RejectRows(ctx, rejected.ID, map[int64]string{f.same[1]: "too long"}); err != nil {
					t.Fatal(err)
				}
				f.others = []int64{other.ID, rejected.ID}
			},
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3),
					[]rowState{{store.StatusImporting, f.others[0]}, {store.StatusRejected, f.others[1]}},
					states(store.StatusImporting, f.imp.ID, 3), states(store.StatusPending, 0, 2))
			},
		},
		{
			name: "an import with no rows left is not extended", max: 100, wantAdded: 0,
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				reasons := map[int64]string{}
				for _, id := range f.claimed {
					reasons[id] = "too long"
				}
				if err := db.RejectRows(context.Background(), f.imp.ID, reasons); err != nil {
					t.Fatal(err)
				}
			},
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusRejected, f.imp.ID, 3), states(store.StatusPending, 0, 7))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			f := &fixture{}
			// Ingested interleaved, so that list key, not id order, decides.
			f.claimed = ingestLists(t, db, "claimed", 3, agents)
			f.other = ingestLists(t, db, "gold", 1, gold)
			f.same = ingestLists(t, db, "same", 5, agents)
			f.other = append(f.other, ingestLists(t, db, "gold2", 1, gold)...)
			imp, err := db.ClaimImport(ctx, "task-1", store.ListKey(agents), f.claimed)
			if err != nil || imp == nil {
				t.Fatalf("claim: %v, %v", imp, err)
			}
			f.imp = imp
			if tc.prepare != nil {
				tc.prepare(t, db, f)
			}
			before, err := db.GetImport(ctx, imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			added, err := db.ExtendImport(ctx, imp.ID, tc.max)
			if err != nil {
				t.Fatalf("ExtendImport: %v", err)
			}
			if added != tc.wantAdded {
				t.Errorf("added %d rows, want %d", added, tc.wantAdded)
			}
			got := rowStates(t, db, slices.Concat(f.claimed, f.same, f.other))
			if want := tc.want(f); !slices.Equal(got, want) {
				t.Errorf("rows (claimed, same lists, other lists):\n got %v\nwant %v", got, want)
			}
			after, err := db.GetImport(ctx, imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.ContactCount != before.ContactCount+tc.wantAdded {
				t.Errorf("contact_count %d, want %d + %d", after.ContactCount, before.ContactCount, tc.wantAdded)
			}
			if after.State != before.State || after.ActivityID != before.ActivityID {
				t.Errorf("import changed from %+v to %+v", before, after)
			}
		})
	}
}

// TestReleaseRows: rows handed back leave the import for pending, with no
// import, and the import's count drops by exactly the rows it gave up; ids
// it does not hold (another import's, pending, settled or unknown) are
// ignored.
func TestReleaseRows(t *testing.T) {
	t.Parallel()
	type fixture struct {
		mine, theirs, pending []int64
		imp, other            *store.Import
	}
	tests := []struct {
		name      string
		release   func(f *fixture) []int64
		prepare   func(t *testing.T, db *store.DB, f *fixture)
		wantCount int                         // the import's contact_count afterwards, of 4
		want      func(f *fixture) []rowState // mine, theirs, pending
	}{
		{
			name:      "two of four",
			release:   func(f *fixture) []int64 { return f.mine[2:] },
			wantCount: 2,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 2), states(store.StatusPending, 0, 2),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "ids the import does not hold are ignored",
			release: func(f *fixture) []int64 {
				return slices.Concat(f.theirs, f.pending, []int64{f.mine[0], 999999})
			},
			wantCount: 3,
			want: func(f *fixture) []rowState {
				return slices.Concat([]rowState{{store.StatusPending, 0}}, states(store.StatusImporting, f.imp.ID, 3),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "a row of the import that was rejected stays rejected",
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.RejectRows(context.Background(), f.imp.ID, map[int64]string{f.mine[0]: "too long"}); err != nil {
					t.Fatal(err)
				}
			},
			release:   func(f *fixture) []int64 { return f.mine[:2] },
			wantCount: 3,
			want: func(f *fixture) []rowState {
				return slices.Concat([]rowState{{store.StatusRejected, f.imp.ID}, {store.StatusPending, 0}},
					states(store.StatusImporting, f.imp.ID, 2),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name:      "nothing to release",
			release:   func(f *fixture) []int64 { return nil },
			wantCount: 4,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 4),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			// Ids go to MySQL 1,000 at a time; the real one is in the
			// second chunk.
			name: "a list longer than one statement's chunk",
			release: func(f *fixture) []int64 {
				ids := make([]int64, 0, 1002)
				for i := range 1000 {
					ids = append(ids, int64(500000+i))
				}
				return append(ids, f.mine[3], f.mine[3])
			},
			wantCount: 3,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3), []rowState{{store.StatusPending, 0}},
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			f := &fixture{
				mine:    ingestLists(t, db, "mine", 4, agents),
				theirs:  ingestLists(t, db, "theirs", 2, agents),
				pending: ingestLists(t, db, "waiting", 1, gold),
			}
			var err error
			if f.imp, err = db.ClaimImport(ctx, "task-mine", store.ListKey(agents), f.mine); err != nil || f.imp == nil {
				t.Fatalf("claim: %v, %v", f.imp, err)
			}
			if f.other, err = db.ClaimImport(ctx, "task-theirs", store.ListKey(agents), f.theirs); err != nil || f.other == nil {
				t.Fatalf("claim: %v, %v", f.other, err)
			}
			if tc.prepare != nil {
				tc.prepare(t, db, f)
			}
			if err := db.ReleaseRows(ctx, f.imp.ID, tc.release(f)); err != nil {
				t.Fatalf("ReleaseRows: %v", err)
			}
			got := rowStates(t, db, slices.Concat(f.mine, f.theirs, f.pending))
			if want := tc.want(f); !slices.Equal(got, want) {
				t.Errorf("rows (mine, theirs, pending):\n got %v\nwant %v", got, want)
			}
			imp, err := db.GetImport(ctx, f.imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if imp.ContactCount != tc.wantCount || imp.State != store.ImportClaimed {
				t.Errorf("import: contact_count %d state %q, want %d and still claimed", imp.ContactCount, imp.State, tc.wantCount)
			}
			other, err := db.GetImport(ctx, f.other.ID)
			if err != nil || other.ContactCount != 2 {
				t.Errorf("the other import: %+v, %v; want its 2 rows untouched", other, err)
			}
			// The released rows can be claimed again, as the task that
			// release queues for them does.
			var released []int64
			for i, r := range got[:len(f.mine)] {
				if r.status == store.StatusPending {
					released = append(released, f.mine[i])
				}
			}
			if len(released) > 0 {
				again, err := db.ClaimImport(ctx, "task-released", store.ListKey(agents), released)
				if err != nil || again == nil || again.ContactCount != len(released) {
					t.Errorf("claim of the released rows: %+v, %v; want %d rows", again, err, len(released))
				}
			}
		})
	}
}

// TestPendingByListsIndex: migration 0003 gives ExtendImport's lookup an
// index on (status, list_key, id), so that it reads a range instead of
// scanning and locking every enrollment.
func TestPendingByListsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.MySQLDSN(t)
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.QueryContext(ctx, `SELECT column_name FROM information_schema.statistics
		WHERE table_schema = DATABASE() AND table_name = 'enrollments' AND index_name = 'enrollments_pending_lists'
		ORDER BY seq_in_index`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cols, []string{"status", "list_key", "id"}) {
		t.Errorf("index enrollments_pending_lists has columns %v, want [status list_key id]", cols)
	}
}
