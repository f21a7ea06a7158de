package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

// Everything under /ops forbids framing and sniffing, the 401 of a missing
// or wrong login and Asynqmon's pages and assets included, and the page's
// own policy is merged with the framing rule rather than stated beside it.
func TestOpsFramingHeaders(t *testing.T) {
	a := startOps(t)
	cases := []struct {
		name       string
		path       string
		user, pass string
		status     int
		csp        []string // further directives the policy must hold
	}{
		{name: "/ops without a login", path: "/ops", status: http.StatusUnauthorized},
		{name: "/ops with a wrong password", path: "/ops", user: adminName, pass: "wrong", status: http.StatusUnauthorized},
		{name: "/ops", path: "/ops", user: adminName, pass: adminPass, status: http.StatusOK,
			csp: []string{"default-src 'none'", "style-src 'sha256-"}},
		{name: "status.json", path: "/ops/status.json", user: viewerName, pass: viewerPass, status: http.StatusOK},
		{name: "Asynqmon without a login", path: "/ops/queues/", status: http.StatusUnauthorized},
		{name: "Asynqmon", path: "/ops/queues/", user: adminName, pass: adminPass, status: http.StatusOK},
		{name: "Asynqmon read-only", path: "/ops/queues/", user: viewerName, pass: viewerPass, status: http.StatusOK},
		{name: "Asynqmon's API", path: "/ops/queues/api/queues", user: adminName, pass: adminPass, status: http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.as(t, http.MethodGet, tc.path, tc.user, tc.pass)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.200s", r.status, tc.status, r.body)
			}
			if got := r.header.Values("X-Frame-Options"); len(got) != 1 || got[0] != "DENY" {
				t.Errorf("X-Frame-Options %q, want DENY once", got)
			}
			if got := r.header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff once", got)
			}
			policies := r.header.Values("Content-Security-Policy")
			if len(policies) != 1 || strings.Count(policies[0], "frame-ancestors") != 1 ||
				!strings.Contains(policies[0], "frame-ancestors 'none'") {
				t.Fatalf("Content-Security-Policy %q, want one policy with frame-ancestors 'none' once", policies)
			}
			for _, d := range tc.csp {
				if !strings.Contains(policies[0], d) {
					t.Errorf("Content-Security-Policy %q lacks %q", policies[0], d)
				}
			}
		})
	}
}
