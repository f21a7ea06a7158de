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
	// The sandbox never deletes lists and holds only email lists, so a
	// request for deleted-only or SMS lists matches nothing.
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
