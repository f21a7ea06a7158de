package ccsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Account limits on lists, from CC's lists overview.
const (
	maxLists       = 1000
	maxListName    = 255
	maxListsPerRow = 50 // lists per contact
)

// contactList is one contact list of the sandbox account.
type contactList struct {
	id          string
	name        string
	description string
	favorite    bool
	createdAt   time.Time
	updatedAt   time.Time
}

// ContactListInfo describes a list, for seeding and assertions in Go.
type ContactListInfo struct {
	ListID      string    `json:"list_id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Favorite    bool      `json:"favorite"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (l *contactList) info() ContactListInfo {
	return ContactListInfo{
		ListID:      l.id,
		Name:        l.name,
		Description: l.description,
		Favorite:    l.favorite,
		CreatedAt:   l.createdAt,
		UpdatedAt:   l.updatedAt,
	}
}

// listJSON is CC's ContactList (and, without membership_count, its
// ContactListPutPost).
type listJSON struct {
	ListID          string `json:"list_id"`
	Name            string `json:"name"`
	Description     string `json:"description,omitempty"`
	Favorite        bool   `json:"favorite"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
	MembershipCount *int   `json:"membership_count,omitempty"`
}

func (l *contactList) json() listJSON {
	return listJSON{
		ListID:      l.id,
		Name:        l.name,
		Description: l.description,
		Favorite:    l.favorite,
		CreatedAt:   stamp(l.createdAt),
		UpdatedAt:   stamp(l.updatedAt),
	}
}

// listArrayJSON is CC's ContactListArray.
type listArrayJSON struct {
	Lists      []listJSON   `json:"lists"`
	ListsCount *int         `json:"lists_count,omitempty"`
	Links      *pagingLinks `json:"_links,omitempty"`
}

// sameListName compares list names under the configured case rule.
func (s *Server) sameListName(a, b string) bool {
	if s.opts.CaseInsensitiveListNames {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// listByNameLocked finds a list by name, or returns nil.
func (s *Server) listByNameLocked(name string) *contactList {
	for _, l := range s.lists {
		if s.sameListName(l.name, name) {
			return l
		}
	}
	return nil
}

// addListLocked creates a list; callers check name rules and the cap.
func (s *Server) addListLocked(name, description string, favorite bool) *contactList {
	now := s.nowLocked()
	l := &contactList{
		id:          newUUID(),
		name:        name,
		description: description,
		favorite:    favorite,
		createdAt:   now,
		updatedAt:   now,
	}
	s.lists = append(s.lists, l)
	s.listByID[l.id] = l
	return l
}

// CreateList seeds a list. It returns the existing list when one already has
// that name, so seeding is idempotent, and it ignores the 1,000-list cap so
// that a test can fill the account up to it.
func (s *Server) CreateList(name string) ContactListInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listByNameLocked(name); l != nil {
		return l.info()
	}
	return s.addListLocked(name, "", false).info()
}

// Lists returns every list in creation order.
func (s *Server) Lists() []ContactListInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ContactListInfo, 0, len(s.lists))
	for _, l := range s.lists {
		out = append(out, l.info())
	}
	return out
}

// getLists is GET /v3/contact_lists, in creation order with cursor paging.
func (s *Server) getLists(w http.ResponseWriter, r *http.Request) {
	p, offset := pagedParams(r)
	q := p.q
	limit := p.limit(50, 1000)
	includeCount := p.bool("include_count")
	p.bool("include_sms_membership_count")
	membership := p.enumList("include_membership_count", "all", "active")
	status := p.enumList("status", "all", "active", "deleted")
	channel := p.enumList("channel_type", "email", "sms")
	if p.err != nil {
		writeError(w, http.StatusBadRequest, keyValidation, p.err.Error())
		return
	}

	s.mu.Lock()
	s.settleLocked(s.nowLocked())
	name, hasName := q["name"]
	var matched []*contactList
	// The sandbox forgets a list as soon as it is deleted (CC keeps it for
	// status=deleted) and holds only email lists, so a request for
	// deleted-only or SMS lists matches nothing.
	onlyDeleted := len(status) > 0 && !slices.Contains(status, "all") && !slices.Contains(status, "active")
	onlySMS := len(channel) > 0 && !slices.Contains(channel, "email")
	if !onlyDeleted && !onlySMS {
		for _, l := range s.lists {
			if !hasName || s.sameListName(l.name, name[0]) {
				matched = append(matched, l)
			}
		}
	}
	var counts map[string]int
	if len(membership) > 0 {
		counts = s.membershipCountsLocked()
	}
	start, end := window(offset, limit, len(matched))
	out := listArrayJSON{Lists: make([]listJSON, 0, end-start)}
	for _, l := range matched[start:end] {
		lj := l.json()
		if counts != nil {
			n := counts[l.id]
			lj.MembershipCount = &n
		}
		out.Lists = append(out.Lists, lj)
	}
	if includeCount {
		n := len(matched)
		out.ListsCount = &n
	}
	out.Links = nextLink("/v3/contact_lists", q, end, len(matched))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// membershipCountsLocked counts members per list id. Unsubscribing removes a
// contact from every list, so "all" and "active" counts agree.
func (s *Server) membershipCountsLocked() map[string]int {
	counts := make(map[string]int, len(s.lists))
	for _, c := range s.contacts {
		for _, id := range c.lists {
			counts[id]++
		}
	}
	return counts
}

// listInput is CC's ListInput. Pointers tell a missing key from a zero one.
type listInput struct {
	Name        *string `json:"name"`
	Favorite    *bool   `json:"favorite"`
	Description *string `json:"description"`
}

// postList is POST /v3/contact_lists.
func (s *Server) postList(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, tooBig, err := readBody(r, 1<<20)
	if err != nil || tooBig {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body could not be read or is too large.")
		return
	}
	var in listInput
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body is not valid JSON for ListInput: "+err.Error())
		return
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		writeError(w, http.StatusBadRequest, keyValidation, "name is required.")
		return
	}
	if n := utf8.RuneCountInString(*in.Name); n > maxListName {
		writeError(w, http.StatusBadRequest, keyValidation, fmt.Sprintf("name must be at most %d characters; it has %d.", maxListName, n))
		return
	}
	var desc string
	if in.Description != nil {
		desc = *in.Description
	}
	fav := in.Favorite != nil && *in.Favorite

	s.mu.Lock()
	var l *contactList
	status := http.StatusCreated
	switch {
	case s.listByNameLocked(*in.Name) != nil:
		status = http.StatusConflict
	case len(s.lists) >= maxLists:
		status = http.StatusBadRequest
	default:
		l = s.addListLocked(*in.Name, desc, fav)
	}
	s.mu.Unlock()

	switch status {
	case http.StatusConflict:
		writeError(w, status, keyConflict, fmt.Sprintf("A contact list named %q already exists.", *in.Name))
	case http.StatusBadRequest:
		// The error CC gives at its cap is unconfirmed; 400 is the likeliest.
		writeError(w, status, keyValidation, fmt.Sprintf("The account already has the maximum of %d contact lists.", maxLists))
	default:
		s.log.Info("ccsandbox: list created", "list_id", l.id, "name", l.name)
		writeJSON(w, status, l.json())
	}
}

// deleteListJSON is CC's ActivityDeleteListResponse, the 202 body of a list
// deletion. It is the activity as CC has just queued it, like the import's
// 201, even though the sandbox has already done the work.
type deleteListJSON struct {
	ActivityID     string    `json:"activity_id"`
	State          string    `json:"state"`
	CreatedAt      string    `json:"created_at"`
	UpdatedAt      string    `json:"updated_at"`
	PercentDone    int       `json:"percent_done"`
	ActivityErrors []string  `json:"activity_errors"`
	Links          selfLinks `json:"_links"`
}

// deleteList is DELETE /v3/contact_lists/{list_id}. CC deletes a list and
// its memberships asynchronously and answers 202 with an activity to poll.
// The sandbox deletes the list before it answers, so that a test which
// deletes a list behind a client's back (say, after the client cached its
// id) meets the deletion on the very next call, with no clock to move.
func (s *Server) deleteList(w http.ResponseWriter, r *http.Request) {
	// An id that is not a UUID is no list's id, so it gets the same 404 as
	// an unknown one, as GET /v3/activities/{id} does.
	id := strings.ToLower(r.PathValue("list_id"))
	s.mu.Lock()
	now := s.nowLocked()
	// Imports that are due have happened before the deletion, so their
	// memberships go with the list rather than outliving it.
	s.settleLocked(now)
	l := s.listByID[id]
	var a *activity
	if l != nil {
		s.removeListLocked(l)
		a = s.addDeleteActivityLocked(now)
	}
	s.mu.Unlock()
	if l == nil {
		writeError(w, http.StatusNotFound, keyNotFound, "Resource not found for the list_id provided")
		return
	}
	s.log.Info("ccsandbox: list deleted", "list_id", l.id, "name", l.name, "activity_id", a.id)
	href := "/v3/activities/" + a.id
	// The spec gives Location no form; it holds the same relative link as
	// _links.self, which RFC 9110 allows and which resolves against any
	// address the sandbox is served on.
	w.Header().Set("Location", href)
	writeJSON(w, http.StatusAccepted, deleteListJSON{
		ActivityID:     a.id,
		State:          stateInitialized,
		CreatedAt:      stamp(a.createdAt),
		UpdatedAt:      stamp(a.createdAt),
		ActivityErrors: []string{},
		Links:          selfLinks{Self: link{Href: href}},
	})
}

// removeListLocked forgets l: it leaves the listings and the id index, so
// that imports naming it get the 400 of an unknown list_id, its name is free
// for a new list, and every contact leaves it. Imports still pending lose it
// too, or they would put contacts back on a list that no longer exists when
// they complete.
func (s *Server) removeListLocked(l *contactList) {
	s.lists = slices.DeleteFunc(s.lists, func(x *contactList) bool { return x == l })
	delete(s.listByID, l.id)
	isL := func(id string) bool { return id == l.id }
	for _, c := range s.contacts {
		c.lists = slices.DeleteFunc(c.lists, isL)
	}
	for _, a := range s.pending {
		if a.req != nil {
			a.req.listIDs = slices.DeleteFunc(a.req.listIDs, isL)
		}
	}
}

// addDeleteActivityLocked records the activity of a list deletion, so that
// GET /v3/activities/{id} and GET /v3/activities show it as CC would. The
// activity model is built for imports, but an activity that is completed
// from the start, has no rows and is never pending fits it unchanged:
// settleLocked only ages it out after activityRetention, and its status
// counters stay zero. Faults.ImportOutcome does not apply to it.
func (s *Server) addDeleteActivityLocked(now time.Time) *activity {
	a := &activity{
		id:          newUUID(),
		createdAt:   now,
		startAt:     now,
		doneAt:      now,
		completedAt: now,
		outcome:     stateCompleted,
		state:       stateCompleted,
	}
	s.activities = append(s.activities, a)
	s.activityByID[a.id] = a
	return a
}
