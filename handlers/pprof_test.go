package handlers_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
)

// startPprof runs the application with the ops logins and the fake ops
// figures and nothing else: the profiles need neither MySQL nor Redis, and
// /ops is there to compare the login challenge with.
func startPprof(t testing.TB, opts ...func(*handlers.Config)) *app {
	t.Helper()
	logs := &logBuffer{}
	cfg := handlers.Config{
		PublicURL:   publicURL,
		OpsUser:     opsUser,
		OpsPassword: opsPass,
		OpsAccounts: accounts(t),
		Ops:         newFakeOps(),
		Now:         func() time.Time { return opsNow },
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),

		// These tests send many wrong logins from one address to check
		// every route's answer, more than the login limiter lets through;
		// loginlimit_test.go tests the limiter.
		LoginLimits: handlers.LoginLimits{FreeFailures: 1000},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e := handlers.New(cfg, nil, nil)
	return serveApp(t, e, logs)
}

// pprofPaths are every profile route. The timed ones ask for one second so
// that the admin's cases stay quick; the refused ones never start.
var pprofPaths = []string{
	"/debug/pprof",
	"/debug/pprof/",
	"/debug/pprof/cmdline",
	"/debug/pprof/profile?seconds=1",
	"/debug/pprof/symbol",
	"/debug/pprof/trace?seconds=1",
	"/debug/pprof/allocs?debug=1",
	"/debug/pprof/block?debug=1",
	"/debug/pprof/goroutine?debug=1",
	"/debug/pprof/heap?debug=1",
	"/debug/pprof/mutex?debug=1",
	"/debug/pprof/threadcreate?debug=1",
}

// Only an ops admin gets the profiles: no login or a wrong one is asked to
// log in as at /ops, and a viewer is refused.
func TestPprofRefused(t *testing.T) {
	a := startPprof(t)
	challenge := a.as(t, http.MethodGet, "/ops", "", "").header.Get("WWW-Authenticate")
	if !strings.HasPrefix(strings.ToLower(challenge), "basic realm=") {
		t.Fatalf("/ops challenge %q, want a basic one to compare with", challenge)
	}

	logins := []struct {
		name, user, pass string
		status           int
		code             string
	}{
		{"no login", "", "", http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"admin with a wrong password", adminName, "wrong", http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"simple login with a wrong password", opsUser, "wrong", http.StatusUnauthorized, handlers.CodeUnauthorized},
		{"viewer", viewerName, viewerPass, http.StatusForbidden, handlers.CodeForbidden},
	}
	// A path under /debug/pprof that no route serves gives nothing away to
	// anyone but an admin either.
	paths := append(pprofPaths[:len(pprofPaths):len(pprofPaths)], "/debug/pprof/no-such-profile")
	for _, l := range logins {
		for _, path := range paths {
			t.Run(l.name+" "+path, func(t *testing.T) {
				r := a.as(t, http.MethodGet, path, l.user, l.pass)
				wantError(t, r, l.status, l.code)
				got := r.header.Get("WWW-Authenticate")
				if l.status == http.StatusUnauthorized && got != challenge {
					t.Errorf("WWW-Authenticate %q, want /ops's %q", got, challenge)
				}
				if cc := r.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
			})
		}
	}
}

// An admin, named or the simple login, gets every profile.
func TestPprofAdmin(t *testing.T) {
	a := startPprof(t)
	cases := []struct {
		name         string
		method, path string
		user, pass   string
		header       []string
		status       int
		code         string // the JSON error code, when one is expected
		want         string // a part of the body, when one is expected
		check        func(t *testing.T, r reply)
	}{
		{name: "index", path: "/debug/pprof/", user: adminName, pass: adminPass, status: http.StatusOK, want: "goroutine",
			check: func(t *testing.T, r reply) {
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type %q, want HTML", ct)
				}
			}},
		{name: "index for the simple login", path: "/debug/pprof/", user: opsUser, pass: opsPass, status: http.StatusOK, want: "goroutine"},
		{name: "index without its slash", path: "/debug/pprof", user: adminName, pass: adminPass, status: http.StatusMovedPermanently,
			check: func(t *testing.T, r reply) {
				if loc := r.header.Get("Location"); loc != "pprof/" {
					t.Errorf("Location %q, want pprof/", loc)
				}
			}},
		{name: "heap", path: "/debug/pprof/heap?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "heap profile"},
		{name: "allocs", path: "/debug/pprof/allocs?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "heap profile"},
		{name: "goroutine", path: "/debug/pprof/goroutine?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "goroutine profile"},
		{name: "threadcreate", path: "/debug/pprof/threadcreate?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "threadcreate profile"},
		{name: "block", path: "/debug/pprof/block?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "cycles/second"},
		{name: "mutex", path: "/debug/pprof/mutex?debug=1", user: adminName, pass: adminPass, status: http.StatusOK, want: "cycles/second"},
		{name: "cmdline", path: "/debug/pprof/cmdline", user: adminName, pass: adminPass, status: http.StatusOK, want: ".test"},
		{name: "symbol", path: "/debug/pprof/symbol", user: adminName, pass: adminPass, status: http.StatusOK, want: "num_symbols"},
		{name: "symbol posted by a tool", method: http.MethodPost, path: "/debug/pprof/symbol", user: adminName, pass: adminPass,
			status: http.StatusOK, want: "num_symbols"},
		{name: "symbol posted by a page elsewhere", method: http.MethodPost, path: "/debug/pprof/symbol", user: adminName, pass: adminPass,
			header: []string{"Sec-Fetch-Site", "cross-site"}, status: http.StatusForbidden, code: handlers.CodeForbidden},
		{name: "CPU profile", path: "/debug/pprof/profile?seconds=1", user: adminName, pass: adminPass, status: http.StatusOK,
			check: func(t *testing.T, r reply) {
				// A CPU profile is gzipped protobuf, never empty.
				if !bytes.HasPrefix(r.body, []byte{0x1f, 0x8b}) {
					t.Errorf("body of %d bytes is not gzip", len(r.body))
				}
			}},
		{name: "trace", path: "/debug/pprof/trace?seconds=1", user: adminName, pass: adminPass, status: http.StatusOK,
			check: func(t *testing.T, r reply) {
				if len(r.body) == 0 {
					t.Error("empty trace")
				}
			}},
		{name: "unknown profile", path: "/debug/pprof/no-such-profile", user: adminName, pass: adminPass,
			status: http.StatusNotFound, code: handlers.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := a.as(t, method, tc.path, tc.user, tc.pass, tc.header...)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
			} else if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.200s", r.status, tc.status, r.body)
			}
			if tc.want != "" && !bytes.Contains(r.body, []byte(tc.want)) {
				t.Errorf("body lacks %q: %.200s", tc.want, r.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			// A profile is the process's internals: no cache may keep it.
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

// Without any ops login the profiles are not served at all, as /ops is not,
// whatever credentials come; with one they are served even when ops has
// nothing else to show, since they need only the login.
func TestPprofWithoutOps(t *testing.T) {
	off := startPprof(t, func(c *handlers.Config) { c.OpsUser, c.OpsPassword, c.OpsAccounts = "", "", nil })
	for _, path := range append([]string{"/ops"}, pprofPaths...) {
		t.Run("no login configured "+path, func(t *testing.T) {
			wantError(t, off.as(t, http.MethodGet, path, "", ""), http.StatusNotFound, handlers.CodeNotFound)
			// Credentials that would match an empty user or password must
			// not open anything either.
			wantError(t, off.as(t, http.MethodGet, path, "", opsPass), http.StatusNotFound, handlers.CodeNotFound)
			wantError(t, off.as(t, http.MethodGet, path, adminName, adminPass), http.StatusNotFound, handlers.CodeNotFound)
		})
	}

	bare := startPprof(t, func(c *handlers.Config) { c.Ops = nil })
	t.Run("login but no ops figures", func(t *testing.T) {
		wantError(t, bare.as(t, http.MethodGet, "/ops", adminName, adminPass), http.StatusNotFound, handlers.CodeNotFound)
		if r := bare.as(t, http.MethodGet, "/debug/pprof/", adminName, adminPass); r.status != http.StatusOK {
			t.Errorf("status %d, want 200: %.200s", r.status, r.body)
		}
		wantError(t, bare.as(t, http.MethodGet, "/debug/pprof/", viewerName, viewerPass), http.StatusForbidden, handlers.CodeForbidden)
	})
}
