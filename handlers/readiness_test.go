package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hs2cc/hs2cc/handlers"
)

// A failing readiness check is named on /readyz with "fail" and nothing
// else, since /readyz needs no login and the detail names hosts and users;
// the detail is on /ops, in status.json's "readiness" and in one warning
// per change, not one per probe.
func TestReadinessDetails(t *testing.T) {
	const detail = "dial tcp 10.1.2.3:3306: Error 1045: Access denied for user 'hs2cc'@'10.0.0.9'"
	var down atomic.Bool
	down.Store(true)
	a := startOps(t, func(c *handlers.Config) {
		c.Ready = []handlers.Check{
			{Name: "mysql", Fn: func(context.Context) error {
				if down.Load() {
					return errors.New(detail)
				}
				return nil
			}},
			{Name: "redis", Fn: func(context.Context) error { return nil }},
		}
	})

	cases := []struct {
		name   string
		down   bool
		status int
		checks map[string]string
	}{
		{"MySQL refuses the login", true, http.StatusServiceUnavailable, map[string]string{"mysql": "fail", "redis": "ok"}},
		{"probed again, still failing", true, http.StatusServiceUnavailable, map[string]string{"mysql": "fail", "redis": "ok"}},
		{"MySQL back", false, http.StatusOK, map[string]string{"mysql": "ok", "redis": "ok"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			down.Store(tc.down)
			r := a.do(t, a.request(t, http.MethodGet, "/readyz", nil))
			var ready readyBody
			decodeJSON(t, r, &ready)
			if r.status != tc.status || len(ready.Checks) != len(tc.checks) {
				t.Errorf("readyz %d %s, want %d with %v", r.status, r.body, tc.status, tc.checks)
			}
			for name, want := range tc.checks {
				if ready.Checks[name] != want {
					t.Errorf("check %s: %q, want %q", name, ready.Checks[name], want)
				}
			}
			for _, leak := range []string{"10.1.2.3", "hs2cc'@", "Access denied"} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("readyz shows %q: %s", leak, r.body)
				}
			}

			var got opsStatus
			decodeJSON(t, a.as(t, http.MethodGet, "/ops/status.json", viewerName, viewerPass), &got)
			if len(got.Readiness) != 2 || got.Readiness[0].Name != "mysql" || got.Readiness[0].OK == tc.down ||
				(tc.down && got.Readiness[0].Detail != detail) || (!tc.down && got.Readiness[0].Detail != "") ||
				got.Readiness[1].Name != "redis" || !got.Readiness[1].OK {
				t.Errorf("status.json readiness %+v, want mysql (down %v, its detail) and redis ok", got.Readiness, tc.down)
			}
			page := string(a.as(t, http.MethodGet, "/ops", viewerName, viewerPass).body)
			_, section, _ := strings.Cut(page, "<h2>Readiness</h2>")
			section, _, _ = strings.Cut(section, "<h2>")
			// The page escapes the detail's quotes.
			if shown := strings.Contains(section, "Access denied for user &#39;hs2cc&#39;@&#39;10.0.0.9&#39;"); shown != tc.down {
				t.Errorf("/ops readiness shows the detail: %v, want %v:\n%s", shown, tc.down, section)
			}
		})
	}
	logs := a.logs.String()
	// Six runs failed (/readyz, status.json and /ops, twice): one warning.
	if n := strings.Count(logs, `level=WARN msg="readiness check failed"`); n != 1 || !strings.Contains(logs, "10.1.2.3:3306") {
		t.Errorf("%d warnings of the failure, want one with its detail:\n%s", n, logs)
	}
	if !strings.Contains(logs, "readiness check passes again") {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}
}
