package routing

import (
	"encoding/json"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

func fullEnrollment() *store.Enrollment {
	return &store.Enrollment{
		Email:      "  ann@example.com ",
		FirstName:  "Parsed",
		LastName:   "Name",
		Country:    "US",
		EnrolledAt: time.Date(2026, 4, 28, 21, 48, 16, 0, time.UTC),
		Properties: map[string]string{
			"firstname":   " Ann ",
			"lastname":    "Lee",
			"jobtitle":    "Agent",
			"company":     "Acme Travel",
			"phone":       "+1 312 555 0100",
			"mobilephone": "+1 312 555 0199",
			"address":     "1 Main St",
			"city":        "Chicago",
			"state":       "il",
			"zip":         "60601",
			"country":     "usa",
			"agency_id":   "A-1001",
			"agent_tier":  "gold",
		},
	}
}

func TestContactExample(t *testing.T) {
	r := mustParse(t, exampleRules)
	c, reason := r.Contact(fullEnrollment())
	if reason != "" {
		t.Fatalf("Contact rejected: %s", reason)
	}
	want := ccclient.ImportContact{
		Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", JobTitle: "Agent", CompanyName: "Acme Travel",
		Phone: "+1 312 555 0100", MobilePhone: "+1 312 555 0199", Street: "1 Main St", City: "Chicago",
		State: "Illinois", Zip: "60601", Country: "United States",
		CustomFields: map[string]string{"enrolled_at": "2026-04-28", "agency_id": "A-1001"},
	}
	assertContact(t, c, want)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"email":"ann@example.com","first_name":"Ann","last_name":"Lee","job_title":"Agent",` +
		`"company_name":"Acme Travel","phone":"+1 312 555 0100","mobile_phone":"+1 312 555 0199",` +
		`"street":"1 Main St","city":"Chicago","state":"Illinois","zip":"60601","country":"United States",` +
		`"cf:agency_id":"A-1001","cf:enrolled_at":"2026-04-28"}`
	if string(b) != wantJSON {
		t.Errorf("JSON =\n%s\nwant\n%s", b, wantJSON)
	}
}

func assertContact(t *testing.T, got, want ccclient.ImportContact) {
	t.Helper()
	if !maps.Equal(got.CustomFields, want.CustomFields) {
		t.Errorf("custom fields = %v, want %v", got.CustomFields, want.CustomFields)
	}
	got.CustomFields, want.CustomFields = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("contact =\n%+v\nwant\n%+v", got, want)
	}
}

func TestContactFallbacksAndAbsentProperties(t *testing.T) {
	r := propertyDefault(t, []string{"New Agents"})
	tests := []struct {
		name string
		e    store.Enrollment
		want ccclient.ImportContact
	}{
		{
			name: "no properties: parsed names and country, nothing else",
			e:    store.Enrollment{Email: "a@b.c", FirstName: " Ann ", LastName: "Lee", Country: "gb"},
			want: ccclient.ImportContact{Email: "a@b.c", FirstName: "Ann", LastName: "Lee", Country: "United Kingdom"},
		},
		{
			name: "mapped property preferred over the parsed name",
			e: store.Enrollment{Email: "a@b.c", FirstName: "Parsed",
				Properties: map[string]string{"firstname": "Mapped"}},
			want: ccclient.ImportContact{Email: "a@b.c", FirstName: "Mapped"},
		},
		{
			name: "blank mapped property falls back",
			e: store.Enrollment{Email: "a@b.c", FirstName: "Parsed", Country: "DE",
				Properties: map[string]string{"firstname": "   ", "country": ""}},
			want: ccclient.ImportContact{Email: "a@b.c", FirstName: "Parsed", Country: "Germany"},
		},
		{
			name: "unknown property absent: field empty, other properties ignored",
			e: store.Enrollment{Email: "a@b.c",
				Properties: map[string]string{"unmapped": "x", "city": "Paris"}},
			want: ccclient.ImportContact{Email: "a@b.c", City: "Paris"},
		},
		{
			name: "zero enrollment date leaves cf:enrolled_at out",
			e:    store.Enrollment{Email: "a@b.c", Properties: map[string]string{"agency_id": "A-1"}},
			want: ccclient.ImportContact{Email: "a@b.c", CustomFields: map[string]string{"agency_id": "A-1"}},
		},
		{
			name: "enrollment date is the UTC day",
			e:    store.Enrollment{Email: "a@b.c", EnrolledAt: time.Date(2026, 2, 28, 21, 30, 0, 0, time.FixedZone("EST", -5*3600))},
			want: ccclient.ImportContact{Email: "a@b.c", CustomFields: map[string]string{"enrolled_at": "2026-03-01"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reason := r.Contact(&tt.e)
			if reason != "" {
				t.Fatalf("Contact rejected: %s", reason)
			}
			assertContact(t, c, tt.want)
		})
	}
}

func TestContactCountryAndState(t *testing.T) {
	r := propertyDefault(t, nil)
	tests := []struct {
		country, state         string
		wantCountry, wantState string
	}{
		{"US", "CA", "United States", "California"},
		{"us", "ny", "United States", "New York"},
		{"United States", "new york", "United States", "New York"},
		{"U.S.", "Texas", "United States", "Texas"},
		{"CA", "qc", "Canada", "Quebec"},
		{"Canada", "BC", "Canada", "British Columbia"},
		{"DE", "CA", "Germany", "CA"}, // two letters mean nothing outside the US and Canada
		{"Deutschland", "Bayern", "Germany", "Bayern"},
		{"GB", "", "United Kingdom", ""},
		{"uk", "", "United Kingdom", ""},
		{"Côte d'Ivoire", "", "Côte d'Ivoire", ""},
		{"cote d’ivoire", "", "Côte d'Ivoire", ""},
		{"Atlantis", "XX", "Atlantis", "XX"},
		{"US", "Ontario", "United States", "Ontario"}, // unknown state names pass through
	}
	for _, tt := range tests {
		t.Run(tt.country+"/"+tt.state, func(t *testing.T) {
			e := &store.Enrollment{Email: "a@b.c", Country: tt.country, Properties: map[string]string{"state": tt.state}}
			c, reason := r.Contact(e)
			if reason != "" {
				t.Fatalf("Contact rejected: %s", reason)
			}
			if c.Country != tt.wantCountry || c.State != tt.wantState {
				t.Errorf("country, state = %q, %q; want %q, %q", c.Country, c.State, tt.wantCountry, tt.wantState)
			}
		})
	}
}

func TestContactEmail(t *testing.T) {
	r := propertyDefault(t, nil)
	local50 := strings.Repeat("é", 44) // 44 + len("@b.com") = 50 characters, 94 bytes
	tests := []struct {
		email, reason string
	}{
		{"ann@example.com", ""},
		{"  ann@example.com\t", ""},
		{local50 + "@b.com", ""},
		{local50 + "x@b.com", "email is 51 characters; Constant Contact accepts at most 50"},
		{"", "email is empty"},
		{"   ", "email is empty"},
		{"ann.example.com", "email must contain exactly one @ with text before and after it"},
		{"ann@@example.com", "email must contain exactly one @ with text before and after it"},
		{"a@b@example.com", "email must contain exactly one @ with text before and after it"},
		{"@example.com", "email must contain exactly one @ with text before and after it"},
		{"ann@", "email must contain exactly one @ with text before and after it"},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			c, reason := r.Contact(&store.Enrollment{Email: tt.email})
			if reason != tt.reason {
				t.Fatalf("reason = %q, want %q", reason, tt.reason)
			}
			if reason == "" && c.Email != strings.TrimSpace(tt.email) {
				t.Errorf("Email = %q", c.Email)
			}
			if reason != "" && c.Email != "" {
				t.Errorf("rejected contact carries data: %+v", c)
			}
		})
	}
}

func TestContactLengthLimits(t *testing.T) {
	// Every text field, mapped from property "p", at its limit and one over,
	// in characters that take two bytes each.
	tests := []struct {
		key   string
		limit int
		get   func(c *ccclient.ImportContact) string
	}{
		{"first_name", 50, func(c *ccclient.ImportContact) string { return c.FirstName }},
		{"last_name", 50, func(c *ccclient.ImportContact) string { return c.LastName }},
		{"job_title", 50, func(c *ccclient.ImportContact) string { return c.JobTitle }},
		{"company_name", 50, func(c *ccclient.ImportContact) string { return c.CompanyName }},
		{"phone", 50, func(c *ccclient.ImportContact) string { return c.Phone }},
		{"home_phone", 50, func(c *ccclient.ImportContact) string { return c.HomePhone }},
		{"work_phone", 50, func(c *ccclient.ImportContact) string { return c.WorkPhone }},
		{"mobile_phone", 50, func(c *ccclient.ImportContact) string { return c.MobilePhone }},
		{"street", 255, func(c *ccclient.ImportContact) string { return c.Street }},
		{"street2", 255, func(c *ccclient.ImportContact) string { return c.Street2 }},
		{"city", 50, func(c *ccclient.ImportContact) string { return c.City }},
		{"state", 50, func(c *ccclient.ImportContact) string { return c.State }},
		{"zip", 50, func(c *ccclient.ImportContact) string { return c.Zip }},
		{"country", 50, func(c *ccclient.ImportContact) string { return c.Country }},
		{"cf:note", 255, func(c *ccclient.ImportContact) string { return c.CustomFields["note"] }},
	}
	for _, tt := range tests {
		r := mustParse(t, "default_lists: a\nfields:\n  "+tt.key+": p\n")
		for _, n := range []int{tt.limit, tt.limit + 1} {
			v := strings.Repeat("ü", n)
			e := &store.Enrollment{Email: "a@b.c", Properties: map[string]string{"p": " " + v + " "}}
			c, reason := r.Contact(e)
			if n == tt.limit {
				if reason != "" {
					t.Errorf("%s at %d characters rejected: %s", tt.key, n, reason)
				} else if got := tt.get(&c); got != v {
					t.Errorf("%s = %q, want %d characters unchanged", tt.key, got, n)
				}
				continue
			}
			want := tt.key + ` (from HubSpot property "p") is ` + itoa(n) + " characters; Constant Contact accepts at most " + itoa(tt.limit)
			if reason != want {
				t.Errorf("%s at %d characters: reason = %q, want %q", tt.key, n, reason, want)
			}
		}
	}
}

func TestContactLengthFallbackReason(t *testing.T) {
	r := propertyDefault(t, nil)
	_, reason := r.Contact(&store.Enrollment{Email: "a@b.c", LastName: strings.Repeat("ß", 51)})
	want := "last_name (from the enrollment's last_name) is 51 characters; Constant Contact accepts at most 50"
	if reason != want {
		t.Errorf("reason = %q, want %q", reason, want)
	}
}

func TestContactSpecialSources(t *testing.T) {
	r := mustParse(t, "default_lists: a\nfields:\n"+
		"  first_name: \"@last_name\"\n  cf:src_email: \"@email\"\n  cf:src_country: \"@country\"\n"+
		"  cf:src_first: \"@first_name\"\n  cf:joined: \"@enrolled_at\"\n")
	e := &store.Enrollment{Email: "A@B.C", FirstName: "Ann", LastName: "Lee", Country: "fr",
		EnrolledAt: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}
	c, reason := r.Contact(e)
	if reason != "" {
		t.Fatal(reason)
	}
	want := ccclient.ImportContact{Email: "A@B.C", FirstName: "Lee", LastName: "Lee", Country: "France",
		CustomFields: map[string]string{"src_email": "A@B.C", "src_country": "fr", "src_first": "Ann", "joined": "2025-01-02"}}
	assertContact(t, c, want)
}

func TestContactDates(t *testing.T) {
	r := mustParse(t, "default_lists: a\nfields:\n  birthday_month: bm\n  birthday_day: bd\n  anniversary: ann\n")
	tests := []struct {
		name            string
		bm, bd, ann     string
		month, day      int
		anniversary     string
		reasonSubstring string
	}{
		{name: "numbers", bm: "11", bd: "24", month: 11, day: 24},
		{name: "leading zeros", bm: "03", bd: "09", month: 3, day: 9},
		{name: "month name", bm: "Nov", bd: "24", month: 11, day: 24},
		{name: "full month name", bm: "february", bd: "29", month: 2, day: 29},
		{name: "date of birth in both", bm: "1980-11-24", bd: "1980-11-24", month: 11, day: 24},
		{name: "HubSpot epoch millis", bm: "343872000000", bd: "343872000000", month: 11, day: 24},
		{name: "month without day is left out", bm: "11"},
		{name: "day without month is left out", bd: "24"},
		{name: "month 13", bm: "13", bd: "1", reasonSubstring: `birthday_month (from HubSpot property "bm") "13" is not a month`},
		{name: "day 32", bm: "1", bd: "32", reasonSubstring: `birthday_day (from HubSpot property "bd") "32" is not a day`},
		{name: "day 0", bm: "1", bd: "0", reasonSubstring: `"0" is not a day`},
		{name: "February 30", bm: "2", bd: "30", reasonSubstring: "birthday 2/30 does not exist"},
		{name: "junk month", bm: "soon", bd: "1", reasonSubstring: `"soon" is not a month`},

		{name: "ISO", ann: "2020-06-15", anniversary: "2020-06-15"},
		{name: "ISO short", ann: "2020-6-5", anniversary: "2020-06-05"},
		{name: "US slashes", ann: "06/15/2020", anniversary: "2020-06-15"},
		{name: "US short slashes", ann: "6/5/2020", anniversary: "2020-06-05"},
		{name: "year first slashes", ann: "2020/6/15", anniversary: "2020-06-15"},
		{name: "US dashes", ann: "6-15-2020", anniversary: "2020-06-15"},
		{name: "RFC 3339 keeps its own day", ann: "2020-06-15T23:30:00-05:00", anniversary: "2020-06-15"},
		{name: "epoch millis", ann: "1592179200000", anniversary: "2020-06-15"},
		{name: "before 1970", ann: "-315619200000", anniversary: "1960-01-01"},
		{name: "day first is refused", ann: "15/06/2020", reasonSubstring: `anniversary (from HubSpot property "ann") "15/06/2020" is not a date`},
		{name: "impossible date", ann: "2021-02-29", reasonSubstring: `"2021-02-29" is not a date`},
		{name: "compact digits", ann: "20200615", reasonSubstring: "is not a date"},
		{name: "year only", ann: "2020", reasonSubstring: "is not a date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &store.Enrollment{Email: "a@b.c", Properties: map[string]string{"bm": tt.bm, "bd": tt.bd, "ann": tt.ann}}
			c, reason := r.Contact(e)
			if tt.reasonSubstring != "" {
				if !strings.Contains(reason, tt.reasonSubstring) {
					t.Fatalf("reason = %q, want it to contain %q", reason, tt.reasonSubstring)
				}
				return
			}
			if reason != "" {
				t.Fatalf("Contact rejected: %s", reason)
			}
			if c.BirthdayMonth != tt.month || c.BirthdayDay != tt.day || c.Anniversary != tt.anniversary {
				t.Errorf("birthday %d/%d, anniversary %q; want %d/%d, %q",
					c.BirthdayMonth, c.BirthdayDay, c.Anniversary, tt.month, tt.day, tt.anniversary)
			}
		})
	}
}

func TestContactReasonOrder(t *testing.T) {
	// With several bad values the first in CC's key order is reported, so
	// that a row's reason does not change between runs.
	r := propertyDefault(t, nil)
	e := &store.Enrollment{Email: "a@b.c", Properties: map[string]string{
		"city": strings.Repeat("x", 51), "firstname": strings.Repeat("x", 51), "agency_id": strings.Repeat("x", 256),
	}}
	for range 20 {
		if _, reason := r.Contact(e); !strings.HasPrefix(reason, "first_name ") {
			t.Fatalf("reason = %q, want first_name first", reason)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func BenchmarkContact(b *testing.B) {
	r, err := Parse([]byte(exampleRules))
	if err != nil {
		b.Fatal(err)
	}
	e := fullEnrollment()
	b.ReportAllocs()
	for b.Loop() {
		if _, reason := r.Contact(e); reason != "" {
			b.Fatal(reason)
		}
	}
}

func BenchmarkLists(b *testing.B) {
	r, err := Parse([]byte(exampleRules))
	if err != nil {
		b.Fatal(err)
	}
	e := fullEnrollment()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Lists(e); err != nil {
			b.Fatal(err)
		}
	}
}

// propertyDefault is a rules file mapping every field from a HubSpot
// property, the way these tests were written: Default now takes the names
// and country from what hs2cc parsed, and sends no custom fields.
func propertyDefault(t *testing.T, lists []string) *Rules {
	t.Helper()
	src := "routes:\n  - when: {exists: never_set_property}\n    lists: [\"X\"]\n"
	if len(lists) > 0 {
		src = "default_lists: [\"" + strings.Join(lists, "\", \"") + "\"]\n"
	}
	src += `fields:
  first_name: firstname
  last_name: lastname
  job_title: jobtitle
  company_name: company
  phone: phone
  mobile_phone: mobilephone
  street: address
  city: city
  state: state
  zip: zip
  country: country
  "cf:enrolled_at": "@enrolled_at"
  "cf:agency_id": agency_id
`
	r, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
