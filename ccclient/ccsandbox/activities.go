package ccsandbox

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Activity states, as the spec lists them.
const (
	stateInitialized = "initialized"
	stateProcessing  = "processing"
	stateCompleted   = "completed"
	stateCancelled   = "cancelled"
	stateFailed      = "failed"
	stateTimedOut    = "timed_out"
	// outcomeStuck is a fault, not a CC state: the activity stays processing.
	outcomeStuck = "stuck"
)

// activityRetention is how long CC keeps an activity before it answers 404.
const activityRetention = 10 * 24 * time.Hour

// activity is one contacts_json_import. It is processed lazily: its state is
// a function of the sandbox clock, and its rows are applied by settleLocked
// the first time anyone looks after it is due. That keeps the sandbox
// deterministic under an injected clock, with no goroutines to wait for.
type activity struct {
	id          string
	createdAt   time.Time
	startAt     time.Time // when it turns processing
	doneAt      time.Time // when it reaches its outcome
	outcome     string    // final state, chosen by Faults when queued
	req         *importRequest
	remove      *removeRequest // a remove_list_memberships activity's work
	listCount   int            // lists a list-membership activity processed
	detail      string         // Faults.RejectDetail when queued
	state       string
	completedAt time.Time
	errors      []string
	total       int
	counts      activityCounts
}

// activityCounts are the ActivityStatus counters once an import is final.
type activityCounts struct {
	person, errors, correctable, cannotAdd, completed int
}

// queueImportLocked creates the activity for a validated import.
func (s *Server) queueImportLocked(req *importRequest, now time.Time) *activity {
	outcome := s.faults.ImportOutcome
	if outcome == "" {
		outcome = stateCompleted
	}
	// The refused rows are drawn now, in row order, rather than when the
	// import is applied, so that they depend only on the seed and the
	// sequence of calls, not on when something happens to read the
	// account. Correctable rows are left alone: CC holds those for
	// correction whatever else it thinks of them. An import that will not
	// complete applies no row, so it draws nothing.
	if outcome == stateCompleted {
		for _, rec := range req.records {
			rec.rejected = !rec.correctable && s.chanceLocked(s.faults.RejectRate)
		}
	}
	a := s.queueActivityLocked(now, len(req.records))
	a.req = req
	a.detail = cmp.Or(s.faults.RejectDetail, RejectDetailLineEmail)
	s.stats.Imports++
	s.stats.ImportRowsDropped += req.dropped
	return a
}

// queueActivityLocked creates and indexes an activity of any kind, due on
// the sandbox clock after ActivityDelay, ending as Faults.ImportOutcome
// says (completed by default); the caller attaches its work.
func (s *Server) queueActivityLocked(now time.Time, total int) *activity {
	a := &activity{
		id:        newUUID(),
		createdAt: now,
		startAt:   now.Add(s.opts.ActivityDelay / 2),
		doneAt:    now.Add(s.opts.ActivityDelay),
		outcome:   cmp.Or(s.faults.ImportOutcome, stateCompleted),
		state:     stateInitialized,
		total:     total,
	}
	s.activities = append(s.activities, a)
	s.activityByID[a.id] = a
	s.pending = append(s.pending, a)
	return a
}

// settleLocked brings every activity up to now: it forgets activities past
// retention, moves due ones to processing, and applies and finishes those
// whose time has come, in the order they were queued.
func (s *Server) settleLocked(now time.Time) {
	if n := len(s.activities); n > 0 && !now.Before(s.activities[0].createdAt.Add(activityRetention)) {
		keep := s.activities[:0]
		for _, a := range s.activities {
			if now.Before(a.createdAt.Add(activityRetention)) {
				keep = append(keep, a)
			} else {
				delete(s.activityByID, a.id)
			}
		}
		clear(s.activities[len(keep):n])
		s.activities = keep
		s.pending = slices.DeleteFunc(s.pending, func(a *activity) bool { return s.activityByID[a.id] == nil })
	}
	if len(s.pending) == 0 {
		return
	}
	still := s.pending[:0]
	for _, a := range s.pending {
		if !now.Before(a.startAt) && a.state == stateInitialized {
			a.state = stateProcessing
		}
		if a.outcome != outcomeStuck && !now.Before(a.doneAt) {
			s.finishLocked(a)
			continue
		}
		still = append(still, a)
	}
	clear(s.pending[len(still):])
	s.pending = still
}

// finishLocked ends an activity with its outcome, applying its rows only when
// the outcome is completed.
func (s *Server) finishLocked(a *activity) {
	a.state = a.outcome
	a.completedAt = a.doneAt
	req := a.req
	a.req = nil // the rows are not needed once applied
	if a.outcome != stateCompleted {
		a.remove = nil
		a.errors = append(a.errors, "The activity ended "+a.outcome+" (sandbox fault injection); no contacts were changed.")
		s.log.Info("ccsandbox: activity ended by fault", "activity_id", a.id, "state", a.state)
		return
	}
	if a.remove != nil {
		s.finishRemoveLocked(a)
		return
	}
	// Only a completed import counts its rows as received: a failed one
	// changed nothing, and a client must send those rows again.
	s.stats.ImportRows += len(req.records)
	var listCapErrors int
	for _, rec := range req.records {
		a.counts.completed++
		switch {
		case rec.correctable:
			a.counts.correctable++
			continue
		case rec.rejected:
			// A refused row touches nothing, but it is reported one line
			// per row (no cap), so that a client can tell exactly which
			// rows to look at.
			a.counts.errors++
			s.stats.RowsRejected++
			if msg := rejectError(a.detail, rec); msg != "" {
				a.errors = append(a.errors, msg)
			}
			continue
		}
		res := s.upsertLocked(rec, req.listIDs, a.doneAt)
		a.counts.person++
		if res.unsubscribed {
			a.counts.cannotAdd++
		}
		if res.listsDropped > 0 {
			a.counts.errors++
			if listCapErrors < maxErrorsReported {
				listCapErrors++
				a.errors = append(a.errors, fmt.Sprintf("Contact %s is already on %d lists; %d list memberships were not added.", cmp.Or(rec.email, rec.sms), maxListsPerRow, res.listsDropped))
			}
		}
	}
	s.log.Info("ccsandbox: import completed", "activity_id", a.id, "rows", a.total,
		"person_count", a.counts.person, "correctable", a.counts.correctable,
		"cannot_add_to_list", a.counts.cannotAdd, "errors", a.counts.errors)
}

// rejectMessages are the reasons given for refused rows. They are worded
// like CC's validation messages; which one a row gets follows from its line,
// so that a client meets several and cannot come to rely on one.
var rejectMessages = [...]string{
	"The email address is not valid.",
	"The email domain does not accept mail.",
	"The contact could not be saved because the email address is blocked.",
}

// rejectError is the activity_errors entry for a refused row in the given
// RejectDetail mode, or "" in RejectDetailCount mode, where CC says only how
// many rows it refused. The row is named by its email, lower-cased as CC
// stores it, or, with a message about the number, by its SMS number when it
// has no email. A refused row is never correctable, so its email passed the
// syntax check and its number is digits: neither can hold ": ", and the
// entry splits cleanly on it.
func rejectError(detail string, rec *importRecord) string {
	msg, who := rejectMessages[(rec.line-1)%len(rejectMessages)], rec.email
	if who == "" {
		msg, who = "The SMS number is not valid.", rec.sms
	}
	switch detail {
	case RejectDetailCount:
		return ""
	case RejectDetailEmail:
		return who + ": " + msg
	default:
		return fmt.Sprintf("Line %d: %s: %s", rec.line, who, msg)
	}
}

// activityStatusJSON is CC's ActivityStatus.
type activityStatusJSON struct {
	ItemsTotalCount      int `json:"items_total_count"`
	ItemsCompletedCount  int `json:"items_completed_count"`
	PersonCount          int `json:"person_count"`
	ErrorCount           int `json:"error_count"`
	CorrectableCount     int `json:"correctable_count"`
	CannotAddToListCount int `json:"cannot_add_to_list_count"`
	// ListCount is set for list-membership activities only.
	ListCount int `json:"list_count,omitempty"`
}

// selfLinks is the _links of an activity.
type selfLinks struct {
	Self link `json:"self"`
}

// activityJSON is CC's Activity (and, in the 201, its ActivityImport).
type activityJSON struct {
	ActivityID     string             `json:"activity_id"`
	State          string             `json:"state"`
	StartedAt      string             `json:"started_at,omitempty"`
	CompletedAt    string             `json:"completed_at,omitempty"`
	CreatedAt      string             `json:"created_at"`
	UpdatedAt      string             `json:"updated_at,omitempty"`
	PercentDone    int                `json:"percent_done"`
	ActivityErrors []string           `json:"activity_errors"`
	Status         activityStatusJSON `json:"status"`
	Links          selfLinks          `json:"_links"`
}

// importJSON is the 201 body: just queued, every counter zero.
func (a *activity) importJSON() activityJSON {
	return activityJSON{
		ActivityID:     a.id,
		State:          stateInitialized,
		CreatedAt:      stamp(a.createdAt),
		UpdatedAt:      stamp(a.createdAt),
		ActivityErrors: []string{},
		Links:          selfLinks{Self: link{Href: "/v3/activities/" + a.id}},
	}
}

// json renders the activity as of now; call settleLocked first.
func (a *activity) json(now time.Time) activityJSON {
	out := a.importJSON()
	out.State = a.state
	out.ActivityErrors = append(out.ActivityErrors, a.errors...)
	switch a.state {
	case stateInitialized:
	case stateProcessing:
		out.StartedAt = stamp(a.startAt)
		out.UpdatedAt = stamp(now)
		pct := 99
		if span := a.doneAt.Sub(a.startAt); span > 0 {
			pct = min(99, int(100*now.Sub(a.startAt)/span))
		}
		out.PercentDone = pct
		out.Status.ItemsTotalCount = a.total
		out.Status.ItemsCompletedCount = a.total * pct / 100
	default:
		out.StartedAt = stamp(a.startAt)
		out.CompletedAt = stamp(a.completedAt)
		out.UpdatedAt = stamp(a.completedAt)
		out.PercentDone = 100
		out.Status = activityStatusJSON{
			ItemsTotalCount:      a.total,
			ItemsCompletedCount:  a.counts.completed,
			PersonCount:          a.counts.person,
			ErrorCount:           a.counts.errors,
			CorrectableCount:     a.counts.correctable,
			CannotAddToListCount: a.counts.cannotAdd,
			ListCount:            a.listCount,
		}
	}
	return out
}

// getActivity is GET /v3/activities/{id}.
func (s *Server) getActivity(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("id"))
	s.mu.Lock()
	now := s.nowLocked()
	s.settleLocked(now)
	a := s.activityByID[id]
	var out activityJSON
	if a != nil {
		out = a.json(now)
	}
	s.mu.Unlock()
	if a == nil {
		writeError(w, http.StatusNotFound, keyNotFound, "Resource not found for the activity_id provided")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// getActivities is GET /v3/activities: the last 10 days, newest first.
func (s *Server) getActivities(w http.ResponseWriter, r *http.Request) {
	p, offset := pagedParams(r)
	q := p.q
	limit := p.limit(50, 500)
	states := p.enumList("state", stateProcessing, stateCompleted, stateCancelled, stateFailed, stateTimedOut)
	if p.err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, p.err.Error())
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	s.settleLocked(now)
	var matched []*activity
	for i := len(s.activities) - 1; i >= 0; i-- {
		if a := s.activities[i]; len(states) == 0 || slices.Contains(states, a.state) {
			matched = append(matched, a)
		}
	}
	start, end := window(offset, limit, len(matched))
	out := struct {
		Activities []activityJSON `json:"activities"`
		Links      *pagingLinks   `json:"_links,omitempty"`
	}{Activities: make([]activityJSON, 0, end-start)}
	for _, a := range matched[start:end] {
		out.Activities = append(out.Activities, a.json(now))
	}
	out.Links = nextLink("/v3/activities", q, end, len(matched))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}
