package routing

import (
	"errors"
	"slices"
	"testing"

	"github.com/hs2cc/hs2cc/store"
)

// TestRouteSaysWhy: Route returns the lists Lists returns, and names each
// route that matched, with its conditions, and the defaults when added.
func TestRouteSaysWhy(t *testing.T) {
	r := mustParse(t, exampleRules)
	tests := []struct {
		name    string
		e       store.Enrollment
		lists   []string
		why     string
		wantErr error
	}{
		{name: "no route", e: store.Enrollment{Country: "FR"}, lists: []string{"New Agents"},
			why: "default_lists → New Agents"},
		{name: "country", e: store.Enrollment{Country: "us"}, lists: []string{"Agents - North America", "New Agents"},
			why: "routes[0] (country US, United States, CA, Canada) → Agents - North America; default_lists → New Agents"},
		{name: "exclusive", e: store.Enrollment{Country: "Canada", Properties: map[string]string{"agent_tier": "Gold"}},
			lists: []string{"Agents - North America", "Gold Agents", "Premium"},
			why: "routes[0] (country US, United States, CA, Canada) → Agents - North America; routes[1] (agent_tier = gold) → Gold Agents; " +
				"routes[2] (agent_tier in gold, platinum, exclusive) → Premium"},
	}
	for _, tt := range tests {
		lists, why, err := r.Route(&tt.e)
		if !errors.Is(err, tt.wantErr) || !slices.Equal(lists, tt.lists) || why != tt.why {
			t.Errorf("%s: Route = %q, %q, %v; want %q, %q", tt.name, lists, why, err, tt.lists, tt.why)
		}
		if l, err := r.Lists(&tt.e); !slices.Equal(l, lists) || err != nil {
			t.Errorf("%s: Lists = %q, %v; want what Route returns", tt.name, l, err)
		}
	}
	env := Default([]string{"New Agents", "Old Agents"})
	if lists, why, err := env.Route(&store.Enrollment{}); err != nil || why != "HS2CC_CC_LISTS → New Agents, Old Agents" || len(lists) != 2 {
		t.Errorf("Default: Route = %q, %q, %v", lists, why, err)
	}
	if _, why, err := Default(nil).Route(&store.Enrollment{}); !errors.Is(err, ErrNoRoute) || why != "" {
		t.Errorf("Default(nil): why %q, err %v; want ErrNoRoute", why, err)
	}
}
