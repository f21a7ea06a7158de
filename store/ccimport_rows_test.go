package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestEachImportRow: the rows an import still holds come one at a time,
// each in its own Enrollment, in ImportRows' order (oldest update first,
// then id); rows no longer importing or held by another import are left
// out; and an error from fn stops the scan and is what EachImportRow
// returns.
func TestEachImportRow(t *testing.T) {
	t.Parallel()
	errStop := errors.New("stop here")
	base := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	// at sets the store's clock, which stamps updated_at on every claim.
	at := func(db *store.DB, d time.Duration) { db.SetClock(func() time.Time { return base.Add(d) }) }
	claim := func(t *testing.T, db *store.DB, task string, ids []int64) *store.Import {
		t.Helper()
		imp, err := db.ClaimImport(context.Background(), task, store.ListKey(agents), ids)
		if err != nil || imp == nil {
			t.Fatalf("claim %v: %+v, %v", ids, imp, err)
		}
		return imp
	}
	extend := func(t *testing.T, db *store.DB, imp *store.Import) {
		t.Helper()
		if _, err := db.ExtendImport(context.Background(), imp.ID, 100); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// prepare makes the import under test from five pending rows.
		prepare  func(t *testing.T, db *store.DB, ids []int64) *store.Import
		failAt   int   // the call (1-based) whose fn returns errStop; 0: none
		want     []int // indexes into the five rows, in the order fn sees them
		wantStop bool
	}{
		{
			name: "claimed rows first when ExtendImport added the others later",
			prepare: func(t *testing.T, db *store.DB, ids []int64) *store.Import {
				at(db, time.Minute)
				imp := claim(t, db, "t", ids[3:])
				at(db, 2*time.Minute)
				extend(t, db, imp)
				return imp
			},
			want: []int{3, 4, 0, 1, 2},
		},
		{
			name: "older updates first whatever the ids, ties by id",
			prepare: func(t *testing.T, db *store.DB, ids []int64) *store.Import {
				at(db, 2*time.Minute)
				imp := claim(t, db, "t", ids[3:])
				at(db, time.Minute)
				extend(t, db, imp)
				return imp
			},
			want: []int{0, 1, 2, 3, 4},
		},
		{
			name: "rejected rows and another import's rows are left out",
			prepare: func(t *testing.T, db *store.DB, ids []int64) *store.Import {
				imp := claim(t, db, "t", ids[:3])
				claim(t, db, "other", ids[3:4])
				if err := db.RejectRows(context.Background(), imp.ID, map[int64]string{ids[1]: "too long"}); err != nil {
					t.Fatal(err)
				}
				return imp
			},
			want: []int{0, 2},
		},
		{
			name: "an import whose rows were all released has none",
			prepare: func(t *testing.T, db *store.DB, ids []int64) *store.Import {
				imp := claim(t, db, "t", ids[:2])
				if err := db.ReleaseRows(context.Background(), imp.ID, ids[:2]); err != nil {
					t.Fatal(err)
				}
				return imp
			},
		},
		{
			name: "an error from fn stops the scan and is returned",
			prepare: func(t *testing.T, db *store.DB, ids []int64) *store.Import {
				return claim(t, db, "t", ids)
			},
			failAt: 2, want: []int{0, 1}, wantStop: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			ids := ingestLists(t, db, "row", 5, agents)
			imp := tc.prepare(t, db, ids)

			var got []int
			seen := map[*store.Enrollment]bool{}
			err := db.EachImportRow(ctx, imp.ID, func(e *store.Enrollment) error {
				if seen[e] {
					t.Errorf("row %d reuses an Enrollment fn already had", e.ID)
				}
				seen[e] = true
				if e.Status != store.StatusImporting || e.ImportID != imp.ID || e.Properties["email"] != e.Email {
					t.Errorf("row %d: %q under import %d, properties %v; want a whole importing row of import %d",
						e.ID, e.Status, e.ImportID, e.Properties, imp.ID)
				}
				got = append(got, slices.Index(ids, e.ID))
				if len(got) == tc.failAt {
					return errStop
				}
				return nil
			})
			if tc.wantStop {
				if err != errStop {
					t.Errorf("EachImportRow returned %v, want fn's error as it is", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("fn saw rows %v, want %v", got, tc.want)
			}
			if tc.wantStop {
				return
			}
			// ImportRows is the same scan, collected.
			rows, err := db.ImportRows(ctx, imp.ID)
			if err != nil {
				t.Fatal(err)
			}
			var all []int
			for _, r := range rows {
				all = append(all, slices.Index(ids, r.ID))
			}
			if !slices.Equal(all, tc.want) {
				t.Errorf("ImportRows gave rows %v, want %v", all, tc.want)
			}
		})
	}
}
