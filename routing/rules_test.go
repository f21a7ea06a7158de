package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	cf := func(n int) string {
		var b strings.Builder
		b.WriteString("default_lists: All\nfields:\n")
		for i := range n {
			fmt.Fprintf(&b, "  cf:f%02d: p%d\n", i, i)
		}
		return b.String()
	}
	lists := func(n int) string {
		var b strings.Builder
		b.WriteString("default_lists: [d0]\nroutes:\n")
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, "  - when: {exists: p%d}\n    lists: [l%d]\n", i, i)
		}
		return b.String()
	}
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error, in any order
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"comments only", "# nothing here\n", []string{"the file is empty"}},
		{"two documents", "default_lists: a\n---\ndefault_lists: b\n", []string{"more than one YAML document"}},
		{"syntax error", "default_lists: [a\n", []string{"line 1: did not find expected ',' or ']'"}},
		{"unquoted @", "default_lists: a\nfields:\n  cf:joined: @enrolled_at\n",
			[]string{"line 3: found character that cannot start any token", `values starting with @ must be quoted`}},
		{"unknown top-level key", "default_lists: a\ndefualt_lists: b\n",
			[]string{`line 2: unknown key "defualt_lists" in the top level (valid keys: default_lists, create_missing_lists, create_missing_fields, routes, fields)`}},
		{"unknown route key", "routes:\n  - when: {exists: x}\n    list: a\n",
			[]string{`line 3: unknown key "list" in a route (valid keys: when, lists, exclusive)`}},
		{"unknown when key", "routes:\n  - when: {contry: US}\n    lists: a\n",
			[]string{`line 2: unknown key "contry" in when`}},
		{"routes not a list", "routes: {when: x}\n", []string{"line 1:", "a list of routes"}},
		{"lists a mapping", "routes:\n  - when: {exists: x}\n    lists: {a: b}\n",
			[]string{"line 3: expected a name or a list of names, found a mapping"}},
		{"route without lists", "default_lists: a\nroutes:\n  - when: {exists: x}\n",
			[]string{"line 3: routes[0]: the route has no lists"}},
		{"route with empty lists", "default_lists: a\nroutes:\n  - when: {exists: x}\n    lists: []\n",
			[]string{"line 3: routes[0]: the route has no lists"}},
		{"blank list name", "default_lists: a\nroutes:\n  - when: {exists: x}\n    lists: [\" \"]\n",
			[]string{"line 3: routes[0].lists[0]: the list name is empty"}},
		{"list name too long", "default_lists: [\"" + strings.Repeat("é", 256) + "\"]\n",
			[]string{"line 1: default_lists[0]: the list name is 256 characters; Constant Contact accepts at most 255"}},
		{"route without when", "default_lists: a\nroutes:\n  - lists: b\n",
			[]string{"line 3: routes[0]: the route has no when"}},
		{"when without condition", "default_lists: a\nroutes:\n  - when: {}\n    lists: b\n",
			[]string{"line 3: routes[0].when: when has no condition"}},
		{"equals and in", "routes:\n  - when: {property: t, equals: a, in: [b]}\n    lists: b\n",
			[]string{"routes[0].when: equals and in are both set"}},
		{"property alone", "routes:\n  - when: {property: t}\n    lists: b\n",
			[]string{`routes[0].when: property "t" needs equals or in`}},
		{"equals without property", "routes:\n  - when: {equals: gold}\n    lists: b\n",
			[]string{"routes[0].when: equals and in need property"}},
		{"empty in", "routes:\n  - when: {property: t, in: []}\n    lists: b\n",
			[]string{"routes[0].when.in: the list of values is empty"}},
		{"empty country", "routes:\n  - when: {country: [\"\"]}\n    lists: b\n",
			[]string{"routes[0].when.country[0]: the country is empty"}},
		{"nothing to route to", "create_missing_lists: true\n",
			[]string{"no routes and no default_lists"}},
		{"51 lists", lists(51),
			[]string{"name 51 distinct lists", "at most 50 lists per import"}},
		{"email mapped", "default_lists: a\nfields:\n  email: work_email\n",
			[]string{"line 3: fields.email: email cannot be mapped"}},
		{"unknown CC field", "default_lists: a\nfields:\n  first_name: firstname\n  other_phone: phone2\n",
			[]string{`line 4: fields.other_phone: unknown Constant Contact field "other_phone"; valid fields are first_name, last_name`}},
		{"bad custom field name", "default_lists: a\nfields:\n  \"cf:agency-id\": agency_id\n",
			[]string{`line 3: fields.cf:agency-id: custom field name "agency-id" must be letters, digits and underscores`}},
		{"empty custom field name", "default_lists: a\nfields:\n  \"cf:\": x\n",
			[]string{`fields.cf:: custom field name ""`}},
		{"26 custom fields", cf(26),
			[]string{"line 2: fields: 26 custom fields (cf:) are mapped; Constant Contact accepts at most 25"}},
		{"unknown special source", "default_lists: a\nfields:\n  cf:joined: \"@created\"\n",
			[]string{`line 3: fields.cf:joined: unknown source "@created"; sources starting with @ are @country, @email, @enrolled_at, @first_name, @last_name`}},
		{"empty source", "default_lists: a\nfields:\n  city:\n",
			[]string{"line 3: fields.city: no source"}},
		{"birthday half mapped", "default_lists: a\nfields:\n  birthday_month: bm\n",
			[]string{"birthday_month and birthday_day must be mapped together"}},
		{"several problems at once",
			"default_lists: a\nroutes:\n  - when: {}\n    lists: b\n  - when: {exists: x}\nfields:\n  fax: fax\n",
			[]string{"3 problems", "line 3: routes[0].when", "line 5: routes[1]: the route has no lists", "line 7: fields.fax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded (%d routes), want an error", len(r.routes))
			}
			if !errors.Is(err, ErrInvalidRules) {
				t.Errorf("error does not wrap ErrInvalidRules: %v", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "routing: parse rules: ") {
				t.Errorf("error %q lacks the operation prefix", msg)
			}
			if strings.Contains(msg, "routing.") || strings.Contains(msg, "!!") {
				t.Errorf("error names Go or YAML internals: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", msg, w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	max := func(n int) string {
		var b strings.Builder
		b.WriteString("default_lists: [d0]\nroutes:\n")
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, "  - when: {exists: p%d}\n    lists: [l%d, d0]\n", i, i)
		}
		b.WriteString("fields:\n")
		for i := range MaxCustomFields {
			fmt.Fprintf(&b, "  cf:f%02d: p%d\n", i, i)
		}
		return b.String()
	}
	tests := []struct {
		name string
		src  string
	}{
		{"the example", exampleRules},
		{"default_lists only", "default_lists: All\n"},
		{"routes only", "routes:\n  - when: {country: US}\n    lists: US\n"},
		{"50 lists and 25 custom fields", max(50)},
		{"scalar lists and countries", "routes:\n  - when: {country: US, property: t, in: gold}\n    lists: Gold\n"},
		{"empty fields keeps only names and country", "default_lists: a\nfields: {}\n"},
		{"null fields means the defaults", "default_lists: a\nfields:\n"},
		{"anchors and aliases", "default_lists: &d [a]\nroutes:\n  - when: {exists: x}\n    lists: *d\n"},
		{"leading and trailing document markers", "---\ndefault_lists: a\n---\n"},
		{"birthday pair", "default_lists: a\nfields:\n  birthday_month: dob\n  birthday_day: dob\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.src)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestParseFieldsReplaceDefaults(t *testing.T) {
	r := mustParse(t, "default_lists: a\nfields:\n  city: town\n")
	var keys []string
	for _, m := range r.fields {
		keys = append(keys, m.key())
	}
	// city as configured; the names and country always come along.
	if got, want := strings.Join(keys, ","), "first_name,last_name,city,country"; got != want {
		t.Errorf("mapped keys = %s, want %s", got, want)
	}
}

func TestDefaultFieldMapIsValid(t *testing.T) {
	// Default panics on an invalid built-in map; the parse path must agree.
	var b strings.Builder
	b.WriteString("default_lists: a\nfields:\n")
	for k, v := range defaultFieldMap() {
		fmt.Fprintf(&b, "  %q: %q\n", k, v)
	}
	file := mustParse(t, b.String())
	absent := mustParse(t, "default_lists: a\n")
	def := Default([]string{"a"})
	for _, r := range []*Rules{absent, def} {
		if len(r.fields) != len(file.fields) {
			t.Fatalf("default mapping has %d fields, explicit one %d", len(r.fields), len(file.fields))
		}
		for i := range r.fields {
			if r.fields[i] != file.fields[i] {
				t.Errorf("field %d = %+v, want %+v", i, r.fields[i], file.fields[i])
			}
		}
	}
}

// TestCustomFieldsOfTheRules: the custom fields the rules map to are named
// for the check against CC, sorted, and create_missing_fields says whether
// a missing one may be made.
func TestCustomFieldsOfTheRules(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		wantFields []string
		wantCreate bool
	}{
		{"none", "default_lists: [A]\n", nil, false},
		{"two, created when missing", "default_lists: [A]\ncreate_missing_fields: true\nfields:\n  \"cf:zeta\": zeta\n  first_name: \"@first_name\"\n  \"cf:agency_id\": agency\n",
			[]string{"agency_id", "zeta"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.CustomFields(); !slices.Equal(got, tc.wantFields) {
				t.Errorf("CustomFields() = %v, want %v", got, tc.wantFields)
			}
			if got := r.CreateMissingFields(); got != tc.wantCreate {
				t.Errorf("CreateMissingFields() = %v, want %v", got, tc.wantCreate)
			}
		})
	}
	if got := Default([]string{"A"}).CustomFields(); got != nil {
		t.Errorf("the default rules map to custom fields %v, want none", got)
	}
}
