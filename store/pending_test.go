package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// pendingWalk is a store whose pending rows were written at chosen times,
// several at the same microsecond, between rows of every other status.
type pendingWalk struct {
	db   *store.DB
	base time.Time
	// want is every pending row in (updated_at, id) order.
	want []int64
	// early, late are rows of the walk a test may change.
	early, late []int64
}

func newPendingWalk(t *testing.T) *pendingWalk {
	t.Helper()
	ctx := context.Background()
	db := storetest.MySQL(t)
	base := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	setAt := func(m int) { db.SetClock(func() time.Time { return base.Add(time.Duration(m) * time.Minute) }) }

	// Ids rise in the order of ingest; the update times do not, so that
	// an order by id alone shows.
	setAt(2)
	late := ingestLists(t, db, "late", 2, agents)
	setAt(0)
	early := ingestLists(t, db, "early", 3, agents)
	setAt(1)
	mid := ingestLists(t, db, "mid", 2, gold)
	// Rows of every other status, written at the same instant as the mid
	// rows, so that only the status keeps them out of that tie.
	busy := ingestLists(t, db, "busy", 4, agents)
	claim := func(task string, ids []int64) int64 {
		t.Helper()
		imp, err := db.ClaimImport(ctx, task, store.ListKey(agents), ids)
		if err != nil || imp == nil {
			t.Fatalf("claim %s: %v, %v", task, imp, err)
		}
		return imp.ID
	}
	claim("importing", busy[:1])
	if err := db.FailImport(ctx, claim("failed", busy[1:2]), "refused"); err != nil {
		t.Fatal(err)
	}
	if err := db.RejectRows(ctx, claim("rejected", busy[2:3]), map[int64]string{busy[2]: "too long"}); err != nil {
		t.Fatal(err)
	}
	done := claim("imported", busy[3:])
	if err := db.SubmitImport(ctx, done, agents, []string{"l-1"}, "act-1", "initialized"); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordActivity(ctx, done, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
		t.Fatal(err)
	}
	// A new version of early[1], bound for other lists, is the newest
	// pending row.
	setAt(3)
	e := enrollment("early-1", "early1@example.com", "Changed", "early-v2")
	e.Lists = gold
	if _, err := db.Ingest(ctx, workflowDelivery(e), e); err != nil {
		t.Fatal(err)
	}
	return &pendingWalk{
		db: db, base: base, early: early, late: late,
		want: []int64{early[0], early[2], mid[0], mid[1], late[0], late[1], early[1]},
	}
}

// walk pages through every pending row limit at a time from the start,
// checking each page's size and cursor, and returns the refs in the order
// seen. between runs after each page, before the next is read.
func (w *pendingWalk) walk(t *testing.T, limit int, between func(page int)) []store.PendingRef {
	t.Helper()
	ctx := context.Background()
	var cur store.PendingCursor
	var seen []store.PendingRef
	for page := 0; ; page++ {
		if page > 50 {
			t.Fatalf("still walking after %d pages: %v", page, seen)
		}
		refs, next, err := w.db.PendingPage(ctx, cur, limit)
		if err != nil {
			t.Fatalf("PendingPage(%+v, %d): %v", cur, limit, err)
		}
		if len(refs) > limit {
			t.Fatalf("page %d holds %d rows, over the limit of %d", page, len(refs), limit)
		}
		if len(refs) == 0 {
			if next != cur {
				t.Errorf("an empty page moved the cursor from %+v to %+v", cur, next)
			}
			return seen
		}
		last, err := w.db.GetEnrollment(ctx, refs[len(refs)-1].ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.PendingCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}); !next.UpdatedAt.Equal(want.UpdatedAt) || next.ID != want.ID {
			t.Errorf("page %d: cursor %+v, want that of its last row %+v", page, next, want)
		}
		seen = append(seen, refs...)
		cur = next
		if between != nil {
			between(page)
		}
	}
}

func refIDs(refs []store.PendingRef) []int64 {
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids
}

// TestPendingPage: a walk from the zero cursor visits every pending row
// exactly once, in the order of its last update and then of its id, and
// never a row of another status, whatever the page size: rows written at
// the same instant are neither skipped nor repeated at a page's edge.
func TestPendingPage(t *testing.T) {
	t.Parallel()
	w := newPendingWalk(t)
	for _, limit := range []int{1, 2, 3, 6, 7, 100} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			refs := w.walk(t, limit, nil)
			if got := refIDs(refs); !slices.Equal(got, w.want) {
				t.Fatalf("walk visited %v, want %v", got, w.want)
			}
			// Each ref carries what the sweep enqueues with: the row's
			// current version and lists.
			for _, r := range refs {
				e, err := w.db.GetEnrollment(context.Background(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if r.Version != e.Version || !slices.Equal(r.Lists, e.Lists) {
					t.Errorf("ref %+v, want version %d lists %q", r, e.Version, e.Lists)
				}
			}
			if newest := refs[len(refs)-1]; newest.Version != 2 || !slices.Equal(newest.Lists, gold) {
				t.Errorf("the changed row's ref %+v, want version 2 bound for %q", newest, gold)
			}
		})
	}
}

// TestPendingPageRowChangedDuringWalk: a row that changes while the walk
// goes on moves behind the cursor, so it is seen again if it was seen
// already, and seen once, later, if not: never skipped.
func TestPendingPageRowChangedDuringWalk(t *testing.T) {
	t.Parallel()
	w := newPendingWalk(t)
	refs := w.walk(t, 2, func(page int) {
		if page != 0 {
			return
		}
		// After the first page (early[0], early[2]): a row seen and a row
		// not yet seen get new versions.
		w.db.SetClock(func() time.Time { return w.base.Add(4 * time.Minute) })
		for _, e := range []*store.Enrollment{
			enrollment("early-0", "early0@example.com", "Changed", "early0-v2"),
			enrollment("late-0", "late0@example.com", "Changed", "late0-v2"),
		} {
			e.Lists = agents
			if _, err := w.db.Ingest(context.Background(), workflowDelivery(e), e); err != nil {
				t.Fatal(err)
			}
		}
	})
	// late[0] was ingested before early[0], so it has the lower id of the
	// two rows changed at the same instant.
	want := []int64{w.early[0], w.early[2], w.want[2], w.want[3], w.late[1], w.early[1], w.late[0], w.early[0]}
	if got := refIDs(refs); !slices.Equal(got, want) {
		t.Errorf("walk visited %v, want %v", got, want)
	}
}

// TestPendingIDs: the ids of one list set's pending rows above afterID, in
// id order and at most limit of them; rows of other list sets and rows that
// are not pending are never among them.
func TestPendingIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	// Interleaved, so that the list key, not the id range, decides.
	a := ingestLists(t, db, "a", 2, agents)
	g := ingestLists(t, db, "g", 1, gold)
	a = append(a, ingestLists(t, db, "a2", 3, agents)...)
	g = append(g, ingestLists(t, db, "g2", 1, gold)...)
	// a[1] is importing and a[3] rejected: a[0], a[2], a[4] are pending.
	if imp, err := db.ClaimImport(ctx, "importing", store.ListKey(agents), a[1:2]); err != nil || imp == nil {
		t.Fatalf("claim: %v, %v", imp, err)
	}
	rej, err := db.ClaimImport(ctx, "rejected", store.ListKey(agents), a[3:4])
	if err != nil || rej == nil {
		t.Fatalf("claim: %v, %v", rej, err)
	}
	if err := db.RejectRows(ctx, rej.ID, map[int64]string{a[3]: "too long"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		listKey string
		afterID int64
		limit   int
		want    []int64
	}{
		{"every pending row of the set", store.ListKey(agents), 0, 100, []int64{a[0], a[2], a[4]}},
		{"above afterID", store.ListKey(agents), a[0], 100, []int64{a[2], a[4]}},
		{"afterID need not be pending itself", store.ListKey(agents), a[1], 100, []int64{a[2], a[4]}},
		{"the lowest ids first, up to limit", store.ListKey(agents), 0, 2, []int64{a[0], a[2]}},
		{"limit after afterID", store.ListKey(agents), a[0], 1, []int64{a[2]}},
		{"nothing above the last", store.ListKey(agents), a[4], 100, nil},
		{"another list set", store.ListKey(gold), 0, 100, g},
		{"the same set named in another order", store.ListKey([]string{"New Agents", "Gold Agents"}), g[0], 100, g[1:]},
		{"a set no row is bound for", store.ListKey([]string{"Gold Agents"}), 0, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.PendingIDs(ctx, tc.listKey, tc.afterID, tc.limit)
			if err != nil {
				t.Fatalf("PendingIDs: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("PendingIDs(%q, %d, %d) = %v, want %v", tc.listKey, tc.afterID, tc.limit, got, tc.want)
			}
		})
	}
}
