package ccsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Limits of ListActivityRemoveContacts, from the descriptions in CC's spec
// (its maxItems say 0, which is a flaw of the file, not a limit).
const (
	maxRemoveContacts = 500
	maxRemoveLists    = 50
)

// removeRequest is a validated ListActivityRemoveContacts: which contacts
// leave which lists.
type removeRequest struct {
	listIDs    []string // the lists the contacts leave
	contactIDs []string // source contact_ids; empty when fromLists or all is used
	fromLists  []string // source list_ids: every member of these lists
	all        bool     // source all_active_contacts
	exclude    []string // exclude.contact_ids, for the list and all sources
}

// removeBody is the JSON of ListActivityRemoveContacts.
type removeBody struct {
	Source struct {
		ListIDs           []string `json:"list_ids"`
		ContactIDs        []string `json:"contact_ids"`
		AllActiveContacts bool     `json:"all_active_contacts"`
		EngagementLevel   string   `json:"engagement_level"`
		TagIDs            []string `json:"tag_ids"`
	} `json:"source"`
	Exclude struct {
		ContactIDs []string `json:"contact_ids"`
	} `json:"exclude"`
	ListIDs []string `json:"list_ids"`
}

// parseRemove validates a remove_list_memberships body: one source, at most
// 500 contacts or 50 source lists, 1 to 50 target lists, every id a UUID.
func parseRemove(body []byte) (*removeRequest, string) {
	var b removeBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, "The request body is not valid JSON: " + err.Error()
	}
	src := b.Source
	sources := 0
	for _, set := range []bool{len(src.ListIDs) > 0, len(src.ContactIDs) > 0, src.AllActiveContacts, src.EngagementLevel != "", len(src.TagIDs) > 0} {
		if set {
			sources++
		}
	}
	switch {
	case sources != 1:
		return nil, "source must hold exactly one of list_ids, contact_ids, all_active_contacts, engagement_level or tag_ids."
	case src.EngagementLevel != "" || len(src.TagIDs) > 0:
		return nil, "ccsandbox: engagement_level and tag_ids sources are not modelled; use contact_ids, list_ids or all_active_contacts."
	case len(src.ContactIDs) > maxRemoveContacts:
		return nil, fmt.Sprintf("source.contact_ids accepts at most %d values.", maxRemoveContacts)
	case len(src.ListIDs) > maxRemoveLists:
		return nil, fmt.Sprintf("source.list_ids accepts at most %d values.", maxRemoveLists)
	case len(b.ListIDs) == 0 || len(b.ListIDs) > maxRemoveLists:
		return nil, fmt.Sprintf("list_ids must hold 1 to %d list_id values.", maxRemoveLists)
	}
	req := &removeRequest{all: src.AllActiveContacts}
	for _, f := range []struct {
		name string
		in   []string
		out  *[]string
	}{
		{"list_ids", b.ListIDs, &req.listIDs},
		{"source.contact_ids", src.ContactIDs, &req.contactIDs},
		{"source.list_ids", src.ListIDs, &req.fromLists},
		{"exclude.contact_ids", b.Exclude.ContactIDs, &req.exclude},
	} {
		for _, id := range f.in {
			id = strings.ToLower(strings.TrimSpace(id))
			if !isUUID(id) {
				return nil, f.name + " must hold UUIDs: " + id
			}
			*f.out = append(*f.out, id)
		}
	}
	return req, ""
}

// postRemoveListMemberships is POST /v3/activities/remove_list_memberships:
// it queues an activity that, when it completes on the sandbox clock, takes
// the chosen contacts off the target lists. The contacts themselves stay.
func (s *Server) postRemoveListMemberships(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, tooBig, err := readBody(r, hardBodyLimit)
	if err != nil || tooBig {
		writeError(w, http.StatusBadRequest, keyMalformedJSON, "The request body could not be read.")
		return
	}
	req, msg := parseRemove(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, keyValidation, msg)
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	s.settleLocked(now)
	var unknown string
	for _, id := range slices.Concat(req.listIDs, req.fromLists) {
		if s.listByID[id] == nil {
			unknown = id
		}
	}
	var a *activity
	switch {
	case unknown != "":
	case len(s.pending) >= maxQueued:
		s.stats.QueueFull++
	default:
		a = s.queueActivityLocked(now, 0)
		a.remove = req
	}
	s.mu.Unlock()
	switch {
	case unknown != "":
		writeError(w, http.StatusNotFound, keyNotFound, "list_ids holds an unknown list_id: "+unknown)
	case a == nil:
		writeObjectError(w, http.StatusTooManyRequests, keyQueueFull,
			"Too many requests. You exceeded 1,000 queued activities for this user account.")
	default:
		s.log.Info("ccsandbox: list removal queued", "activity_id", a.id, "lists", len(req.listIDs))
		writeJSON(w, http.StatusCreated, a.importJSON())
	}
}

// finishRemoveLocked applies a completed list removal: each chosen contact
// leaves each target list it is on.
func (s *Server) finishRemoveLocked(a *activity) {
	req := a.remove
	a.remove = nil
	chosen := func(c *contact) bool {
		switch {
		case slices.Contains(req.exclude, c.id):
			return false
		case len(req.contactIDs) > 0:
			return slices.Contains(req.contactIDs, c.id)
		case req.all:
			return c.permission != permUnsubscribed
		default:
			return slices.ContainsFunc(req.fromLists, func(id string) bool { return slices.Contains(c.lists, id) })
		}
	}
	for _, c := range s.contacts {
		if !chosen(c) {
			continue
		}
		before := len(c.lists)
		c.lists = slices.DeleteFunc(c.lists, func(id string) bool { return slices.Contains(req.listIDs, id) })
		if len(c.lists) != before {
			a.counts.completed++
			c.updatedAt = a.doneAt
		}
	}
	a.total = a.counts.completed
	a.listCount = len(req.listIDs)
	s.log.Info("ccsandbox: list removal completed", "activity_id", a.id, "removed", a.counts.completed)
}
