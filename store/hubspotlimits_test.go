package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestHubSpotLimitsShared: two processes' limiters share one Redis, so a
// 429 one of them met pauses both, a long or daily pause is handed back as
// a wait rather than slept through, a pause never shortens a longer one,
// and the daily limit counts both processes' calls.
func TestHubSpotLimitsShared(t *testing.T) {
	cases := []struct {
		name  string
		daily int
		// pause is what process a records before b calls, if anything.
		pause      time.Duration
		pauseDaily bool
		calls      int // calls b makes
		// wantWait is whether b's last call is handed a HubSpotWaitError,
		// and wantDaily whether it is for the daily limit.
		wantWait, wantDaily bool
		wantUsed            int
	}{
		{name: "no pause", daily: 100, calls: 3, wantUsed: 3},
		{name: "short pause slept through", daily: 100, pause: 300 * time.Millisecond, calls: 1, wantUsed: 1},
		{name: "long pause handed back", daily: 100, pause: time.Minute, calls: 1, wantWait: true, wantUsed: 0},
		{name: "daily 429 handed back", daily: 100, pause: 3 * time.Second, pauseDaily: true, calls: 1, wantWait: true, wantDaily: true},
		{name: "daily limit spent", daily: 2, calls: 3, wantWait: true, wantDaily: true, wantUsed: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := storetest.Redis(t)
			a := store.NewHubSpotLimits(rdb, 100, tc.daily)
			b := store.NewHubSpotLimits(rdb, 100, tc.daily)
			if tc.pause > 0 {
				if err := a.Pause(ctx, tc.pause, tc.pauseDaily); err != nil {
					t.Fatal(err)
				}
				// A shorter pause met afterwards does not end the longer.
				if err := a.Pause(ctx, time.Millisecond, false); err != nil {
					t.Fatal(err)
				}
				until, daily, err := b.PausedUntil(ctx)
				if err != nil || time.Until(until) < tc.pause/2 || daily != tc.pauseDaily {
					t.Fatalf("b sees the pause until %v (daily %v), %v", until, daily, err)
				}
			}
			var last error
			for range tc.calls {
				if last = b.Wait(ctx); last != nil {
					break
				}
			}
			var hw *store.HubSpotWaitError
			if got := errors.As(last, &hw); got != tc.wantWait {
				t.Fatalf("last call: %v, want a wait %v", last, tc.wantWait)
			}
			if tc.wantWait && hw.Daily != tc.wantDaily {
				t.Errorf("wait %+v, want daily %v", hw, tc.wantDaily)
			}
			if used, err := a.Used(ctx); err != nil || used != tc.wantUsed {
				t.Errorf("used %d, %v; want %d", used, err, tc.wantUsed)
			}
		})
	}
}
