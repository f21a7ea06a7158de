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
		{name: "no data times: signed before the row's delivery is stale",
			cur: Enrollment{ContentHash: "a", SentAt: t0}, in: Enrollment{ContentHash: "b", SentAt: t0.Add(-time.Second)},
			want: OutcomeStale, wantReason: "signed by HubSpot"},
		{name: "no data times: signed after the row's delivery is a new version",
			cur: Enrollment{ContentHash: "a", SentAt: t0}, in: Enrollment{ContentHash: "b", SentAt: t0.Add(time.Second)}, want: OutcomeUpdated},
		{name: "both data times known: the send times do not count",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0, SentAt: t0.Add(time.Hour)},
			in:  Enrollment{ContentHash: "b", SourceUpdatedAt: t0.Add(time.Minute), SentAt: t0}, want: OutcomeUpdated, wantSourceAt: t0.Add(time.Minute)},
		{name: "a send time is never compared with a data time",
			cur: Enrollment{ContentHash: "a", SourceUpdatedAt: t0.Add(time.Hour)}, in: Enrollment{ContentHash: "b", SentAt: t0},
			want: OutcomeUpdated, wantSourceAt: t0.Add(time.Hour)},
		{name: "nor a data time with a send time",
			cur: Enrollment{ContentHash: "a", SentAt: t0.Add(time.Hour)}, in: Enrollment{ContentHash: "b", SourceUpdatedAt: t0},
			want: OutcomeUpdated, wantSourceAt: t0},
		{name: "a v1/v2 delivery proves no time: applied",
			cur: Enrollment{ContentHash: "a", SentAt: t0}, in: Enrollment{ContentHash: "b"}, want: OutcomeUpdated},
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

// TestRepeatOutcome: which deliveries whose body was stored before about
// the same contact are exact repeats.
func TestRepeatOutcome(t *testing.T) {
	signed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		found bool
		dec   Outcome
		in    Enrollment
		want  bool
	}{
		{"a body never stored", false, OutcomeUpdated, Enrollment{}, false},
		{"the same content again", true, OutcomeUnchanged, Enrollment{SentAt: signed}, true},
		{"an older body replayed, stale", true, OutcomeStale, Enrollment{SentAt: signed}, true},
		{"a v2 replay of an older body that would roll the contact back", true, OutcomeUpdated, Enrollment{}, true},
		{"a v3 body signed after the row's: the contact changed back", true, OutcomeUpdated, Enrollment{SentAt: signed}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := repeatOutcome(tc.found, decision{outcome: tc.dec}, &tc.in); got != tc.want {
				t.Errorf("repeatOutcome = %v, want %v", got, tc.want)
			}
		})
	}
}
