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

// TestUnshapedCounts: counts added in several flushes add up per reason,
// keeping the first and the last sighting, and the table holds one row
// per reason however many flushes come.
func TestUnshapedCounts(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	flushes := [][]store.UnshapedCount{
		{{Reason: "no_signature", Count: 700, FirstSeen: at(10), LastSeen: at(11)}},
		{{Reason: "no_signature", Count: 300, FirstSeen: at(12), LastSeen: at(13)},
			{Reason: "malformed_signature", Count: 2, FirstSeen: at(12), LastSeen: at(12)}},
		// A flush that lost a race with the one after it still moves
		// neither sighting the wrong way.
		{{Reason: "no_signature", Count: 1, FirstSeen: at(5), LastSeen: at(6)}},
		{},
	}
	for _, f := range flushes {
		if err := db.AddUnshaped(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.UnshapedCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UnshapedCount{
		{Reason: "malformed_signature", Count: 2, FirstSeen: at(12), LastSeen: at(12)},
		{Reason: "no_signature", Count: 1001, FirstSeen: at(5), LastSeen: at(13)},
	}
	if len(got) != len(want) {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Reason != w.Reason || g.Count != w.Count || !g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) {
			t.Errorf("count %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestPurgeQuarantine deletes exactly what each filter selects, from both
// the quarantine and the unshaped summary, in batches, and refuses a purge
// that names nothing.
func TestPurgeQuarantine(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	// rows are the quarantined requests, by reason and the day they
	// arrived: more bad signatures on day 0 than one batch holds.
	type rows struct {
		reason string
		day    int
		n      int
	}
	seed := []rows{
		{store.QuarantineBadSignature, 0, store.PurgeBatch + 7},
		{store.QuarantineBadSignature, 5, 3},
		{store.QuarantineMissingSignature, 0, 2},
		{store.QuarantineMissingSignature, 5, 4},
	}
	unshaped := []store.UnshapedCount{
		{Reason: "no_signature", Count: 2000, FirstSeen: day(0), LastSeen: day(1)},
		{Reason: store.QuarantineBadSignature, Count: 1, FirstSeen: day(6), LastSeen: day(6)},
	}
	cases := []struct {
		name         string
		purge        store.QuarantinePurge
		requests     int64
		batches      int
		unshaped     int64
		leftRequests map[string]int // reason -> rows left
	}{
		{"all", store.QuarantinePurge{All: true}, store.PurgeBatch + 16, 2, 2,
			map[string]int{}},
		{"by reason", store.QuarantinePurge{Reason: store.QuarantineMissingSignature}, 6, 1, 0,
			map[string]int{store.QuarantineBadSignature: store.PurgeBatch + 10}},
		{"before day 3", store.QuarantinePurge{Before: day(3)}, store.PurgeBatch + 9, 2, 1,
			map[string]int{store.QuarantineBadSignature: 3, store.QuarantineMissingSignature: 4}},
		{"by reason before day 3", store.QuarantinePurge{Reason: store.QuarantineBadSignature, Before: day(3)},
			store.PurgeBatch + 7, 2, 0,
			map[string]int{store.QuarantineBadSignature: 3, store.QuarantineMissingSignature: 6}},
		{"a reason with nothing", store.QuarantinePurge{Reason: "future_timestamp"}, 0, 0, 0,
			map[string]int{store.QuarantineBadSignature: store.PurgeBatch + 10, store.QuarantineMissingSignature: 6}},
		{"the unshaped summary by reason", store.QuarantinePurge{Reason: "no_signature"}, 0, 0, 1,
			map[string]int{store.QuarantineBadSignature: store.PurgeBatch + 10, store.QuarantineMissingSignature: 6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.MySQL(t)
			for _, r := range seed {
				for range r.n {
					q := refused([]byte(`{}`))
					q.Reason, q.ReceivedAt = r.reason, day(r.day)
					if err := db.Quarantine(ctx, q, store.QuarantineCap{MaxRows: 1 << 20}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := db.AddUnshaped(ctx, unshaped); err != nil {
				t.Fatal(err)
			}
			var progress []int64
			res, err := db.PurgeQuarantine(ctx, tc.purge, func(n int64) { progress = append(progress, n) })
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != tc.requests || res.Unshaped != tc.unshaped {
				t.Errorf("purged %+v, want %d requests and %d unshaped rows", res, tc.requests, tc.unshaped)
			}
			if len(progress) != tc.batches || (len(progress) > 0 && progress[len(progress)-1] != tc.requests) {
				t.Errorf("progress %v, want %d batches ending at %d", progress, tc.batches, tc.requests)
			}
			left := map[string]int{}
			for _, id := range quarantineIDs(t, db, "SELECT id FROM quarantine") {
				q, err := db.GetQuarantined(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				left[q.Reason]++
			}
			if len(left) != len(tc.leftRequests) {
				t.Errorf("left %v, want %v", left, tc.leftRequests)
			}
			for r, n := range tc.leftRequests {
				if left[r] != n {
					t.Errorf("left %d %s, want %d (all left: %v)", left[r], r, n, left)
				}
			}
			counts, err := db.UnshapedCounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(counts)) != int64(len(unshaped))-tc.unshaped {
				t.Errorf("unshaped rows left %+v after deleting %d", counts, tc.unshaped)
			}
		})
	}
	t.Run("nothing named", func(t *testing.T) {
		db := storetest.MySQL(t)
		if _, err := db.PurgeQuarantine(ctx, store.QuarantinePurge{}, nil); !errors.Is(err, store.ErrPurgeUnfiltered) {
			t.Errorf("purge without a filter: %v, want ErrPurgeUnfiltered", err)
		}
	})
}

// quarantineIDs returns the int64 column query selects.
func quarantineIDs(t *testing.T, db *store.DB, query string) []int64 {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
