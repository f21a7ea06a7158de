package jobs

import (
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/store"
)

// waitError asks for the task to run again after a delay without counting a
// failure: the work is not failing, it is waiting on someone else.
type waitError struct {
	after  time.Duration
	reason string
}

func (e *waitError) Error() string { return "waiting: " + e.reason }

// asksToWait reports whether err asks for a wait rather than a retry, and
// how long: a waitError of this package, or a ccauth.WaitError (another
// process refreshing the token, CC's token endpoint busy).
func asksToWait(err error) (time.Duration, bool) {
	var w *waitError
	if errors.As(err, &w) {
		return w.after, true
	}
	var cw *ccauth.WaitError
	if errors.As(err, &cw) {
		return cw.After, true
	}
	return 0, false
}

// isFailure tells asynq which errors spend a retry. Waiting on a running
// activity or on CC's rate limits is not a failure: spending retries on it
// would exhaust a task during a busy day and lose its rows to the archive.
func isFailure(err error) bool {
	if _, ok := asksToWait(err); ok {
		return false
	}
	var apiErr *ccclient.APIError
	if errors.As(err, &apiErr) && (apiErr.Throttled() || apiErr.QuotaExceeded() || apiErr.StatusCode == 429) {
		return false
	}
	var budget *store.BudgetExhaustedError
	if errors.As(err, &budget) {
		return false
	}
	return !errors.Is(err, ccauth.ErrNotConnected)
}

// passing reports a fault worth waiting out in seconds: CC throttling or
// failing for a moment (ccclient.Transient), or a wait another part asked
// for (the token endpoint busy, another process refreshing).
func passing(err error) bool {
	_, wait := asksToWait(err)
	return wait || ccclient.Transient(err)
}

// blocked reports a state that stops CC work until a person acts: CC not
// connected (or needing a reconnect), or a list or custom field the rules
// name that does not exist and may not be created. Work blocked this way
// waits with its rows pending, spending no retry, and resumes by itself
// once the state clears.
func blocked(err error) bool {
	var ml *MissingListError
	var mf *MissingFieldError
	return errors.Is(err, ccauth.ErrNotConnected) || errors.As(err, &ml) || errors.As(err, &mf)
}

// retryDelay picks the next attempt by the class of error: CC's per-second
// throttle clears in a second, its daily quota at 00:00 UTC, a missing CC
// connection when a person reconnects; everything else backs off as asynq
// does by default.
func retryDelay(now func() time.Time) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		if d, ok := asksToWait(err); ok {
			return d
		}
		var apiErr *ccclient.APIError
		if errors.As(err, &apiErr) {
			switch {
			case apiErr.Throttled():
				return time.Second
			case apiErr.QuotaExceeded():
				return untilUTCMidnight(now()) + time.Minute
			case apiErr.StatusCode == 429:
				// The 1,000-queued-activities cap: give CC time to drain.
				return time.Minute
			}
		}
		var budget *store.BudgetExhaustedError
		if errors.As(err, &budget) {
			return budget.Reset.Sub(now()) + time.Minute
		}
		if serverFault(err) && n < quickRetries {
			// A 5xx from CC or HubSpot usually passes in seconds; asynq's
			// default would hold an import's poll or a batch of
			// write-backs for 15 to 45 s the first time. After a few quick
			// tries it is an outage, and asynq's growing backoff keeps the
			// task's retries for its end.
			return time.Second << n
		}
		if errors.Is(err, ccauth.ErrNotConnected) {
			return time.Minute
		}
		return asynq.DefaultRetryDelayFunc(n, err, t)
	}
}

func untilUTCMidnight(now time.Time) time.Duration {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return next.Sub(now)
}

// quickRetries is how many times a 5xx is retried within seconds (1, 2 and
// 4 s) before asynq's own backoff takes over.
const quickRetries = 3

// serverFault reports a 5xx answer from CC or HubSpot.
func serverFault(err error) bool {
	var cc *ccclient.APIError
	var hs *crm.APIError
	return errors.As(err, &cc) && cc.StatusCode >= 500 || errors.As(err, &hs) && hs.StatusCode >= 500
}
