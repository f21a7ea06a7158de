package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// ReconcileCC is the part of the CC client a reconcile reads with.
type ReconcileCC interface {
	ListMemberCounts(ctx context.Context) ([]ccclient.ContactList, error)
	ContactsPage(ctx context.Context, q ccclient.ContactsQuery, next string) (*ccclient.ContactPage, error)
}

// ReconcileStore is the part of the store a reconcile uses.
type ReconcileStore interface {
	ListEnrollments(ctx context.Context, list string) ([]store.ListEnrollment, error)
	RecordReconcileRun(ctx context.Context, r *store.ReconcileRun) error
}

// ErrReconcileRefused marks a run stopped before a phase because the calls
// it needed were more than it was allowed to spend.
var ErrReconcileRefused = errors.New("reconcile refused")

// Reconcile phases, in the order they spend calls.
const (
	PhaseRead  = "read"  // the lists' members, 500 a call
	PhaseCheck = "check" // one call per contact missing from a list
)

// ReconcilePhase is what a run is about to spend, shown to Approve.
type ReconcilePhase struct {
	Name  string
	Calls int // calls this phase will spend
	Spent int // calls the run spent before it
	// Remaining is what today's budget has left, -1 when unknown.
	Remaining int
	// Detail names what the calls are for, for a person.
	Detail string
}

// ReconcileOptions say what a run compares and who decides on its calls.
type ReconcileOptions struct {
	Source string   // "command" or "periodic", kept with the run
	Lists  []string // the CC list names to compare
	// Since keeps only the imports made at or after it; zero for all.
	Since time.Time
	// DryRun stops after counting the calls a run would spend.
	DryRun bool
	// Approve is told before each phase what it will spend; an error
	// (wrapping ErrReconcileRefused) stops the run before it spends them.
	Approve func(ctx context.Context, p ReconcilePhase) error
	// Progress is told after each call of a phase, for a progress bar.
	Progress func(phase string, done, total int)
	// Repair, when set, queues the given enrollments again and returns how
	// many it queued; without it a run only reports.
	Repair func(ctx context.Context, ids []int64) (int, error)
}

// Reconciler compares the enrollments the bridge imported onto each CC list
// with the list's members in CC now: contacts missing from CC (removed, or
// never arrived), unsubscribed in CC, and members the bridge never sent.
type Reconciler struct {
	cc     ReconcileCC
	store  ReconcileStore
	budget Budget // nil: today's remainder is unknown
	log    *slog.Logger
	now    func() time.Time
}

// NewReconciler returns a Reconciler; budget may be nil.
func NewReconciler(cc ReconcileCC, st ReconcileStore, budget Budget, log *slog.Logger) *Reconciler {
	return &Reconciler{cc: cc, store: st, budget: budget, log: log, now: time.Now}
}

// reconcileList is one list's plan and, once read, its comparison.
type reconcileList struct {
	name, id string
	members  int
	pages    int
	missing  []string           // lower-cased emails imported onto it that CC does not list
	ids      map[string][]int64 // email -> imported enrollment ids, for the missing
}

// Run makes one reconcile and records it, whatever its outcome. The
// returned run holds the figures so far even when err is set.
func (rc *Reconciler) Run(ctx context.Context, o ReconcileOptions) (*store.ReconcileRun, error) {
	run := &store.ReconcileRun{StartedAt: rc.now(), Source: o.Source, Lists: o.Lists, Since: o.Since, Outcome: store.ReconcileDone}
	err := rc.run(ctx, o, run)
	run.FinishedAt = rc.now()
	switch {
	case err == nil:
	case errors.Is(err, ErrReconcileRefused):
		run.Outcome, run.Detail = store.ReconcileRefused, err.Error()
	default:
		run.Outcome, run.Detail = store.ReconcileFailed, err.Error()
	}
	// The run is kept even when ctx ended it, so that /ops says so.
	if rerr := rc.store.RecordReconcileRun(context.WithoutCancel(ctx), run); rerr != nil {
		err = errors.Join(err, rerr)
	}
	rc.log.Info("reconcile", "source", run.Source, "outcome", run.Outcome, "missing", run.Missing,
		"unsubscribed", run.Unsubscribed, "unknown", run.Unknown, "repaired", run.Repaired, "cc_calls", run.CCCalls)
	return run, err
}

func (rc *Reconciler) run(ctx context.Context, o ReconcileOptions, run *store.ReconcileRun) error {
	lists, notInCC, err := rc.plan(ctx, o.Lists, run)
	if err != nil {
		return err
	}
	if len(notInCC) > 0 {
		run.Detail = "not in CC (see /ops): " + strings.Join(notInCC, ", ")
	}
	pages := 0
	var detail []string
	for _, l := range lists {
		pages += l.pages
		detail = append(detail, fmt.Sprintf("%s: %d members, %d calls", l.name, l.members, l.pages))
	}
	run.AnnouncedCalls = run.CCCalls + pages
	if err := rc.approve(ctx, o, PhaseRead, pages, run, strings.Join(detail, "; ")); err != nil {
		return err
	}
	if o.DryRun {
		run.Outcome = store.ReconcilePlanned
		return nil
	}
	done := 0
	for _, l := range lists {
		if err := rc.compare(ctx, o, l, pages, &done, run); err != nil {
			return err
		}
	}
	return rc.check(ctx, o, lists, run)
}

// plan finds the lists in CC with their member counts, spending one call
// (an account holds at most 1,000 lists, one page), and returns those it
// found and the names it did not.
func (rc *Reconciler) plan(ctx context.Context, names []string, run *store.ReconcileRun) ([]*reconcileList, []string, error) {
	run.CCCalls++
	all, err := rc.cc.ListMemberCounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []*reconcileList
	var notInCC []string
	for _, name := range names {
		i := slices.IndexFunc(all, func(l ccclient.ContactList) bool { return l.Name == name })
		if i < 0 {
			i = slices.IndexFunc(all, func(l ccclient.ContactList) bool { return strings.EqualFold(l.Name, name) })
		}
		if i < 0 {
			notInCC = append(notInCC, name)
			continue
		}
		n := all[i].MembershipCount
		// A list read takes at least one call, even when CC counts no one.
		pages := max(1, (n+ccclient.MembersPageSize-1)/ccclient.MembersPageSize)
		out = append(out, &reconcileList{name: name, id: all[i].ListID, members: n, pages: pages})
	}
	return out, notInCC, nil
}

// approve asks o.Approve whether a phase may spend calls.
func (rc *Reconciler) approve(ctx context.Context, o ReconcileOptions, phase string, calls int, run *store.ReconcileRun, detail string) error {
	if o.Approve == nil || calls == 0 {
		return nil
	}
	remaining := -1
	if rc.budget != nil {
		r, err := rc.budget.Remaining(ctx)
		if err != nil {
			return err
		}
		remaining = r
	}
	return o.Approve(ctx, ReconcilePhase{Name: phase, Calls: calls, Spent: run.CCCalls, Remaining: remaining, Detail: detail})
}

// compare reads one list's members and sets its missing contacts: those
// imported onto it in the window that CC does not list. Members the bridge
// never sent to it are counted as unknown.
func (rc *Reconciler) compare(ctx context.Context, o ReconcileOptions, l *reconcileList, total int, done *int, run *store.ReconcileRun) error {
	members := map[string]bool{}
	next := ""
	for {
		run.CCCalls++
		page, err := rc.cc.ContactsPage(ctx, ccclient.ContactsQuery{ListID: l.id}, next)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", l.name, err)
		}
		*done++
		if o.Progress != nil {
			o.Progress(PhaseRead, *done, total)
		}
		for _, c := range page.Contacts {
			if c.Email != "" {
				members[strings.ToLower(c.Email)] = true
			}
		}
		if next = page.Next; next == "" {
			break
		}
	}
	rows, err := rc.store.ListEnrollments(ctx, l.name)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	l.ids = map[string][]int64{}
	for _, e := range rows {
		known[e.Email] = true
		if e.Status == store.StatusImported && !e.ImportedAt.Before(o.Since) && !members[e.Email] {
			if len(l.ids[e.Email]) == 0 {
				l.missing = append(l.missing, e.Email)
			}
			l.ids[e.Email] = append(l.ids[e.Email], e.ID)
		}
	}
	for email := range members {
		if !known[email] {
			run.Unknown++
		}
	}
	return nil
}

// check looks up each contact missing from a list, one call per address:
// an unsubscribed contact is reported as such and never queued again; one
// CC still accepts mail for is missing, and repaired when asked.
func (rc *Reconciler) check(ctx context.Context, o ReconcileOptions, lists []*reconcileList, run *store.ReconcileRun) error {
	var emails []string
	for _, l := range lists {
		for _, e := range l.missing {
			if !slices.Contains(emails, e) {
				emails = append(emails, e)
			}
		}
	}
	run.AnnouncedCalls += len(emails)
	if err := rc.approve(ctx, o, PhaseCheck, len(emails), run, fmt.Sprintf("%d contacts missing from their lists", len(emails))); err != nil {
		return err
	}
	found := make(map[string][]ccclient.Contact, len(emails))
	for i, e := range emails {
		run.CCCalls++
		page, err := rc.cc.ContactsPage(ctx, ccclient.ContactsQuery{Email: e}, "")
		if err != nil {
			return fmt.Errorf("reconcile: look up a missing contact: %w", err)
		}
		found[e] = page.Contacts
		if o.Progress != nil {
			o.Progress(PhaseCheck, i+1, len(emails))
		}
	}
	var repair []int64
	var unsubscribed []string
	removed := map[int64][]string{}
	for _, l := range lists {
		for _, e := range l.missing {
			switch contactState(found[e], l.id) {
			case "unsubscribed":
				run.Unsubscribed++
				unsubscribed = append(unsubscribed, e)
			case "listed":
				// Imported onto the list since it was read.
			default:
				run.Missing++
				repair = append(repair, l.ids[e]...)
				for _, id := range l.ids[e] {
					removed[id] = append(removed[id], l.name)
				}
			}
		}
	}
	if err := rc.tellHubSpot(ctx, unsubscribed, removed); err != nil {
		return err
	}
	if o.Repair == nil || len(repair) == 0 {
		return nil
	}
	slices.Sort(repair)
	n, err := o.Repair(ctx, slices.Compact(repair))
	run.Repaired = n
	return err
}

// WritebackMarker is the part of the store that tells HubSpot what a
// reconcile found (the HubSpot write-back); *store.DB is one, and does
// nothing while the write-back is off.
type WritebackMarker interface {
	MarkUnsubscribed(ctx context.Context, emails []string, at time.Time) (int, error)
	MarkRemoved(ctx context.Context, removed map[int64][]string, at time.Time) (int, error)
}

// tellHubSpot queues, for the HubSpot write-back, the contacts a reconcile
// found unsubscribed in CC or taken off lists they were imported onto; the
// write-back's next run sends them.
func (rc *Reconciler) tellHubSpot(ctx context.Context, unsubscribed []string, removed map[int64][]string) error {
	m, ok := rc.store.(WritebackMarker)
	if !ok {
		return nil
	}
	now := rc.now()
	if _, err := m.MarkUnsubscribed(ctx, unsubscribed, now); err != nil {
		return err
	}
	_, err := m.MarkRemoved(ctx, removed, now)
	return err
}

// contactState says what CC holds for a contact missing from listID:
// "unsubscribed", "listed" (it is on the list now) or "missing".
func contactState(found []ccclient.Contact, listID string) string {
	for _, c := range found {
		if c.PermissionToSend == "unsubscribed" {
			return "unsubscribed"
		}
		if slices.Contains(c.ListMemberships, listID) {
			return "listed"
		}
	}
	return "missing"
}
