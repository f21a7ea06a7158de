package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// fakeMembers is a CC account of one list, read 500 members a page, that
// counts the calls made to it.
type fakeMembers struct {
	list    ccclient.ContactList
	members []ccclient.Contact
	byEmail map[string]ccclient.Contact
	calls   int
}

func (f *fakeMembers) ListMemberCounts(context.Context) ([]ccclient.ContactList, error) {
	f.calls++
	return []ccclient.ContactList{f.list}, nil
}

func (f *fakeMembers) ContactsPage(_ context.Context, q ccclient.ContactsQuery, next string) (*ccclient.ContactPage, error) {
	f.calls++
	if q.Email != "" {
		c, ok := f.byEmail[q.Email]
		if !ok {
			return &ccclient.ContactPage{}, nil
		}
		return &ccclient.ContactPage{Contacts: []ccclient.Contact{c}}, nil
	}
	start := 0
	if next != "" {
		fmt.Sscan(next, &start)
	}
	end := min(start+ccclient.MembersPageSize, len(f.members))
	p := &ccclient.ContactPage{Contacts: f.members[start:end]}
	if end < len(f.members) {
		p.Next = fmt.Sprint(end)
	}
	return p, nil
}

// fakeRuns is the store side: enrollments of the list and the runs kept.
type fakeRuns struct {
	rows []store.ListEnrollment
	runs []*store.ReconcileRun
	// unsubscribed and removed are what the run told the HubSpot
	// write-back.
	unsubscribed []string
	removed      map[int64][]string
}

func (f *fakeRuns) MarkUnsubscribed(_ context.Context, emails []string, _ time.Time) (int, error) {
	f.unsubscribed = append(f.unsubscribed, emails...)
	return len(emails), nil
}

func (f *fakeRuns) MarkRemoved(_ context.Context, removed map[int64][]string, _ time.Time) (int, error) {
	maps.Copy(f.removed, removed)
	return len(removed), nil
}

func (f *fakeRuns) ListEnrollments(context.Context, string) ([]store.ListEnrollment, error) {
	return f.rows, nil
}

func (f *fakeRuns) RecordReconcileRun(_ context.Context, r *store.ReconcileRun) error {
	f.runs = append(f.runs, r)
	return nil
}

type fixedBudget int

func (b fixedBudget) Remaining(context.Context) (int, error) { return int(b), nil }
func (b fixedBudget) Budget() int                            { return 8000 }

// TestPeriodicReconcile runs cc:reconcile's handler over a list of 1,200
// members (3 pages) of which the bridge imported 1,000, plus 4 imports CC
// has lost (3 removed, 1 unsubscribed): within half the budget it reports
// and repairs nothing; over it, it skips after the counting call, and the
// skip is kept as a refused run, not a task failure.
func TestPeriodicReconcile(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cc := &fakeMembers{list: ccclient.ContactList{ListID: "l1", Name: "New Agents", MembershipCount: 1200}, byEmail: map[string]ccclient.Contact{}}
	st := &fakeRuns{}
	for i := range 1200 {
		email := fmt.Sprintf("a%d@example.com", i)
		cc.members = append(cc.members, ccclient.Contact{Email: email})
		if i < 1000 {
			st.rows = append(st.rows, store.ListEnrollment{ID: int64(i + 1), Email: email, Status: store.StatusImported, ImportedAt: now.Add(-time.Hour)})
		}
	}
	for i := range 4 {
		email := fmt.Sprintf("lost%d@example.com", i)
		st.rows = append(st.rows, store.ListEnrollment{ID: int64(2000 + i), Email: email, Status: store.StatusImported, ImportedAt: now.Add(-time.Hour)})
		perm := "implicit"
		if i == 3 {
			perm = "unsubscribed"
		}
		cc.byEmail[email] = ccclient.Contact{Email: email, PermissionToSend: perm}
	}
	// An import older than the 30-day window is not compared.
	st.rows = append(st.rows, store.ListEnrollment{ID: 3000, Email: "old@example.com", Status: store.StatusImported, ImportedAt: now.Add(-31 * 24 * time.Hour)})

	for _, tc := range []struct {
		name      string
		remaining int
		outcome   string
		calls     int
		figures   [4]int // missing, unsubscribed, unknown, repaired
	}{
		// 1 count + 3 pages + 4 lookups; 3 pages fit half of 8.
		{"within half the budget", 8, store.ReconcileDone, 8, [4]int{3, 1, 200, 0}},
		// 3 pages are more than half of 5: skipped after the count.
		{"over half the budget", 5, store.ReconcileRefused, 1, [4]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc.calls, st.runs, st.unsubscribed, st.removed = 0, nil, nil, map[int64][]string{}
			rc := NewReconciler(cc, st, fixedBudget(tc.remaining), slog.New(slog.DiscardHandler))
			rc.now = func() time.Time { return now }
			told := 0
			found := func(context.Context) { told++ }
			if err := reconcileHandler(rc, func() []string { return []string{"New Agents"} }, found)(context.Background(), asynq.NewTask(TypeReconcile, nil)); err != nil {
				t.Fatalf("handler: %v", err)
			}
			// What the run found is queued for HubSpot: the unsubscribed by
			// email, the missing by enrollment with the list they left.
			if len(st.unsubscribed) != tc.figures[1] || len(st.removed) != tc.figures[0] {
				t.Errorf("told HubSpot of %d unsubscribed and %d removed, want %d and %d",
					len(st.unsubscribed), len(st.removed), tc.figures[1], tc.figures[0])
			}
			for id, lists := range st.removed {
				if !slices.Equal(lists, []string{"New Agents"}) {
					t.Errorf("enrollment %d removed from %v, want [New Agents]", id, lists)
				}
			}
			if wantTold := min(tc.figures[0]+tc.figures[1], 1); told != wantTold {
				t.Errorf("asked for the write-back %d times, want %d", told, wantTold)
			}
			if len(st.runs) != 1 {
				t.Fatalf("%d runs recorded, want 1", len(st.runs))
			}
			r := st.runs[0]
			if got := [4]int{r.Missing, r.Unsubscribed, r.Unknown, r.Repaired}; got != tc.figures || r.Outcome != tc.outcome || r.Source != "periodic" {
				t.Errorf("run %s %v (source %s), want %s %v", r.Outcome, got, r.Source, tc.outcome, tc.figures)
			}
			if r.CCCalls != tc.calls || cc.calls != tc.calls {
				t.Errorf("the run counted %d calls, CC saw %d, want %d", r.CCCalls, cc.calls, tc.calls)
			}
			if tc.outcome == store.ReconcileRefused && !strings.Contains(r.Detail, "skipped") {
				t.Errorf("refused run's detail %q does not say it skipped", r.Detail)
			}
		})
	}
}
