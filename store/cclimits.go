package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// BudgetExhaustedError means today's CC call budget is spent; CC work waits
// until Reset, 00:00 UTC, when CC's own daily count starts again.
type BudgetExhaustedError struct {
	Budget int
	Reset  time.Time
}

func (e *BudgetExhaustedError) Error() string {
	return fmt.Sprintf("store: today's budget of %d CC calls is spent; it resets at %s", e.Budget, e.Reset.Format(time.RFC3339))
}

// CCLimits keeps every process of the bridge inside CC's limits together:
// CC counts calls per application, not per process. The per-second rate is
// a GCRA limiter in Redis (go-redis/redis_rate), the daily budget a counter
// per UTC day.
type CCLimits struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	budget  int
	now     func() time.Time
}

const (
	keyCCRate        = "hs2cc:cc:rate"
	keyCCCallsPrefix = "hs2cc:cc:calls:"
)

// NewCCLimits shares perSecond calls a second and budget calls a UTC day
// across every client built with it.
func NewCCLimits(rdb redis.UniversalClient, perSecond, budget int) *CCLimits {
	// Burst 1 spaces calls evenly (every 250 ms at 4/s): CC's own bucket
	// and ours never see the same instant, so a burst of four that looks
	// fine here can meet a bucket that has not quite refilled there.
	limit := redis_rate.Limit{Rate: perSecond, Burst: 1, Period: time.Second}
	return &CCLimits{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), limit: limit, budget: budget, now: time.Now}
}

// SetClock replaces the clock that decides the UTC day; tests use it.
func (l *CCLimits) SetClock(now func() time.Time) { l.now = now }

// Budget is the daily call budget.
func (l *CCLimits) Budget() int { return l.budget }

func (l *CCLimits) dayKey(t time.Time) string { return keyCCCallsPrefix + t.UTC().Format("2006-01-02") }

func nextUTCMidnight(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
}

// Wait takes one call from today's budget, then waits for a slot in the
// per-second rate. A call refused for the budget is not counted.
func (l *CCLimits) Wait(ctx context.Context) error {
	now := l.now()
	over, err := takeCall(ctx, l.rdb, l.dayKey(now), l.budget, l.limiter, keyCCRate, l.limit)
	if err != nil {
		return fmt.Errorf("store: CC call: %w", err)
	}
	if over {
		return &BudgetExhaustedError{Budget: l.budget, Reset: nextUTCMidnight(now)}
	}
	l.countHour(ctx)
	return nil
}

// keyCCCallsHourPrefix starts the key of one UTC hour's count of CC calls,
// which /ops charts; callsHourTTL keeps 48 whole hours and the one under way.
const (
	keyCCCallsHourPrefix = "hs2cc:cc:calls-hour:"
	callsHourTTL         = 49 * time.Hour
)

func hourKey(t time.Time) string { return keyCCCallsHourPrefix + t.UTC().Format("2006-01-02T15") }

// countHour counts a call about to be made in its hour. It is counted only
// once the call has its slot, so it never needs undoing; a count that fails
// is lost from the chart, but does not hold the call back, since the day's
// count that keeps the budget was already taken.
func (l *CCLimits) countHour(ctx context.Context) {
	key := hourKey(l.now())
	pipe := l.rdb.TxPipeline()
	pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, callsHourTTL)
	_, _ = pipe.Exec(ctx)
}

// CallsByHour returns the CC calls made in each of hours UTC hours from the
// hour of from; an hour without calls, or older than its key's life, is 0.
func (l *CCLimits) CallsByHour(ctx context.Context, from time.Time, hours int) ([]int, error) {
	if hours <= 0 {
		return nil, nil
	}
	start := from.UTC().Truncate(time.Hour)
	keys := make([]string, hours)
	for i := range keys {
		keys[i] = hourKey(start.Add(time.Duration(i) * time.Hour))
	}
	vals, err := l.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: CC calls by hour: %w", err)
	}
	counts := make([]int, hours)
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if counts[i], err = strconv.Atoi(s); err != nil {
				return nil, fmt.Errorf("store: CC calls by hour: %s: %w", keys[i], err)
			}
		}
	}
	return counts, nil
}

// takeCall counts one call in the day's count under dayKey, then waits for
// a slot of limit under rateKey; over reports that the count had already
// reached daily, and the call is then not counted. Both limiters of the
// bridge (CC's and HubSpot's) count their calls this one way.
func takeCall(ctx context.Context, rdb redis.UniversalClient, dayKey string, daily int, limiter *redis_rate.Limiter, rateKey string, limit redis_rate.Limit) (over bool, err error) {
	n, err := rdb.Incr(ctx, dayKey).Result()
	if err != nil {
		return false, fmt.Errorf("count: %w", err)
	}
	if n == 1 {
		// Two days: yesterday's count stays readable for a while after
		// midnight, and the key never outlives its use.
		rdb.Expire(ctx, dayKey, 48*time.Hour)
	}
	// A call that is refused, or never gets its rate slot, is not made, so
	// it must not stay counted; the context may be done already, hence
	// WithoutCancel.
	uncount := func() { rdb.Decr(context.WithoutCancel(ctx), dayKey) }
	if int(n) > daily {
		uncount()
		return true, nil
	}
	if err := waitSlot(ctx, limiter, rateKey, limit); err != nil {
		uncount()
		return false, err
	}
	return false, nil
}

// waitSlot waits for a slot of limit under key, shared by every process
// through Redis.
func waitSlot(ctx context.Context, limiter *redis_rate.Limiter, key string, limit redis_rate.Limit) error {
	for {
		res, err := limiter.Allow(ctx, key, limit)
		if err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(res.RetryAfter):
		}
	}
}

const keyCCTokenRate = "hs2cc:cc:token-rate"

// tokenEndpointPeriod spaces calls to CC's token endpoint, which allows one
// request a second per app: a little over a second, so that CC's bucket and
// ours, which never see the same instant, do not meet at its edge.
const tokenEndpointPeriod = 1100 * time.Millisecond

// TokenEndpointLimiter paces every call to CC's token endpoint (code
// exchanges and refreshes) across every process of the bridge, since CC
// counts them per app. It is a ccclient.Limiter.
type TokenEndpointLimiter struct {
	limiter *redis_rate.Limiter
}

// NewTokenEndpointLimiter shares one token-endpoint call per
// tokenEndpointPeriod across every process using rdb.
func NewTokenEndpointLimiter(rdb redis.UniversalClient) *TokenEndpointLimiter {
	return &TokenEndpointLimiter{limiter: redis_rate.NewLimiter(rdb)}
}

// Wait returns when one more call to the token endpoint may be made.
func (l *TokenEndpointLimiter) Wait(ctx context.Context) error {
	return waitSlot(ctx, l.limiter, keyCCTokenRate, redis_rate.Limit{Rate: 1, Burst: 1, Period: tokenEndpointPeriod})
}

// Used returns how many CC calls were counted today.
func (l *CCLimits) Used(ctx context.Context) (int, error) {
	n, err := l.rdb.Get(ctx, l.dayKey(l.now())).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: CC calls today: %w", err)
	}
	return n, nil
}

// Remaining returns how many calls today's budget still allows.
func (l *CCLimits) Remaining(ctx context.Context) (int, error) {
	used, err := l.Used(ctx)
	if err != nil {
		return 0, err
	}
	return max(l.budget-used, 0), nil
}
