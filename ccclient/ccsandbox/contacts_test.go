package ccsandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// contactsPage is the part of Contacts the tests read.
type contactsPage struct {
	Contacts []struct {
		ContactID    string `json:"contact_id"`
		FirstName    string `json:"first_name"`
		EmailAddress struct {
			Address          string `json:"address"`
			PermissionToSend string `json:"permission_to_send"`
		} `json:"email_address"`
		ListMemberships *[]string `json:"list_memberships"`
		CustomFields    *[]struct {
			CustomFieldID string `json:"custom_field_id"`
			Value         string `json:"value"`
		} `json:"custom_fields"`
		StreetAddresses *[]struct {
			Kind    string `json:"kind"`
			Street  string `json:"street"`
			City    string `json:"city"`
			Country string `json:"country"`
		} `json:"street_addresses"`
		PhoneNumbers *[]struct {
			PhoneNumber string `json:"phone_number"`
			Kind        string `json:"kind"`
		} `json:"phone_numbers"`
	} `json:"contacts"`
	ContactsCount *int `json:"contacts_count"`
	Links         struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
}

func (p contactsPage) emails() []string {
	out := []string{}
	for _, c := range p.Contacts {
		out = append(out, c.EmailAddress.Address)
	}
	return out
}

// seedContacts makes lists A, B, C and five contacts:
// a1, a2 on A; b1 on B; ab on A and B; u (unsubscribed) on none.
func seedContacts(t *testing.T, e *env) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, n := range []string{"A", "B", "C"} {
		ids[n] = e.srv.CreateList(n).ListID
	}
	e.srv.CreateCustomField("agency id")
	e.importNow(importBody([]string{ids["A"]},
		row("email", "a1@example.com", "first_name", "A1", "cf:agency_id", "X-1",
			"street", "1 Main St", "street2", "Suite 2", "city", "Chicago", "country", "United States",
			"work_city", "Boston", "home_phone", "555-0100", "phone", "555-0199"),
		row("email", "a2@example.com")))
	e.importNow(importBody([]string{ids["B"]}, row("email", "b1@example.com")))
	e.importNow(importBody([]string{ids["A"], ids["B"]}, row("email", "ab@example.com")))
	e.srv.Unsubscribe("u@example.com")
	return ids
}

func TestGetContacts(t *testing.T) {
	tests := []struct {
		name        string
		query       func(ids map[string]string) string
		status      int
		want        []string
		specRejects bool
	}{
		{name: "all", query: func(map[string]string) string { return "" }, status: 200,
			want: []string{"a1@example.com", "a2@example.com", "b1@example.com", "ab@example.com", "u@example.com"}},
		{name: "one list", query: func(ids map[string]string) string { return "lists=" + ids["A"] }, status: 200,
			want: []string{"a1@example.com", "a2@example.com", "ab@example.com"}},
		{name: "two lists", query: func(ids map[string]string) string { return "lists=" + ids["B"] + "," + ids["A"] }, status: 200,
			want: []string{"a1@example.com", "a2@example.com", "b1@example.com", "ab@example.com"}},
		{name: "empty list", query: func(ids map[string]string) string { return "lists=" + ids["C"] }, status: 200, want: []string{}},
		{name: "email, any case", query: func(map[string]string) string { return "email=AB@example.com" }, status: 200,
			want: []string{"ab@example.com"}},
		{name: "unknown email", query: func(map[string]string) string { return "email=zz@example.com" }, status: 200, want: []string{}},
		// email is an exact match, not a search.
		{name: "email domain only", query: func(map[string]string) string { return "email=example.com" }, status: 200, want: []string{}},
		{name: "email prefix", query: func(map[string]string) string { return "email=a@example.com" }, status: 200, want: []string{}},
		{name: "unsubscribed email", query: func(map[string]string) string { return "email=u@example.com" }, status: 200,
			want: []string{"u@example.com"}},
		{name: "unsubscribed on a list", query: func(ids map[string]string) string { return "status=unsubscribed&lists=" + ids["A"] }, status: 200,
			want: []string{}},
		{name: "status all", query: func(map[string]string) string { return "status=all" }, status: 200,
			want: []string{"a1@example.com", "a2@example.com", "b1@example.com", "ab@example.com", "u@example.com"}},
		{name: "unsubscribed", query: func(map[string]string) string { return "status=unsubscribed" }, status: 200,
			want: []string{"u@example.com"}},
		{name: "active", query: func(map[string]string) string { return "status=active" }, status: 200,
			want: []string{"a1@example.com", "a2@example.com", "b1@example.com", "ab@example.com"}},
		{name: "limit 500", query: func(map[string]string) string { return "limit=500&email=a1@example.com" }, status: 200,
			want: []string{"a1@example.com"}},
		{name: "limit 501", query: func(map[string]string) string { return "limit=501" }, status: 400, specRejects: true},
		{name: "limit 0", query: func(map[string]string) string { return "limit=0" }, status: 400, specRejects: true},
		{name: "26 lists", query: func(ids map[string]string) string {
			return "lists=" + strings.Repeat(ids["A"]+",", 25) + ids["A"]
		}, status: 400},
		{name: "25 lists", query: func(ids map[string]string) string {
			return "lists=" + strings.Repeat(ids["A"]+",", 24) + ids["A"]
		}, status: 200, want: []string{"a1@example.com", "a2@example.com", "ab@example.com"}},
		{name: "list id not a UUID", query: func(map[string]string) string { return "lists=Agents" }, status: 400},
		// The spec puts its enum on the whole comma-separated string (shared
		// README caveat), so it wrongly rejects a list of valid includes.
		{name: "two includes", query: func(map[string]string) string { return "email=ab@example.com&include=list_memberships,custom_fields" },
			status: 200, want: []string{"ab@example.com"}, specRejects: true},
		{name: "unknown include", query: func(map[string]string) string { return "include=everything" }, status: 400, specRejects: true},
		{name: "unknown status", query: func(map[string]string) string { return "status=gone" }, status: 400, specRejects: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1})
			ids := seedContacts(t, e)
			r := e.call(http.MethodGet, "/v3/contacts?"+tt.query(ids), nil, expectInvalid)
			if r.specRejected() != tt.specRejects {
				t.Errorf("spec rejects the request: %v, want %v", r.specRejected(), tt.specRejects)
			}
			if tt.status != http.StatusOK {
				wantAPIError(t, r, tt.status)
				return
			}
			wantStatus(t, r, http.StatusOK)
			var p contactsPage
			r.decode(t, &p)
			if got := p.emails(); !slices.Equal(got, tt.want) {
				t.Errorf("contacts %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGetContactsIncludes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	ids := seedContacts(t, e)
	get := func(query string) contactsPage {
		r := e.call(http.MethodGet, "/v3/contacts?"+query, nil)
		wantStatus(t, r, http.StatusOK)
		var p contactsPage
		r.decode(t, &p)
		if len(p.Contacts) != 1 {
			t.Fatalf("%s: %d contacts, want 1", query, len(p.Contacts))
		}
		return p
	}

	p := get("email=ab@example.com&include=list_memberships")
	c := p.Contacts[0]
	if c.ListMemberships == nil || !slices.Equal(*c.ListMemberships, []string{ids["A"], ids["B"]}) {
		t.Errorf("list_memberships %v, want A and B", c.ListMemberships)
	}
	if c.EmailAddress.PermissionToSend != "implicit" || c.CustomFields != nil {
		t.Errorf("contact %+v: want implicit permission and no custom_fields unasked", c)
	}

	c = get("email=u@example.com&include=list_memberships").Contacts[0]
	if c.EmailAddress.PermissionToSend != "unsubscribed" || c.ListMemberships == nil || len(*c.ListMemberships) != 0 {
		t.Errorf("unsubscribed contact %+v: want permission unsubscribed and list_memberships []", c)
	}

	c = get("email=a1@example.com&include=custom_fields").Contacts[0]
	fields := e.call(http.MethodGet, "/v3/contact_custom_fields", nil)
	var cf struct {
		CustomFields []CustomFieldInfo `json:"custom_fields"`
	}
	fields.decode(t, &cf)
	if len(cf.CustomFields) != 1 || cf.CustomFields[0].Name != "agency_id" {
		t.Fatalf("custom fields %s", fields.body)
	}
	if c.CustomFields == nil || len(*c.CustomFields) != 1 || (*c.CustomFields)[0].CustomFieldID != cf.CustomFields[0].CustomFieldID ||
		(*c.CustomFields)[0].Value != "X-1" {
		t.Errorf("custom_fields %+v, want agency_id = X-1", c.CustomFields)
	}

	c = get("email=a1@example.com&include=street_addresses").Contacts[0]
	if c.StreetAddresses == nil || len(*c.StreetAddresses) != 2 {
		t.Fatalf("street_addresses %+v, want home and work", c.StreetAddresses)
	}
	home := (*c.StreetAddresses)[0]
	if home.Kind != "home" || home.Street != "1 Main St Suite 2" || home.City != "Chicago" || home.Country != "United States" {
		t.Errorf("home address %+v", home)
	}
	if work := (*c.StreetAddresses)[1]; work.Kind != "work" || work.City != "Boston" {
		t.Errorf("work address %+v", work)
	}

	c = get("email=a1@example.com&include=phone_numbers").Contacts[0]
	if c.PhoneNumbers == nil || len(*c.PhoneNumbers) != 2 || (*c.PhoneNumbers)[0].Kind != "home" || (*c.PhoneNumbers)[1].Kind != "other" {
		t.Errorf("phone_numbers %+v, want home and other", c.PhoneNumbers)
	}
}

func TestGetContactsPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	list := e.srv.CreateList("Agents").ListID
	other := e.srv.CreateList("Other").ListID
	var want []string
	for i := range 7 {
		want = append(want, fmt.Sprintf("c%d@example.com", i))
	}
	e.importNow(importBody([]string{list}, manyRows(7)...))
	e.importNow(importBody([]string{other}, row("email", "elsewhere@example.com")))

	var got []string
	path := "/v3/contacts?include_count=true&limit=3&include=list_memberships&lists=" + url.QueryEscape(list)
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := e.call(http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusOK)
		var p contactsPage
		r.decode(t, &p)
		if p.ContactsCount == nil || *p.ContactsCount != 7 {
			t.Errorf("contacts_count %v, want 7: the cursor must keep the filters", p.ContactsCount)
		}
		for _, c := range p.Contacts {
			if c.ListMemberships == nil {
				t.Errorf("page %d lost include=list_memberships", pages)
			}
		}
		got = append(got, p.emails()...)
		path = ""
		if p.Links.Next != nil {
			path = p.Links.Next.Href
			if !strings.HasPrefix(path, "/v3/contacts?cursor=") {
				t.Fatalf("next href %q", path)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged contacts %q, want %q", got, want)
	}
}

// TestGetContactsByStatusPaged is the bridge's check for unsubscribes: it
// pages GET /v3/contacts?status=unsubscribed&limit=500 through _links.next
// and reads email_address.permission_to_send.
func TestGetContactsByStatusPaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ActivityDelay: -1})
	list := e.srv.CreateList("Agents").ListID
	const imported = 1200
	e.importNow(importBody([]string{list}, manyRows(imported)...))
	unsubscribed := map[string]bool{}
	for i := 0; i < imported; i += 2 {
		email := fmt.Sprintf("c%d@example.com", i)
		e.srv.Unsubscribe(email)
		unsubscribed[email] = true
	}
	// One through the hook, for an address CC has never seen, in capitals.
	wantStatus(t, e.call(http.MethodPost, "/sandbox/unsubscribe", `{"email":"Never.Seen@Example.com"}`, withToken("")), http.StatusOK)
	unsubscribed["never.seen@example.com"] = true
	// Importing them again does not bring them back.
	a := e.importNow(importBody([]string{list}, row("email", "c0@example.com"), row("email", "C2@example.com"), row("email", "c1@example.com")))
	if a.Status["cannot_add_to_list_count"] != 2 {
		t.Errorf("status %v: want the two unsubscribed contacts in cannot_add_to_list_count", a.Status)
	}

	tests := []struct {
		query     string
		want      func(email string) bool
		wantN     int
		wantPerm  string // "" for any but unsubscribed
		wantPages int
	}{
		{"status=unsubscribed&limit=500", func(em string) bool { return unsubscribed[em] }, imported/2 + 1, "unsubscribed", 2},
		{"status=unsubscribed&limit=1&email=c4@example.com", func(em string) bool { return em == "c4@example.com" }, 1, "unsubscribed", 1},
		{"status=unsubscribed&lists=" + list, nil, 0, "unsubscribed", 1},
		{"status=active&limit=500", func(em string) bool { return !unsubscribed[em] }, imported / 2, "implicit", 2},
		{"status=active&lists=" + list + "&limit=250", func(em string) bool { return !unsubscribed[em] }, imported / 2, "implicit", 3},
		{"status=all&limit=500", func(string) bool { return true }, imported + 1, "", 3},
		{"limit=500", func(string) bool { return true }, imported + 1, "", 3},
		{"status=unsubscribed,active&limit=500", func(string) bool { return true }, imported + 1, "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			before := e.srv.Stats().Requests["GET /v3/contacts"]
			seen := map[string]bool{}
			path := "/v3/contacts?" + tt.query
			pages := 0
			for ; path != ""; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				// The spec's enum on the whole of status rejects a list of
				// values (shared README caveat), so that request is marked.
				var opts []reqOption
				if strings.Contains(path, "status=unsubscribed,") {
					opts = append(opts, expectInvalid)
				}
				r := e.call(http.MethodGet, path, nil, opts...)
				wantStatus(t, r, http.StatusOK)
				var p contactsPage
				r.decode(t, &p)
				for _, c := range p.Contacts {
					em := c.EmailAddress.Address
					if seen[em] {
						t.Errorf("%s returned twice", em)
					}
					seen[em] = true
					if tt.want == nil || !tt.want(em) {
						t.Errorf("%s should not match", em)
					}
					perm := c.EmailAddress.PermissionToSend
					if unsubscribed[em] != (perm == "unsubscribed") || (tt.wantPerm != "" && perm != tt.wantPerm) {
						t.Errorf("%s: permission_to_send %q", em, perm)
					}
				}
				path = ""
				if p.Links.Next != nil {
					path = p.Links.Next.Href
					if len(p.Contacts) == 0 {
						t.Error("an empty page with a next link")
					}
				}
			}
			if len(seen) != tt.wantN || pages != tt.wantPages {
				t.Errorf("%d contacts in %d pages, want %d in %d", len(seen), pages, tt.wantN, tt.wantPages)
			}
			if n := e.srv.Stats().Requests["GET /v3/contacts"] - before; n != pages {
				t.Errorf("%d calls for %d pages: every page is one API call", n, pages)
			}
		})
	}

	// An unsubscribed contact carries the opt-out, not the opt-in.
	r := e.call(http.MethodGet, "/v3/contacts?email=never.seen@example.com", nil)
	var raw struct {
		Contacts []struct {
			EmailAddress map[string]any `json:"email_address"`
		} `json:"contacts"`
	}
	r.decode(t, &raw)
	if len(raw.Contacts) != 1 {
		t.Fatalf("body %s: want one contact", r.body)
	}
	ea := raw.Contacts[0].EmailAddress
	if ea["permission_to_send"] != "unsubscribed" || ea["opt_out_date"] == nil || ea["opt_out_source"] != "Contact" || ea["opt_in_date"] != nil {
		t.Errorf("email_address %v: want unsubscribed with opt_out_date and opt_out_source, no opt_in_date", ea)
	}
}
