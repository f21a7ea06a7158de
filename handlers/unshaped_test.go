package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// countingStore counts the writes of unshaped counts and fails the first
// failFirst of them, as a MySQL outage would.
type countingStore struct {
	handlers.Store
	failFirst int64
	calls     atomic.Int64
}

func (s *countingStore) AddUnshaped(ctx context.Context, counts []store.UnshapedCount) error {
	if s.calls.Add(1) <= s.failFirst {
		return errors.New("store: connection refused")
	}
	return s.Store.AddUnshaped(ctx, counts)
}

// unshapedCount is the stored count of reason, waiting up to timeout for
// it to reach want, since counts are written at most once a second.
func (a *app) unshapedCount(t testing.TB, reason string, want int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts, err := a.db.UnshapedCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, c := range counts {
			if c.Reason == reason {
				got = c.Count
			}
		}
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A refused request not shaped like HubSpot's is answered 401 as any
// signature failure is, and is counted by reason, in the metric and in
// MySQL, but never kept.
func TestWebhookCountsUnshaped(t *testing.T) {
	body := profile(t)
	cases := []struct {
		name   string
		header func() http.Header
		reason string
	}{
		{
			name: "no signature headers, only HubSpot's infrastructure ones",
			header: func() http.Header {
				h := http.Header{}
				h.Set("X-HubSpot-Correlation-Id", "9f0c2b1e-1111-4a2b-8c3d-0123456789ab")
				return h
			},
			reason: hubspot.UnshapedNoSignature,
		},
		{
			name: "a signature version no one knows",
			header: func() http.Header {
				h := withoutV3(sign(body, hookPath))
				h.Set(hubspot.HeaderSignatureVersion, "<b>v9</b>")
				return h
			},
			reason: hubspot.UnshapedMalformedSignature,
		},
		{
			name: "v3 signature that is no HMAC-SHA256",
			header: func() http.Header {
				h := sign(body, hookPath)
				h.Set(hubspot.HeaderSignatureV3, "anything")
				return h
			},
			reason: hubspot.UnshapedMalformedSignature,
		},
		{
			name: "timestamp more than 5 minutes old",
			header: func() http.Header {
				return hubspot.Sign(secret, http.MethodPost, publicURL+hookPath, body, time.Now().Add(-6*time.Minute))
			},
			reason: hubspot.UnshapedStaleTimestamp,
		},
		{
			name: "timestamp more than 5 minutes ahead",
			header: func() http.Header {
				return hubspot.Sign(secret, http.MethodPost, publicURL+hookPath, body, time.Now().Add(6*time.Minute))
			},
			reason: hubspot.UnshapedFutureTimestamp,
		},
		{
			name: "unreadable timestamp",
			header: func() http.Header {
				h := sign(body, hookPath)
				h.Set(hubspot.HeaderRequestTimestamp, h.Get(hubspot.HeaderRequestTimestamp)+".0")
				return h
			},
			reason: hubspot.UnshapedMalformedTimestamp,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			a := start(t, func(s *setup) { s.cfg.WebhookMetrics = handlers.NewMetrics(reg) })
			wantError(t, a.post(t, body, tc.header()), http.StatusUnauthorized, handlers.CodeBadSignature)
			a.wantNothingStored(t)
			if qs := a.quarantined(t); len(qs) != 0 {
				t.Errorf("%d quarantined, want none", len(qs))
			}
			g := gather(t, reg)
			for _, r := range hubspot.UnshapedReasons {
				want := 0.0
				if r == tc.reason {
					want = 1
				}
				if got := g.counter("hs2cc_quarantine_unshaped_total", "reason", r); got != want {
					t.Errorf("hs2cc_quarantine_unshaped_total{reason=%q} = %v, want %v", r, got, want)
				}
			}
			if got := a.unshapedCount(t, tc.reason, 1, 5*time.Second); got != 1 {
				t.Errorf("stored count of %s = %d, want 1", tc.reason, got)
			}
		})
	}
}

// A flood of junk costs MySQL about one write a second, however fast it
// comes: 2,000 header-less requests from 8 senders are all answered 401,
// the quarantine stays empty, the counts all arrive, and a write that fails
// loses none of them.
func TestWebhookUnshapedFloodWrites(t *testing.T) {
	const (
		junk    = 2000
		senders = 8
	)
	cases := []struct {
		name      string
		failFirst int64
	}{
		{"MySQL up", 0},
		{"first two writes fail", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counting := &countingStore{failFirst: tc.failFirst}
			a := start(t, func(s *setup) {
				// A small cap, which the junk would fill at once if it
				// were kept.
				s.cfg.QuarantineCap = store.QuarantineCap{MaxRows: 5}
				s.wrap = func(db *store.DB) handlers.Store { counting.Store = db; return counting }
			})
			began := time.Now()
			var wg sync.WaitGroup
			var refused atomic.Int64
			for w := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < junk; i += senders {
						if r := a.post(t, []byte(`{"junk":true}`), nil); r.status == http.StatusUnauthorized {
							refused.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if n := refused.Load(); n != junk {
				t.Fatalf("%d of %d junk requests answered 401", n, junk)
			}
			if got := a.unshapedCount(t, hubspot.UnshapedNoSignature, junk, 10*time.Second); got != junk {
				t.Fatalf("stored count %d, want %d", got, junk)
			}
			took := time.Since(began)
			t.Logf("%d junk requests in %v, %d writes of the counts", junk, took, counting.calls.Load())
			// One write a second at most, plus the first, which is not
			// held back.
			if calls, most := counting.calls.Load(), int64(took/time.Second)+2; calls > most {
				t.Errorf("%d writes of the counts in %v, want at most %d", calls, took, most)
			}
			if qs := a.quarantined(t); len(qs) != 0 {
				t.Errorf("%d junk requests quarantined, want none", len(qs))
			}
			if tc.failFirst > 0 && strings.Count(a.logs.String(), "could not add to the counts") != 1 {
				t.Errorf("want the failed writes logged once:\n%s", a.logs)
			}
		})
	}
}
