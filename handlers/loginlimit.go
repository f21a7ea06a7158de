package handlers

import (
	"container/list"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
)

// LoginLimits bound what failed ops logins may cost. A zero field takes the
// default of DefaultLoginLimits.
type LoginLimits struct {
	// FreeFailures is how many failed logins an address may make before it
	// must wait between tries.
	FreeFailures int
	// FirstBackoff is the wait after the first failure past the free ones;
	// it doubles with every further failure, up to MaxBackoff.
	FirstBackoff, MaxBackoff time.Duration
	// Forget is how long after its last failure (or check) an address
	// starts afresh.
	Forget time.Duration
	// MaxAddresses bounds the addresses remembered; past it the one whose
	// last failure is oldest is forgotten.
	MaxAddresses int
}

// DefaultLoginLimits let a person mistype a few times and hold a guesser to
// one try in ten minutes within half an hour.
var DefaultLoginLimits = LoginLimits{
	FreeFailures: 5,
	FirstBackoff: time.Second,
	MaxBackoff:   10 * time.Minute,
	Forget:       time.Hour,
	MaxAddresses: 10_000,
}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.FreeFailures > 0 {
		d.FreeFailures = l.FreeFailures
	}
	if l.FirstBackoff > 0 {
		d.FirstBackoff = l.FirstBackoff
	}
	if l.MaxBackoff > 0 {
		d.MaxBackoff = l.MaxBackoff
	}
	if l.Forget > 0 {
		d.Forget = l.Forget
	}
	if l.MaxAddresses > 0 {
		d.MaxAddresses = l.MaxAddresses
	}
	return d
}

// Reasons of hs2cc_ops_login_failures_total.
const (
	loginBadLogin = "bad_login" // a check ran and the login was wrong
	loginLimited  = "limited"   // the address was waiting out its back-off
	loginBusy     = "busy"      // no check slot was free
)

// clientAddr is the address a login is charged to. Behind Fly, the socket's
// peer is Fly's proxy and Fly-Client-IP names the caller (Fly's proxy sets
// it and overwrites what a client sends); anywhere else every header is the
// caller's own words, so only the socket counts.
func clientAddr(r *http.Request, behindFly bool) netip.Addr {
	if behindFly {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("Fly-Client-IP"))); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

// addrKey groups addresses the way one party holds them: an IPv4 address
// alone, an IPv6 address by its /64, since a single host is commonly
// given a whole /64 and could otherwise change address at every try.
func addrKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// failRecord is what the limiter remembers of one address.
type failRecord struct {
	key      string
	failures int
	last     time.Time // the last failure or check
	until    time.Time // no check before this
	logged   time.Time // the last warning about this address
	elem     *list.Element
}

// loginLimiter counts failed logins per address and makes an address that
// failed too often wait, twice as long after every further failure. The
// table is bounded: past MaxAddresses the address that failed longest ago
// is forgotten.
type loginLimiter struct {
	limits LoginLimits
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	records map[string]*failRecord
	order   *list.List // most recent failure first
	// lastLog and suppressed rate-limit the warnings across addresses, so
	// that an attack from many addresses cannot flood the log either.
	lastLog    time.Time
	suppressed int
}

// Bounds of the limiter's warnings: one per address per logRepeat, and at
// most one a second in all.
const (
	logRepeat = 10 * time.Minute
	logGap    = time.Second
)

func newLoginLimiter(limits LoginLimits, now func() time.Time, log *slog.Logger) *loginLimiter {
	return &loginLimiter{limits: limits.withDefaults(), now: now, log: log,
		records: map[string]*failRecord{}, order: list.New()}
}

// lookup returns key's record, forgetting it when it is stale. The caller
// holds mu.
func (l *loginLimiter) lookup(key string, now time.Time) *failRecord {
	r := l.records[key]
	if r != nil && now.Sub(r.last) >= l.limits.Forget {
		l.remove(r)
		return nil
	}
	return r
}

func (l *loginLimiter) remove(r *failRecord) {
	l.order.Remove(r.elem)
	delete(l.records, r.key)
}

// state says how long key must still wait (zero when it may try) and
// whether it failed lately, which decides its check lane.
func (l *loginLimiter) state(key string) (wait time.Duration, suspect bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.lookup(key, now)
	if r == nil {
		return 0, false
	}
	return max(r.until.Sub(now), 0), true
}

// attempt notes that key is about to be checked, so that its further
// logins take the lane of addresses that failed lately until one passes:
// an address gets one check in the clean lane, however many it sends at
// once.
func (l *loginLimiter) attempt(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(key, l.now())
}

// record returns key's record, making one when there is none, and marks it
// as the most recent. The caller holds mu.
func (l *loginLimiter) record(key string, now time.Time) *failRecord {
	r := l.lookup(key, now)
	if r == nil {
		if len(l.records) >= l.limits.MaxAddresses {
			l.remove(l.order.Back().Value.(*failRecord))
		}
		r = &failRecord{key: key}
		r.elem = l.order.PushFront(r)
		l.records[key] = r
	} else {
		l.order.MoveToFront(r.elem)
	}
	r.last = now
	return r
}

// fail counts a failed login of key and returns the wait it now owes.
func (l *loginLimiter) fail(key string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.record(key, now)
	r.failures++
	over := r.failures - l.limits.FreeFailures
	if over <= 0 {
		return 0
	}
	wait := l.limits.MaxBackoff
	// The shift is bounded so that it cannot overflow; by then the cap
	// has long applied.
	if over <= 30 {
		wait = min(l.limits.FirstBackoff<<(over-1), l.limits.MaxBackoff)
	}
	r.until = now.Add(wait)
	l.warn(r, now, wait)
	return wait
}

// warn logs that key is limited, at most once per logRepeat for an address
// and once per logGap in all, saying how many warnings it held back. The
// caller holds mu.
func (l *loginLimiter) warn(r *failRecord, now time.Time, wait time.Duration) {
	if l.log == nil || (!r.logged.IsZero() && now.Sub(r.logged) < logRepeat) {
		return
	}
	if now.Sub(l.lastLog) < logGap {
		l.suppressed++
		return
	}
	l.log.Warn("ops logins limited for an address after failed logins",
		"address", r.key, "failures", r.failures, "retry_after", wait, "warnings_suppressed", l.suppressed)
	r.logged, l.lastLog, l.suppressed = now, now, 0
}

// succeed forgets key's failures: whoever is there knows a login.
func (l *loginLimiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.records[key]; r != nil {
		l.remove(r)
	}
}

// checkGate hands out the few slots in which password checks run. A slot
// stays taken for holdFactor times as long as its check took, so that
// checks never keep more than 1/holdFactor of a core per slot busy with
// bcrypt, however many logins arrive. Logins wait for a slot in one of two
// lanes: addresses with no recent failure first, then the others, so that
// a guesser at one address queues behind an admin at another rather than
// in front; each lane bounds its waiters and their wait.
type checkGate struct {
	mu    sync.Mutex
	free  int
	lanes [2]gateLane
}

// Lanes of the checkGate, in the order they are served.
const (
	laneClean  = 0
	laneFailed = 1
)

// gateLane is one lane's waiters, first come first served.
type gateLane struct {
	wait       time.Duration // longest wait for a slot
	maxWaiters int
	waiters    list.List // of chan struct{}, closed when given a slot
}

// holdFactor is how many times a check's own time its slot stays taken.
const holdFactor = 4

func newCheckGate(slots int) *checkGate {
	g := &checkGate{free: slots}
	// A login may wait a little for a slot, so that a person who retries
	// at once is not refused for their own last check; few may wait, and
	// an address that failed lately waits less, so that a flood is refused
	// rather than piled up.
	g.lanes[laneClean].wait, g.lanes[laneClean].maxWaiters = 2*time.Second, 8
	g.lanes[laneFailed].wait, g.lanes[laneFailed].maxWaiters = time.Second, 4
	return g
}

// defaultSlots is how many checks run at once: one per two cores, at least
// one. A slot keeps at most a quarter of a core busy, so checks take at
// most an eighth of the CPU, and the webhook keeps the rest.
func defaultSlots() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// acquire takes a slot for a login of lane, waiting up to the lane's wait
// when the lane has room for another waiter.
func (g *checkGate) acquire(ctx context.Context, lane int) bool {
	g.mu.Lock()
	// A free slot goes to a clean login at once, and to a failed address's
	// only when no clean login waits for it.
	if g.free > 0 && (lane == laneClean || g.lanes[laneClean].waiters.Len() == 0) {
		g.free--
		g.mu.Unlock()
		return true
	}
	l := &g.lanes[lane]
	if l.waiters.Len() >= l.maxWaiters {
		g.mu.Unlock()
		return false
	}
	granted := make(chan struct{})
	elem := l.waiters.PushBack(granted)
	g.mu.Unlock()

	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case <-granted:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-granted:
		// Given a slot as the wait ran out: it is taken, so it is used.
		return true
	default:
		l.waiters.Remove(elem)
		return false
	}
}

// release gives a slot to the first waiter of the first lane that has one,
// or back to the pool.
func (g *checkGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.lanes {
		if front := g.lanes[i].waiters.Front(); front != nil {
			g.lanes[i].waiters.Remove(front)
			close(front.Value.(chan struct{}))
			return
		}
	}
	g.free++
}

// run runs check in a slot the caller acquired and gives the slot back
// holdFactor times the check's duration later; the caller has its answer
// at once.
func (g *checkGate) run(check func()) {
	start := time.Now()
	check()
	time.AfterFunc((holdFactor-1)*time.Since(start), g.release)
}
