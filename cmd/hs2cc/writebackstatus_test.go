package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestWritebackIsVisible: `hs2cc status` and the metrics say the HubSpot
// write-back is off without a token, and with one show the outbox by state,
// the last unsubscribe sync, and a token HubSpot refused as attention that
// makes status exit non-zero.
func TestWritebackIsVisible(t *testing.T) {
	cases := []struct {
		name        string
		token       string
		setup       func(t *testing.T, db *store.DB)
		wantStatus  []string
		wantExit    error
		wantMetrics []string
	}{
		{name: "off", wantStatus: []string{"HubSpot write-back: off (HS2CC_HUBSPOT_TOKEN is not set)."},
			wantMetrics: []string{"hs2cc_hubspot_writeback_enabled 0"}},
		{name: "on, 3 settled and 1 sent", token: "pat-1",
			setup: func(t *testing.T, db *store.DB) {
				settleThree(t, db)
				rows, err := db.ClaimWriteback(context.Background(), "c", 1, time.Minute)
				if err != nil || len(rows) != 1 {
					t.Fatalf("claim: %d, %v", len(rows), err)
				}
				if err := db.FinishWriteback(context.Background(), "c", []store.WritebackDone{
					{EnrollmentID: rows[0].EnrollmentID, State: store.WritebackMissing, Error: "HubSpot has no contact 0"}}); err != nil {
					t.Fatal(err)
				}
				if err := db.SaveUnsubscribeSync(context.Background(), store.UnsubscribeSync{RanAt: time.Now(), Outcome: store.SyncPartial,
					Found: 500, Marked: 2, CCPages: 1}); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: []string{"HubSpot write-back: pending 2 written 0 missing 1 no_id 0 failed 0", "oldest pending since",
				"CC unsubscribes read", "partial, 500 found, 2 enrollments marked, 1 CC calls"},
			wantMetrics: []string{"hs2cc_hubspot_writeback_enabled 1", `hs2cc_hubspot_writeback_outbox{state="pending"} 2`,
				`hs2cc_hubspot_writeback_outbox{state="missing"} 1`, "hs2cc_hubspot_writeback_up 1"}},
		{name: "token refused", token: "pat-1",
			setup: func(t *testing.T, db *store.DB) {
				if err := db.RaiseAttention(context.Background(), jobs.AttentionHubSpot, "token",
					"HubSpot refused the private app token (crm: 401): check HS2CC_HUBSPOT_TOKEN"); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus:  []string{"NEEDS ATTENTION since", "HubSpot refused the private app token", "HubSpot write-back: pending 0"},
			wantExit:    errNeedsAttention,
			wantMetrics: []string{`hs2cc_attention{kind="hubspot",subject="token"} 1`, "hs2cc_hubspot_writeback_enabled 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			getenv, db := migratedStore(t)
			db.SetTokenKeys(storetest.TokenKeys(t))
			if tc.token != "" {
				db.EnableWriteback()
			}
			save(t, db, time.Now().Add(20*time.Hour))
			if tc.setup != nil {
				tc.setup(t, db)
			}
			var out bytes.Buffer
			err := run(ctx, []string{"status"}, func(k string) string {
				if k == "HS2CC_HUBSPOT_TOKEN" {
					return tc.token
				}
				return getenv(k)
			}, &out, &out)
			if err != tc.wantExit {
				t.Errorf("status returned %v, want %v", err, tc.wantExit)
			}
			for _, w := range tc.wantStatus {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status output lacks %q:\n%s", w, out.String())
				}
			}
			reg := newRegistry()
			reg.MustRegister(newAttentionCollector(db), newWritebackCollector(db, nil, time.Now))
			rec := httptest.NewRecorder()
			promHandler(reg, "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body, _ := io.ReadAll(rec.Body)
			for _, w := range tc.wantMetrics {
				if !strings.Contains(string(body), w) {
					t.Errorf("/metrics lacks %q", w)
				}
			}
		})
	}
}

// settleThree ingests three enrollments and settles them in one clean
// import, which queues them for the write-back.
func settleThree(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range 3 {
		res, err := db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, Body: []byte(fmt.Sprint(i))},
			&store.Enrollment{PortalID: 1, ObjectKey: fmt.Sprint(i), Email: fmt.Sprintf("a%d@example.com", i),
				Lists: []string{"New Agents"}, ContentHash: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.EnrollmentID)
	}
	imp, err := db.ClaimImport(ctx, "t", store.ListKey([]string{"New Agents"}), ids)
	if err != nil || imp == nil {
		t.Fatalf("claim: %+v, %v", imp, err)
	}
	if err := db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
		t.Fatal(err)
	}
}
