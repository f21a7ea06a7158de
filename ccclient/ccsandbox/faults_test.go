package ccsandbox

import (
	"math"
	"net/http"
	"slices"
	"sync"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"zero", Options{}, false},
		{"rates at their bounds", Options{FailRate: 1, ThrottleRate: 0}, false},
		{"both rates set", Options{FailRate: 0.3, ThrottleRate: 0.9}, false},
		{"negative fail rate", Options{FailRate: -0.1}, true},
		{"fail rate over 1", Options{FailRate: 1.01}, true},
		{"NaN fail rate", Options{FailRate: math.NaN()}, true},
		{"negative throttle rate", Options{ThrottleRate: -1}, true},
		{"throttle rate over 1", Options{ThrottleRate: 2}, true},
		{"NaN throttle rate", Options{ThrottleRate: math.NaN()}, true},
		{"infinite throttle rate", Options{ThrottleRate: math.Inf(1)}, true},
		{"unknown refresh mode", Options{RefreshMode: "sometimes"}, true},
		{"unknown oversize mode", Options{OversizeMode: "shrink"}, true},
		{"negative MaxImportBytes", Options{MaxImportBytes: -1}, true},
		{"row and drop faults at their bounds", Options{RejectRate: 1, DropRate: 1, RejectDetail: RejectDetailCount}, false},
		{"reject detail email", Options{RejectRate: 0.5, RejectDetail: RejectDetailEmail}, false},
		{"reject detail line_email", Options{RejectDetail: RejectDetailLineEmail}, false},
		{"unknown reject detail", Options{RejectDetail: "lines"}, true},
		{"negative reject rate", Options{RejectRate: -0.1}, true},
		{"reject rate over 1", Options{RejectRate: 1.5}, true},
		{"NaN reject rate", Options{RejectRate: math.NaN()}, true},
		{"negative drop rate", Options{DropRate: -1}, true},
		{"drop rate over 1", Options{DropRate: 1.01}, true},
		{"NaN drop rate", Options{DropRate: math.NaN()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				defer func() {
					if recover() == nil {
						t.Error("New accepted options that Validate refuses")
					}
				}()
				New(tt.opts)
			}
		})
	}
}

// outcomes counts the answers to a run of API calls by kind.
type outcomes struct {
	ok, throttled, fault500, fault503 int
	statuses                          []int
}

// callMany makes n GET calls over the env's routes and checks each refusal
// byte for byte or against CC's array error shape.
func callMany(t *testing.T, e *env, n int) outcomes {
	t.Helper()
	var o outcomes
	for i := range n {
		r := e.call(http.MethodGet, apiCalls[i%len(apiCalls)], nil)
		o.statuses = append(o.statuses, r.status)
		switch r.status {
		case http.StatusTooManyRequests:
			want429(t, r, throttledBody)
			o.throttled++
		case http.StatusInternalServerError:
			if key := wantAPIError(t, r, r.status); key != keyServerError {
				t.Errorf("500 error_key %q, want %q", key, keyServerError)
			}
			o.fault500++
		case http.StatusServiceUnavailable:
			if key := wantAPIError(t, r, r.status); key != keyUnavailable {
				t.Errorf("503 error_key %q, want %q", key, keyUnavailable)
			}
			o.fault503++
		default:
			o.ok++
		}
	}
	return o
}

func TestRandomFaults(t *testing.T) {
	const n = 400
	// The seed is fixed, so each count is the same on every run; the bounds
	// are those of a fair draw (about four standard deviations) so that a
	// change of generator cannot make the test flaky, only a wrong rate.
	tests := []struct {
		name                   string
		fail, throttle         float64
		faultLo, faultHi       int
		throttleLo, throttleHi int
	}{
		{"off", 0, 0, 0, 0, 0, 0},
		{"fail a quarter", 0.25, 0, 60, 140, 0, 0},
		{"throttle a quarter", 0, 0.25, 0, 0, 60, 140},
		// A fault is drawn only for calls the throttle let through, so
		// 0.2 of the remaining 0.8 fail: 0.16 of all calls.
		{"both", 0.2, 0.2, 30, 100, 40, 120},
		{"always fail", 1, 0, n, n, 0, 0},
		{"always throttle", 0, 1, 0, 0, n, n},
		{"throttle wins over fail", 1, 1, 0, 0, n, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{FailRate: tt.fail, ThrottleRate: tt.throttle, Seed: 7})
			o := callMany(t, e, n)
			faults := o.fault500 + o.fault503
			if faults < tt.faultLo || faults > tt.faultHi {
				t.Errorf("%d faults in %d calls, want %d to %d", faults, n, tt.faultLo, tt.faultHi)
			}
			if o.throttled < tt.throttleLo || o.throttled > tt.throttleHi {
				t.Errorf("%d throttled in %d calls, want %d to %d", o.throttled, n, tt.throttleLo, tt.throttleHi)
			}
			if faults >= 20 && (o.fault500 == 0 || o.fault503 == 0) {
				t.Errorf("%d 500s and %d 503s: want both kinds", o.fault500, o.fault503)
			}
			st := e.srv.Stats()
			if st.Faults != faults || st.Throttled != o.throttled {
				t.Errorf("Stats.Faults %d, Throttled %d; want %d and %d", st.Faults, st.Throttled, faults, o.throttled)
			}
			// A fault happens behind the gateway, which has counted the
			// call; a throttled call never reaches the quota.
			if got, want := e.srv.QuotaUsed(DefaultClientID), o.ok+faults; got != want {
				t.Errorf("QuotaUsed = %d, want %d (successes and faults, not throttles)", got, want)
			}
		})
	}
}

func TestRandomFaultsAreReproducible(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) []int {
		e := newEnv(t, Options{FailRate: 0.3, ThrottleRate: 0.3, Seed: seed})
		if got := e.srv.Seed(); got != seed {
			t.Errorf("Seed() = %d, want %d", got, seed)
		}
		return callMany(t, e, 200).statuses
	}
	first, again, other := run(42), run(42), run(43)
	if !slices.Equal(first, again) {
		t.Errorf("the same seed gave different faults:\n%v\n%v", first, again)
	}
	if slices.Equal(first, other) {
		t.Error("seeds 42 and 43 gave the same 200 answers")
	}
	if New(Options{}).Seed() == 0 {
		t.Error("a zero Options.Seed must be replaced by a clock-based one")
	}
}

func TestRandomFaultsGateOrder(t *testing.T) {
	// anyServerError stands for a random fault, which may be 500 or 503.
	const anyServerError = -1
	tests := []struct {
		name   string
		opts   Options
		setup  func(t *testing.T, e *env)
		call   func(e *env) resp
		status int    // anyServerError for 500 or 503
		body   string // exact, when set
	}{
		{
			name:   "a bad token is a 401 first",
			opts:   Options{FailRate: 1, ThrottleRate: 1},
			call:   func(e *env) resp { return e.call(http.MethodGet, "/v3/contacts", nil, withToken("stale")) },
			status: http.StatusUnauthorized,
			body:   `{"error_key":"unauthorized","error_message":"Unauthorized"}`,
		},
		{
			name: "a missing scope is a 403 first",
			opts: Options{FailRate: 1, ThrottleRate: 1},
			call: func(e *env) resp {
				tok, _ := e.srv.IssueToken("account_read")
				return e.call(http.MethodGet, "/v3/contacts", nil, withToken(tok))
			},
			status: http.StatusForbidden,
		},
		{
			name: "a spent quota beats a random throttle",
			opts: Options{DailyQuota: 1},
			setup: func(t *testing.T, e *env) {
				wantStatus(t, e.call(http.MethodGet, "/v3/contacts", nil), http.StatusOK)
				if err := e.srv.SetFaults(Faults{ThrottleRate: 1, FailRate: 1}); err != nil {
					t.Fatal(err)
				}
			},
			call:   func(e *env) resp { return e.call(http.MethodGet, "/v3/contacts", nil) },
			status: http.StatusTooManyRequests,
			body:   quotaBody,
		},
		{
			name: "a route's fixed status beats a random one",
			opts: Options{FailRate: 1, Seed: 1},
			setup: func(t *testing.T, e *env) {
				if err := e.srv.SetFaults(Faults{FailRate: 1, Status: map[string]int{"GET /v3/contacts": 503}}); err != nil {
					t.Fatal(err)
				}
			},
			call:   func(e *env) resp { return e.call(http.MethodGet, "/v3/contacts", nil) },
			status: http.StatusServiceUnavailable,
		},
		{
			name: "a random fault stops an import before it is queued",
			opts: Options{FailRate: 1},
			call: func(e *env) resp {
				return e.call(http.MethodPost, "/v3/activities/contacts_json_import", importBody([]string{unknownList}, row("email", "a@example.com")))
			},
			status: anyServerError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			// Repeat, so that no lucky draw can pass the test.
			for range 20 {
				r := tt.call(e)
				if tt.status == anyServerError {
					if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
						t.Fatalf("status %d, want 500 or 503", r.status)
					}
					wantAPIError(t, r, r.status)
					continue
				}
				wantStatus(t, r, tt.status)
				if tt.body != "" && string(r.body) != tt.body {
					t.Fatalf("body %s, want %s", r.body, tt.body)
				}
			}
			if n := e.srv.Stats().Imports; n != 0 {
				t.Errorf("%d imports queued through a refusal", n)
			}
		})
	}
}

func TestRandomFaultsAtRunTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{FailRate: 0.5, ThrottleRate: 0.25, Seed: 3})
	getFaults := func() Faults {
		t.Helper()
		r := e.call(http.MethodGet, "/sandbox/faults", nil, withToken(""))
		wantStatus(t, r, http.StatusOK)
		var f Faults
		r.decode(t, &f)
		return f
	}
	if f := getFaults(); f.FailRate != 0.5 || f.ThrottleRate != 0.25 {
		t.Fatalf("faults %+v: the Options rates must be the initial faults", f)
	}

	steps := []struct {
		method, body string
		status       int
		want         Faults
	}{
		// POST changes only what it names.
		{http.MethodPost, `{"import_outcome":"failed"}`, 200, Faults{ImportOutcome: "failed", FailRate: 0.5, ThrottleRate: 0.25}},
		{http.MethodPost, `{"fail_rate":1,"throttle_rate":0}`, 200, Faults{ImportOutcome: "failed", FailRate: 1}},
		{http.MethodPost, `{"status":{"GET /v3/contacts":500}}`, 200, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		// Bad values and misspelt keys change nothing.
		{http.MethodPost, `{"fail_rate":1.5}`, 400, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		{http.MethodPost, `{"throttle_rate":-0.5}`, 400, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		{http.MethodPost, `{"failrate":0}`, 400, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		{http.MethodPost, `{"fail_rate":"high"}`, 400, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		{http.MethodPut, `{"throttle_rate":2}`, 400, Faults{ImportOutcome: "failed", FailRate: 1, Status: map[string]int{"GET /v3/contacts": 500}}},
		// PUT replaces everything, the rates included.
		{http.MethodPut, `{"throttle_rate":1}`, 200, Faults{ThrottleRate: 1}},
		{http.MethodPut, `{}`, 200, Faults{}},
	}
	for i, st := range steps {
		r := e.call(st.method, "/sandbox/faults", st.body, withToken(""))
		if st.status == http.StatusOK {
			wantStatus(t, r, http.StatusOK)
		} else {
			wantAPIError(t, r, st.status)
		}
		got := getFaults()
		if got.ImportOutcome != st.want.ImportOutcome || got.FailRate != st.want.FailRate ||
			got.ThrottleRate != st.want.ThrottleRate || len(got.Status) != len(st.want.Status) ||
			got.Status["GET /v3/contacts"] != st.want.Status["GET /v3/contacts"] {
			t.Errorf("step %d (%s %s): faults %+v, want %+v", i, st.method, st.body, got, st.want)
		}
	}

	// The rates set at run time take effect on the next call.
	if err := e.srv.SetFaults(Faults{FailRate: 1}); err != nil {
		t.Fatal(err)
	}
	r := e.call(http.MethodGet, "/v3/contact_lists", nil)
	if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
		t.Errorf("status %d with fail_rate 1, want 500 or 503", r.status)
	}
	wantStatus(t, e.call(http.MethodPost, "/sandbox/faults", `{"fail_rate":0,"throttle_rate":1}`, withToken("")), http.StatusOK)
	want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), throttledBody)
	wantStatus(t, e.call(http.MethodPost, "/sandbox/faults", `{"throttle_rate":0}`, withToken("")), http.StatusOK)
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
}

// TestRandomFaultsConcurrent shares the random source between many clients;
// -race checks that it is only drawn under the lock.
func TestRandomFaultsConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{FailRate: 0.2, ThrottleRate: 0.2})
	const workers, calls = 16, 25
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				r := e.call(http.MethodGet, apiCalls[(w+i)%len(apiCalls)], nil)
				mu.Lock()
				codes[r.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := e.srv.Stats()
	faults := codes[http.StatusInternalServerError] + codes[http.StatusServiceUnavailable]
	if st.Faults != faults || st.Throttled != codes[http.StatusTooManyRequests] {
		t.Errorf("codes %v, stats faults %d throttled %d: the counts must agree", codes, st.Faults, st.Throttled)
	}
	total := 0
	for _, n := range codes {
		total += n
	}
	if total != workers*calls {
		t.Errorf("%d answers, want %d", total, workers*calls)
	}
}
