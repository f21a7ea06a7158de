package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestImportLists: an import's lists are those of the rows it still holds,
// in the order they were stored; with no row held (all rejected, settled,
// or no such import) there is nothing to resolve and the answer is nil.
func TestImportLists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lists []string
		// prepare runs after the claim of the import's three rows.
		prepare func(t *testing.T, db *store.DB, imp *store.Import, ids []int64)
		// unknown asks about an import id nobody claimed.
		unknown bool
		want    []string
	}{
		{name: "one list", lists: agents, want: agents},
		{name: "a list pair, as stored", lists: gold, want: gold},
		{
			name: "some rows rejected", lists: gold, want: gold,
			prepare: func(t *testing.T, db *store.DB, imp *store.Import, ids []int64) {
				if err := db.RejectRows(context.Background(), imp.ID, map[int64]string{ids[0]: "too long", ids[1]: "too long"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "every row rejected", lists: gold, want: nil,
			prepare: func(t *testing.T, db *store.DB, imp *store.Import, ids []int64) {
				reasons := map[int64]string{}
				for _, id := range ids {
					reasons[id] = "too long"
				}
				if err := db.RejectRows(context.Background(), imp.ID, reasons); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "settled: its rows failed", lists: gold, want: nil,
			prepare: func(t *testing.T, db *store.DB, imp *store.Import, ids []int64) {
				if err := db.FailImport(context.Background(), imp.ID, "refused"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "every row released", lists: gold, want: nil,
			prepare: func(t *testing.T, db *store.DB, imp *store.Import, ids []int64) {
				if err := db.ReleaseRows(context.Background(), imp.ID, ids); err != nil {
					t.Fatal(err)
				}
			},
		},
		{name: "no such import", lists: gold, unknown: true, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			ids := ingestLists(t, db, "mine", 3, tc.lists)
			// Rows of other lists, pending and under another import, must
			// never lend their lists to this one.
			ingestLists(t, db, "waiting", 1, []string{"Waiting Agents"})
			other, err := db.ClaimImport(ctx, "task-other", "", ingestLists(t, db, "other", 1, []string{"Other Agents"}))
			if err != nil || other == nil {
				t.Fatalf("claim of the other import: %v, %v", other, err)
			}
			imp, err := db.ClaimImport(ctx, "task-mine", store.ListKey(tc.lists), ids)
			if err != nil || imp == nil {
				t.Fatalf("claim: %v, %v", imp, err)
			}
			if tc.prepare != nil {
				tc.prepare(t, db, imp, ids)
			}
			id := imp.ID
			if tc.unknown {
				id = imp.ID + other.ID + 1000
			}
			got, err := db.ImportLists(ctx, id)
			if err != nil {
				t.Fatalf("ImportLists: %v", err)
			}
			if tc.want == nil && got != nil {
				t.Errorf("ImportLists = %q, want nil", got)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ImportLists = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAbandonImport: an import CC never accepted gives every row it holds
// back to pending, with no import and no failure, and disappears; rows it
// no longer holds and other imports' rows stay where they are. An import CC
// accepted is CC's: abandoning it is refused and changes nothing. An
// import that is already gone is nothing to do.
func TestAbandonImport(t *testing.T) {
	t.Parallel()
	type fixture struct {
		mine, theirs, waiting []int64
		imp, other            *store.Import
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, db *store.DB, f *fixture)
		// abandon is the import id to abandon; nil means the import under
		// test.
		abandon      func(f *fixture) int64
		wantReleased int
		wantErr      bool
		errNames     string                      // what the error must name
		wantGone     bool                        // the import under test no longer exists
		want         func(f *fixture) []rowState // mine, theirs, waiting
	}{
		{
			name:         "every row goes back to pending",
			wantReleased: 3,
			wantGone:     true,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusPending, 0, 3),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "a rejected row stays rejected",
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.RejectRows(context.Background(), f.imp.ID, map[int64]string{f.mine[0]: "too long"}); err != nil {
					t.Fatal(err)
				}
			},
			wantReleased: 2,
			wantGone:     true,
			want: func(f *fixture) []rowState {
				return slices.Concat([]rowState{{store.StatusRejected, 0}}, states(store.StatusPending, 0, 2),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "an import holding no rows is deleted",
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.ReleaseRows(context.Background(), f.imp.ID, f.mine); err != nil {
					t.Fatal(err)
				}
			},
			wantReleased: 0,
			wantGone:     true,
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusPending, 0, 3),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "an import CC accepted is refused",
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.SubmitImport(context.Background(), f.imp.ID, agents, []string{"l-1"}, "act-1", "initialized"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr:  true,
			errNames: "act-1",
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name: "a settled import is refused: it is the record of its rows",
			prepare: func(t *testing.T, db *store.DB, f *fixture) {
				if err := db.FailImport(context.Background(), f.imp.ID, "refused"); err != nil {
					t.Fatal(err)
				}
			},
			wantErr:  true,
			errNames: "rejected",
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusFailed, f.imp.ID, 3),
					states(store.StatusImporting, f.other.ID, 2), states(store.StatusPending, 0, 1))
			},
		},
		{
			name:    "an unknown import is nothing to do",
			abandon: func(f *fixture) int64 { return f.imp.ID + f.other.ID + 1000 },
			want: func(f *fixture) []rowState {
				return slices.Concat(states(store.StatusImporting, f.imp.ID, 3),
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
				mine:    ingestLists(t, db, "mine", 3, agents),
				theirs:  ingestLists(t, db, "theirs", 2, agents),
				waiting: ingestLists(t, db, "waiting", 1, agents),
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
			before, err := db.GetImport(ctx, f.imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			id := f.imp.ID
			if tc.abandon != nil {
				id = tc.abandon(f)
			}

			released, err := db.AbandonImport(ctx, id)
			switch {
			case tc.wantErr && err == nil:
				t.Errorf("AbandonImport = %d, nil; want an error", released)
			case tc.wantErr && !strings.Contains(err.Error(), tc.errNames):
				t.Errorf("AbandonImport error %q does not name %q", err, tc.errNames)
			case !tc.wantErr && err != nil:
				t.Fatalf("AbandonImport: %v", err)
			}
			if released != tc.wantReleased {
				t.Errorf("AbandonImport released %d rows, want %d", released, tc.wantReleased)
			}

			got := rowStates(t, db, slices.Concat(f.mine, f.theirs, f.waiting))
			// Which import a settled row names once its import is gone
			// is no part of abandoning; its status is.
			for i := range got {
				if got[i].status == store.StatusRejected {
					got[i].importID = 0
				}
			}
			if want := tc.want(f); !slices.Equal(got, want) {
				t.Errorf("rows (mine, theirs, waiting):\n got %v\nwant %v", got, want)
			}
			for _, id := range f.mine {
				if e, err := db.GetEnrollment(ctx, id); err != nil {
					t.Fatal(err)
				} else if e.Status == store.StatusPending && e.StatusReason != "" {
					t.Errorf("row %d went back with the reason %q; waiting is no failure", id, e.StatusReason)
				}
			}

			after, err := db.GetImport(ctx, f.imp.ID)
			switch {
			case tc.wantGone && !errors.Is(err, store.ErrNotFound):
				t.Errorf("import after abandoning: %+v, %v; want ErrNotFound", after, err)
			case !tc.wantGone && err != nil:
				t.Errorf("import after abandoning: %v; want it kept", err)
			case !tc.wantGone && (after.State != before.State || after.ActivityID != before.ActivityID ||
				after.ContactCount != before.ContactCount):
				t.Errorf("import changed from %+v to %+v", before, after)
			}
			if other, err := db.GetImport(ctx, f.other.ID); err != nil || other.ContactCount != 2 || other.State != store.ImportClaimed {
				t.Errorf("the other import: %+v, %v; want its 2 rows, still claimed", other, err)
			}

			// The rows that went back wait for a later import, as the
			// waiting task's requeue claims them.
			var back []int64
			for i, r := range got[:len(f.mine)] {
				if r.status == store.StatusPending {
					back = append(back, f.mine[i])
				}
			}
			if len(back) > 0 {
				again, err := db.ClaimImport(ctx, "task-later", store.ListKey(agents), back)
				if err != nil || again == nil || again.ContactCount != len(back) {
					t.Errorf("claim of the rows that went back: %+v, %v; want %d rows", again, err, len(back))
				}
			}
		})
	}
}
