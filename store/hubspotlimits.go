package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// HubSpotWaitError means HubSpot may not be called before Until: it
// answered 429 and asked every caller to wait, or today's call budget is
// spent (Daily). Work waits for it without spending a retry.
type HubSpotWaitError struct {
	Until time.Time
	Daily bool
}

func (e *HubSpotWaitError) Error() string {
	if e.Daily {
		return fmt.Sprintf("store: HubSpot's daily call limit is spent until %s", e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("store: HubSpot asked to wait until %s", e.Until.UTC().Format(time.RFC3339))
}

// HubSpotLimits keeps every process of the bridge inside the private app's
// HubSpot limits together, as CCLimits does for CC: HubSpot counts calls per
// app. The per-10-seconds rate is a GCRA limiter in Redis, the daily limit
// a counter per UTC day, and a 429's Retry-After a pause every process
// honours.
type HubSpotLimits struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	daily   int
	now     func() time.Time
}

const (
	keyHubSpotRate        = "hs2cc:hubspot:rate"
	keyHubSpotCallsPrefix = "hs2cc:hubspot:calls:"
	keyHubSpotPause       = "hs2cc:hubspot:pause-until"
	keyHubSpotPauseDaily  = "hs2cc:hubspot:pause-daily"
)

// hubSpotShortPause is the longest pause Wait sleeps through itself; a
// longer one is returned as a HubSpotWaitError for the task to wait out.
const hubSpotShortPause = 15 * time.Second

// NewHubSpotLimits shares per10s calls every ten seconds and daily calls a
// UTC day across every client built with it.
func NewHubSpotLimits(rdb redis.UniversalClient, per10s, daily int) *HubSpotLimits {
	// Burst 1 spaces calls evenly, so no rolling 10-second window HubSpot
	// looks at ever holds more than per10s of them.
	limit := redis_rate.Limit{Rate: per10s, Burst: 1, Period: 10 * time.Second}
	return &HubSpotLimits{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), limit: limit, daily: daily, now: time.Now}
}

// Daily is the daily call limit.
func (l *HubSpotLimits) Daily() int { return l.daily }

func (l *HubSpotLimits) dayKey(t time.Time) string {
	return keyHubSpotCallsPrefix + t.UTC().Format("2006-01-02")
}

// Wait returns when one more HubSpot call may be made: after any pause a
// 429 asked for (slept through when short, else returned), within today's
// limit, in a slot of the shared rate.
func (l *HubSpotLimits) Wait(ctx context.Context) error {
	for {
		until, daily, err := l.PausedUntil(ctx)
		if err != nil {
			return err
		}
		d := until.Sub(l.now())
		if d <= 0 {
			break
		}
		if d > hubSpotShortPause || daily {
			return &HubSpotWaitError{Until: until, Daily: daily}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	now := l.now()
	over, err := takeCall(ctx, l.rdb, l.dayKey(now), l.daily, l.limiter, keyHubSpotRate, l.limit)
	if err != nil {
		return fmt.Errorf("store: HubSpot call: %w", err)
	}
	if over {
		return &HubSpotWaitError{Until: nextUTCMidnight(now), Daily: true}
	}
	return nil
}

// Pause stops every process's HubSpot calls for d, as a 429's Retry-After
// asks; daily marks the daily limit. A pause never shortens a longer one.
func (l *HubSpotLimits) Pause(ctx context.Context, d time.Duration, daily bool) error {
	if d <= 0 {
		return nil
	}
	until := l.now().Add(d)
	cur, _, err := l.PausedUntil(ctx)
	if err != nil {
		return err
	}
	if !until.After(cur) {
		return nil
	}
	pipe := l.rdb.TxPipeline()
	pipe.Set(ctx, keyHubSpotPause, until.UnixMilli(), d)
	if daily {
		pipe.Set(ctx, keyHubSpotPauseDaily, "1", d)
	} else {
		pipe.Del(ctx, keyHubSpotPauseDaily)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store: pause HubSpot calls: %w", err)
	}
	return nil
}

// PausedUntil returns the end of the pause every process honours, zero when
// none, and whether it is for the daily limit.
func (l *HubSpotLimits) PausedUntil(ctx context.Context) (time.Time, bool, error) {
	vals, err := l.rdb.MGet(ctx, keyHubSpotPause, keyHubSpotPauseDaily).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: read HubSpot pause: %w", err)
	}
	s, ok := vals[0].(string)
	if !ok {
		return time.Time{}, false, nil
	}
	var ms int64
	if _, err := fmt.Sscan(s, &ms); err != nil {
		return time.Time{}, false, fmt.Errorf("store: HubSpot pause %q: %w", s, err)
	}
	_, daily := vals[1].(string)
	return time.UnixMilli(ms), daily, nil
}

// Used returns how many HubSpot calls were counted today.
func (l *HubSpotLimits) Used(ctx context.Context) (int, error) {
	n, err := l.rdb.Get(ctx, l.dayKey(l.now())).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: HubSpot calls today: %w", err)
	}
	return n, nil
}
