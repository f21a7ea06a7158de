package handlers_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/handlers"
)

// loginStep is one request to /ops/status.json from an address.
type loginStep struct {
	remote     string // the socket's peer
	fly        string // Fly-Client-IP, when set
	user, pass string
	status     int
	retryAfter string // Retry-After of a 429
}

// Failed logins are charged to their client address: past the free ones the
// address is answered 429 with Retry-After, even with the right password,
// while other addresses log in; an unknown name counts like a wrong
// password; behind Fly the address is Fly-Client-IP's, elsewhere that
// header changes nothing. The metric counts every refusal by reason, and
// the log names a limited address once.
func TestOpsLoginLimit(t *testing.T) {
	const attacker, admin = "203.0.113.5:4000", "198.51.100.7:5000"
	limited := func(remote, fly string) loginStep {
		return loginStep{remote: remote, fly: fly, user: opsUser, pass: opsPass, status: http.StatusTooManyRequests, retryAfter: "60"}
	}
	wrong := func(remote, fly, user string) loginStep {
		return loginStep{remote: remote, fly: fly, user: user, pass: "guess", status: http.StatusUnauthorized}
	}
	right := func(remote, fly string) loginStep {
		return loginStep{remote: remote, fly: fly, user: opsUser, pass: opsPass, status: http.StatusOK}
	}
	cases := []struct {
		name      string
		behindFly bool
		steps     []loginStep
		// wantCounts are hs2cc_ops_login_failures_total by reason.
		bad, limited float64
	}{
		{
			name: "an address that keeps failing waits, another does not",
			steps: []loginStep{
				wrong(attacker, "", opsUser), wrong(attacker, "", "nobody"), wrong(attacker, "", adminName),
				limited(attacker, ""), limited(attacker, ""),
				right(admin, ""),
			},
			bad: 3, limited: 2,
		},
		{
			name: "a login that passes clears the failures",
			steps: []loginStep{
				wrong(attacker, "", opsUser), wrong(attacker, "", opsUser), right(attacker, ""),
				wrong(attacker, "", opsUser), wrong(attacker, "", opsUser), right(attacker, ""),
			},
			bad: 4,
		},
		{
			name: "away from Fly a forged Fly-Client-IP is ignored",
			steps: []loginStep{
				wrong(attacker, "10.0.0.1", opsUser), wrong(attacker, "10.0.0.2", opsUser), wrong(attacker, "10.0.0.3", opsUser),
				limited(attacker, "10.0.0.4"),
			},
			bad: 3, limited: 1,
		},
		{
			name:      "behind Fly each caller is its Fly-Client-IP",
			behindFly: true,
			steps: []loginStep{
				wrong(attacker, "192.0.2.1", opsUser), wrong(attacker, "192.0.2.1", opsUser), wrong(attacker, "192.0.2.1", opsUser),
				limited(attacker, "192.0.2.1"),
				right(attacker, "192.0.2.2"),
			},
			bad: 3, limited: 1,
		},
		{
			name: "an IPv6 guesser cannot escape by changing address in its /64",
			steps: []loginStep{
				wrong("[2001:db8:5:6::1]:1", "", opsUser), wrong("[2001:db8:5:6::2]:1", "", opsUser), wrong("[2001:db8:5:6::3]:1", "", opsUser),
				limited("[2001:db8:5:6:ffff::9]:1", ""),
				right("[2001:db8:5:7::1]:1", ""),
			},
			bad: 3, limited: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := handlers.NewMetrics(reg)
			logs := &logBuffer{}
			e := handlers.New(handlers.Config{
				OpsUser: opsUser, OpsPassword: opsPass, OpsAccounts: accounts(t), Ops: newFakeOps(),
				Now: func() time.Time { return opsNow }, Logger: slog.New(slog.NewTextHandler(logs, nil)),
				WebhookMetrics: m, BehindFly: tc.behindFly,
				// A wait of a minute outlasts the test, so that every
				// refusal is certain whatever the machine's speed.
				LoginLimits: handlers.LoginLimits{FreeFailures: 2, FirstBackoff: time.Minute},
			}, nil, nil)
			for i, s := range tc.steps {
				req := httptest.NewRequest(http.MethodGet, "/ops/status.json", nil)
				req.RemoteAddr = s.remote
				if s.fly != "" {
					req.Header.Set("Fly-Client-IP", s.fly)
				}
				req.SetBasicAuth(s.user, s.pass)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != s.status {
					t.Fatalf("step %d (%s as %s): status %d, want %d: %s", i+1, s.remote, s.user, rec.Code, s.status, rec.Body)
				}
				if s.status == http.StatusTooManyRequests {
					wantError(t, reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, s.status, handlers.CodeTooManyLogins)
					if got := rec.Header().Get("Retry-After"); got != s.retryAfter {
						t.Errorf("step %d: Retry-After %q, want %q", i+1, got, s.retryAfter)
					}
				}
			}
			for reason, want := range map[string]float64{"bad_login": tc.bad, "limited": tc.limited, "busy": 0} {
				if got := loginFailures(t, reg, reason); got != want {
					t.Errorf("hs2cc_ops_login_failures_total{reason=%q} = %v, want %v", reason, got, want)
				}
			}
			if n := strings.Count(logs.String(), "ops logins limited"); (tc.limited > 0) != (n == 1) {
				t.Errorf("%d warnings about limited addresses, want %v:\n%s", n, tc.limited > 0, logs)
			}
		})
	}
}

// loginFailures reads hs2cc_ops_login_failures_total{reason} from reg.
func loginFailures(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "hs2cc_ops_login_failures_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no hs2cc_ops_login_failures_total{reason=%q}", reason)
	return 0
}

// HS2CC_OPS_PASSWORD may be a bcrypt hash: the simple admin then logs in
// with what was hashed, and the hash itself is no password.
func TestOpsPasswordAsHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(opsPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a := startPprof(t, func(c *handlers.Config) { c.OpsPassword = string(hash) })
	if r := a.as(t, http.MethodGet, "/ops/status.json", opsUser, opsPass); r.status != http.StatusOK {
		t.Errorf("the hashed password: status %d, want 200: %s", r.status, r.body)
	}
	if r := a.as(t, http.MethodGet, "/debug/pprof/cmdline", opsUser, opsPass); r.status != http.StatusOK {
		t.Errorf("the hashed simple login is an admin: status %d, want 200: %s", r.status, r.body)
	}
	wantError(t, a.as(t, http.MethodGet, "/ops/status.json", opsUser, string(hash)), http.StatusUnauthorized, handlers.CodeUnauthorized)
}
