package ccclient_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// TestSandboxUnsubscribedEmails reads the account's unsubscribed contacts
// from the sandbox: only unsubscribed ones, lower-cased, across pages of
// 500, and reports an incomplete answer when the page budget runs out.
func TestSandboxUnsubscribedEmails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb, c := sandboxClient(t, ccsandbox.Options{ActivityDelay: -1})
	list := sb.CreateList("Agents").ListID

	// Subscribed contacts on a list, which must not be reported.
	var subscribed []ccclient.ImportContact
	for i := range 20 {
		subscribed = append(subscribed, ccclient.ImportContact{Email: fmt.Sprintf("active%02d@example.com", i)})
	}
	a, err := c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: subscribed, ListIDs: []string{list}})
	if err != nil {
		t.Fatal(err)
	}
	if a, err = c.GetActivity(ctx, a.ActivityID); err != nil || !a.Clean() {
		t.Fatalf("activity %+v, %v: want clean and completed", a, err)
	}
	// 601 unsubscribed: two full pages and one more. Some were on a list
	// first, and some are spelt in capitals, as a person types them.
	want := map[string]bool{}
	for i := range 601 {
		email := fmt.Sprintf("Gone.%03d@Example.COM", i)
		if i < 5 {
			email = subscribed[i].Email
		}
		sb.Unsubscribe(email)
		want[strings.ToLower(email)] = true
	}

	tests := []struct {
		name         string
		maxPages     int
		wantComplete bool
		wantCount    int
		wantRequests int
	}{
		{name: "every page", maxPages: 10, wantComplete: true, wantCount: 601, wantRequests: 2},
		{name: "exactly enough pages", maxPages: 2, wantComplete: true, wantCount: 601, wantRequests: 2},
		{name: "cut after one page", maxPages: 1, wantComplete: false, wantCount: 500, wantRequests: 1},
	}
	for _, tt := range tests {
		before := sb.Stats().Requests["GET /v3/contacts"]
		got, complete, err := c.UnsubscribedEmails(ctx, tt.maxPages)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if complete != tt.wantComplete || len(got) != tt.wantCount {
			t.Errorf("%s: %d emails, complete %v; want %d, %v", tt.name, len(got), complete, tt.wantCount, tt.wantComplete)
		}
		for email := range got {
			if !want[email] {
				t.Errorf("%s: %q reported, but it is not an unsubscribed address (lower-cased)", tt.name, email)
			}
		}
		if n := sb.Stats().Requests["GET /v3/contacts"] - before; n != tt.wantRequests {
			t.Errorf("%s: %d requests, want %d", tt.name, n, tt.wantRequests)
		}
	}
}

// TestUnsubscribedEmailsRequest checks the query CC is sent and that
// addresses come back lower-cased whatever case CC stores them in.
func TestUnsubscribedEmailsRequest(t *testing.T) {
	t.Parallel()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"contacts":[
			{"contact_id":"1","email_address":{"address":"Ann.Lee@Example.com","permission_to_send":"unsubscribed"}},
			{"contact_id":"2","email_address":{"address":"BOB@EXAMPLE.COM","permission_to_send":"unsubscribed"}}]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := ccclient.New(srv.URL+"/v3", ccclient.StaticToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	got, complete, err := c.UnsubscribedEmails(context.Background(), 5)
	if err != nil || !complete {
		t.Fatalf("UnsubscribedEmails: complete %v, %v", complete, err)
	}
	if emails := slices.Sorted(maps.Keys(got)); !slices.Equal(emails, []string{"ann.lee@example.com", "bob@example.com"}) {
		t.Errorf("emails %v, want both lower-cased", emails)
	}
	if len(queries) != 1 || queries[0] != "limit=500&status=unsubscribed" {
		t.Errorf("queries %q, want one with limit=500&status=unsubscribed", queries)
	}
}
