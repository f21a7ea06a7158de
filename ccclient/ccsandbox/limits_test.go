package ccsandbox

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const (
	throttledBody = `{"error_key":"throttled","error_message":"Too Many Requests"}`
	quotaBody     = `{"error_key":"quota_exceeded","error_message":"Limit Exceeded"}`
)

// apiCalls are the calls a client makes, polls included; all of them count.
var apiCalls = []string{"/v3/contact_lists", "/v3/activities/04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "/v3/contacts", "/v3/activities"}

// want429 checks one of the two limit answers byte for byte.
func want429(t *testing.T, r resp, body string) {
	t.Helper()
	wantStatus(t, r, http.StatusTooManyRequests)
	if string(r.body) != body {
		t.Errorf("429 body %q, want %q", r.body, body)
	}
	if r.header.Get("Retry-After") != "" {
		t.Errorf("Retry-After %q: CC sends none", r.header.Get("Retry-After"))
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RateLimit: 4})
	steps := []struct {
		advance time.Duration
		calls   int // calls made at this instant
		allowed int // of which succeed
	}{
		{0, 5, 4},                      // the burst of 4, then throttled
		{250 * time.Millisecond, 2, 1}, // a quarter second refills one
		{time.Second, 6, 4},            // a full second refills the burst, no more
		{100 * time.Millisecond, 1, 0}, // 0.4 of a token is not a token
		{150 * time.Millisecond, 1, 1}, // 0.4 + 0.6 is
		{10 * time.Second, 5, 4},       // idling never banks more than the burst
	}
	var throttled, n int
	for i, st := range steps {
		e.clock.Advance(st.advance)
		ok := 0
		for range st.calls {
			r := e.call(http.MethodGet, apiCalls[n%len(apiCalls)], nil)
			n++
			if r.status == http.StatusTooManyRequests {
				want429(t, r, throttledBody)
				throttled++
				continue
			}
			ok++
		}
		if ok != st.allowed {
			t.Errorf("step %d: %d of %d calls allowed, want %d", i, ok, st.calls, st.allowed)
		}
	}
	if got := e.srv.Stats().Throttled; got != throttled {
		t.Errorf("Stats.Throttled = %d, want %d", got, throttled)
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RateLimit: 4})
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			r := e.call(http.MethodGet, apiCalls[i%len(apiCalls)], nil)
			mu.Lock()
			codes[r.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusTooManyRequests] != 96 {
		t.Errorf("status counts %v: want exactly 96 throttled of 100 on a frozen clock", codes)
	}
}

func TestDailyQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{DailyQuota: 3})
	e.clock.Set(time.Date(2026, 4, 28, 23, 59, 58, 0, time.UTC))
	for i := range 3 {
		if r := e.call(http.MethodGet, apiCalls[i], nil); r.status == http.StatusTooManyRequests {
			t.Fatalf("call %d throttled inside the quota: %s", i, r.body)
		}
	}
	want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), quotaBody)
	e.clock.Advance(time.Second) // 23:59:59 UTC, still the same day
	want429(t, e.call(http.MethodGet, "/v3/activities", nil), quotaBody)
	if got := e.srv.QuotaUsed(DefaultClientID); got != 3 {
		t.Errorf("QuotaUsed = %d, want 3 (refusals are not charged)", got)
	}
	e.clock.Advance(time.Second) // 00:00:00 UTC
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	if got := e.srv.QuotaUsed(DefaultClientID); got != 1 {
		t.Errorf("QuotaUsed after midnight UTC = %d, want 1", got)
	}
	if got := e.srv.Stats().QuotaExceeded; got != 2 {
		t.Errorf("Stats.QuotaExceeded = %d, want 2", got)
	}
}

func TestQuotaResetIsUTC(t *testing.T) {
	t.Parallel()
	// A clock in another zone must still reset at 00:00 UTC, not local midnight.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	e := newEnv(t, Options{DailyQuota: 1})
	e.clock.Set(time.Date(2026, 4, 28, 19, 59, 0, 0, ny)) // 23:59 UTC
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), quotaBody)
	e.clock.Advance(time.Minute) // 20:00 in New York, 00:00 UTC
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
}

func TestThrottledCallsSpendNoQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RateLimit: 1, DailyQuota: 2})
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), throttledBody)
	e.clock.Advance(time.Second)
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	e.clock.Advance(time.Second)
	want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), quotaBody)
	if got := e.srv.QuotaUsed(DefaultClientID); got != 2 {
		t.Errorf("QuotaUsed = %d, want 2", got)
	}
}

func TestLimitFaults(t *testing.T) {
	for _, key := range []string{keyThrottled, keyQuotaExceeded} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			if err := e.srv.SetFaults(Faults{Limit: key}); err != nil {
				t.Fatal(err)
			}
			want429(t, e.call(http.MethodGet, "/v3/contacts", nil), map[string]string{keyThrottled: throttledBody, keyQuotaExceeded: quotaBody}[key])
			// A bad token is still a 401: the gateway checks it first.
			wantStatus(t, e.call(http.MethodGet, "/v3/contacts", nil, withToken("")), http.StatusUnauthorized)
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, e.call(http.MethodGet, "/v3/contacts", nil), http.StatusOK)
		})
	}
}

func TestServerFaults(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			l := e.srv.CreateList("Agents")
			if err := e.srv.SetFaults(Faults{Status: map[string]int{"POST /v3/activities/contacts_json_import": status}}); err != nil {
				t.Fatal(err)
			}
			r := e.call(http.MethodPost, "/v3/activities/contacts_json_import", importBody([]string{l.ListID}, row("email", "a@example.com")))
			wantAPIError(t, r, status)
			wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
			if st := e.srv.Stats(); st.Faults != 1 || st.Imports != 0 {
				t.Errorf("stats %+v: want one fault and no import", st)
			}
		})
	}
	t.Run("bad settings are refused", func(t *testing.T) {
		s := New(Options{})
		for _, f := range []Faults{{ImportOutcome: "exploded"}, {Status: map[string]int{"GET /v3/contacts": 418}}, {Limit: "slow"}} {
			if err := s.SetFaults(f); err == nil {
				t.Errorf("SetFaults(%+v) accepted", f)
			}
		}
	})
}

// TestDailyQuotaDefault checks CC's own numbers with the zero Options: 10,000
// calls a day per API key, the 10,001st refused with CC's exact body, and a
// fresh quota at 00:00 UTC. It calls the handler in process, because 10,000
// round trips through the spec recorder would only measure kin-openapi.
func TestDailyQuotaDefault(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 4, 28, 23, 0, 0, 0, time.UTC)}
	// The rate limit is off: a frozen clock would never refill the bucket.
	srv := New(Options{Now: clock.Now, RateLimit: -1})
	access, _ := srv.IssueToken("")
	call := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v3/contact_lists", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	for i := range DefaultDailyQuota {
		if rec := call(); rec.Code != http.StatusOK {
			t.Fatalf("call %d: status %d %s, want 200 within the quota", i+1, rec.Code, rec.Body)
		}
	}
	steps := []struct {
		at     time.Time
		status int
		body   string
	}{
		{time.Date(2026, 4, 28, 23, 0, 0, 0, time.UTC), http.StatusTooManyRequests, quotaBody},
		{time.Date(2026, 4, 28, 23, 59, 59, 999e6, time.UTC), http.StatusTooManyRequests, quotaBody},
		{time.Date(2026, 4, 29, 0, 0, 0, 0, time.UTC), http.StatusOK, ""},
	}
	for _, st := range steps {
		clock.Set(st.at)
		rec := call()
		if rec.Code != st.status || (st.body != "" && rec.Body.String() != st.body) {
			t.Errorf("at %v: %d %s, want %d %s", st.at, rec.Code, rec.Body, st.status, st.body)
		}
		if st.body != "" && (rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Retry-After") != "") {
			t.Errorf("at %v: headers %v, want JSON and no Retry-After", st.at, rec.Header())
		}
	}
	if got := srv.QuotaUsed(DefaultClientID); got != 1 {
		t.Errorf("QuotaUsed on the new day = %d, want 1", got)
	}
	if st := srv.Stats(); st.QuotaExceeded != 2 || st.Requests["GET /v3/contact_lists"] != DefaultDailyQuota+3 {
		t.Errorf("stats %+v: want 2 quota refusals among %d calls", st, DefaultDailyQuota+3)
	}
}
