package store

import (
	"strings"
	"testing"
	"time"
)

// TestDecide: what an incoming delivery does to the stored row of its
// contact, decided without I/O from the two enrollments.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		cur, in      Enrollment
		want         Outcome
		wantSourceAt time.Time
		wantReason   string
	}{
		{name: "the same content", cur: Enrollment{ContentHash: "a"}, in: Enrollment{ContentHash: "a"}, want: OutcomeUnchanged},
		{name: "the same content, newer data: the time is kept",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0}, in: Enrollment{ContentHash: "a", SourceUpdatedAt: t0.Add(time.Minute)},
			want: OutcomeUnchanged, wantSourceAt: t0.Add(time.Minute)},
		{name: "changed content", cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0},
			in: Enrollment{ContentHash: "b", SourceUpdatedAt: t0.Add(time.Minute)}, want: OutcomeUpdated, wantSourceAt: t0.Add(time.Minute)},
		{name: "changed content of unknown age keeps how new the row's data is at least",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0, PropertyTimes: map[string]time.Time{"city": t0.Add(time.Hour)}},
			in:  Enrollment{ContentHash: "b"}, want: OutcomeUpdated, wantSourceAt: t0.Add(time.Hour)},
		{name: "older data is stale, whatever its content",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0}, in: Enrollment{ContentHash: "b", SourceUpdatedAt: t0.Add(-time.Second)},
			want: OutcomeStale, wantReason: "older than the stored data"},
		{name: "older than an event applied since",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0, PropertyTimes: map[string]time.Time{"city": t0.Add(time.Hour)}},
			in:  Enrollment{ContentHash: "b", SourceUpdatedAt: t0.Add(time.Minute)}, want: OutcomeStale, wantReason: "older"},
		{name: "no time stored: applied as if there were no times",
			cur: Enrollment{ContentHash: "a"}, in: Enrollment{ContentHash: "b", SourceUpdatedAt: t0}, want: OutcomeUpdated, wantSourceAt: t0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(&tc.cur, &tc.in)
			if got.outcome != tc.want || !got.sourceAt.Equal(tc.wantSourceAt) || !strings.Contains(got.reason, tc.wantReason) ||
				(tc.wantReason == "") != (got.reason == "") {
				t.Errorf("decide = %+v, want %v, source time %v, reason with %q", got, tc.want, tc.wantSourceAt, tc.wantReason)
			}
		})
	}
}
