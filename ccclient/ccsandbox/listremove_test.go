package ccsandbox

import (
	"net/http"
	"slices"
	"testing"
)

// POST /v3/activities/remove_list_memberships takes contacts off lists when
// its activity completes, never deletes them, and refuses what CC refuses;
// an unsubscribed contact then reads as unsubscribed with status=all.
func TestRemoveListMemberships(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := e.srv.CreateList("A"), e.srv.CreateList("B")
	e.importNow(importBody([]string{a.ListID, b.ListID}, row("email", "one@example.com"), row("email", "two@example.com"), row("email", "three@example.com")))
	one, _ := e.contactByEmail("one@example.com")
	two, _ := e.contactByEmail("two@example.com")

	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"no source", map[string]any{"source": map[string]any{}, "list_ids": []string{a.ListID}}, http.StatusBadRequest},
		{"two sources", map[string]any{"source": map[string]any{"contact_ids": []string{one.ContactID}, "all_active_contacts": true}, "list_ids": []string{a.ListID}}, http.StatusBadRequest},
		{"no target", map[string]any{"source": map[string]any{"contact_ids": []string{one.ContactID}}, "list_ids": []string{}}, http.StatusBadRequest},
		{"unknown list", map[string]any{"source": map[string]any{"contact_ids": []string{one.ContactID}}, "list_ids": []string{newUUID()}}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, e.call(http.MethodPost, "/v3/activities/remove_list_memberships", tc.body), tc.want)
		})
	}

	r := e.call(http.MethodPost, "/v3/activities/remove_list_memberships",
		map[string]any{"source": map[string]any{"contact_ids": []string{one.ContactID, two.ContactID}}, "list_ids": []string{a.ListID}})
	wantStatus(t, r, http.StatusCreated)
	var act activityView
	r.decode(t, &act)
	if c, _ := e.contactByEmail("one@example.com"); len(c.ListIDs) != 2 {
		t.Errorf("one left its list before the activity completed: %v", c.ListNames)
	}
	e.clock.Advance(e.srv.opts.ActivityDelay)
	if got := e.activity(act.ActivityID); got.State != stateCompleted || got.Status["items_completed_count"] != 2 || got.Status["list_count"] != 1 {
		t.Errorf("activity %+v, want completed with 2 removed from 1 list", got)
	}
	for email, want := range map[string][]string{"one@example.com": {"B"}, "two@example.com": {"B"}, "three@example.com": {"A", "B"}} {
		if c, ok := e.contactByEmail(email); !ok || !slices.Equal(c.ListNames, want) {
			t.Errorf("%s on %v (kept %v), want %v", email, c.ListNames, ok, want)
		}
	}

	// A member read of list A, every status, as reconcile reads it.
	e.srv.Unsubscribe("three@example.com")
	var page struct {
		Contacts []struct {
			Email struct {
				Address    string `json:"address"`
				Permission string `json:"permission_to_send"`
			} `json:"email_address"`
			Lists []string `json:"list_memberships"`
		} `json:"contacts"`
	}
	r = e.call(http.MethodGet, "/v3/contacts?status=all&include=list_memberships&limit=500&lists="+a.ListID, nil)
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &page)
	if len(page.Contacts) != 0 {
		t.Errorf("list A still has %d members", len(page.Contacts))
	}
	r = e.call(http.MethodGet, "/v3/contacts?status=all&include=list_memberships&limit=500&email=three@example.com", nil)
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &page)
	if len(page.Contacts) != 1 || page.Contacts[0].Email.Permission != permUnsubscribed || len(page.Contacts[0].Lists) != 0 {
		t.Errorf("three after unsubscribing: %+v", page.Contacts)
	}
}
