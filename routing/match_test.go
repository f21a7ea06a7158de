package routing

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/store"
)

// exampleRules is the rules file from the routing brief, comments included.
const exampleRules = `default_lists: ["New Agents"]
create_missing_lists: true
routes:
  - when: {country: ["US", "United States", "CA", "Canada"]}
    lists: ["Agents - North America"]
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
  - when: {property: agent_tier, in: [gold, platinum]}   # also support ` + "`in`" + `
    lists: ["Premium"]
    exclusive: true
fields:                 # CC field ← HubSpot property; optional, these are the defaults when absent
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
  "cf:enrolled_at": "@enrolled_at"   # '@enrolled_at' = the enrollment date (YYYY-MM-DD)
  "cf:agency_id": agency_id
`

func mustParse(t testing.TB, src string) *Rules {
	t.Helper()
	r, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func TestListsExample(t *testing.T) {
	r := mustParse(t, exampleRules)
	if !r.CreateMissing() {
		t.Error("CreateMissing() = false, want true")
	}
	wantAll := []string{"Agents - North America", "Gold Agents", "New Agents", "Premium"}
	if got := r.AllLists(); !slices.Equal(got, wantAll) {
		t.Errorf("AllLists() = %q, want %q", got, wantAll)
	}

	const (
		na      = "Agents - North America"
		gold    = "Gold Agents"
		newA    = "New Agents"
		premium = "Premium"
	)
	tests := []struct {
		name    string
		country string
		props   map[string]string
		want    []string
	}{
		{"code US", "US", nil, []string{na, newA}},
		{"name United States", "United States", nil, []string{na, newA}},
		{"lower-case code", "us", nil, []string{na, newA}},
		{"alias USA padded", "  USA ", nil, []string{na, newA}},
		{"alias U.S.A.", "U.S.A.", nil, []string{na, newA}},
		{"code CA is Canada", "CA", nil, []string{na, newA}},
		{"lower-case canada", "canada", nil, []string{na, newA}},
		{"Germany", "Germany", nil, []string{newA}},
		{"code DE", "DE", nil, []string{newA}},
		{"unknown country", "Atlantis", nil, []string{newA}},
		{"no country, no properties", "", nil, []string{newA}},
		{"gold in the US: every match, exclusive drops defaults", "US",
			map[string]string{"agent_tier": "gold"}, []string{na, gold, premium}},
		{"Gold with spaces and capital", "DE",
			map[string]string{"agent_tier": " Gold "}, []string{gold, premium}},
		{"platinum matches in only", "DE",
			map[string]string{"agent_tier": "platinum"}, []string{premium}},
		{"PLATINUM in Canada", "Canada",
			map[string]string{"agent_tier": "PLATINUM"}, []string{na, premium}},
		{"silver matches nothing", "FR",
			map[string]string{"agent_tier": "silver"}, []string{newA}},
		{"country property wins over the parsed country", "",
			map[string]string{"country": "united states"}, []string{na, newA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &store.Enrollment{Email: "a@example.com", Country: tt.country, Properties: tt.props}
			got, err := r.Lists(e)
			if err != nil {
				t.Fatalf("Lists: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Lists = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListsConditions(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		e     store.Enrollment
		want  []string
		err   error
	}{
		{
			name:  "no match and no default_lists is ErrNoRoute",
			rules: "routes:\n  - when: {country: FR}\n    lists: France\n",
			e:     store.Enrollment{Country: "DE"},
			err:   ErrNoRoute,
		},
		{
			name:  "several conditions all hold",
			rules: "routes:\n  - when: {country: [GB], property: tier, equals: gold}\n    lists: UK Gold\n",
			e:     store.Enrollment{Country: "United Kingdom", Properties: map[string]string{"tier": "gold"}},
			want:  []string{"UK Gold"},
		},
		{
			name:  "several conditions, one fails",
			rules: "default_lists: All\nroutes:\n  - when: {country: [GB], property: tier, equals: gold}\n    lists: UK Gold\n",
			e:     store.Enrollment{Country: "UK", Properties: map[string]string{"tier": "silver"}},
			want:  []string{"All"},
		},
		{
			name:  "exists holds for a non-blank value",
			rules: "default_lists: All\nroutes:\n  - when: {exists: agency_id}\n    lists: Agencies\n",
			e:     store.Enrollment{Properties: map[string]string{"agency_id": "A-1"}},
			want:  []string{"Agencies", "All"},
		},
		{
			name:  "exists fails for a blank value",
			rules: "default_lists: All\nroutes:\n  - when: {exists: agency_id}\n    lists: Agencies\n",
			e:     store.Enrollment{Properties: map[string]string{"agency_id": "  "}},
			want:  []string{"All"},
		},
		{
			name:  "equals empty matches an absent property",
			rules: "default_lists: All\nroutes:\n  - when: {property: tier, equals: \"\"}\n    lists: Untiered\n",
			e:     store.Enrollment{},
			want:  []string{"All", "Untiered"},
		},
		{
			name:  "rule written as a name matches an enrollment code",
			rules: "routes:\n  - when: {country: Germany}\n    lists: DACH\n",
			e:     store.Enrollment{Country: "de"},
			want:  []string{"DACH"},
		},
		{
			name:  "unknown countries match ignoring case",
			rules: "routes:\n  - when: {country: Atlantis}\n    lists: Myth\n",
			e:     store.Enrollment{Country: "ATLANTIS"},
			want:  []string{"Myth"},
		},
		{
			name:  "accents and apostrophes do not matter",
			rules: "routes:\n  - when: {country: \"Côte d'Ivoire\"}\n    lists: CI\n",
			e:     store.Enrollment{Country: "cote divoire"},
			want:  []string{"CI"},
		},
		{
			name:  "overlapping lists are de-duplicated and sorted",
			rules: "default_lists: [b, a]\nroutes:\n  - when: {exists: x}\n    lists: [c, a]\n  - when: {exists: y}\n    lists: [c, b]\n",
			e:     store.Enrollment{Properties: map[string]string{"x": "1", "y": "1"}},
			want:  []string{"a", "b", "c"},
		},
		{
			name:  "exclusive route only: its lists, no defaults",
			rules: "default_lists: All\nroutes:\n  - when: {exists: vip}\n    lists: VIP\n    exclusive: true\n",
			e:     store.Enrollment{Properties: map[string]string{"vip": "yes"}},
			want:  []string{"VIP"},
		},
		{
			name:  "exclusive route not matched: defaults apply",
			rules: "default_lists: All\nroutes:\n  - when: {exists: vip}\n    lists: VIP\n    exclusive: true\n",
			e:     store.Enrollment{},
			want:  []string{"All"},
		},
		{
			name: "country uses the mapped property",
			rules: "default_lists: All\nroutes:\n  - when: {country: US}\n    lists: US\n" +
				"fields:\n  country: hs_country\n",
			e:    store.Enrollment{Country: "France", Properties: map[string]string{"hs_country": "usa"}},
			want: []string{"All", "US"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.rules)
			got, err := r.Lists(&tt.e)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Lists error = %v, want %v", err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Lists = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrNoRouteText(t *testing.T) {
	// The text is stored as the enrollment's rejection reason.
	if got, want := ErrNoRoute.Error(), "no route matched and no default_lists"; got != want {
		t.Errorf("ErrNoRoute = %q, want %q", got, want)
	}
}

func TestDefault(t *testing.T) {
	r := Default([]string{" New Agents ", "", "New Agents", "B"})
	if r.CreateMissing() {
		t.Error("Default CreateMissing() = true, want false")
	}
	want := []string{"B", "New Agents"}
	if got := r.AllLists(); !slices.Equal(got, want) {
		t.Errorf("AllLists() = %q, want %q", got, want)
	}
	got, err := r.Lists(&store.Enrollment{Country: "US"})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Lists = %q, %v; want %q", got, err, want)
	}
	// AllLists hands out a copy.
	r.AllLists()[0] = "changed"
	if r.AllLists()[0] != "B" {
		t.Error("AllLists exposes the rules' own slice")
	}

	if _, err := Default(nil).Lists(&store.Enrollment{}); !errors.Is(err, ErrNoRoute) {
		t.Errorf("Default(nil).Lists error = %v, want ErrNoRoute", err)
	}
	many := make([]string, MaxLists+1)
	for i := range many {
		many[i] = strings.Repeat("x", i+1)
	}
	if _, err := Default(many).Lists(&store.Enrollment{}); err == nil {
		t.Error("Default with 51 lists: Lists succeeded, want an error")
	}
}

func TestListsConcurrent(t *testing.T) {
	// Rules are shared by every worker; -race checks they are only read.
	r := mustParse(t, exampleRules)
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				e := &store.Enrollment{Email: "a@example.com", Country: "us", Properties: map[string]string{"agent_tier": "gold"}}
				if _, err := r.Lists(e); err != nil {
					t.Error(err)
				}
				if _, reason := r.Contact(e); reason != "" {
					t.Error(reason)
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}
