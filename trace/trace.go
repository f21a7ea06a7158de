// Package trace tells one contact's story as the bridge saw it, oldest
// first: every delivery HubSpot sent about it (when, signed how, what was
// decided, stale or duplicate), every version and what changed, the lists
// the rules chose and why, the CC import that carried each version and
// CC's outcome for that row, rejections with their reasons, and replays.
// It answers "agent X enrolled yesterday, why is she not getting the
// onboarding emails?" without reading MySQL by hand. `hs2cc trace` prints
// it and /ops/trace shows it; with Live it also asks CC what it holds now.
package trace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// Store is what a trace reads; *store.DB is one.
type Store interface {
	ContactRecords(ctx context.Context, key string) (*store.ContactRecords, error)
	SimilarEmails(ctx context.Context, email string) ([]string, error)
}

// CC reads one contact from Constant Contact; *ccclient.Client is one. It
// returns nil and no error when CC has no contact with that email.
type CC interface {
	ContactByEmail(ctx context.Context, email string) (*ccclient.Contact, error)
}

// Options are what a trace may do besides reading MySQL.
type Options struct {
	// Live asks CC for the contact now, spending one call, through CC.
	Live bool
	CC   CC
	// Closest is how many similar emails an unknown contact is answered
	// with; DefaultClosest when zero.
	Closest int
	// Now dates the live check; time.Now when nil.
	Now func() time.Time
}

// DefaultClosest is how many closest matches an unknown contact gets.
const DefaultClosest = 5

// Story is one contact's story, as `hs2cc trace --json` prints it.
type Story struct {
	Query string `json:"query"`
	Found bool   `json:"found"`
	// Contacts are the enrollments of the contact: one per HubSpot portal
	// that sent it, usually one.
	Contacts []Contact `json:"contacts"`
	// Events are what happened, oldest first.
	Events []Event `json:"events"`
	// Closest are the known emails nearest the query, when it is unknown.
	Closest []string `json:"closest,omitempty"`
	Live    *Live    `json:"live,omitempty"`
}

// Contact is an enrollment as it stands.
type Contact struct {
	EnrollmentID int64    `json:"enrollment_id"`
	PortalID     int64    `json:"portal_id"`
	HubSpotID    string   `json:"hubspot_id"`
	Email        string   `json:"email"`
	Version      int      `json:"version"`
	Status       string   `json:"status"`
	StatusReason string   `json:"status_reason,omitempty"`
	Lists        []string `json:"lists"`
}

// Event kinds.
const (
	KindQuarantine = "quarantine" // a request refused for its signature, kept
	KindDelivery   = "delivery"   // a request HubSpot sent, and the verdict
	KindVersion    = "version"    // a new version of the contact
	KindImport     = "import"     // a CC import took a version
	KindOutcome    = "outcome"    // what came of a version: imported, rejected, failed
	KindReplay     = "replay"     // `hs2cc replay` queued a version again
	KindWaiting    = "waiting"    // the current version waits for an import
	KindHubSpot    = "hubspot"    // what the HubSpot write-back learned or wrote
)

// rank orders events of the same time: a delivery before the version it
// made, an import before its outcome.
var rank = map[string]int{KindQuarantine: 0, KindDelivery: 1, KindVersion: 2, KindImport: 3, KindOutcome: 4,
	KindReplay: 5, KindWaiting: 6, KindHubSpot: 7}

// Event is one thing that happened to the contact.
type Event struct {
	At           time.Time `json:"at"`
	Kind         string    `json:"kind"`
	EnrollmentID int64     `json:"enrollment_id,omitempty"`
	DeliveryID   int64     `json:"delivery_id,omitempty"`
	Version      int       `json:"version,omitempty"`
	ImportID     int64     `json:"import_id,omitempty"`
	ActivityID   string    `json:"activity_id,omitempty"`
	// Verdict is a delivery's verdict, or an outcome's status.
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Lists and Route are the lists the rules chose for a version, and
	// why.
	Lists []string `json:"lists,omitempty"`
	Route string   `json:"route,omitempty"`
	// Text says it all in one line, as Lines prints it.
	Text string `json:"text"`
}

// Build gathers the story of the contact named by key: an email, or a
// HubSpot object id.
func Build(ctx context.Context, st Store, key string, opt Options) (*Story, error) {
	key = strings.TrimSpace(key)
	recs, err := st.ContactRecords(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	s := &Story{Query: key, Contacts: []Contact{}, Events: []Event{}}
	s.Found = len(recs.Enrollments) > 0 || len(recs.Deliveries) > 0
	for _, e := range recs.Enrollments {
		s.Contacts = append(s.Contacts, Contact{EnrollmentID: e.ID, PortalID: e.PortalID, HubSpotID: e.ObjectKey,
			Email: e.Email, Version: e.Version, Status: e.Status, StatusReason: e.StatusReason, Lists: nonNil(e.Lists)})
	}
	s.Events = events(recs)
	if !s.Found && strings.Contains(key, "@") {
		candidates, err := st.SimilarEmails(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		s.Closest = Closest(key, candidates, cmp.Or(opt.Closest, DefaultClosest))
	}
	if opt.Live {
		s.Live = live(ctx, opt, liveEmail(key, recs), expectedLists(recs), listNames(recs))
	}
	return s, nil
}

// events turns the records into what happened, oldest first.
func events(recs *store.ContactRecords) []Event {
	var out []Event
	for _, q := range recs.Quarantined {
		out = append(out, quarantineEvent(q))
	}
	replayed := map[int64]store.QuarantineLink{}
	for _, q := range recs.Quarantined {
		replayed[q.DeliveryID] = q
	}
	for _, d := range recs.Deliveries {
		out = append(out, deliveryEvent(d, replayed))
	}
	for _, v := range recs.Versions {
		out = append(out, versionEvent(v))
	}
	for _, a := range recs.Attempts {
		out = append(out, attemptEvents(a, recs.Imports)...)
	}
	for _, e := range recs.Enrollments {
		out = append(out, currentEvents(e, recs.Imports)...)
	}
	for _, w := range recs.Writebacks {
		out = append(out, writebackEvents(w)...)
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return rank[a.Kind] - rank[b.Kind]
	})
	return out
}

func quarantineEvent(q store.QuarantineLink) Event {
	text := fmt.Sprintf("request refused for its signature and quarantined as %d (%s", q.ID, q.Reason)
	if q.Detail != "" {
		text += ": " + q.Detail
	}
	if q.SigVersion != "" {
		text += "; claimed " + q.SigVersion
	}
	return Event{At: q.ReceivedAt.UTC(), Kind: KindQuarantine, DeliveryID: q.DeliveryID, Reason: q.Reason, Text: text + ")"}
}

func deliveryEvent(d *store.Delivery, replayed map[int64]store.QuarantineLink) Event {
	how := []string{d.Kind}
	if d.SignatureVersion != "" {
		how = append(how, "signature "+d.SignatureVersion)
	}
	if q, ok := replayed[d.ID]; ok {
		how = append(how, fmt.Sprintf("replayed from quarantine %d at %s", q.ID, Stamp(q.ReplayedAt)))
	}
	if d.ReplayOf != 0 {
		how = append(how, fmt.Sprintf("replay of delivery %d", d.ReplayOf))
	}
	ev := Event{At: d.ReceivedAt.UTC(), Kind: KindDelivery, EnrollmentID: d.EnrollmentID, DeliveryID: d.ID,
		Version: d.Version, Verdict: d.Verdict, Reason: d.Reason, Lists: d.Lists, Route: d.Route}
	var what string
	switch d.Verdict {
	case store.VerdictAccepted:
		what = fmt.Sprintf("accepted as version %d of enrollment %d", d.Version, d.EnrollmentID)
	case store.VerdictDuplicate:
		what = fmt.Sprintf("duplicate of version %d, nothing changed", d.Version)
	case store.VerdictStale:
		what = fmt.Sprintf("stale, version %d kept: %s", d.Version, d.Reason)
	default:
		what = "rejected as " + d.Verdict
		if d.Reason != "" {
			what += ": " + d.Reason
		}
	}
	ev.Text = fmt.Sprintf("delivery %d (%s): %s", d.ID, strings.Join(how, ", "), what)
	return ev
}

func versionEvent(v store.VersionRecord) Event {
	what := "first version"
	if len(v.Changed) > 0 {
		what = "changed " + strings.Join(v.Changed, ", ")
	} else if v.Version > 1 {
		what = "no field changed"
	}
	return Event{At: v.ReceivedAt.UTC(), Kind: KindVersion, EnrollmentID: v.EnrollmentID, Version: v.Version,
		Lists: v.Lists, Route: v.Route,
		Text: fmt.Sprintf("version %d: %s; lists %s%s", v.Version, what, listText(v.Lists), routeText(v.Route))}
}

// attemptEvents tells what came of a version before the row forgot it.
func attemptEvents(a store.Attempt, imports map[int64]*store.Import) []Event {
	out := outcomeEvents(a.EnrollmentID, a.Version, a.ImportID, a.Status, a.StatusReason, a.ImportedAt, a.EndedAt, imports)
	if a.EndedBy == store.EndedByReplay {
		out = append(out, Event{At: a.EndedAt.UTC(), Kind: KindReplay, EnrollmentID: a.EnrollmentID, Version: a.Version,
			Verdict: a.Status, Text: fmt.Sprintf("replay queued version %d again (it was %s)", a.Version, a.Status)})
	}
	return out
}

// currentEvents tells where the current version stands.
func currentEvents(e *store.Enrollment, imports map[int64]*store.Import) []Event {
	if e.Status == store.StatusPending && e.ImportID == 0 {
		return []Event{{At: e.UpdatedAt.UTC(), Kind: KindWaiting, EnrollmentID: e.ID, Version: e.Version,
			Verdict: e.Status, Text: fmt.Sprintf("version %d waits for an import (pending)", e.Version)}}
	}
	return outcomeEvents(e.ID, e.Version, e.ImportID, e.Status, e.StatusReason, e.ImportedAt, e.UpdatedAt, imports)
}

// outcomeEvents are the import that took a version, if any, and what came
// of it; at dates an outcome that neither the import nor the row dates.
func outcomeEvents(enr int64, version int, importID int64, status, reason string, importedAt, at time.Time,
	imports map[int64]*store.Import) []Event {
	var out []Event
	imp := imports[importID]
	if imp != nil {
		activity := "no CC activity yet"
		if imp.ActivityID != "" {
			activity = "CC activity " + imp.ActivityID
		}
		out = append(out, Event{At: imp.CreatedAt.UTC(), Kind: KindImport, EnrollmentID: enr, Version: version,
			ImportID: imp.ID, ActivityID: imp.ActivityID, Lists: imp.Lists,
			Text: fmt.Sprintf("import %d took version %d (%s, lists %s)", imp.ID, version, activity, listText(imp.Lists))})
		if !imp.CompletedAt.IsZero() {
			at = imp.CompletedAt
		}
	}
	ev := Event{At: at.UTC(), Kind: KindOutcome, EnrollmentID: enr, Version: version, ImportID: importID,
		Verdict: status, Reason: reason}
	if imp != nil {
		ev.ActivityID = imp.ActivityID
	}
	switch status {
	case store.StatusImported:
		if !importedAt.IsZero() {
			ev.At = importedAt.UTC()
		}
		ev.Text = fmt.Sprintf("CC imported version %d", version)
	case store.StatusRejected:
		ev.Text = fmt.Sprintf("version %d rejected: %s", version, reason)
	case store.StatusFailed:
		ev.Text = fmt.Sprintf("version %d failed (replayable): %s", version, reason)
	default:
		// Pending again or still importing: nothing has come of it yet.
		return out
	}
	if imp != nil {
		ev.Text = fmt.Sprintf("import %d: %s", imp.ID, ev.Text)
	}
	return append(out, ev)
}

// writebackEvents say what the HubSpot write-back learned of the contact
// (unsubscribed or taken off a list in CC) and what it last wrote, or why
// it has not.
func writebackEvents(w store.WritebackRecord) []Event {
	ev := func(at time.Time, verdict, text string) Event {
		return Event{At: at.UTC(), Kind: KindHubSpot, EnrollmentID: w.EnrollmentID, Verdict: verdict, Text: text}
	}
	var out []Event
	if !w.UnsubscribedAt.IsZero() {
		out = append(out, ev(w.UnsubscribedAt, "unsubscribed", "found unsubscribed in CC"))
	}
	if !w.RemovedAt.IsZero() {
		out = append(out, ev(w.RemovedAt, "removed", "found taken off a CC list by a reconcile"))
	}
	if !w.WrittenAt.IsZero() {
		out = append(out, ev(w.WrittenAt, w.WrittenStatus, "HubSpot told: hs2cc_cc_status = "+w.WrittenStatus))
	}
	switch w.State {
	case store.WritebackPending:
		text := "queued for HubSpot, not written yet"
		if w.LastError != "" {
			text += ": " + w.LastError
		}
		out = append(out, ev(w.QueuedAt, w.State, text))
	case store.WritebackMissing, store.WritebackNoID, store.WritebackFailed:
		out = append(out, ev(w.UpdatedAt, w.State, "not written to HubSpot ("+w.State+"): "+w.LastError))
	}
	return out
}

// liveEmail is the address CC is asked about: the query when it is one,
// else the newest enrollment's.
func liveEmail(key string, recs *store.ContactRecords) string {
	if strings.Contains(key, "@") {
		return key
	}
	if n := len(recs.Enrollments); n > 0 {
		return recs.Enrollments[n-1].Email
	}
	return ""
}

// expectedLists are the lists the bridge believes the contact is on: those
// of every enrollment whose current version CC imported.
func expectedLists(recs *store.ContactRecords) []string {
	var out []string
	for _, e := range recs.Enrollments {
		if e.Status == store.StatusImported {
			out = append(out, e.Lists...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listNames maps CC list ids to names, from the imports that carried the
// contact, so that a live check spends no call on looking names up.
func listNames(recs *store.ContactRecords) map[string]string {
	names := map[string]string{}
	for _, imp := range recs.Imports {
		for i, id := range imp.ListIDs {
			if i < len(imp.Lists) {
				names[id] = imp.Lists[i]
			}
		}
	}
	return names
}

// errNoCC is a live check asked for without a CC client.
var errNoCC = errors.New("no Constant Contact client is configured")

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Tracer builds stories for the command and the ops page alike, with the
// store and the CC client of the process.
type Tracer struct {
	st Store
	cc CC
}

// NewTracer builds a Tracer; cc may be nil, and a live check then says CC
// could not be asked.
func NewTracer(st Store, cc CC) *Tracer { return &Tracer{st: st, cc: cc} }

// Trace builds the story of key, asking CC too when live is set.
func (t *Tracer) Trace(ctx context.Context, key string, live bool) (*Story, error) {
	return Build(ctx, t.st, key, Options{Live: live, CC: t.cc})
}
