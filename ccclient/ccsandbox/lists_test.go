package ccsandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// listPage is the part of ContactListArray the tests read.
type listPage struct {
	Lists []struct {
		ListID          string `json:"list_id"`
		Name            string `json:"name"`
		Favorite        bool   `json:"favorite"`
		Description     string `json:"description"`
		CreatedAt       string `json:"created_at"`
		MembershipCount *int   `json:"membership_count"`
	} `json:"lists"`
	ListsCount *int `json:"lists_count"`
	Links      struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
}

func TestCreateList(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		seed        string // an existing list
		body        string
		contentType string
		status      int
		specRejects bool
	}{
		{name: "created", body: `{"name":"Travel Agents","favorite":true,"description":"From HubSpot"}`, status: 201},
		{name: "name of 255 characters", body: `{"name":"` + strings.Repeat("n", 255) + `"}`, status: 201},
		{name: "name counted in characters, not bytes", body: `{"name":"` + strings.Repeat("é", 255) + `"}`, status: 201},
		{name: "duplicate name", seed: "Travel Agents", body: `{"name":"Travel Agents"}`, status: 409},
		{name: "names differ by case by default", seed: "Travel Agents", body: `{"name":"travel agents"}`, status: 201},
		{name: "case-insensitive names when configured", opts: Options{CaseInsensitiveListNames: true}, seed: "Travel Agents",
			body: `{"name":"travel agents"}`, status: 409},
		{name: "missing name", body: `{"favorite":true}`, status: 400, specRejects: true},
		{name: "blank name", body: `{"name":"  "}`, status: 400},
		{name: "name of 256 characters", body: `{"name":"` + strings.Repeat("n", 256) + `"}`, status: 400, specRejects: true},
		{name: "malformed JSON", body: `{"name":`, status: 400, specRejects: true},
		{name: "name not a string", body: `{"name":7}`, status: 400, specRejects: true},
		{name: "not JSON", body: `name=x`, contentType: "application/x-www-form-urlencoded", status: 415, specRejects: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts)
			if tt.seed != "" {
				e.srv.CreateList(tt.seed)
			}
			opts := []reqOption{expectInvalid}
			if tt.contentType != "" {
				opts = append(opts, withContentType(tt.contentType))
			}
			r := e.call(http.MethodPost, "/v3/contact_lists", tt.body, opts...)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			if tt.status != http.StatusCreated {
				wantAPIError(t, r, tt.status)
				wantLists := 0
				if tt.seed != "" {
					wantLists = 1
				}
				if n := len(e.srv.Lists()); n != wantLists {
					t.Errorf("%d lists after a refused create, want %d", n, wantLists)
				}
				return
			}
			wantStatus(t, r, http.StatusCreated)
			var got struct {
				ListID    string `json:"list_id"`
				Name      string `json:"name"`
				Favorite  bool   `json:"favorite"`
				CreatedAt string `json:"created_at"`
			}
			r.decode(t, &got)
			lists := e.srv.Lists()
			last := lists[len(lists)-1]
			if got.ListID != last.ListID || !isUUID(got.ListID) || got.CreatedAt == "" {
				t.Errorf("response %s does not describe the stored list %+v", r.body, last)
			}
			if tt.name == "created" && (!got.Favorite || last.Description != "From HubSpot") {
				t.Errorf("favorite/description not kept: %s, %+v", r.body, last)
			}
		})
	}
}

func TestListCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for i := range maxLists {
		e.srv.CreateList(fmt.Sprintf("list %04d", i))
	}
	wantAPIError(t, e.call(http.MethodPost, "/v3/contact_lists", `{"name":"one too many"}`), http.StatusBadRequest)
	if n := len(e.srv.Lists()); n != maxLists {
		t.Errorf("%d lists, want the cap of %d", n, maxLists)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("List %d", i)
		e.srv.CreateList(name)
		want = append(want, name)
	}
	var got []string
	path := "/v3/contact_lists?limit=2&include_count=true"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := e.call(http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusOK)
		var p listPage
		r.decode(t, &p)
		if p.ListsCount == nil || *p.ListsCount != 5 {
			t.Errorf("page %d: lists_count %v, want 5 on every page", pages, p.ListsCount)
		}
		if len(p.Lists) > 2 {
			t.Errorf("page %d: %d lists over limit 2", pages, len(p.Lists))
		}
		for _, l := range p.Lists {
			got = append(got, l.Name)
		}
		path = ""
		if p.Links.Next != nil {
			path = p.Links.Next.Href
			if !strings.HasPrefix(path, "/v3/contact_lists?cursor=") {
				t.Fatalf("next href %q: want a relative /v3 link with a cursor", path)
			}
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged lists %q, want %q", got, want)
	}
}

func TestGetListsParams(t *testing.T) {
	tests := []struct {
		query       string
		status      int
		wantNames   []string
		specRejects bool
	}{
		{query: "", status: 200, wantNames: []string{"Agents", "Agents EU", "Partners"}},
		{query: "name=Agents", status: 200, wantNames: []string{"Agents"}},
		{query: "name=Agent", status: 200, wantNames: []string{}},
		{query: "name=agents", status: 200, wantNames: []string{}},
		{query: "limit=1000", status: 200, wantNames: []string{"Agents", "Agents EU", "Partners"}},
		{query: "limit=1", status: 200, wantNames: []string{"Agents"}},
		{query: "status=deleted", status: 200, wantNames: []string{}},
		{query: "status=all", status: 200, wantNames: []string{"Agents", "Agents EU", "Partners"}},
		{query: "limit=0", status: 400, specRejects: true},
		{query: "limit=1001", status: 400, specRejects: true},
		{query: "limit=ten", status: 400, specRejects: true},
		{query: "include_count=maybe", status: 400, specRejects: true},
		{query: "include_membership_count=some", status: 400, specRejects: true},
		{query: "cursor=%25%25%25", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			for _, n := range []string{"Agents", "Agents EU", "Partners"} {
				e.srv.CreateList(n)
			}
			r := e.call(http.MethodGet, "/v3/contact_lists?"+tt.query, nil, expectInvalid)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			if tt.status != http.StatusOK {
				wantAPIError(t, r, tt.status)
				return
			}
			wantStatus(t, r, http.StatusOK)
			var p listPage
			r.decode(t, &p)
			names := []string{}
			for _, l := range p.Lists {
				names = append(names, l.Name)
			}
			if strings.Join(names, "|") != strings.Join(tt.wantNames, "|") {
				t.Errorf("lists %q, want %q", names, tt.wantNames)
			}
		})
	}
}

func TestListMembershipCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	a, b := e.srv.CreateList("A"), e.srv.CreateList("B")
	e.importNow(importBody([]string{a.ListID}, row("email", "x@example.com"), row("email", "y@example.com")))
	r := e.call(http.MethodGet, "/v3/contact_lists?include_membership_count=all&name="+url.QueryEscape("A"), nil)
	var p listPage
	r.decode(t, &p)
	if len(p.Lists) != 1 || p.Lists[0].MembershipCount == nil || *p.Lists[0].MembershipCount != 2 {
		t.Fatalf("A: %s, want membership_count 2", r.body)
	}
	r = e.call(http.MethodGet, "/v3/contact_lists?include_membership_count=active&name=B", nil)
	p = listPage{}
	r.decode(t, &p)
	if len(p.Lists) != 1 || p.Lists[0].ListID != b.ListID || p.Lists[0].MembershipCount == nil || *p.Lists[0].MembershipCount != 0 {
		t.Fatalf("B: %s, want membership_count 0", r.body)
	}
	r = e.call(http.MethodGet, "/v3/contact_lists", nil)
	p = listPage{}
	r.decode(t, &p)
	if p.Lists[0].MembershipCount != nil || p.ListsCount != nil {
		t.Errorf("%s: counts sent without being asked for", r.body)
	}
}

// deleteView is CC's ActivityDeleteListResponse, the 202 body of a deletion.
type deleteView struct {
	ActivityID     string   `json:"activity_id"`
	State          string   `json:"state"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	PercentDone    int      `json:"percent_done"`
	ActivityErrors []string `json:"activity_errors"`
	Links          struct {
		Self struct {
			Href string `json:"href"`
		} `json:"self"`
	} `json:"_links"`
}

// listNames returns the names GET /v3/contact_lists gives for query.
func (e *env) listNames(query string) []string {
	e.t.Helper()
	r := e.call(http.MethodGet, "/v3/contact_lists?"+query, nil)
	wantStatus(e.t, r, http.StatusOK)
	var p listPage
	r.decode(e.t, &p)
	names := []string{}
	for _, l := range p.Lists {
		names = append(names, l.Name)
	}
	return names
}

func TestDeleteList(t *testing.T) {
	tests := []struct {
		name        string
		path        func(agents string) string // the list_id sent, given the id of Agents
		token       bool
		status      int
		specRejects bool
	}{
		{name: "deleted", path: func(id string) string { return id }, token: true, status: 202},
		{name: "id in capitals", path: strings.ToUpper, token: true, status: 202},
		{name: "unknown id", path: func(string) string { return "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a" }, token: true, status: 404},
		{name: "not a UUID", path: func(string) string { return "agents" }, token: true, status: 404, specRejects: true},
		{name: "no token", path: func(id string) string { return id }, status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			agents, brokers := e.srv.CreateList("Agents"), e.srv.CreateList("Brokers")
			e.importNow(importBody([]string{agents.ListID, brokers.ListID}, row("email", "amy@example.com")))

			opts := []reqOption{expectInvalid}
			if !tt.token {
				opts = append(opts, withToken(""))
			}
			r := e.call(http.MethodDelete, "/v3/contact_lists/"+tt.path(agents.ListID), nil, opts...)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			amy, _ := e.contactByEmail("amy@example.com")
			if tt.status != http.StatusAccepted {
				if tt.status == http.StatusUnauthorized {
					wantStatus(t, r, tt.status)
				} else {
					wantAPIError(t, r, tt.status)
				}
				// A refused deletion changes nothing.
				if got := e.listNames(""); strings.Join(got, "|") != "Agents|Brokers" {
					t.Errorf("lists %q after a refused delete, want Agents and Brokers", got)
				}
				if !slices.Equal(amy.ListNames, []string{"Agents", "Brokers"}) {
					t.Errorf("amy's lists %q after a refused delete, want Agents and Brokers", amy.ListNames)
				}
				return
			}

			wantStatus(t, r, http.StatusAccepted)
			var d deleteView
			r.decode(t, &d)
			href := "/v3/activities/" + d.ActivityID
			if !isUUID(d.ActivityID) || d.State != stateInitialized || d.CreatedAt != stamp(epoch) ||
				d.ActivityErrors == nil || d.Links.Self.Href != href {
				t.Errorf("202 body %s: want an initialized activity with a relative self link", r.body)
			}
			if loc := r.header.Get("Location"); loc != href {
				t.Errorf("Location %q, want %q", loc, href)
			}
			// The sandbox deletes at once, so the activity is already done.
			if a := e.activity(d.ActivityID); a.State != stateCompleted || a.PercentDone != 100 {
				t.Errorf("delete activity %+v: want completed, 100%%", a)
			}

			if got := e.listNames(""); !slices.Equal(got, []string{"Brokers"}) {
				t.Errorf("lists %q after the delete, want only Brokers", got)
			}
			if got := e.listNames("name=Agents"); len(got) != 0 {
				t.Errorf("lists named Agents %q after the delete, want none", got)
			}
			if !slices.Equal(amy.ListIDs, []string{brokers.ListID}) || !slices.Equal(amy.ListNames, []string{"Brokers"}) {
				t.Errorf("amy on %q %q after the delete, want only Brokers", amy.ListIDs, amy.ListNames)
			}
			r = e.call(http.MethodGet, "/sandbox/contacts", nil, withToken(""))
			if strings.Contains(string(r.body), agents.ListID) {
				t.Errorf("/sandbox/contacts %s still names the deleted list", r.body)
			}
			r = e.call(http.MethodGet, "/v3/contacts?include=list_memberships", nil)
			wantStatus(t, r, http.StatusOK)
			if strings.Contains(string(r.body), agents.ListID) {
				t.Errorf("GET /v3/contacts %s still names the deleted list", r.body)
			}

			r = e.call(http.MethodPost, "/v3/activities/contacts_json_import",
				importBody([]string{agents.ListID}, row("email", "bo@example.com")))
			if key := wantAPIError(t, r, http.StatusBadRequest); key != keyValidation {
				t.Errorf("import naming the deleted list: key %q, want %q", key, keyValidation)
			}
			wantAPIError(t, e.call(http.MethodDelete, "/v3/contact_lists/"+agents.ListID, nil), http.StatusNotFound)

			r = e.call(http.MethodPost, "/v3/contact_lists", `{"name":"Agents"}`)
			wantStatus(t, r, http.StatusCreated)
			var again struct {
				ListID string `json:"list_id"`
			}
			r.decode(t, &again)
			if !isUUID(again.ListID) || again.ListID == agents.ListID {
				t.Errorf("Agents created again with id %q, want a new one (the deleted list had %s)", again.ListID, agents.ListID)
			}
			e.importNow(importBody([]string{again.ListID}, row("email", "amy@example.com")))
			if amy, _ := e.contactByEmail("amy@example.com"); !slices.Equal(amy.ListNames, []string{"Brokers", "Agents"}) {
				t.Errorf("amy on %q, want Brokers and the new Agents", amy.ListNames)
			}
		})
	}
}

// TestDeleteListWithImportPending deletes a list that an import still in
// flight names: the import completes without putting anyone on it.
func TestDeleteListWithImportPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: time.Second})
	agents, brokers := e.srv.CreateList("Agents"), e.srv.CreateList("Brokers")
	a := e.postImport(importBody([]string{agents.ListID, brokers.ListID}, row("email", "amy@example.com")))
	wantStatus(t, e.call(http.MethodDelete, "/v3/contact_lists/"+agents.ListID, nil), http.StatusAccepted)
	e.clock.Advance(time.Second)
	if got := e.activity(a.ActivityID); got.State != stateCompleted || got.Status["person_count"] != 1 {
		t.Fatalf("import %+v: want completed with one person", got)
	}
	amy, ok := e.contactByEmail("amy@example.com")
	if !ok || !slices.Equal(amy.ListIDs, []string{brokers.ListID}) {
		t.Errorf("amy %+v: want her on Brokers only", amy)
	}
	r := e.call(http.MethodGet, "/v3/contact_lists?include_membership_count=all", nil)
	var p listPage
	r.decode(t, &p)
	if len(p.Lists) != 1 || p.Lists[0].MembershipCount == nil || *p.Lists[0].MembershipCount != 1 {
		t.Errorf("lists %s: want Brokers alone, with one member", r.body)
	}
}
