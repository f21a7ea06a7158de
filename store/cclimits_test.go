package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// redisPair returns two clients on one private Redis database, as two
// processes of the bridge would have.
func redisPair(t *testing.T) (*redis.Client, *redis.Client) {
	t.Helper()
	opt, err := redis.ParseURL(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	a, b := redis.NewClient(opt), redis.NewClient(opt)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// clock is a settable time source shared by the limiters of one test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestCCLimitsDailyBudget spends a budget shared by two processes, checks
// that refused calls are not counted, and that the budget comes back at
// 00:00 UTC, when CC's own daily count starts again.
func TestCCLimitsDailyBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb := redisPair(t)
	const budget = 5
	// 20:59:59 in New York (EDT) is 00:59:59 UTC the next day: the UTC date, not
	// the local one, names the budget's day.
	ny := time.FixedZone("EDT", -4*3600)
	clk := &clock{now: time.Date(2026, 3, 10, 20, 59, 59, 0, ny)}
	a := store.NewCCLimits(ra, 1000, budget)
	b := store.NewCCLimits(rb, 1000, budget)
	a.SetClock(clk.Now)
	b.SetClock(clk.Now)
	wantReset := time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC)

	remaining := func(l *store.CCLimits) int {
		t.Helper()
		n, err := l.Remaining(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	used := func(l *store.CCLimits) int {
		t.Helper()
		n, err := l.Used(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a.Budget() != budget || remaining(a) != budget || used(b) != 0 {
		t.Fatalf("fresh limits: budget %d remaining %d used %d", a.Budget(), remaining(a), used(b))
	}

	steps := []struct {
		name          string
		l             *store.CCLimits
		wantExhausted bool
		wantUsed      int
	}{
		{"a: 1", a, false, 1},
		{"b: 2", b, false, 2},
		{"a: 3", a, false, 3},
		{"b: 4", b, false, 4},
		{"a: 5, the last", a, false, 5},
		{"b: refused", b, true, 5},
		{"a: refused", a, true, 5},
		{"b: refused again, still not counted", b, true, 5},
	}
	for _, st := range steps {
		err := st.l.Wait(ctx)
		var be *store.BudgetExhaustedError
		switch {
		case st.wantExhausted && !errors.As(err, &be):
			t.Fatalf("%s: Wait = %v, want a BudgetExhaustedError", st.name, err)
		case st.wantExhausted && (be.Budget != budget || !be.Reset.Equal(wantReset)):
			t.Errorf("%s: %+v, want budget %d resetting at %s", st.name, be, budget, wantReset)
		case !st.wantExhausted && err != nil:
			t.Fatalf("%s: Wait = %v", st.name, err)
		}
		// Both processes see the same count.
		if ua, ub := used(a), used(b); ua != st.wantUsed || ub != st.wantUsed {
			t.Errorf("%s: used %d / %d, want %d for both", st.name, ua, ub, st.wantUsed)
		}
		if r := remaining(b); r != budget-st.wantUsed {
			t.Errorf("%s: remaining %d, want %d", st.name, r, budget-st.wantUsed)
		}
	}

	// A second before midnight UTC the day is still spent.
	clk.Set(wantReset.Add(-time.Second))
	if err := a.Wait(ctx); !errors.As(err, new(*store.BudgetExhaustedError)) {
		t.Errorf("23:59:59 UTC: Wait = %v, want the budget still spent", err)
	}
	// At 00:00 UTC the budget is whole again, for both.
	clk.Set(wantReset)
	if remaining(a) != budget || used(b) != 0 {
		t.Errorf("00:00 UTC: remaining %d used %d, want %d and 0", remaining(a), used(b), budget)
	}
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("00:00 UTC: Wait = %v", err)
	}
	if used(a) != 1 {
		t.Errorf("after one call on the new day: used %d, want 1", used(a))
	}
}

// TestCCLimitsRateSharedAcrossProcesses: 20 calls at 4 a second from two
// processes together cannot finish sooner than the shared limit allows.
// The shared limiter spaces calls 250 ms apart (burst 1), so the 20 take at
// least 4.75 s; the bound asserted, 4 s, holds whatever the burst. Only
// this lower bound is a behaviour of the limiter; how much longer it takes
// depends on the machine.
func TestCCLimitsRateSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	ra, rb := redisPair(t)
	limits := []*store.CCLimits{store.NewCCLimits(ra, 4, 1000), store.NewCCLimits(rb, 4, 1000)}
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			if err := limits[i%2].Wait(ctx); err != nil {
				t.Errorf("Wait: %v", err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		t.FailNow()
	}
	if elapsed < 3900*time.Millisecond {
		t.Errorf("20 calls at 4/s across two processes took %s, want at least 4s", elapsed.Round(time.Millisecond))
	}
	if n, err := limits[0].Used(ctx); err != nil || n != 20 {
		t.Errorf("used %d (%v), want 20", n, err)
	}
}

// TestCCLimitsCancelledWaitIsNotCounted: a call whose context ends while it
// waits for a rate slot is never made, so it must not spend the budget.
func TestCCLimitsCancelledWaitIsNotCounted(t *testing.T) {
	t.Parallel()
	ra, _ := redisPair(t)
	l := store.NewCCLimits(ra, 1, 10)
	ctx := context.Background()
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The next slot is a second away.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the deadline", err)
	}
	if n, err := l.Used(ctx); err != nil || n != 1 {
		t.Errorf("used %d (%v), want 1: the abandoned call was counted", n, err)
	}
}

// TestTokenEndpointLimiterSharedAcrossProcesses: CC's token endpoint allows
// one request a second per app, so calls from two processes, each with two
// goroutines at once, must come out of Wait at least a second apart; the
// limiter spaces them 1.1 s, and the bound below leaves 100 ms for the
// round trips to Redis. Four calls need 3.3 s; 5 s bounds the whole, so
// that a waiter that overslept its slot shows.
func TestTokenEndpointLimiterSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	ra, rb := redisPair(t)
	limiters := []*store.TokenEndpointLimiter{store.NewTokenEndpointLimiter(ra), store.NewTokenEndpointLimiter(rb)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		times []time.Time
		wg    sync.WaitGroup
	)
	start := time.Now()
	for g := range 4 {
		wg.Go(func() {
			if err := limiters[g%2].Wait(ctx); err != nil {
				t.Errorf("Wait: %v", err)
				return
			}
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(times) != 4 {
		t.FailNow()
	}
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < time.Second {
			t.Errorf("calls %d and %d were let through %s apart, want at least 1s", i, i+1, gap.Round(time.Millisecond))
		}
	}
	if elapsed > 5*time.Second {
		t.Errorf("4 calls took %s, want at most 5s", elapsed.Round(time.Millisecond))
	}
}

// TestCCLimitsCallsByHour counts the calls of two processes in the UTC hour
// each was made, reads them back with zeros for quiet hours, leaves out a
// call the budget refused, and keeps each hour's count for 49 hours.
func TestCCLimitsCallsByHour(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb := redisPair(t)
	clk := &clock{}
	a, b := store.NewCCLimits(ra, 1000, 4), store.NewCCLimits(rb, 1000, 4)
	a.SetClock(clk.Now)
	b.SetClock(clk.Now)
	// 22:30 in New York (EDT) is 02:30 UTC: the UTC hour names the count.
	ny := time.FixedZone("EDT", -4*3600)
	calls := []struct {
		at      time.Time
		l       *store.CCLimits
		refused bool
	}{
		{time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), a, false},
		{time.Date(2026, 3, 10, 0, 59, 59, 999e6, time.UTC), b, false},
		{time.Date(2026, 3, 9, 22, 30, 0, 0, ny), a, false},
		{time.Date(2026, 3, 10, 2, 31, 0, 0, time.UTC), b, false},
		{time.Date(2026, 3, 10, 2, 32, 0, 0, time.UTC), a, true}, // the day's fifth call: over the budget of 4
	}
	for _, c := range calls {
		clk.Set(c.at)
		err := c.l.Wait(ctx)
		var exhausted *store.BudgetExhaustedError
		if c.refused != errors.As(err, &exhausted) || (!c.refused && err != nil) {
			t.Fatalf("call at %v: %v, want refused %v", c.at, err, c.refused)
		}
	}
	tests := []struct {
		name  string
		from  time.Time
		hours int
		want  []int
	}{
		{"the hours with calls and between", time.Date(2026, 3, 10, 0, 15, 0, 0, time.UTC), 4, []int{2, 0, 2, 0}},
		{"from another zone's clock", time.Date(2026, 3, 9, 21, 0, 0, 0, ny), 2, []int{0, 2}},
		{"before any call", time.Date(2026, 3, 9, 22, 0, 0, 0, time.UTC), 2, []int{0, 0}},
		{"no hours", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.CallsByHour(ctx, tc.from, tc.hours)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("CallsByHour(%v, %d) = %v, %v; want %v", tc.from, tc.hours, got, err, tc.want)
			}
		})
	}
	ttl, err := ra.TTL(ctx, "hs2cc:cc:calls-hour:2026-03-10T02").Result()
	if err != nil || ttl <= 48*time.Hour || ttl > 49*time.Hour {
		t.Errorf("the hour's count lives %v (%v), want just under 49h", ttl, err)
	}
}
