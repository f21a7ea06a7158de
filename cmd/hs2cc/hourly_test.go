package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// The hourly figures of /ops read the same on MariaDB and on the embedded
// server of `hs2cc dev`, whose SQL differs in places: hours bucketed by
// TIMESTAMPDIFF, the earliest receipt of each hour's imports, the oldest
// waiting enrollment.
func TestHourlyOnEveryBackend(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			clock := &testClock{t: t0.Add(30 * time.Minute)}
			db.SetClock(clock.now)
			ann := ingestAt(t, db, "ann", "v1")
			clock.t = t0.Add(70 * time.Minute)
			ingestAt(t, db, "bob", "v1")
			clock.t = t0.Add(2*time.Hour + 59*time.Minute)
			ingestAt(t, db, "cat", "v1")
			// Ann imported in the third hour, as the import's settle writes it.
			if _, err := db.SQL().Exec(`UPDATE enrollments SET status = ?, imported_at = ? WHERE id = ?`,
				store.StatusImported, t0.Add(2*time.Hour+5*time.Minute), ann); err != nil {
				t.Fatal(err)
			}
			received, err := db.ReceivedByHour(ctx, t0, 4)
			if err != nil {
				t.Fatal(err)
			}
			imported, err := db.ImportedByHour(ctx, t0, 4)
			if err != nil {
				t.Fatal(err)
			}
			waiting, err := db.OldestWaiting(ctx)
			if err != nil || waiting == nil {
				t.Fatalf("OldestWaiting = %v, %v", waiting, err)
			}
			var got []int
			for _, b := range append(received, imported...) {
				got = append(got, b.Count)
			}
			if want := []int{1, 1, 1, 0, 0, 0, 1, 0}; !slices.Equal(got, want) {
				t.Errorf("received then imported per hour %v, want %v", got, want)
			}
			if r := imported[2].OldestReceived; !r.Equal(t0.Add(30 * time.Minute)) {
				t.Errorf("earliest receipt imported in the third hour %v, want %v", r, t0.Add(30*time.Minute))
			}
			if !waiting.Since.Equal(t0.Add(70*time.Minute)) || waiting.Status != store.StatusPending {
				t.Errorf("oldest waiting %+v, want bob's, pending since 09:10", waiting)
			}
		})
	}
}
