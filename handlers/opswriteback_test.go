package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
)

// writebackStatus is status.json's hubspot_writeback.
type writebackStatus struct {
	Enabled                 bool           `json:"enabled"`
	OffReason               string         `json:"off_reason"`
	Outbox                  map[string]int `json:"outbox"`
	OldestPendingAgeSeconds *int64         `json:"oldest_pending_age_seconds"`
	LastError               string         `json:"last_error"`
	LastWritten             *time.Time     `json:"last_written"`
	CallsToday              *int64         `json:"hubspot_calls_today"`
	DailyLimit              int            `json:"hubspot_daily_limit"`
	PausedUntil             *time.Time     `json:"hubspot_paused_until"`
	PausedDaily             bool           `json:"hubspot_paused_daily"`
	Unsubscribes            *struct {
		RanAt    time.Time  `json:"ran_at"`
		SyncedTo *time.Time `json:"synced_to"`
		Outcome  string     `json:"outcome"`
		Detail   string     `json:"detail"`
		Found    int        `json:"found"`
		Marked   int        `json:"marked"`
		CCPages  int        `json:"cc_pages"`
	} `json:"unsubscribe_sync"`
}

// writebackOps is the fake ops data with the write-back's figures.
type writebackOps struct {
	*fakeOps
	on     bool
	sum    store.WritebackSummary
	sumErr error
	sync   store.UnsubscribeSync
}

func (w *writebackOps) WritebackEnabled() bool { return w.on }
func (w *writebackOps) SummarizeWriteback(context.Context) (store.WritebackSummary, error) {
	return w.sum, w.sumErr
}
func (w *writebackOps) GetUnsubscribeSync(context.Context) (store.UnsubscribeSync, error) {
	return w.sync, nil
}

// fakeHubSpotCalls is HubSpot's shared call count and pause.
type fakeHubSpotCalls struct {
	used  int
	until time.Time
	daily bool
}

func (f fakeHubSpotCalls) Used(context.Context) (int, error) { return f.used, nil }
func (f fakeHubSpotCalls) Daily() int                        { return 250000 }
func (f fakeHubSpotCalls) PausedUntil(context.Context) (time.Time, bool, error) {
	return f.until, f.daily, nil
}

// TestOpsWriteback: /ops and status.json say when the write-back is off
// and why, and otherwise show its outbox by state, its oldest pending row,
// its last error, HubSpot's calls and pause, and the last unsubscribe sync;
// a figure that cannot be read is named, not guessed.
func TestOpsWriteback(t *testing.T) {
	sum := store.WritebackSummary{Counts: map[string]int{"pending": 12, "written": 1900, "missing": 3, "failed": 1},
		OldestPending: opsNow.Add(-5 * time.Minute), LastError: `crm: 502: <b>bad gateway</b>`, LastWritten: opsNow.Add(-time.Minute)}
	sync := store.UnsubscribeSync{SyncedTo: opsNow.Add(-10 * time.Minute), RanAt: opsNow.Add(-10 * time.Minute),
		Outcome: store.SyncDone, Found: 20, Marked: 20, CCPages: 1}
	cases := []struct {
		name  string
		ops   *writebackOps
		calls handlers.HubSpotCalls
		check func(t *testing.T, w *writebackStatus, errs map[string]string, page string)
	}{
		{name: "off without a token", ops: &writebackOps{fakeOps: newFakeOps()},
			check: func(t *testing.T, w *writebackStatus, _ map[string]string, page string) {
				if w == nil || w.Enabled || !strings.Contains(w.OffReason, "HS2CC_HUBSPOT_TOKEN") || w.Outbox != nil {
					t.Errorf("write-back %+v; want off, naming HS2CC_HUBSPOT_TOKEN", w)
				}
				if !strings.Contains(page, "Off: HS2CC_HUBSPOT_TOKEN is not set") {
					t.Errorf("page does not say the write-back is off")
				}
			}},
		{name: "on, with a backlog and a pause", ops: &writebackOps{fakeOps: newFakeOps(), on: true, sum: sum, sync: sync},
			calls: fakeHubSpotCalls{used: 321, until: opsNow.Add(8 * time.Second)},
			check: func(t *testing.T, w *writebackStatus, _ map[string]string, page string) {
				if w == nil || !w.Enabled || w.Outbox["pending"] != 12 || w.Outbox["written"] != 1900 || w.Outbox["missing"] != 3 ||
					w.Outbox["no_id"] != 0 || w.Outbox["failed"] != 1 || w.OldestPendingAgeSeconds == nil || *w.OldestPendingAgeSeconds != 300 ||
					w.LastError != sum.LastError || w.CallsToday == nil || *w.CallsToday != 321 || w.DailyLimit != 250000 ||
					w.PausedUntil == nil || !w.PausedUntil.Equal(opsNow.Add(8*time.Second)) {
					t.Errorf("write-back %+v", w)
				}
				if u := w.Unsubscribes; u == nil || u.Outcome != "done" || u.Marked != 20 || u.CCPages != 1 {
					t.Errorf("unsubscribe sync %+v", w.Unsubscribes)
				}
				for _, want := range []string{"HubSpot write-back", "1900", "Oldest pending for 5m", "HubSpot calls today (UTC): 321 of 250000",
					"HubSpot asked to wait until", "&lt;b&gt;bad gateway&lt;/b&gt;", "20 found, 20 enrollments marked, 1 CC calls"} {
					if !strings.Contains(page, want) {
						t.Errorf("page lacks %q", want)
					}
				}
			}},
		{name: "outbox unreadable", ops: &writebackOps{fakeOps: newFakeOps(), on: true, sumErr: errors.New("mysql down")},
			check: func(t *testing.T, w *writebackStatus, errs map[string]string, _ string) {
				if w == nil || !w.Enabled || w.Outbox != nil || errs["hubspot_writeback"] != "unavailable" {
					t.Errorf("write-back %+v, errors %v; want on with the outbox named unavailable", w, errs)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := startOps(t, func(c *handlers.Config) {
				c.Ops = tc.ops
				c.HubSpotCalls = tc.calls
			})
			r := a.as(t, http.MethodGet, "/ops/status.json", viewerName, viewerPass)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got opsStatus
			decodeJSON(t, r, &got)
			page := a.as(t, http.MethodGet, "/ops", viewerName, viewerPass)
			tc.check(t, got.Writeback, got.Errors, string(page.body))
		})
	}
}
