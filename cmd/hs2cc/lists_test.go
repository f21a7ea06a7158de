package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/routing"
)

// notConnected is a token source before anyone connected CC.
type notConnected struct{}

func (notConnected) Token(context.Context) (string, error) { return "", jobs.ErrNotConnected }

// TestCheckLists: a rules file naming a list CC lacks stops start-up with
// the list's name unless the rules allow creating it; before CC is
// connected there is nothing to check.
func TestCheckLists(t *testing.T) {
	const src = `default_lists: ["New Agents"]
routes:
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
`
	rules, err := routing.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		create    bool
		connected bool
		wantErr   string
		wantLists []string
	}{
		{"a missing list stops start-up by name", false, true, `"Gold Agents"`, []string{"New Agents"}},
		{"missing lists are created when allowed", true, true, "", []string{"Gold Agents", "New Agents"}},
		{"nothing to check before CC is connected", false, false, "", []string{"New Agents"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := ccsandbox.New(ccsandbox.Options{})
			srv := httptest.NewServer(sb)
			defer srv.Close()
			sb.CreateList("New Agents")
			access, _ := sb.IssueToken("contact_data offline_access")
			var ts ccclient.TokenSource = ccclient.StaticToken(access)
			if !tc.connected {
				ts = notConnected{}
			}
			cc, err := ccclient.New(srv.URL+"/v3", ts)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := checkLists(context.Background(), cc, rules, tc.create, slog.New(slog.DiscardHandler))
			if tc.wantErr == "" && err != nil {
				t.Fatalf("checkLists: %v", err)
			}
			if tc.wantErr != "" && (!errors.Is(err, errMissingList) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("checkLists: %v, want errMissingList naming %s", err, tc.wantErr)
			}
			var names []string
			for _, l := range sb.Lists() {
				names = append(names, l.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.wantLists) {
				t.Errorf("sandbox lists %v, want %v", names, tc.wantLists)
			}
			// The ids found or made are handed to the worker, so that its
			// first import does not look them up again.
			if err == nil && tc.connected {
				for _, l := range sb.Lists() {
					if ids[l.Name] != l.ListID {
						t.Errorf("ids[%q] = %q, want %q", l.Name, ids[l.Name], l.ListID)
					}
				}
			}
		})
	}
}

// TestRoutesConfig: HS2CC_ROUTES is read and checked with the rest of the
// configuration, so a bad file fails start-up with its path and problem.
func TestRoutesConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "default_lists: [\"A\"]\nroutes:\n  - when: {country: [\"US\"]}\n    lists: [\"B\"]\n")
	bad := write("bad.yaml", "default_lists: [\"A\"]\nroutes:\n  - when: {contry: [\"US\"]}\n    lists: [\"B\"]\n")
	cases := []struct {
		name, path, wantErr string
		wantLists           []string
	}{
		{"unset uses HS2CC_CC_LISTS", "", "", []string{"New Agents"}},
		{"a good file", good, "", []string{"A", "B"}},
		{"an unknown key names the file and line", bad, `bad.yaml: routing: parse rules: line 3: unknown key "contry"`, nil},
		{"a missing file", filepath.Join(dir, "nope.yaml"), "HS2CC_ROUTES: open", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(func(k string) string {
				if k == "HS2CC_ROUTES" {
					return tc.path
				}
				return ""
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("loadConfig: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Rules.AllLists(); !slices.Equal(got, tc.wantLists) {
				t.Errorf("lists %v, want %v", got, tc.wantLists)
			}
		})
	}
}
