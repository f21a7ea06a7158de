package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSimulateModes: closed loop sends as fast as answers come back; open
// loop keeps its schedule and counts latency from each request's due time,
// so a slow server shows as growing latency rather than as a lower rate;
// --json prints the summary benchmarks record.
func TestSimulateModes(t *testing.T) {
	slow := 40 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slow)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	cases := []struct {
		name string
		o    simOptions
		// minElapsed and minMax are lower bounds the mode implies.
		minElapsed, minMax time.Duration
		mode               string
	}{
		// 20 requests one at a time: at least 20 × 40 ms.
		{"closed loop", simOptions{Count: 20, Concurrency: 1}, 20 * slow, slow, "closed"},
		// 20 requests due every 10 ms but served one at a time every
		// 40 ms: the last is due at 190 ms and answered at ≥ 800 ms, so
		// its latency from the due time is at least 600 ms.
		{"open loop behind schedule", simOptions{Count: 20, Concurrency: 1, Rate: 100}, 20 * slow, 600 * time.Millisecond, "open"},
		// 10 requests due every 50 ms with room to spare: the schedule,
		// not the server, sets the pace.
		{"open loop on schedule", simOptions{Count: 10, Concurrency: 4, Rate: 20}, 450 * time.Millisecond, slow, "open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.URL, o.Secret, o.FirstID, o.PortalID = srv.URL, "s", 1, 1
			res, err := simulate(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			s := summarize(o, res)
			if s.Requests != o.Count || s.Accepted != o.Count || s.Mode != tc.mode {
				t.Fatalf("summary %+v", s)
			}
			if res.Elapsed < tc.minElapsed {
				t.Errorf("elapsed %s, want at least %s", res.Elapsed, tc.minElapsed)
			}
			if got := time.Duration(s.MaxMs * float64(time.Millisecond)); got < tc.minMax {
				t.Errorf("max latency %s, want at least %s", got, tc.minMax)
			}
		})
	}
	var out bytes.Buffer
	args := []string{"simulate", "--url", srv.URL, "--secret", "s", "--count", "5", "--rate", "50", "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	var s simSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.Mode != "open" || s.Requests != 5 || s.P99Ms <= 0 {
		t.Errorf("--json printed %q (%v)", out.String(), err)
	}
}
