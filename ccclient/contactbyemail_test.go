package ccclient_test

import (
	"slices"
	"testing"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// TestSandboxContactByEmail reads single contacts from the sandbox the way
// a trace's live check does: with their lists and email status, by an
// address in any case, nil for an address CC does not hold, and one CC
// call each.
func TestSandboxContactByEmail(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sb, c := sandboxClient(t, ccsandbox.Options{ActivityDelay: -1})
	a, b := sb.CreateList("Agents").ListID, sb.CreateList("Gold Agents").ListID
	for _, imp := range []struct {
		emails []string
		lists  []string
	}{
		{[]string{"ann@example.com", "bob@example.com", "gone@example.com"}, []string{a}},
		{[]string{"ann@example.com"}, []string{b}},
	} {
		var rows []ccclient.ImportContact
		for _, e := range imp.emails {
			rows = append(rows, ccclient.ImportContact{Email: e})
		}
		act, err := c.ImportContacts(ctx, &ccclient.ImportRequest{ImportData: rows, ListIDs: imp.lists})
		if err != nil {
			t.Fatal(err)
		}
		if act, err = c.GetActivity(ctx, act.ActivityID); err != nil || !act.Clean() {
			t.Fatalf("activity %+v, %v: want clean and completed", act, err)
		}
	}
	sb.Unsubscribe("gone@example.com")

	tests := []struct {
		email      string
		wantFound  bool
		wantEmail  string
		wantLists  []string
		wantStatus string
	}{
		{email: "ann@example.com", wantFound: true, wantEmail: "ann@example.com", wantLists: []string{a, b}, wantStatus: "implicit"},
		{email: " Bob@Example.COM ", wantFound: true, wantEmail: "bob@example.com", wantLists: []string{a}, wantStatus: "implicit"},
		// Unsubscribing takes a contact off every list, as in CC.
		{email: "gone@example.com", wantFound: true, wantEmail: "gone@example.com", wantLists: nil, wantStatus: "unsubscribed"},
		{email: "nobody@example.com"},
		// The email filter is an exact match, never a search.
		{email: "example.com"},
	}
	for _, tt := range tests {
		before := sb.Stats().Requests["GET /v3/contacts"]
		got, err := c.ContactByEmail(ctx, tt.email)
		if err != nil {
			t.Fatalf("%q: %v", tt.email, err)
		}
		if n := sb.Stats().Requests["GET /v3/contacts"] - before; n != 1 {
			t.Errorf("%q: %d requests, want 1", tt.email, n)
		}
		if (got != nil) != tt.wantFound {
			t.Fatalf("%q: contact %+v, want found %v", tt.email, got, tt.wantFound)
		}
		if got == nil {
			continue
		}
		lists := slices.Clone(got.ListMemberships)
		slices.Sort(lists)
		want := slices.Clone(tt.wantLists)
		slices.Sort(want)
		if got.Email != tt.wantEmail || got.PermissionToSend != tt.wantStatus || !slices.Equal(lists, want) || got.ContactID == "" {
			t.Errorf("%q: got %+v, want email %s, status %s, lists %q and an id", tt.email, got, tt.wantEmail, tt.wantStatus, want)
		}
	}
}
