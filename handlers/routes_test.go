package handlers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// Every answer, Echo's own 404 and 405 included, has the one JSON error
// shape, and the webhook path is never redirected.
func TestRoutesUnknown(t *testing.T) {
	a := start(t)
	cases := []struct {
		method, path string
		status       int
		code         string
		allow        string // a method the Allow header of a 405 must name
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, handlers.CodeNotFound, ""},
		{http.MethodPost, "/webhooks", http.StatusNotFound, handlers.CodeNotFound, ""},
		// A redirect here would lose the body or the signature's URI.
		{http.MethodPost, hookPath + "/", http.StatusNotFound, handlers.CodeNotFound, ""},
		{http.MethodGet, hookPath, http.StatusMethodNotAllowed, handlers.CodeMethod, "POST"},
		{http.MethodPut, hookPath, http.StatusMethodNotAllowed, handlers.CodeMethod, "POST"},
		{http.MethodDelete, hookPath, http.StatusMethodNotAllowed, handlers.CodeMethod, "POST"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, handlers.CodeMethod, "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := a.do(t, a.request(t, tc.method, tc.path, strings.NewReader(`{"email":"ann@example.com"}`)))
			wantError(t, r, tc.status, tc.code)
			if allow := r.header.Get("Allow"); tc.allow != "" && !strings.Contains(allow, tc.allow) {
				t.Errorf("Allow %q, want it to name %s", allow, tc.allow)
			}
		})
	}
	t.Run("HEAD of an unknown path has no body", func(t *testing.T) {
		// A recorder, because a server drops any body of a HEAD reply
		// itself and would hide what the application wrote.
		rec := httptest.NewRecorder()
		a.echo.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/nope", nil))
		if rec.Code != http.StatusNotFound || rec.Body.Len() != 0 {
			t.Errorf("status %d body %q", rec.Code, rec.Body)
		}
	})
	a.wantNothingStored(t)
}

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// /healthz answers while the process runs; /readyz runs the real checks and
// names the one that fails, with its detail in the log only.
func TestHealthAndReady(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		setup   func(t *testing.T) func(*setup)
		status  int
		failing string // the check that must fail; "" for none
		reason  string // a part of its message
	}{
		{
			name:   "all checks pass",
			setup:  func(t *testing.T) func(*setup) { return func(*setup) {} },
			status: http.StatusOK,
		},
		{
			name: "Redis down",
			setup: func(t *testing.T) func(*setup) {
				db := storetest.MySQL(t)
				rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
				t.Cleanup(func() { rdb.Close() })
				return func(s *setup) {
					s.db = db
					s.cfg.Ready = []handlers.Check{
						{Name: "mysql", Fn: db.Ping},
						{Name: "redis", Fn: store.NewRedis(rdb).Ping},
						{Name: "schema", Fn: db.CheckSchema},
					}
				}
			},
			status: http.StatusServiceUnavailable, failing: "redis", reason: "redis ping",
		},
		{
			name: "MySQL down",
			setup: func(t *testing.T) func(*setup) {
				db := storetest.MySQL(t)
				db.Close()
				return func(s *setup) { s.db = db }
			},
			status: http.StatusServiceUnavailable, failing: "mysql", reason: "ping",
		},
		{
			name: "schema not migrated",
			setup: func(t *testing.T) func(*setup) {
				db, err := store.Open(ctx, storetest.MySQLDSN(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return func(s *setup) { s.db = db }
			},
			status: http.StatusServiceUnavailable, failing: "schema", reason: "schema is outdated",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, tc.setup(t))

			r := a.do(t, a.request(t, http.MethodGet, "/healthz", nil))
			var health map[string]string
			decodeJSON(t, r, &health)
			if r.status != http.StatusOK || health["status"] != "ok" {
				t.Errorf("healthz %d %s, want 200 whatever the dependencies do", r.status, r.body)
			}

			r = a.do(t, a.request(t, http.MethodGet, "/readyz", nil))
			var ready readyBody
			decodeJSON(t, r, &ready)
			if r.status != tc.status {
				t.Errorf("readyz status %d, want %d: %s", r.status, tc.status, r.body)
			}
			wantStatus := "ok"
			if tc.failing != "" {
				wantStatus = "unavailable"
			}
			if ready.Status != wantStatus || len(ready.Checks) != 3 {
				t.Errorf("readyz %s, want status %q and three checks", r.body, wantStatus)
			}
			for _, name := range []string{"mysql", "redis", "schema"} {
				msg := ready.Checks[name]
				if name == tc.failing {
					// /readyz needs no login: the failure's detail goes to
					// the log (and /ops), never to the answer.
					if msg != "fail" || strings.Contains(string(r.body), tc.reason) {
						t.Errorf("check %s: %q in %s, want \"fail\" without %q", name, msg, r.body, tc.reason)
					}
					if logs := a.logs.String(); !strings.Contains(logs, "readiness check failed") || !strings.Contains(logs, tc.reason) {
						t.Errorf("the failure of %s is not logged with %q:\n%s", name, tc.reason, logs)
					}
					continue
				}
				// A closed pool also fails the schema check, which needs MySQL.
				if msg != "ok" && !(tc.failing == "mysql" && name == "schema") {
					t.Errorf("check %s: %q, want ok", name, msg)
				}
			}
		})
	}
}

// Asynqmon is served under /ops/queues only with credentials configured,
// and only to a caller who presents them.
func TestOpsQueues(t *testing.T) {
	a := start(t)
	body := profile(t)
	wantAccepted(t, a.post(t, body, sign(body, hookPath)), http.StatusAccepted)

	get := func(t *testing.T, a *app, path, user, pass string) reply {
		req := a.request(t, http.MethodGet, path, nil)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		return a.do(t, req)
	}
	refused := []struct {
		name, path, user, pass string
	}{
		{"API without credentials", "/ops/queues/api/queues", "", ""},
		{"UI without credentials", "/ops/queues/", "", ""},
		{"wrong password", "/ops/queues/api/queues", opsUser, "wrong"},
		{"wrong user", "/ops/queues/api/queues", "admin", opsPass},
		{"password as user", "/ops/queues/api/queues", opsPass, opsUser},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, a, tc.path, tc.user, tc.pass)
			wantError(t, r, http.StatusUnauthorized, handlers.CodeUnauthorized)
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(got), "basic realm=") {
				t.Errorf("WWW-Authenticate %q, want a basic challenge", got)
			}
		})
	}

	t.Run("API with credentials lists the queue", func(t *testing.T) {
		r := get(t, a, "/ops/queues/api/queues", opsUser, opsPass)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got struct {
			Queues []struct {
				Queue       string `json:"queue"`
				Size        int    `json:"size"`
				Groups      int    `json:"groups"`
				Aggregating int    `json:"aggregating"`
			} `json:"queues"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
		if len(got.Queues) != 1 || got.Queues[0].Queue != "hs2cc" || got.Queues[0].Aggregating != 1 ||
			got.Queues[0].Groups != 1 || got.Queues[0].Size != 1 {
			t.Errorf("queues %+v, want hs2cc with the one enrollment task", got.Queues)
		}
	})
	t.Run("UI with credentials", func(t *testing.T) {
		r := get(t, a, "/ops/queues/", opsUser, opsPass)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("status %d Content-Type %q", r.status, r.header.Get("Content-Type"))
		}
	})

	disabled := []struct {
		name string
		cfg  func(*handlers.Config)
	}{
		{"no ops user", func(c *handlers.Config) { c.OpsUser = "" }},
		{"no ops password", func(c *handlers.Config) { c.OpsPassword = "" }},
		{"no queues handler", func(c *handlers.Config) { c.Queues = nil }},
	}
	for _, tc := range disabled {
		t.Run(tc.name+": /ops is not served", func(t *testing.T) {
			a := start(t, func(s *setup) { tc.cfg(&s.cfg) })
			for _, path := range []string{"/ops/queues", "/ops/queues/", "/ops/queues/api/queues"} {
				// Credentials that would match an empty user or password
				// must not open anything either.
				r := get(t, a, path, "", opsPass)
				wantError(t, r, http.StatusNotFound, handlers.CodeNotFound)
				r = get(t, a, path, opsUser, "")
				wantError(t, r, http.StatusNotFound, handlers.CodeNotFound)
			}
		})
	}
}

// The request log names the status the client got, also when a handler
// answered by returning an error.
func TestRequestLogStatus(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	e := handlers.New(handlers.Config{Logger: log, OpsAccounts: accounts(t)}, nil, nil)
	cases := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusUnauthorized},
		{http.MethodGet, "/webhooks/hubspot", http.StatusMethodNotAllowed},
		{http.MethodGet, "/debug/pprof/heap", http.StatusUnauthorized},
		// requireAdmin answers a viewer by returning its error.
		{http.MethodGet, "/debug/pprof/heap", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			logs.Reset()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.status == http.StatusForbidden {
				req.SetBasicAuth(viewerName, viewerPass)
			}
			e.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("answered %d, want %d", rec.Code, tc.status)
			}
			var line struct {
				Msg    string `json:"msg"`
				Status int    `json:"status"`
			}
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if err := json.Unmarshal([]byte(l), &line); err == nil && line.Msg == "http request" {
					break
				}
			}
			if line.Msg != "http request" || line.Status != tc.status {
				t.Errorf("logged %+v, want status %d; log:\n%s", line, tc.status, logs.String())
			}
		})
	}
}
