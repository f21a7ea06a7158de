package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
)

// keepGOMAXPROCS is the environment of Command in tests: it names
// GOMAXPROCS, so that Command leaves the test binary's Ps alone instead of
// keeping to one as a real run does.
func keepGOMAXPROCS(k string) string {
	if k == "GOMAXPROCS" {
		return "test"
	}
	return ""
}

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
		o    Options
		// minElapsed and minMax are lower bounds the mode implies.
		minElapsed, minMax time.Duration
		mode               string
	}{
		// 20 requests one at a time: at least 20 × 40 ms.
		{"closed loop", Options{Count: 20, Concurrency: 1}, 20 * slow, slow, "closed"},
		// 20 requests due every 10 ms but served one at a time every
		// 40 ms: the last is due at 190 ms and answered at ≥ 800 ms, so
		// its latency from the due time is at least 600 ms.
		{"open loop behind schedule", Options{Count: 20, Concurrency: 1, Rate: 100}, 20 * slow, 600 * time.Millisecond, "open"},
		// 10 requests due every 50 ms with room to spare: the schedule,
		// not the server, sets the pace.
		{"open loop on schedule", Options{Count: 10, Concurrency: 4, Rate: 20}, 450 * time.Millisecond, slow, "open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.URL, o.Secret, o.FirstID, o.PortalID = srv.URL, "s", 1, 1
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			s := Summarize(o, res)
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
	// The command's flags and --json: what scripts/bench reads.
	var out bytes.Buffer
	var f Flags
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"--url", srv.URL, "--secret", "s", "--count", "5", "--rate", "50", "--json"}); err != nil {
		t.Fatal(err)
	}
	if err := Command(context.Background(), &f, keepGOMAXPROCS, &out, nil); err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.Mode != "open" || s.Requests != 5 || s.P99Ms <= 0 {
		t.Errorf("--json printed %q (%v)", out.String(), err)
	}
}

// Several URLs share the load evenly, each worker keeping its own
// connection to each, and every request arrives signed for its own URL.
func TestSimulateSeveralURLs(t *testing.T) {
	var counts [2]atomic.Int64
	var badSig atomic.Int64
	servers := make([]*httptest.Server, 2)
	for i := range servers {
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			v := &hubspot.Verifier{Secrets: []string{"s"}}
			if _, err := v.Verify(hubspot.Request{Method: r.Method, URI: "http://" + r.Host + r.RequestURI, Body: body, Header: r.Header}); err != nil {
				badSig.Add(1)
			}
			counts[i].Add(1)
			w.WriteHeader(http.StatusAccepted)
		}))
		defer servers[i].Close()
	}
	o := Options{URLs: []string{servers[0].URL + "/webhooks/hubspot", servers[1].URL + "/webhooks/hubspot"},
		Secret: "s", Count: 40, Concurrency: 3, FirstID: 1, PortalID: 1}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 40 || counts[0].Load() != 20 || counts[1].Load() != 20 || badSig.Load() != 0 {
		t.Errorf("accepted %d, per server %d and %d, bad signatures %d; want 40, 20, 20, 0",
			res.Accepted, counts[0].Load(), counts[1].Load(), badSig.Load())
	}
}

// A server that closes each connection after answering, or breaks one
// mid-request, costs the run that request only: the next one dials again.
func TestSimulateReconnects(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 3:
			// Hang up without an answer.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		case 5:
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Secret: "s", Count: 10, Concurrency: 1, FirstID: 1, PortalID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 9 || res.Failed != 1 {
		t.Errorf("accepted %d, failed %d; want 9 and 1", res.Accepted, res.Failed)
	}
}
