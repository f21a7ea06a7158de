package ccsandbox

import (
	"math"
	"time"
)

// bucket is a token bucket on the sandbox clock. CC documents its limits as
// "4 requests per second"; a bucket with a burst of the same size is the
// usual reading, and it makes the limit testable with a frozen clock. It
// counts in billionths of a token so that a quarter second at 4/s is exactly
// one token, with no floating-point drift.
type bucket struct {
	rate   float64 // tokens added per second
	burst  int64   // capacity, in nanotokens
	tokens int64   // in nanotokens
	last   time.Time
}

// oneToken is one token in nanotokens.
const oneToken = int64(time.Second)

// newBucket returns a full bucket refilling at rate per second, with a burst
// of rate rounded up (at least 1).
func newBucket(rate float64) *bucket {
	burst := int64(math.Max(1, math.Ceil(rate))) * oneToken
	return &bucket{rate: rate, burst: burst, tokens: burst}
}

// take spends one token if there is one. A clock that moves backwards adds
// nothing rather than draining the bucket.
func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		if dt := now.Sub(b.last); dt > 0 {
			// Compare in float first so a long idle cannot overflow int64.
			if add := math.Round(float64(dt) * b.rate); add >= float64(b.burst) {
				b.tokens = b.burst
			} else {
				b.tokens = min(b.burst, b.tokens+int64(add))
			}
		}
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < oneToken {
		return false
	}
	b.tokens -= oneToken
	return true
}

// clientLimits is what CC counts per API key: every token of every account
// that uses the key shares one bucket and one daily quota.
type clientLimits struct {
	bucket *bucket // nil when rate limiting is disabled
	day    string  // UTC date the quota count belongs to
	used   int
}

// limitLocked charges one API call to clientID and returns the error key of
// the 429 to send, or "" when the call may proceed. The quota is checked
// first, because once it is spent nothing else matters until midnight UTC;
// then a random throttle (Faults.ThrottleRate) stands in for other users of
// the API key draining the shared bucket, and then the bucket itself. A
// throttled call is not charged to the quota, as API Gateway usage plans do.
func (s *Server) limitLocked(clientID string, now time.Time) string {
	cl := s.limits[clientID]
	if cl == nil {
		cl = &clientLimits{}
		if s.opts.RateLimit > 0 {
			cl.bucket = newBucket(s.opts.RateLimit)
		}
		s.limits[clientID] = cl
	}
	if day := now.UTC().Format(time.DateOnly); day != cl.day {
		cl.day, cl.used = day, 0
	}
	if s.opts.DailyQuota > 0 && cl.used >= s.opts.DailyQuota {
		return keyQuotaExceeded
	}
	if s.chanceLocked(s.faults.ThrottleRate) {
		return keyThrottled
	}
	if cl.bucket != nil && !cl.bucket.take(now) {
		return keyThrottled
	}
	cl.used++
	return ""
}

// QuotaUsed returns how many API calls clientID has spent of today's quota
// (UTC), so tests and `hs2cc dev` can see the budget a run consumed.
func (s *Server) QuotaUsed(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.limits[clientID]
	if cl == nil || cl.day != s.nowLocked().UTC().Format(time.DateOnly) {
		return 0
	}
	return cl.used
}
