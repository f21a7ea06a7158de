package handlers_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
)

// TestWebhookRoutesToLists: with routing rules, each enrollment is stored
// bound for the lists its fields choose, and one the rules send nowhere is
// stored with its reason and answered 422, so that it can be replayed once
// the rules are fixed.
func TestWebhookRoutesToLists(t *testing.T) {
	rules := func(t *testing.T, src string) *routing.Rules {
		t.Helper()
		r, err := routing.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name      string
		rules     string
		country   string // replaces the profile's country
		status    int
		wantLists []string
	}{
		{"a country code routes to its region", `default_lists: ["New Agents"]
routes:
  - when: {country: ["United States", "Canada"]}
    lists: ["Agents - North America"]
`, "US", http.StatusAccepted, []string{"Agents - North America", "New Agents"}},
		{"no route matched falls back to the defaults", `default_lists: ["New Agents"]
routes:
  - when: {country: ["Canada"]}
    lists: ["Agents - North America"]
`, "Germany", http.StatusAccepted, []string{"New Agents"}},
		{"no route and no defaults is refused and kept", `routes:
  - when: {country: ["Canada"]}
    lists: ["Agents - North America"]
`, "Germany", http.StatusUnprocessableEntity, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, func(s *setup) { s.cfg.Router = rules(t, tc.rules) })
			body := []byte(strings.Replace(string(profile(t)), `"country":{"value":"`, `"country":{"value":"`+tc.country+`","x":"`, 1))
			r := a.post(t, body, sign(body, hookPath))
			if r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
			ds := a.deliveries(t)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries stored, want 1", len(ds))
			}
			if tc.wantLists == nil {
				if ds[0].Verdict != store.VerdictNoRoute || !strings.Contains(ds[0].Reason, "no route") {
					t.Errorf("delivery verdict %q reason %q, want no_route with a reason", ds[0].Verdict, ds[0].Reason)
				}
				if !strings.Contains(string(r.body), handlers.CodeNoRoute) {
					t.Errorf("body %s does not name %s", r.body, handlers.CodeNoRoute)
				}
				if n := len(a.enrollments(t)); n != 0 {
					t.Errorf("%d enrollments stored, want none", n)
				}
				return
			}
			es := a.enrollments(t)
			if len(es) != 1 || !slices.Equal(es[0].Lists, tc.wantLists) {
				t.Fatalf("enrollments %v, want one bound for %v", es, tc.wantLists)
			}
		})
	}
}
