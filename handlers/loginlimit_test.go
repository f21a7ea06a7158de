package handlers

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// fakeClock is the limiter's clock in these tests, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// Failures past the free ones cost a wait that doubles up to the cap; the
// wait runs out on the clock, the record after Forget, and a login that
// passes clears it.
func TestLoginBackoff(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	l := newLoginLimiter(LoginLimits{}, clock.now, nil)
	const key = "203.0.113.5"

	want := []time.Duration{0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 512 * time.Second,
		10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		if got := l.fail(key); got != w {
			t.Errorf("failure %d: wait %v, want %v", i+1, got, w)
		}
		if wait, suspect := l.state(key); wait != w || !suspect {
			t.Errorf("after failure %d: state %v, %v; want %v, true", i+1, wait, suspect, w)
		}
		clock.advance(w) // the guesser waits exactly as long as told
	}
	// A failure far beyond any sensible count stays at the cap.
	for range 100 {
		l.fail(key)
	}
	if wait, _ := l.state(key); wait != 10*time.Minute {
		t.Errorf("after 117 failures: wait %v, want the 10 min cap", wait)
	}

	clock.advance(10 * time.Minute)
	if wait, suspect := l.state(key); wait != 0 || !suspect {
		t.Errorf("after the wait: %v, %v; want may try, still suspect", wait, suspect)
	}
	clock.advance(DefaultLoginLimits.Forget)
	if wait, suspect := l.state(key); wait != 0 || suspect {
		t.Errorf("an hour after the last failure: %v, %v; want forgotten", wait, suspect)
	}
	if got := l.fail(key); got != 0 {
		t.Errorf("first failure after being forgotten: wait %v, want a free one", got)
	}

	for range 6 {
		l.fail(key)
	}
	l.succeed(key)
	if wait, suspect := l.state(key); wait != 0 || suspect {
		t.Errorf("after a login that passed: %v, %v; want a clean address", wait, suspect)
	}
}

// The address charged is the socket's peer, or Fly-Client-IP only behind
// Fly; IPv6 addresses count by their /64.
func TestClientAddrKey(t *testing.T) {
	cases := []struct {
		name      string
		remote    string
		fly       string // Fly-Client-IP, when set
		behindFly bool
		want      string
	}{
		{name: "IPv4 socket", remote: "203.0.113.5:40001", want: "203.0.113.5"},
		{name: "IPv6 socket by its /64", remote: "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", want: "2001:db8:1:2::/64"},
		{name: "another host of the same /64", remote: "[2001:db8:1:2::1]:443", want: "2001:db8:1:2::/64"},
		{name: "the next /64", remote: "[2001:db8:1:3::1]:443", want: "2001:db8:1:3::/64"},
		{name: "IPv4 mapped into IPv6", remote: "[::ffff:203.0.113.5]:1", want: "203.0.113.5"},
		{name: "a zone is dropped", remote: "[fe80::1%eth0]:1", want: "fe80::/64"},
		{name: "Fly's header away from Fly is the caller's word", remote: "203.0.113.5:1", fly: "198.51.100.9", want: "203.0.113.5"},
		{name: "Fly's header behind Fly", remote: "172.16.0.2:1", fly: "198.51.100.9", behindFly: true, want: "198.51.100.9"},
		{name: "an IPv6 caller behind Fly", remote: "172.16.0.2:1", fly: "2001:db8:9::42", behindFly: true, want: "2001:db8:9::/64"},
		{name: "a junk header behind Fly falls back to the socket", remote: "172.16.0.2:1", fly: "me, 1.2.3.4", behindFly: true, want: "172.16.0.2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ops", nil)
			r.RemoteAddr = tc.remote
			if tc.fly != "" {
				r.Header.Set("Fly-Client-IP", tc.fly)
			}
			if got := addrKey(clientAddr(r, tc.behindFly)); got != tc.want {
				t.Errorf("key %q, want %q", got, tc.want)
			}
		})
	}
}

// Past MaxAddresses the address whose last failure is oldest is forgotten,
// however many failures it had.
func TestLoginLimiterEviction(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	l := newLoginLimiter(LoginLimits{MaxAddresses: 3}, clock.now, nil)
	step := func(keys ...string) {
		for _, k := range keys {
			l.fail(k)
			clock.advance(time.Second)
		}
	}
	step("a", "a", "a", "b", "c")
	step("a") // a failed last now; b is the oldest
	step("d")
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, suspect := l.state(key); suspect != want {
			t.Errorf("%s remembered: %v, want %v", key, suspect, want)
		}
	}
	if len(l.records) != 3 || l.order.Len() != 3 {
		t.Errorf("%d records, %d in order; want 3", len(l.records), l.order.Len())
	}
}

// A limited address is logged once, not once per refused request, and
// warnings about many addresses are held to one a second, counting the
// ones held back.
func TestLoginWarnings(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	l := newLoginLimiter(LoginLimits{FreeFailures: 1}, clock.now, slog.New(slog.NewTextHandler(&buf, nil)))
	for range 50 {
		l.fail("203.0.113.5")
	}
	if n := strings.Count(buf.String(), "ops logins limited"); n != 1 {
		t.Fatalf("%d warnings for one address, want 1:\n%s", n, buf.String())
	}
	l.fail("198.51.100.1")
	l.fail("198.51.100.1") // limited within the same second: held back
	clock.advance(logGap)
	l.fail("198.51.100.2")
	l.fail("198.51.100.2")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "address=198.51.100.2") || !strings.Contains(lines[1], "warnings_suppressed=1") {
		t.Errorf("want a second line for 198.51.100.2 counting one held back:\n%s", buf.String())
	}
	clock.advance(logRepeat)
	l.fail("203.0.113.5")
	if n := strings.Count(buf.String(), "address=203.0.113.5"); n != 2 {
		t.Errorf("%d warnings for an address still guessing after %v, want 2", n, logRepeat)
	}
}

// A check's slot stays taken for holdFactor times the check's duration,
// while the caller has its answer at once.
func TestCheckGateHold(t *testing.T) {
	const check = 100 * time.Millisecond
	g := newCheckGate(1)
	if !g.acquire(t.Context(), laneClean) {
		t.Fatal("an idle gate refused")
	}
	start := time.Now()
	g.run(func() { time.Sleep(check) })
	if time.Since(start) > 2*check {
		t.Errorf("run kept the caller %v, want about the check's %v", time.Since(start), check)
	}
	if !g.acquire(t.Context(), laneClean) {
		t.Fatal("the slot was not given back")
	}
	// The slot cannot come back before the check and three times its time
	// have passed: a lower bound, whatever the machine's load.
	if held := time.Since(start); held < holdFactor*check {
		t.Errorf("slot free after %v, want at least %v", held, holdFactor*check)
	}
}

// waiting waits until lane of g has n waiters.
func waiting(t *testing.T, g *checkGate, lane, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		got := g.lanes[lane].waiters.Len()
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lane %d has %d waiters, want %d", lane, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A freed slot goes to a clean login before a failed address's that waited
// longer; a lane with its waiters full refuses at once, and a wait that
// runs out refuses.
func TestCheckGateOrder(t *testing.T) {
	g := newCheckGate(1)
	g.lanes[laneFailed].maxWaiters = 1
	if !g.acquire(t.Context(), laneClean) {
		t.Fatal("an idle gate refused")
	}
	got := make(chan int, 2)
	go func() {
		if g.acquire(t.Context(), laneFailed) {
			got <- laneFailed
		}
	}()
	waiting(t, g, laneFailed, 1)
	go func() {
		if g.acquire(t.Context(), laneClean) {
			got <- laneClean
		}
	}()
	waiting(t, g, laneClean, 1)

	start := time.Now()
	if g.acquire(t.Context(), laneFailed) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("a full lane: took a slot or waited %v, want a refusal at once", time.Since(start))
	}
	g.release()
	if first := <-got; first != laneClean {
		t.Errorf("lane %d served first, want the clean lane", first)
	}
	g.release()
	if second := <-got; second != laneFailed {
		t.Errorf("lane %d served second, want the failed lane", second)
	}

	g.lanes[laneFailed].wait = 50 * time.Millisecond
	if g.acquire(t.Context(), laneFailed) {
		t.Error("a wait that ran out took a slot")
	}
	waiting(t, g, laneFailed, 0)
	g.release()
	if !g.acquire(t.Context(), laneFailed) {
		t.Error("a free slot was refused to a failed address with nobody waiting")
	}
}

// An address that failed lately queues behind clean ones and is refused
// when its lane is full, while an admin at a clean address logs in. An
// address's second login, sent while its first is being checked, already
// queues as a failed address's.
func TestCheckLanesKeepAdminsApart(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("admin passphrase"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := newOpsAuth(Config{OpsAccounts: []OpsAccount{{Name: "alice", Role: RoleAdmin, Hash: hash}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(log)
	e.GET("/ops", func(c echo.Context) error { return c.String(http.StatusOK, string(roleOf(c))) }, a.middleware())
	login := func(remote, password string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/ops", nil)
		req.RemoteAddr = remote
		req.SetBasicAuth("alice", password)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const attacker, admin, newcomer = "203.0.113.5:1", "198.51.100.7:1", "192.0.2.9:1"
	if rec := login(attacker, "guess"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("first guess: %d, want 401", rec.Code)
	}
	waiting(t, a.checks, laneClean, 0)
	// As under a flood: every slot is taken and the failed lane is full of
	// guesses waiting.
	for a.checks.acquire(t.Context(), laneClean) {
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range a.checks.lanes[laneFailed].maxWaiters {
		go a.checks.acquire(ctx, laneFailed)
	}
	waiting(t, a.checks, laneFailed, a.checks.lanes[laneFailed].maxWaiters)

	start := time.Now()
	rec := login(attacker, "admin passphrase")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" || time.Since(start) > 500*time.Millisecond {
		t.Errorf("a failed address with its lane full: %d, Retry-After %q after %v; want 429 at once, 1 s",
			rec.Code, rec.Header().Get("Retry-After"), time.Since(start))
	}
	// A slot frees while the admin waits: the admin has it before any of
	// the guesses that waited longer.
	time.AfterFunc(100*time.Millisecond, a.checks.release)
	if rec := login(admin, "admin passphrase"); rec.Code != http.StatusOK || rec.Body.String() != "admin" {
		t.Errorf("the admin at a clean address: %d %s, want 200 as admin", rec.Code, rec.Body)
	}
	a.limiter.attempt(addrKey(netip.MustParseAddr("192.0.2.9")))
	if rec := login(newcomer, "guess"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a second login of an address being checked: %d, want 429 from the full lane", rec.Code)
	}
}
