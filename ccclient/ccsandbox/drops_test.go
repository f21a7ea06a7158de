package ccsandbox

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
)

// try sends req on client and returns the answer, or the error when there
// was none.
func try(t *testing.T, client *http.Client, req *http.Request) (resp, error) {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// wantNoAnswer fails the test unless the call got no HTTP answer at all,
// which net/http reports as an unexpected end of the connection.
func wantNoAnswer(t *testing.T, r resp, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got %d %s, want no answer", r.status, r.body)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v, want EOF or unexpected EOF", err)
	}
}

// freshClient never reuses a connection, so net/http's Transport has no
// reason to resend a dropped idempotent request and every call reaches the
// sandbox exactly once.
func freshClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// noHijack hides the connection from the handler, as HTTP/2 or a middleware
// without Unwrap would.
type noHijack struct{ http.ResponseWriter }

func TestDropRateOne(t *testing.T) {
	const importRoute = "POST /v3/activities/contacts_json_import"
	tests := []struct {
		name string
		// hide serves the sandbox through a ResponseWriter that cannot be
		// hijacked, so the sandbox must abort the handler instead.
		hide bool
	}{
		{"hijacked connection", false},
		{"connection that cannot be hijacked", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1, DropRate: 1})
			if tt.hide {
				// The spec check stays between the sandbox and the hider.
				h := ccspec.New(t).Wrap(e.srv)
				ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(noHijack{w}, r)
				}))
				t.Cleanup(ts.Close)
				e.ts = ts
			}
			list := e.srv.CreateList("Agents").ListID

			r, err := try(t, freshClient(), e.request(http.MethodPost, "/v3/activities/contacts_json_import",
				importBody([]string{list}, row("email", "ann@example.com", "first_name", "Ann"))))
			wantNoAnswer(t, r, err)

			// The answer was lost, not the import: a client that looks
			// finds it queued, and it completes.
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			var acts struct {
				Activities []activityView `json:"activities"`
			}
			lr := e.call(http.MethodGet, "/v3/activities", nil)
			wantStatus(t, lr, http.StatusOK)
			lr.decode(t, &acts)
			if len(acts.Activities) != 1 || acts.Activities[0].State != stateCompleted || acts.Activities[0].Status["person_count"] != 1 {
				t.Fatalf("activities %s: want the dropped import, completed", lr.body)
			}
			if _, ok := e.contactByEmail("ann@example.com"); !ok {
				t.Error("the dropped import's contact is missing")
			}
			st := e.srv.Stats()
			if st.Dropped != 1 || st.Imports != 1 || st.Requests[importRoute] != 1 || st.Faults != 0 {
				t.Errorf("stats %+v: want 1 import posted, queued and dropped, and no fault", st)
			}
			// CC did the work, so the call cost quota: the import and
			// the GET.
			if got := e.srv.QuotaUsed(DefaultClientID); got != 2 {
				t.Errorf("QuotaUsed = %d, want 2", got)
			}
		})
	}
}

func TestDropRateCalls(t *testing.T) {
	tests := []struct {
		name string
		// call makes the calls under test with DropRate 1 in force and
		// returns how many answers it expects the sandbox to drop.
		call func(t *testing.T, e *env) int
	}{
		{"a created list exists", func(t *testing.T, e *env) int {
			r, err := try(t, freshClient(), e.request(http.MethodPost, "/v3/contact_lists", `{"name":"Agents"}`))
			wantNoAnswer(t, r, err)
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			// Resending the lost POST meets the list it created.
			wantAPIError(t, e.call(http.MethodPost, "/v3/contact_lists", `{"name":"Agents"}`), http.StatusConflict)
			return 1
		}},
		{"a GET on a reused connection is resent once by net/http", func(t *testing.T, e *env) int {
			client := &http.Client{Transport: &http.Transport{}}
			if err := e.srv.SetFaults(Faults{}); err != nil {
				t.Fatal(err)
			}
			r, err := try(t, client, e.request(http.MethodGet, "/v3/contact_lists", nil))
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("warm-up call: %v %d", err, r.status)
			}
			if err := e.srv.SetFaults(Faults{DropRate: 1}); err != nil {
				t.Fatal(err)
			}
			r, err = try(t, client, e.request(http.MethodGet, "/v3/contact_lists", nil))
			wantNoAnswer(t, r, err)
			return 2
		}},
		{"refusals are answered", func(t *testing.T, e *env) int {
			wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken("stale")), http.StatusUnauthorized)
			if err := e.srv.SetFaults(Faults{DropRate: 1, FailRate: 1}); err != nil {
				t.Fatal(err)
			}
			r := e.call(http.MethodGet, "/v3/contact_lists", nil)
			if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
				t.Errorf("status %d with fail_rate 1, want 500 or 503", r.status)
			}
			if err := e.srv.SetFaults(Faults{DropRate: 1, Limit: keyThrottled}); err != nil {
				t.Fatal(err)
			}
			want429(t, e.call(http.MethodGet, "/v3/contact_lists", nil), throttledBody)
			return 0
		}},
		{"hooks, OAuth and unknown routes are never dropped", func(t *testing.T, e *env) int {
			wantStatus(t, e.call(http.MethodGet, "/sandbox/contacts", nil, withToken("")), http.StatusOK)
			wantStatus(t, e.call(http.MethodGet, "/sandbox/stats", nil, withToken("")), http.StatusOK)
			wantStatus(t, e.call(http.MethodPost, "/sandbox/lists", `{"name":"Seeded"}`, withToken("")), http.StatusOK)
			_, rt := e.srv.IssueToken("contact_data offline_access")
			wantStatus(t, e.refresh(rt), http.StatusOK)
			r, _ := e.authorize(func(url.Values) {})
			wantStatus(t, r, http.StatusFound)
			wantAPIError(t, e.call(http.MethodGet, "/v3/nowhere", nil, expectInvalid), http.StatusNotFound)
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{ActivityDelay: -1, DropRate: 1})
			want := tt.call(t, e)
			if got := e.srv.Stats().Dropped; got != want {
				t.Errorf("Stats.Dropped = %d, want %d", got, want)
			}
		})
	}
}

func TestDropRateFraction(t *testing.T) {
	t.Parallel()
	const n = 200
	run := func(seed uint64) []bool {
		e := newEnv(t, Options{DropRate: 0.25, Seed: seed})
		client := freshClient()
		var lost []bool
		for i := range n {
			r, err := try(t, client, e.request(http.MethodGet, apiCalls[i%len(apiCalls)], nil))
			switch {
			case err != nil:
				wantNoAnswer(t, r, err)
			case r.status == http.StatusNotFound:
				// The activity in apiCalls does not exist; an answer is an
				// answer.
			default:
				wantStatus(t, r, http.StatusOK)
			}
			lost = append(lost, err != nil)
		}
		dropped := 0
		for _, l := range lost {
			if l {
				dropped++
			}
		}
		if dropped < 25 || dropped > 75 {
			t.Errorf("%d of %d answers dropped at 0.25, want 25 to 75", dropped, n)
		}
		if st := e.srv.Stats(); st.Dropped != dropped {
			t.Errorf("Stats.Dropped = %d, want %d", st.Dropped, dropped)
		}
		return lost
	}
	first, again := run(5), run(5)
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("seed 5 dropped call %d once and not the other time", i)
		}
	}
}

func TestRowAndDropFaultsAtRunTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RejectRate: 0.5, RejectDetail: RejectDetailEmail, DropRate: 0.25, FailRate: 0.1})
	getFaults := func() Faults {
		t.Helper()
		r := e.call(http.MethodGet, "/sandbox/faults", nil, withToken(""))
		wantStatus(t, r, http.StatusOK)
		var f Faults
		r.decode(t, &f)
		return f
	}
	start := Faults{RejectRate: 0.5, RejectDetail: RejectDetailEmail, DropRate: 0.25, FailRate: 0.1}
	if f := getFaults(); f.RejectRate != start.RejectRate || f.RejectDetail != start.RejectDetail || f.DropRate != start.DropRate {
		t.Fatalf("faults %+v: the Options must be the initial faults", f)
	}
	steps := []struct {
		method, body string
		status       int
		want         Faults
	}{
		{http.MethodPost, `{"reject_rate":1}`, 200, Faults{RejectRate: 1, RejectDetail: RejectDetailEmail, DropRate: 0.25, FailRate: 0.1}},
		{http.MethodPost, `{"reject_detail":"count","drop_rate":0}`, 200, Faults{RejectRate: 1, RejectDetail: RejectDetailCount, FailRate: 0.1}},
		{http.MethodPost, `{"drop_rate":0.5,"reject_detail":"line_email"}`, 200, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		// Bad values change nothing.
		{http.MethodPost, `{"reject_detail":"lines"}`, 400, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		{http.MethodPost, `{"reject_rate":1.5}`, 400, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		{http.MethodPost, `{"drop_rate":-0.1}`, 400, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		{http.MethodPost, `{"dropRate":0}`, 400, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		{http.MethodPut, `{"drop_rate":2}`, 400, Faults{RejectRate: 1, RejectDetail: RejectDetailLineEmail, DropRate: 0.5, FailRate: 0.1}},
		// PUT replaces everything.
		{http.MethodPut, `{"reject_detail":"email"}`, 200, Faults{RejectDetail: RejectDetailEmail}},
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
		if got.RejectRate != st.want.RejectRate || got.RejectDetail != st.want.RejectDetail ||
			got.DropRate != st.want.DropRate || got.FailRate != st.want.FailRate {
			t.Errorf("step %d (%s %s): faults %+v, want %+v", i, st.method, st.body, got, st.want)
		}
	}
}
