package handlers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// Role is what an ops login may do.
type Role string

// Roles of ops logins. A viewer reads: /ops, /ops/status.json and a
// read-only Asynqmon. An admin also changes things: the full Asynqmon and
// /oauth/connect.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
)

// CodeForbidden is the error code of a login whose role may not do what it
// asked, such as a viewer at /oauth/connect.
const CodeForbidden = "forbidden"

// OpsAccount is one named ops login whose password is kept only as a
// bcrypt hash, so that the configuration holds nothing to log in with.
type OpsAccount struct {
	Name string
	Role Role
	Hash []byte
}

// roleKey is where the ops middleware leaves the caller's role in the Echo
// context for the handlers behind it.
const roleKey = "hs2cc.ops.role"

// opsAuth checks ops logins: the simple admin login (a user and a password
// in plain text) and any number of accounts with bcrypt hashes.
type opsAuth struct {
	user, password []byte // the simple admin login; both empty when off
	accounts       []OpsAccount
	// dummy is what an unknown user's password is compared with, so that an
	// unknown name costs the same bcrypt work as a known one.
	dummy []byte

	// Basic auth sends the login with every request, and Asynqmon polls
	// its API every few seconds, so a login that passed is remembered for a
	// while instead of costing a bcrypt comparison each time. Only logins
	// that passed are kept, so the shortcut tells a caller nothing its 200
	// does not; they are kept as MACs under a key of this process alone.
	macKey   []byte
	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedLogin

	// Failed logins are limited per client address, and the checks run in
	// few slots, addresses that failed lately queueing behind the rest, so
	// that a guesser neither takes the CPU from the webhook nor the check
	// slot from an admin at another address.
	behindFly bool
	limiter   *loginLimiter
	checks    *checkGate
	failures  loginFailures
}

// loginFailures counts failed logins by reason; nil counts nothing.
type loginFailures interface{ inc(reason string) }

// verifiedLogin is a login that passed, and until when it is trusted.
type verifiedLogin struct {
	role  Role
	until time.Time
}

// Bounds of the remembered logins: a few people use the ops pages at a
// time, and a login is verified again every few minutes.
const (
	verifiedTTL = 5 * time.Minute
	verifiedMax = 64
)

// newOpsAuth returns nil when no login is configured at all, so that the
// routes it would guard are left out rather than served open.
func newOpsAuth(cfg Config) (*opsAuth, error) {
	a := &opsAuth{accounts: cfg.OpsAccounts, verified: map[[sha256.Size]byte]verifiedLogin{}, macKey: make([]byte, 32),
		behindFly: cfg.BehindFly, limiter: newLoginLimiter(cfg.LoginLimits, time.Now, cfg.Logger), checks: newCheckGate(defaultSlots())}
	if cfg.WebhookMetrics != nil {
		a.failures = cfg.WebhookMetrics
	}
	if cfg.OpsUser != "" && cfg.OpsPassword != "" {
		if _, ok := PasswordHashCost(cfg.OpsPassword); ok {
			// A hashed simple login is an admin account like any other,
			// checked by bcrypt alongside the named ones.
			a.accounts = append([]OpsAccount{{Name: cfg.OpsUser, Role: RoleAdmin, Hash: []byte(cfg.OpsPassword)}}, a.accounts...)
		} else {
			a.user, a.password = []byte(cfg.OpsUser), []byte(cfg.OpsPassword)
		}
	}
	if a.user == nil && len(a.accounts) == 0 {
		return nil, nil
	}
	if _, err := rand.Read(a.macKey); err != nil {
		return nil, err
	}
	if len(a.accounts) > 0 {
		// The dummy has the highest cost among the real hashes: when every
		// account uses one cost, as a single tool makes them, an unknown
		// name takes exactly as long as a known one.
		cost := bcrypt.MinCost
		for _, acc := range a.accounts {
			if c, err := bcrypt.Cost(acc.Hash); err == nil && c > cost {
				cost = c
			}
		}
		dummy, err := bcrypt.GenerateFromPassword([]byte("hs2cc: no such ops user"), cost)
		if err != nil {
			return nil, err
		}
		a.dummy = dummy
	}
	return a, nil
}

// digest makes a fixed-length stand-in for a secret, so that a constant-time
// comparison of two digests reveals not even the secret's length.
func digest(b []byte) []byte {
	d := sha256.Sum256(b)
	return d[:]
}

// remembered returns the role of a login that passed lately, and the key
// under which remember keeps it.
func (a *opsAuth) remembered(user, password string) (Role, bool, [sha256.Size]byte) {
	mac := hmac.New(sha256.New, a.macKey)
	// The user's length first, so that no two logins share a MAC input.
	fmt.Fprintf(mac, "%d:%s%s", len(user), user, password)
	var key [sha256.Size]byte
	mac.Sum(key[:0])
	a.mu.Lock()
	v, ok := a.verified[key]
	a.mu.Unlock()
	if ok && time.Now().Before(v.until) {
		return v.role, true, key
	}
	return "", false, key
}

// remember keeps a login that passed for verifiedTTL.
func (a *opsAuth) remember(key [sha256.Size]byte, role Role) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.verified) >= verifiedMax {
		for k, v := range a.verified {
			if !now.Before(v.until) {
				delete(a.verified, k)
			}
		}
		if len(a.verified) >= verifiedMax {
			// Still full of live logins: start afresh rather than grow.
			clear(a.verified)
		}
	}
	a.verified[key] = verifiedLogin{role: role, until: now.Add(verifiedTTL)}
}

// verify returns the role of the login, or false. It compares the name with
// every configured one in constant time and always runs one bcrypt
// comparison when accounts exist (against the dummy for an unknown name),
// so that timing reveals neither which names exist nor which part was wrong.
func (a *opsAuth) verify(user, password string) (Role, bool) {
	u, p := digest([]byte(user)), digest([]byte(password))
	simple := 0
	if a.user != nil {
		simple = subtle.ConstantTimeCompare(u, digest(a.user)) & subtle.ConstantTimeCompare(p, digest(a.password))
	}
	if len(a.accounts) == 0 {
		return RoleAdmin, simple == 1
	}
	found := -1
	for i, acc := range a.accounts {
		// Every name is compared, whichever matches, and the index is
		// chosen without a branch on the comparison.
		eq := subtle.ConstantTimeCompare(u, digest([]byte(acc.Name)))
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	hash := a.dummy
	if found >= 0 {
		hash = a.accounts[found].Hash
	}
	hashed := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	switch {
	case simple == 1:
		return RoleAdmin, true
	case found >= 0 && hashed:
		return a.accounts[found].Role, true
	}
	return "", false
}

// middleware asks for basic auth and leaves the role in the context. A
// login is charged to its client address: one that failed too often waits
// out its back-off before any check, and a check needs a free slot; either
// refusal is a 429 with Retry-After and costs no bcrypt work.
func (a *opsAuth) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			user, password, ok := c.Request().BasicAuth()
			if !ok {
				return a.challenge(c)
			}
			key := addrKey(clientAddr(c.Request(), a.behindFly))
			wait, suspect := a.limiter.state(key)
			if wait > 0 {
				return a.refuse(c, loginLimited, wait)
			}
			role, ok, mac := a.remembered(user, password)
			if !ok {
				lane := laneClean
				if suspect {
					lane = laneFailed
				}
				a.limiter.attempt(key)
				if !a.checks.acquire(c.Request().Context(), lane) {
					return a.refuse(c, loginBusy, time.Second)
				}
				a.checks.run(func() { role, ok = a.verify(user, password) })
				if !ok {
					a.count(loginBadLogin)
					a.limiter.fail(key)
					return a.challenge(c)
				}
				a.remember(mac, role)
			}
			a.limiter.succeed(key)
			c.Set(roleKey, role)
			return next(c)
		}
	}
}

// challenge is the 401 that makes a browser ask for the login.
func (a *opsAuth) challenge(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="hs2cc ops"`)
	return newError(http.StatusUnauthorized, CodeUnauthorized, "an ops login is required", nil)
}

// refuse answers a login that may not be checked now, saying when to try
// again in whole seconds, rounded up.
func (a *opsAuth) refuse(c echo.Context, reason string, wait time.Duration) error {
	a.count(reason)
	c.Response().Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	return tooManyLogins()
}

func (a *opsAuth) count(reason string) {
	if a.failures != nil {
		a.failures.inc(reason)
	}
}

// PasswordHashCost returns the cost of a bcrypt hash ($2a$, $2b$ or $2y$,
// 60 characters), and false for anything else, which an ops password is
// then taken to be in plain text.
func PasswordHashCost(s string) (int, bool) {
	if len(s) != 60 || !(strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")) {
		return 0, false
	}
	cost, err := bcrypt.Cost([]byte(s))
	return cost, err == nil
}

// roleOf is the role the ops middleware found; "" where it did not run.
func roleOf(c echo.Context) Role {
	r, _ := c.Get(roleKey).(Role)
	return r
}

// requireAdmin refuses every role but admin. It runs after the ops
// middleware, so a caller without a login never gets this far.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if roleOf(c) != RoleAdmin {
			return newError(http.StatusForbidden, CodeForbidden, "this needs an ops admin login", nil)
		}
		return next(c)
	}
}

// queuesByRole serves the full Asynqmon to admins and the read-only one to
// viewers, on the same path. A role with no handler is refused rather than
// given the other one.
func queuesByRole(full, readOnly http.Handler) echo.HandlerFunc {
	var fullH, roH echo.HandlerFunc
	if full != nil {
		fullH = echo.WrapHandler(full)
	}
	if readOnly != nil {
		roH = echo.WrapHandler(readOnly)
	}
	return func(c echo.Context) error {
		var h echo.HandlerFunc
		switch roleOf(c) {
		case RoleAdmin:
			h = fullH
		case RoleViewer:
			h = roH
		}
		if h == nil {
			return newError(http.StatusForbidden, CodeForbidden, "no queue view is configured for this login's role", nil)
		}
		return h(c)
	}
}

// crossOrigin refuses a state-changing request that a browser sent from
// another site: the browser adds the basic-auth login to any request to
// this host, so without this check a page elsewhere could pause a queue or
// delete tasks through an admin's browser.
func crossOrigin() echo.MiddlewareFunc {
	cop := http.NewCrossOriginProtection()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := cop.Check(c.Request()); err != nil {
				return newError(http.StatusForbidden, CodeForbidden, "cross-origin request refused", err)
			}
			return next(c)
		}
	}
}
