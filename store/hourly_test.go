package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// chartBase is the first hour of the window the hourly tests read.
var chartBase = time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)

func hm(h, m int) time.Time {
	return chartBase.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// hourlyFixture drives enrollments through the store as the bridge does,
// each step at a time of the test's choosing, so that the columns the
// hourly queries read are written by the code that writes them in service.
type hourlyFixture struct {
	t   *testing.T
	db  *store.DB
	now time.Time
	seq int
}

func (f *hourlyFixture) at(t time.Time) *hourlyFixture { f.now = t; return f }

// receive ingests a version of the contact key with content hash hash.
func (f *hourlyFixture) receive(key, hash string) int64 {
	f.t.Helper()
	e := enrollment(key, key+"@example.com", "A", hash)
	res, err := f.db.Ingest(context.Background(), workflowDelivery(e), e)
	if err != nil {
		f.t.Fatal(err)
	}
	return res.EnrollmentID
}

// settle claims ids in one import and has CC complete it (ok) or the import
// fail.
func (f *hourlyFixture) settle(ok bool, ids ...int64) {
	f.t.Helper()
	ctx := context.Background()
	f.seq++
	imp, err := f.db.ClaimImport(ctx, fmt.Sprint("task-", f.seq), store.ListKey([]string{"New Agents"}), ids)
	if err != nil || imp == nil {
		f.t.Fatalf("claim %v: %v, %v", ids, imp, err)
	}
	if !ok {
		if err := f.db.FailImport(ctx, imp.ID, "refused"); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	if err := f.db.SubmitImport(ctx, imp.ID, []string{"New Agents"}, []string{"l-1"}, fmt.Sprint("act-", f.seq), "initialized"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true,
		ActivityCounts: store.ActivityCounts{PersonCount: len(ids)}}, true, ""); err != nil {
		f.t.Fatal(err)
	}
}

// TestHourlySeries reads six hours of a bridge's life back by hour: rows on
// the hours' edges land in the right hour, rows outside the window in none,
// hours with nothing are zeros, a contact changed after its import counts
// once, at its new version, and the age of the oldest waiting enrollment
// at each hour's end follows from the series.
func TestHourlySeries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	f := &hourlyFixture{t: t, db: db}
	db.SetClock(func() time.Time { return f.now })

	a := f.at(chartBase.Add(-time.Microsecond)).receive("a", "a1") // the hour before the window
	b := f.at(hm(0, 0)).receive("b", "b1")                         // the window's first instant
	c := f.at(hm(1, 0).Add(-time.Microsecond)).receive("c", "c1")  // the first hour's last instant
	f.at(hm(0, 30)).settle(true, a)
	d := f.at(hm(1, 0)).receive("d", "d1")
	e := f.at(hm(1, 30)).receive("e", "e1")
	f.at(hm(1, 10)).settle(true, b, c)
	f.at(hm(2, 0)).settle(true, e)
	f.at(hm(3, 15)).settle(true, d)
	f.at(hm(4, 10)).receive("e", "e2") // a new version of an imported contact
	g := f.at(hm(5, 59)).receive("g", "g1")
	f.at(hm(5, 59)).settle(false, g)
	f.at(hm(6, 0)).receive("h", "h1") // the instant after the window

	received, err := db.ReceivedByHour(ctx, hm(0, 25), 6)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := db.ImportedByHour(ctx, hm(0, 25), 6)
	if err != nil {
		t.Fatal(err)
	}
	// counts checks that the buckets are the window's hours, in order, and
	// returns their counts.
	counts := func(from time.Time, bs []store.HourBucket) []int {
		var n []int
		for i, b := range bs {
			if want := from.Add(time.Duration(i) * time.Hour); !b.Hour.Equal(want) {
				t.Errorf("bucket %d starts %v, want %v", i, b.Hour, want)
			}
			n = append(n, b.Count)
		}
		return n
	}
	oldest := func(bs []store.HourBucket) []time.Time {
		var o []time.Time
		for _, b := range bs {
			o = append(o, b.OldestReceived)
		}
		return o
	}
	waiting, err := db.OldestWaiting(ctx)
	if err != nil || waiting == nil {
		t.Fatalf("OldestWaiting = %v, %v", waiting, err)
	}
	before, err := db.ReceivedByHour(ctx, hm(-30, 0), 3)
	if err != nil {
		t.Fatal(err)
	}
	var zero time.Time
	tests := []struct {
		name      string
		got, want any
	}{
		{"received per hour", counts(hm(0, 0), received), []int{2, 1, 0, 0, 1, 1}},
		{"imported per hour", counts(hm(0, 0), imported), []int{1, 2, 1, 1, 0, 0}},
		{"earliest receipt imported per hour", oldest(imported),
			[]time.Time{chartBase.Add(-time.Microsecond), hm(0, 0), hm(4, 10), hm(1, 0), zero, zero}},
		{"a window with nothing in it", counts(hm(-30, 0), before), []int{0, 0, 0}},
		{"oldest waiting", *waiting, store.WaitingEnrollment{ID: e, Status: store.StatusPending, Since: hm(4, 10)}},
		{"age of the oldest waiting at each hour's end", store.WaitingAges(imported, waiting.Since, hm(6, 0)),
			[]time.Duration{time.Hour, time.Hour, 2 * time.Hour, 0, 50 * time.Minute, 110 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Printed, the times show their instants to the microsecond
			// and the slices their order.
			if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %v\nwant %v", tc.got, tc.want)
			}
		})
	}
}
