package ccclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestContacts(t *testing.T) {
	c, mux, _ := setup(t, nil)
	mux.HandleFunc("GET /v3/contacts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("lists") != "l1,l2" || q.Get("include") != "list_memberships" || q.Get("limit") != "500" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		switch q.Get("cursor") {
		case "":
			writeJSON(w, 200, `{"contacts":[
			  {"contact_id":"c1","email_address":{"address":"ann@example.com","permission_to_send":"implicit"},
			   "first_name":"Ann","last_name":"Lee","list_memberships":["l1","l2"]},
			  {"contact_id":"c2","email_address":{"address":"bo@example.com","permission_to_send":"unsubscribed"},
			   "list_memberships":["l2"]}],
			  "contacts_count":3,"_links":{"next":{"href":"/v3/contacts?cursor=abc&lists=l1,l2&include=list_memberships&limit=500"}}}`)
		case "abc":
			writeJSON(w, 200, `{"contacts":[{"contact_id":"c3","email_address":{"address":"zoë@example.com"},"first_name":"Zoë"}],"_links":{}}`)
		default:
			t.Errorf("cursor %q", q.Get("cursor"))
		}
	})
	got, err := c.Contacts(context.Background(), []string{"l1", "l2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Contact{
		{ContactID: "c1", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", ListMemberships: []string{"l1", "l2"}, PermissionToSend: "implicit"},
		{ContactID: "c2", Email: "bo@example.com", ListMemberships: []string{"l2"}, PermissionToSend: "unsubscribed"},
		{ContactID: "c3", Email: "zoë@example.com", FirstName: "Zoë"},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestContactsChunksListIDs(t *testing.T) {
	c, mux, _ := setup(t, nil)
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("list-%02d", i)
	}
	var (
		mu     sync.Mutex
		chunks []int
	)
	mux.HandleFunc("GET /v3/contacts", func(w http.ResponseWriter, r *http.Request) {
		lists := strings.Split(r.URL.Query().Get("lists"), ",")
		mu.Lock()
		chunks = append(chunks, len(lists))
		mu.Unlock()
		// "shared" is on a list in every chunk; each chunk also has its own contact.
		writeJSON(w, 200, fmt.Sprintf(`{"contacts":[
		  {"contact_id":"shared","email_address":{"address":"s@example.com"},"list_memberships":["list-00","list-59"]},
		  {"contact_id":"only-%s","email_address":{"address":"o@example.com"}}]}`, lists[0]))
	})
	got, err := c.Contacts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(chunks) != "[25 25 10]" {
		t.Errorf("list ids per request = %v, want [25 25 10]", chunks)
	}
	var gotIDs []string
	for _, ct := range got {
		gotIDs = append(gotIDs, ct.ContactID)
	}
	if strings.Join(gotIDs, ",") != "shared,only-list-00,only-list-25,only-list-50" {
		t.Errorf("contacts = %v", gotIDs)
	}
}

func TestContactsNoLists(t *testing.T) {
	c, mux, _ := setup(t, nil)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	got, err := c.Contacts(context.Background(), nil)
	if err != nil || got != nil || calls.Load() != 0 {
		t.Errorf("got %v, %v after %d calls; want nothing and no request", got, err, calls.Load())
	}
}
