package ccsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSandboxContactsHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	a, b := e.srv.CreateList("Agents"), e.srv.CreateList("Brokers")
	e.importNow(importBody([]string{b.ListID, a.ListID},
		row("email", "Zed@Example.com", "first_name", "Zed", "last_name", "Last"),
		row("email", "amy@example.com", "first_name", "Amy")))

	r := e.call(http.MethodGet, "/sandbox/contacts", nil, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var got struct {
		Contacts []SandboxContact `json:"contacts"`
	}
	r.decode(t, &got)
	if len(got.Contacts) != 2 || got.Contacts[0].Email != "amy@example.com" || got.Contacts[1].Email != "zed@example.com" {
		t.Fatalf("contacts %s: want amy then zed (lower-cased, sorted)", r.body)
	}
	zed := got.Contacts[1]
	if zed.FirstName != "Zed" || zed.LastName != "Last" || !slices.Equal(zed.ListIDs, []string{b.ListID, a.ListID}) ||
		!slices.Equal(zed.ListNames, []string{"Brokers", "Agents"}) {
		t.Errorf("zed %+v", zed)
	}
	var raw struct {
		Contacts []map[string]any `json:"contacts"`
	}
	r.decode(t, &raw)
	for _, k := range []string{"email", "first_name", "last_name", "list_ids", "list_names"} {
		if _, ok := raw.Contacts[0][k]; !ok {
			t.Errorf("/sandbox/contacts entry lacks %q: %v", k, raw.Contacts[0])
		}
	}
	// The in-process view is the same data.
	js, _ := json.Marshal(struct {
		Contacts []SandboxContact `json:"contacts"`
	}{e.srv.Contacts()})
	if string(js) != string(r.body) {
		t.Errorf("Contacts() %s differs from /sandbox/contacts %s", js, r.body)
	}
}

func TestSandboxStatsHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1, RefreshMode: RefreshLongLived})
	list := e.srv.CreateList("Agents").ListID
	a := e.importNow(importBody([]string{list}, row("email", "a@example.com")))
	e.activity(a.ActivityID)
	e.call(http.MethodGet, "/v3/contact_lists", nil)
	e.call(http.MethodGet, "/v3/contact_lists", nil, withToken("stale"))
	_, rt := e.srv.IssueToken("")
	e.refresh(rt)
	e.refresh("bogus")
	e.call(http.MethodGet, "/v3/nowhere", nil, expectInvalid)

	r := e.call(http.MethodGet, "/sandbox/stats", nil, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var got Stats
	r.decode(t, &got)
	want := Stats{
		Requests: map[string]int{
			"POST /v3/activities/contacts_json_import": 1,
			"GET /v3/activities/{id}":                  2,
			"GET /v3/contact_lists":                    2,
			"POST /oauth2/default/v1/token":            2,
			"unmatched":                                1,
		},
		Imports:      1,
		ImportRows:   1,
		Unauthorized: 1,
		TokenGrants:  map[string]int{"refresh_token": 1},
		InvalidGrant: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(e.srv.Stats(), got) {
		t.Errorf("Stats() %+v differs from /sandbox/stats", e.srv.Stats())
	}
}

func TestSandboxUnsubscribeHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	list := e.srv.CreateList("Agents").ListID
	e.importNow(importBody([]string{list}, row("email", "ann@example.com")))
	r := e.call(http.MethodPost, "/sandbox/unsubscribe", `{"email":"ANN@example.com"}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	c, _ := e.contactByEmail("ann@example.com")
	if c.Permission != "unsubscribed" || len(c.ListIDs) != 0 {
		t.Errorf("ann %+v: want unsubscribed and off every list", c)
	}
	a := e.importNow(importBody([]string{list}, row("email", "ann@example.com")))
	if a.Status["cannot_add_to_list_count"] != 1 {
		t.Errorf("status %v: the re-import must count in cannot_add_to_list_count", a.Status)
	}
	if c, _ := e.contactByEmail("ann@example.com"); c.Permission != "unsubscribed" || len(c.ListIDs) != 0 {
		t.Errorf("ann %+v: an import must never re-subscribe", c)
	}
	wantAPIError(t, e.call(http.MethodPost, "/sandbox/unsubscribe", `{"email":""}`, withToken("")), http.StatusBadRequest)
	wantAPIError(t, e.call(http.MethodPost, "/sandbox/unsubscribe", `not json`, withToken("")), http.StatusBadRequest)
}

func TestSandboxSeedingHooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	r := e.call(http.MethodPost, "/sandbox/lists", `{"name":"Agents"}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var l ContactListInfo
	r.decode(t, &l)
	if again := e.srv.CreateList("Agents"); again.ListID != l.ListID {
		t.Errorf("seeding the same name made a second list")
	}
	r = e.call(http.MethodPost, "/sandbox/custom_fields", `{"label":"Agency ID"}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var f CustomFieldInfo
	r.decode(t, &f)
	if f.Name != "Agency_ID" || !isUUID(f.CustomFieldID) {
		t.Errorf("custom field %+v: want name Agency_ID", f)
	}

	r = e.call(http.MethodPost, "/sandbox/token", `{"scope":"contact_data"}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var tok map[string]string
	r.decode(t, &tok)
	if tok["refresh_token"] != "" {
		t.Errorf("token without offline_access has a refresh token")
	}
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(tok["access_token"])), http.StatusOK)

	r = e.call(http.MethodPost, "/sandbox/clock", `{"advance":"25h"}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	if got := e.srv.Now(); !got.Equal(epoch.Add(25 * time.Hour)) {
		t.Errorf("clock %v after advancing 25h from %v", got, epoch)
	}
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(tok["access_token"])), http.StatusUnauthorized)
	wantAPIError(t, e.call(http.MethodPost, "/sandbox/clock", `{"advance":"-1h"}`, withToken("")), http.StatusBadRequest)

	r = e.call(http.MethodPut, "/sandbox/faults", `{"import_outcome":"failed","status":{"GET /v3/contacts":503}}`, withToken(""))
	wantStatus(t, r, http.StatusOK)
	e.token, _ = e.srv.IssueToken("")
	wantAPIError(t, e.call(http.MethodGet, "/v3/contacts", nil), http.StatusServiceUnavailable)
	wantAPIError(t, e.call(http.MethodPut, "/sandbox/faults", `{"import_outcome":"exploded"}`, withToken("")), http.StatusBadRequest)
	r = e.call(http.MethodGet, "/sandbox/faults", nil, withToken(""))
	var faults Faults
	r.decode(t, &faults)
	if faults.ImportOutcome != "failed" || faults.Status["GET /v3/contacts"] != 503 {
		t.Errorf("faults %s: the bad PUT must not have replaced them", r.body)
	}
}

// TestConcurrentClients runs many clients at once, as asynq workers and
// pollers would, and checks nothing is lost; -race checks the locking.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: time.Second})
	lists := []string{e.srv.CreateList("A").ListID, e.srv.CreateList("B").ListID}
	const workers, perImport = 200, 5
	// A ticker moves the sandbox clock while the workers poll, as time would.
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				e.clock.Advance(50 * time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rows := make([]map[string]any, perImport)
			for i := range rows {
				rows[i] = row("email", fmt.Sprintf("w%03d-%d@example.com", w, i), "first_name", fmt.Sprint(w))
			}
			r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", importBody([]string{lists[w%2]}, rows...))
			if r.status != http.StatusCreated {
				errs <- fmt.Errorf("worker %d: import %d %s", w, r.status, r.body)
				return
			}
			var a activityView
			_ = json.Unmarshal(r.body, &a)
			for range 1000 {
				e.call(http.MethodGet, "/v3/contact_lists?include_membership_count=all", nil)
				e.call(http.MethodGet, "/v3/contacts?limit=10&lists="+url.QueryEscape(lists[w%2]), nil)
				got := e.call(http.MethodGet, "/v3/activities/"+a.ActivityID, nil)
				var st activityView
				_ = json.Unmarshal(got.body, &st)
				if st.State == stateCompleted {
					return
				}
			}
			errs <- fmt.Errorf("worker %d: activity %s never completed", w, a.ActivityID)
		})
	}
	wg.Wait()
	close(stop)
	<-ticked
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.clock.Advance(time.Hour)
	contacts := e.srv.Contacts()
	if len(contacts) != workers*perImport {
		t.Fatalf("%d contacts, want %d", len(contacts), workers*perImport)
	}
	for _, c := range contacts {
		var w, i int
		fmt.Sscanf(c.Email, "w%03d-%d@", &w, &i)
		if c.FirstName != fmt.Sprint(w) || !slices.Equal(c.ListIDs, []string{lists[w%2]}) {
			t.Errorf("contact %+v", c)
		}
	}
	if st := e.srv.Stats(); st.Imports != workers {
		t.Errorf("Stats.Imports = %d, want %d", st.Imports, workers)
	}
}

// TestSandboxExpireTokensHook: ending the access tokens early makes the
// next API call a 401, while the refresh token still gets a new pair; the
// hook is how tests stage an early token expiry.
func TestSandboxExpireTokensHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1, RefreshMode: RefreshRotating})
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	r := e.call(http.MethodPost, "/sandbox/expire-tokens", nil, withToken(""))
	wantStatus(t, r, http.StatusOK)
	var got struct{ Expired int }
	r.decode(t, &got)
	if got.Expired < 1 {
		t.Fatalf("expired %d tokens, want at least the env's", got.Expired)
	}
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusUnauthorized)
	_, rt := e.srv.IssueToken("")
	e.srv.ExpireAccessTokens()
	wantStatus(t, e.refresh(rt), http.StatusOK)
	if n := e.srv.ExpireAccessTokens(); n != 1 {
		t.Errorf("second expiry ended %d tokens, want only the refreshed one", n)
	}
}
