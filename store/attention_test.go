package store_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// otherKind is a second attention kind, as the custom fields the rules map
// to will be: KeepAttention and ClearAttention of one kind must leave it be.
const otherKind = "missing_field"

// attentionTime is a moment of the attention tests, h hours into one day,
// with microseconds so that a lost fraction shows.
func attentionTime(h int) time.Time {
	return time.Date(2026, 11, 2, 9+h, 0, 0, 123456000, time.UTC)
}

// raise records an attention state at the given time.
func raise(t *testing.T, db *store.DB, when time.Time, kind, subject, detail string) {
	t.Helper()
	db.SetClock(func() time.Time { return when })
	if err := db.RaiseAttention(context.Background(), kind, subject, detail); err != nil {
		t.Fatalf("RaiseAttention(%s, %q): %v", kind, subject, err)
	}
}

// attentionKeys lists every recorded state as "kind/subject", in
// ListAttention's order.
func attentionKeys(t *testing.T, db *store.DB) []string {
	t.Helper()
	all, err := db.ListAttention(context.Background())
	if err != nil {
		t.Fatalf("ListAttention: %v", err)
	}
	keys := make([]string, 0, len(all))
	for _, a := range all {
		keys = append(keys, a.Kind+"/"+a.Subject)
	}
	return keys
}

// TestRaiseAttention: a second raise of the same subject is the same state
// found again, so it updates what is wrong and when it was checked but
// keeps when it was first found; a subject that differs only in case is
// another CC list, with a state of its own.
func TestRaiseAttention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)

	raise(t, db, attentionTime(0), store.AttentionMissingList, "New Agents", "  list New Agents is not in CC\n")
	got, err := db.GetAttention(ctx, store.AttentionMissingList, "New Agents")
	if err != nil {
		t.Fatalf("GetAttention after the first raise: %v", err)
	}
	want := store.Attention{Kind: store.AttentionMissingList, Subject: "New Agents", Detail: "list New Agents is not in CC",
		Since: attentionTime(0), CheckedAt: attentionTime(0)}
	if !sameAttention(got, want) {
		t.Errorf("after the first raise:\n got %+v\nwant %+v", *got, want)
	}

	raise(t, db, attentionTime(2), store.AttentionMissingList, "New Agents", "still missing; create it in CC")
	got, err = db.GetAttention(ctx, store.AttentionMissingList, "New Agents")
	if err != nil {
		t.Fatalf("GetAttention after the second raise: %v", err)
	}
	want.Detail, want.CheckedAt = "still missing; create it in CC", attentionTime(2)
	if !sameAttention(got, want) {
		t.Errorf("after the second raise:\n got %+v\nwant %+v", *got, want)
	}

	raise(t, db, attentionTime(3), store.AttentionMissingList, "new agents", "list new agents is not in CC")
	lower, err := db.GetAttention(ctx, store.AttentionMissingList, "new agents")
	if err != nil {
		t.Fatalf("GetAttention of the lower-case subject: %v", err)
	}
	wantLower := store.Attention{Kind: store.AttentionMissingList, Subject: "new agents", Detail: "list new agents is not in CC",
		Since: attentionTime(3), CheckedAt: attentionTime(3)}
	if !sameAttention(lower, wantLower) {
		t.Errorf("lower-case subject:\n got %+v\nwant %+v", *lower, wantLower)
	}
	// The raise of "new agents" must not have touched "New Agents".
	got, err = db.GetAttention(ctx, store.AttentionMissingList, "New Agents")
	if err != nil || !sameAttention(got, want) {
		t.Errorf("New Agents after raising new agents: %+v, %v; want %+v", got, err, want)
	}
	if keys := attentionKeys(t, db); len(keys) != 2 {
		t.Errorf("states %v, want two", keys)
	}
}

func sameAttention(got *store.Attention, want store.Attention) bool {
	return got.Kind == want.Kind && got.Subject == want.Subject && got.Detail == want.Detail &&
		got.Since.Equal(want.Since) && got.CheckedAt.Equal(want.CheckedAt)
}

// TestGetAttentionNotFound: only the exact kind and subject recorded is
// found; anything else is ErrNotFound, which callers take as "nothing
// stops this list".
func TestGetAttentionNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	raise(t, db, attentionTime(0), store.AttentionMissingList, "New Agents", "missing")
	raise(t, db, attentionTime(0), otherKind, "Gold Agents", "missing")
	raise(t, db, attentionTime(0), store.AttentionMissingList, "Cleared", "missing")
	if err := db.ClearAttention(ctx, store.AttentionMissingList, "Cleared"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind, subject string
	}{
		{"never raised", store.AttentionMissingList, "Silver Agents"},
		{"raised under another kind", store.AttentionMissingList, "Gold Agents"},
		{"another kind of a raised subject", otherKind, "New Agents"},
		{"the subject in another case", store.AttentionMissingList, "new agents"},
		{"cleared", store.AttentionMissingList, "Cleared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := db.GetAttention(ctx, tc.kind, tc.subject)
			if !errors.Is(err, store.ErrNotFound) || a != nil {
				t.Errorf("GetAttention(%s, %q) = %+v, %v; want nil, ErrNotFound", tc.kind, tc.subject, a, err)
			}
		})
	}
	if _, err := db.GetAttention(ctx, store.AttentionMissingList, "New Agents"); err != nil {
		t.Errorf("the raised state itself: %v", err)
	}
}

// TestClearAttention: clearing removes exactly one kind and subject, and
// clearing what is not recorded is no error, since two workers may find
// the same list again at once.
func TestClearAttention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	raise(t, db, attentionTime(0), store.AttentionMissingList, "New Agents", "missing")
	raise(t, db, attentionTime(1), store.AttentionMissingList, "new agents", "missing")
	raise(t, db, attentionTime(2), store.AttentionMissingList, "Gold Agents", "missing")
	raise(t, db, attentionTime(3), otherKind, "New Agents", "missing")

	for _, subject := range []string{"New Agents", "New Agents", "Never Raised"} {
		if err := db.ClearAttention(ctx, store.AttentionMissingList, subject); err != nil {
			t.Fatalf("ClearAttention(%q): %v", subject, err)
		}
	}
	want := []string{store.AttentionMissingList + "/new agents", store.AttentionMissingList + "/Gold Agents", otherKind + "/New Agents"}
	if got := attentionKeys(t, db); !slices.Equal(got, want) {
		t.Errorf("states left %v, want %v", got, want)
	}
}

// TestKeepAttention: the states of a kind are pruned to the subjects the
// rules still name, compared exactly; an empty keep prunes the kind
// entirely, and other kinds are never touched.
func TestKeepAttention(t *testing.T) {
	t.Parallel()
	missing := func(subjects ...string) []string {
		out := make([]string, 0, len(subjects)+1)
		for _, s := range subjects {
			out = append(out, store.AttentionMissingList+"/"+s)
		}
		// The other kind's state is always left, and is the newest.
		return append(out, otherKind+"/Gold Agents")
	}
	tests := []struct {
		name string
		keep []string
		want []string
	}{
		{"keeps the named subjects only", []string{"Gold Agents", "Not Raised"}, missing("Gold Agents")},
		{"keeps every subject named", []string{"Silver Agents", "New Agents", "Gold Agents"}, missing("New Agents", "Gold Agents", "Silver Agents")},
		{"nil keep clears the kind", nil, missing()},
		{"empty keep clears the kind", []string{}, missing()},
		{"subjects are compared exactly", []string{"new agents", "GOLD AGENTS", "Silver"}, missing()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := storetest.MySQL(t)
			raise(t, db, attentionTime(0), store.AttentionMissingList, "New Agents", "missing")
			raise(t, db, attentionTime(1), store.AttentionMissingList, "Gold Agents", "missing")
			raise(t, db, attentionTime(2), store.AttentionMissingList, "Silver Agents", "missing")
			raise(t, db, attentionTime(3), otherKind, "Gold Agents", "missing")
			if err := db.KeepAttention(ctx, store.AttentionMissingList, tc.keep); err != nil {
				t.Fatalf("KeepAttention(%q): %v", tc.keep, err)
			}
			if got := attentionKeys(t, db); !slices.Equal(got, tc.want) {
				t.Errorf("states left %v, want %v", got, tc.want)
			}
		})
	}
}

// TestListAttention: ops see the longest-standing state first, whatever
// its kind or name, and a state found again keeps its place.
func TestListAttention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	if all, err := db.ListAttention(ctx); err != nil || len(all) != 0 {
		t.Fatalf("empty table: %v, %v; want nothing", all, err)
	}
	raise(t, db, attentionTime(2), store.AttentionMissingList, "Alpha", "missing")
	raise(t, db, attentionTime(0), store.AttentionMissingList, "Zulu", "missing")
	raise(t, db, attentionTime(1), otherKind, "Mike", "missing")
	// Zulu found again later is still the oldest.
	raise(t, db, attentionTime(5), store.AttentionMissingList, "Zulu", "still missing")

	all, err := db.ListAttention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Attention{
		{Kind: store.AttentionMissingList, Subject: "Zulu", Detail: "still missing", Since: attentionTime(0), CheckedAt: attentionTime(5)},
		{Kind: otherKind, Subject: "Mike", Detail: "missing", Since: attentionTime(1), CheckedAt: attentionTime(1)},
		{Kind: store.AttentionMissingList, Subject: "Alpha", Detail: "missing", Since: attentionTime(2), CheckedAt: attentionTime(2)},
	}
	if len(all) != len(want) {
		t.Fatalf("ListAttention returned %d states, want %d: %v", len(all), len(want), attentionKeys(t, db))
	}
	for i := range want {
		if !sameAttention(all[i], want[i]) {
			t.Errorf("state %d:\n got %+v\nwant %+v", i, *all[i], want[i])
		}
	}
}

// TestCountWaitingFor: a missing list holds back the enrollments bound for
// it that are not yet imported, pending or importing, counted by the exact
// list name: a list whose name merely contains it, or differs in case, is
// another list, and imported, failed or rejected rows wait for nothing.
func TestCountWaitingFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.MySQL(t)
	ingestLists(t, db, "pending", 2, agents)
	ingestLists(t, db, "gold", 1, gold)
	ingestLists(t, db, "longer", 1, []string{"New Agents 2"})
	ingestLists(t, db, "short", 1, []string{"Agents"})
	ingestLists(t, db, "lower", 1, []string{"new agents"})
	ingestLists(t, db, "amp", 1, []string{"Agents & Brokers", "Ünïcode <Team>"})
	importing := ingestLists(t, db, "importing", 1, agents)
	imported := ingestLists(t, db, "imported", 1, agents)
	failed := ingestLists(t, db, "failed", 1, agents)
	rejected := ingestLists(t, db, "rejected", 1, agents)

	claim := func(task string, ids []int64) int64 {
		t.Helper()
		imp, err := db.ClaimImport(ctx, task, store.ListKey(agents), ids)
		if err != nil || imp == nil {
			t.Fatalf("claim %s: %v, %v", task, imp, err)
		}
		return imp.ID
	}
	claim("importing", importing)
	id := claim("imported", imported)
	if err := db.SubmitImport(ctx, id, agents, []string{"l-1"}, "act-1", "initialized"); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordActivity(ctx, id, store.ActivityResult{State: "completed", Final: true, ActivityCounts: store.ActivityCounts{PersonCount: 1}}, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.FailImport(ctx, claim("failed", failed), "refused"); err != nil {
		t.Fatal(err)
	}
	if err := db.RejectRows(ctx, claim("rejected", rejected), map[int64]string{rejected[0]: "too long"}); err != nil {
		t.Fatal(err)
	}
	// The setup itself must have produced every status, or the counts
	// below would prove nothing about the ones left out.
	counts, err := db.CountEnrollments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]int{store.StatusPending: 7, store.StatusImporting: 1, store.StatusImported: 1,
		store.StatusFailed: 1, store.StatusRejected: 1}
	if !maps.Equal(counts, wantCounts) {
		t.Fatalf("statuses %v, want %v", counts, wantCounts)
	}

	tests := []struct {
		list string
		want int
	}{
		{"New Agents", 4}, // two pending, one in a list pair, one importing
		{"Gold Agents", 1},
		{"New Agents 2", 1},
		{"Agents", 1},
		{"new agents", 1},
		{"Agents & Brokers", 1},
		{"Ünïcode <Team>", 1},
		{"New", 0},
		{"Agents 2", 0},
		{"New Agents ", 0},
		{"Silver Agents", 0},
		{"", 0},
	}
	for _, tc := range tests {
		t.Run(tc.list, func(t *testing.T) {
			n, err := db.CountWaitingFor(ctx, tc.list)
			if err != nil || n != tc.want {
				t.Errorf("CountWaitingFor(%q) = %d, %v; want %d", tc.list, n, err, tc.want)
			}
		})
	}
}
