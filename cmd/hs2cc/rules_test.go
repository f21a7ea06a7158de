package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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
