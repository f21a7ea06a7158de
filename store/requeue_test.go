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

// TestRequeue: a backfill or replay takes exactly the rows its filter
// names, puts them back to pending with their reason cleared, pages by id,
// and a dry run's count matches what a real run takes.
func TestRequeue(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	clock := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	db.SetClock(func() time.Time { return clock })
	// Six rows: 1–2 failed on A, 3 failed on B, 4 rejected on A, 5 pending
	// on A, 6 imported on A; rows 1 and 4 changed a day earlier.
	setup := []struct {
		status, list string
		age          time.Duration
	}{
		{store.StatusFailed, "A", 24 * time.Hour}, {store.StatusFailed, "A", 0}, {store.StatusFailed, "B", 0},
		{store.StatusRejected, "A", 24 * time.Hour}, {store.StatusPending, "A", 0}, {store.StatusImported, "A", 0},
	}
	ids := make([]int64, len(setup))
	for i, s := range setup {
		e := enrollment(fmt.Sprint(500+i), fmt.Sprintf("r%d@example.com", i), "R", fmt.Sprint("h", i))
		e.Lists = []string{s.list}
		res, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")}, e)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.EnrollmentID
		if _, err := db.SQL().ExecContext(ctx, `UPDATE enrollments SET status = ?, status_reason = 'why', updated_at = ? WHERE id = ?`,
			s.status, clock.Add(-s.age), res.EnrollmentID); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		f    store.RequeueFilter
		want []int // indexes into ids
	}{
		{"failed", store.RequeueFilter{Statuses: []string{store.StatusFailed}}, []int{0, 1, 2}},
		{"failed since an hour ago", store.RequeueFilter{Statuses: []string{store.StatusFailed}, Since: clock.Add(-time.Hour)}, []int{1, 2}},
		{"failed on list B", store.RequeueFilter{Statuses: []string{store.StatusFailed}, List: "B"}, []int{2}},
		{"not imported (backfill)", store.RequeueFilter{Statuses: []string{store.StatusPending, store.StatusFailed}, List: "A"}, []int{0, 1, 4}},
		{"rejected", store.RequeueFilter{Statuses: []string{store.StatusRejected}}, []int{3}},
		{"a list nobody is on", store.RequeueFilter{Statuses: []string{store.StatusFailed}, List: "C"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := db.CountRequeue(ctx, tc.f)
			if err != nil || n != len(tc.want) {
				t.Fatalf("CountRequeue = %d, %v; want %d", n, err, len(tc.want))
			}
		})
	}
	// A real run, paged two at a time, over the backfill filter.
	f := store.RequeueFilter{Statuses: []string{store.StatusPending, store.StatusFailed}, List: "A"}
	var got []int64
	var after int64
	for {
		refs, err := db.RequeueBatch(ctx, f, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) == 0 {
			break
		}
		for _, r := range refs {
			got = append(got, r.ID)
			if !slices.Equal(r.Lists, []string{"A"}) {
				t.Errorf("ref %d lists %v", r.ID, r.Lists)
			}
		}
		after = refs[len(refs)-1].ID
	}
	if want := []int64{ids[0], ids[1], ids[4]}; !slices.Equal(got, want) {
		t.Fatalf("requeued %v, want %v", got, want)
	}
	for i, id := range ids {
		e, err := db.GetEnrollment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus := setup[i].status
		if i == 0 || i == 1 {
			wantStatus = store.StatusPending
		}
		if e.Status != wantStatus {
			t.Errorf("row %d status %q, want %q", i, e.Status, wantStatus)
		}
		if wantStatus == store.StatusPending && setup[i].status != store.StatusPending && e.StatusReason != "" {
			t.Errorf("row %d kept its reason %q after requeue", i, e.StatusReason)
		}
	}
	if _, err := store.ParseStatuses("importing"); err == nil {
		t.Error("ParseStatuses accepted importing")
	}
	if s, err := store.ParseStatuses("failed, rejected"); err != nil || !slices.Equal(s, []string{"failed", "rejected"}) {
		t.Errorf("ParseStatuses = %v, %v", s, err)
	}
}

// TestPurgeBodies: bodies older than the cutoff are emptied in batches and
// marked; newer ones and the rows themselves stay.
func TestPurgeBodies(t *testing.T) {
	ctx := context.Background()
	db := storetest.MySQL(t)
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		db.SetClock(func() time.Time { return now.Add(-time.Duration(40-i*10) * 24 * time.Hour) })
		e := enrollment(fmt.Sprint(700+i), fmt.Sprintf("p%d@example.com", i), "P", fmt.Sprint("p", i))
		if _, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte(`{"email":"x"}`)}, e); err != nil {
			t.Fatal(err)
		}
	}
	db.SetClock(func() time.Time { return now })
	cutoff := now.Add(-30 * 24 * time.Hour)
	// Deliveries are 40, 30, 20, 10 and 0 days old; with the cutoff a
	// second past 30 days, the 40- and 30-day-old bodies go.
	total := 0
	for {
		n, err := db.PurgeBodies(ctx, cutoff.Add(time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 2 {
		t.Fatalf("purged %d bodies, want 2", total)
	}
	var empty, rows int
	if err := db.SQL().QueryRowContext(ctx, `SELECT SUM(body = '' AND purged_at IS NOT NULL), COUNT(*) FROM deliveries`).Scan(&empty, &rows); err != nil {
		t.Fatal(err)
	}
	if empty != 2 || rows != 5 {
		t.Errorf("%d emptied of %d rows, want 2 of 5", empty, rows)
	}
	if n, _ := db.CountEnrollments(ctx); n[store.StatusPending] != 5 {
		t.Errorf("enrollments %v, want the 5 kept", n)
	}
}
