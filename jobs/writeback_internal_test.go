package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/hubspot/crm/hssandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// wbEnv is a Writer against real MySQL and Redis and the HubSpot sandbox,
// with nothing created in HubSpot beforehand: the properties are made by
// the first write-back, as on a fresh portal.
type wbEnv struct {
	t   *testing.T
	db  *store.DB
	sb  *hssandbox.Server
	srv *httptest.Server
	w   *Writer
	rdb *redis.Client
}

func newWBEnv(t *testing.T, opts hssandbox.Options, token string) *wbEnv {
	t.Helper()
	e := &wbEnv{t: t, db: storetest.MySQL(t)}
	e.db.EnableWriteback()
	opt, err := asynq.ParseRedisURI(storetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	aq := asynq.NewClient(opt)
	t.Cleanup(func() { aq.Close() })
	opts.Seed = 7
	if e.sb, err = hssandbox.New(opts); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.sb)
	t.Cleanup(e.srv.Close)
	if token == "" {
		token = e.sb.Token()
	}
	rdb := storetest.Redis(t)
	e.rdb = rdb
	hs := crm.New(e.srv.URL, token, e.srv.Client(), crm.WithLimiter(store.NewHubSpotLimits(rdb, 100, 250000)))
	e.w = NewWriter(hs, e.db, nil, nil, NewEnqueuer(aq), slog.New(slog.DiscardHandler), nil)
	return e
}

// settle ingests n enrollments keyed by key(i), imports them, has CC refuse
// the rows refuse picks, and returns their ids.
func (e *wbEnv) settle(n int, key func(i int) string, refuse func(i int) bool) []int64 {
	e.t.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range n {
		res, err := e.db.Ingest(ctx, &store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte(fmt.Sprint(i))},
			&store.Enrollment{PortalID: 1, ObjectKey: key(i), Email: fmt.Sprintf("agent%d@example.com", i),
				Lists: []string{"New Agents", "Gold"}, ContentHash: fmt.Sprint(i)})
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, res.EnrollmentID)
	}
	imp, err := e.db.ClaimImport(ctx, "t", store.ListKey([]string{"New Agents", "Gold"}), ids)
	if err != nil || imp == nil {
		e.t.Fatalf("claim: %+v, %v", imp, err)
	}
	if err := e.db.SubmitImport(ctx, imp.ID, []string{"New Agents", "Gold"}, []string{"l-1", "l-2"}, "act-1", "initialized"); err != nil {
		e.t.Fatal(err)
	}
	reasons := map[int64]string{}
	for i, id := range ids {
		if refuse(i) {
			reasons[id] = "Constant Contact refused this row: invalid email address"
		}
	}
	if err := e.db.RejectRows(ctx, imp.ID, reasons); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.RecordActivity(ctx, imp.ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// deleteContact deletes a contact in the sandbox, as a HubSpot user would.
func (e *wbEnv) deleteContact(id string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/crm/v3/objects/contacts/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+e.sb.Token())
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("delete contact %s: %d", id, resp.StatusCode)
	}
}

func (e *wbEnv) contacts() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range e.sb.Contacts() {
		out[c.ID] = c.Properties
	}
	return out
}

func (e *wbEnv) states() map[string]int {
	e.t.Helper()
	sum, err := e.db.SummarizeWriteback(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return sum.Counts
}

// requests counts every request HubSpot answered.
func (e *wbEnv) requests() int {
	n := 0
	for _, m := range e.sb.Stats() {
		for _, c := range m {
			n += c
		}
	}
	return n
}

func (e *wbEnv) batchCalls() int {
	n := 0
	for k, m := range e.sb.Stats() {
		if strings.Contains(k, "batch/update") {
			for _, c := range m {
				n += c
			}
		}
	}
	return n
}

// TestWritebackOutcomes: 250 settled enrollments, some refused by CC, one
// unsubscribed, one without a HubSpot id and two deleted in HubSpot, go to
// HubSpot in three batch calls under each reading of HubSpot's answer to
// deleted contacts; each contact carries the status, lists and reason of
// its outcome, the deleted ones are skipped without holding back the rest
// of their batch, and the properties are made on first use.
func TestWritebackOutcomes(t *testing.T) {
	for _, missing := range []string{hssandbox.MissingMultiStatus, hssandbox.MissingRefuse, hssandbox.MissingRefuseMessage} {
		t.Run(missing, func(t *testing.T) {
			t.Parallel()
			e := newWBEnv(t, hssandbox.Options{Missing: missing}, "")
			ctx := context.Background()
			key := func(i int) string {
				if i == 249 {
					return "email:agent249@example.com"
				}
				return fmt.Sprint(5000 + i)
			}
			refused := func(i int) bool { return i%50 == 7 }
			e.settle(250, key, refused)
			if _, err := e.db.MarkUnsubscribed(ctx, []string{"Agent3@Example.com"}, time.Now()); err != nil {
				t.Fatal(err)
			}
			e.deleteContact("5010")
			e.deleteContact("5150")
			if err := e.w.handleWriteback(ctx, nil); err != nil {
				t.Fatal(err)
			}
			got := e.contacts()
			for i := range 249 {
				id := key(i)
				p := got[id]
				want := map[string]string{crm.PropStatus: "imported", crm.PropLists: "New Agents; Gold", crm.PropReason: ""}
				switch {
				case id == "5010" || id == "5150":
					if p != nil {
						t.Errorf("deleted contact %s written: %v", id, p)
					}
					continue
				case i == 3:
					want = map[string]string{crm.PropStatus: "unsubscribed", crm.PropLists: "", crm.PropReason: "unsubscribed in Constant Contact"}
				case refused(i):
					want = map[string]string{crm.PropStatus: "rejected", crm.PropLists: "", crm.PropReason: "Constant Contact refused this row: invalid email address"}
				}
				for k, v := range want {
					if p[k] != v {
						t.Errorf("contact %s %s = %q, want %q", id, k, p[k], v)
					}
				}
				if p[crm.PropSyncedAt] == "" {
					t.Errorf("contact %s has no %s", id, crm.PropSyncedAt)
				}
			}
			if len(got) != 247 {
				t.Errorf("%d contacts written, want 247", len(got))
			}
			states := e.states()
			if states["written"] != 247 || states["missing"] != 2 || states["no_id"] != 1 || states["pending"] != 0 {
				t.Errorf("outbox %v", states)
			}
			// Three batches of at most 100; a refusal of a whole batch
			// costs one more call to send the rest again.
			wantCalls := 3
			if missing != hssandbox.MissingMultiStatus {
				wantCalls = 5
			}
			if n := e.batchCalls(); n != wantCalls {
				t.Errorf("%d batch calls, want %d", n, wantCalls)
			}
		})
	}
}

// TestWritebackWaitsAndStops: HubSpot's 429 makes the task wait without
// spending an attempt and the rows go on the next run; a token HubSpot
// refuses becomes attention that names it, the rows wait in the outbox,
// and a good token clears it.
func TestWritebackWaitsAndStops(t *testing.T) {
	t.Run("429", func(t *testing.T) {
		t.Parallel()
		e := newWBEnv(t, hssandbox.Options{}, "")
		ctx := context.Background()
		e.settle(20, func(i int) string { return fmt.Sprint(100 + i) }, func(int) bool { return false })
		if err := e.w.ensureProperties(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.sb.SetFaults(hssandbox.Faults{ThrottleRate: 1}); err != nil {
			t.Fatal(err)
		}
		err := e.w.handleWriteback(ctx, nil)
		if _, ok := asksToWait(err); !ok || isFailure(err) {
			t.Fatalf("with HubSpot throttling: %v; want a wait that spends no retry", err)
		}
		if s := e.states(); s["pending"] != 20 {
			t.Fatalf("outbox %v, want 20 pending", s)
		}
		if err := e.sb.SetFaults(hssandbox.Faults{}); err != nil {
			t.Fatal(err)
		}
		// The 429 paused every caller; the test does not wait it out.
		e.rdb.FlushDB(ctx)
		if err := e.w.handleWriteback(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if s := e.states(); s["written"] != 20 {
			t.Errorf("outbox %v, want 20 written", s)
		}
	})
	t.Run("daily limit", func(t *testing.T) {
		t.Parallel()
		e := newWBEnv(t, hssandbox.Options{}, "")
		ctx := context.Background()
		e.settle(5, func(i int) string { return fmt.Sprint(100 + i) }, func(int) bool { return false })
		// Another process met HubSpot's daily 429: every process waits
		// until tomorrow, without a task retrying all that while.
		if err := store.NewHubSpotLimits(e.rdb, 100, 250000).Pause(ctx, 5*time.Hour, true); err != nil {
			t.Fatal(err)
		}
		if err := e.w.handleWriteback(ctx, nil); err != nil {
			t.Fatalf("with the daily limit spent: %v; want the task to end", err)
		}
		if s := e.states(); s["pending"] != 5 || e.batchCalls() != 0 {
			t.Errorf("outbox %v, %d batch calls; want 5 pending and no call", s, e.batchCalls())
		}
	})
	t.Run("refused token", func(t *testing.T) {
		t.Parallel()
		e := newWBEnv(t, hssandbox.Options{}, "not-the-token")
		ctx := context.Background()
		e.settle(5, func(i int) string { return fmt.Sprint(100 + i) }, func(int) bool { return false })
		// The task ends without an error: the rows wait in the outbox for
		// the periodic write-back, not in a retry that would run forever.
		if err := e.w.handleWriteback(ctx, nil); err != nil {
			t.Fatalf("with a refused token: %v; want the task to end", err)
		}
		// One refused call stops the task: no batch is tried.
		if n := e.requests(); n != 1 {
			t.Errorf("%d requests to HubSpot with a refused token; want the one refused", n)
		}
		a, err := e.db.GetAttention(ctx, AttentionHubSpot, "properties")
		if err != nil || a == nil || !strings.Contains(a.Detail, "HS2CC_HUBSPOT_TOKEN") {
			t.Fatalf("attention %+v, %v; want one naming HS2CC_HUBSPOT_TOKEN", a, err)
		}
		if s := e.states(); s["pending"] != 5 {
			t.Fatalf("outbox %v, want 5 pending", s)
		}
		good := newWBEnv(t, hssandbox.Options{}, "")
		good.w.st = e.db
		if err := good.w.handleWriteback(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if a, err := e.db.GetAttention(ctx, AttentionHubSpot, "properties"); !errors.Is(err, store.ErrNotFound) && a != nil {
			t.Errorf("attention %+v, %v after a good token; want none", a, err)
		}
		if s := e.states(); s["written"] != 5 {
			t.Errorf("outbox %v, want 5 written", s)
		}
	})
}

// TestWritebackValues pins the one policy for what the properties say.
func TestWritebackValues(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name               string
		row                store.WritebackRow
		status, lists, why string
	}{
		{"imported", store.WritebackRow{Status: "imported", Lists: []string{"A", "B"}, ImportedAt: t0}, "imported", "A; B", ""},
		{"rejected", store.WritebackRow{Status: "rejected", StatusReason: "bad"}, "rejected", "", "bad"},
		{"failed is pending with its reason", store.WritebackRow{Status: "failed", StatusReason: "CC activity not found"}, "pending", "", "CC activity not found"},
		{"waiting", store.WritebackRow{Status: "pending"}, "pending", "", reasonWaiting},
		{"unsubscribed after its import", store.WritebackRow{Status: "imported", Lists: []string{"A"}, ImportedAt: t0, UnsubscribedAt: t0.Add(time.Hour)}, "unsubscribed", "", reasonUnsubscribed},
		{"refused as unsubscribed at import", store.WritebackRow{Status: "rejected", StatusReason: "unsubscribed", UnsubscribedAt: t0}, "unsubscribed", "", reasonUnsubscribed},
		{"removed from one list by a reconcile", store.WritebackRow{Status: "imported", Lists: []string{"A", "B"}, ImportedAt: t0,
			RemovedAt: t0.Add(time.Hour), RemovedFrom: []string{"B"}}, "removed", "A", "removed in Constant Contact from B"},
		{"imported again after a removal", store.WritebackRow{Status: "imported", Lists: []string{"A", "B"}, ImportedAt: t0.Add(2 * time.Hour),
			RemovedAt: t0.Add(time.Hour), RemovedFrom: []string{"B"}}, "imported", "A; B", ""},
		{"unsubscribed outranks removed", store.WritebackRow{Status: "imported", Lists: []string{"A"}, ImportedAt: t0,
			RemovedAt: t0.Add(time.Hour), RemovedFrom: []string{"A"}, UnsubscribedAt: t0.Add(time.Hour)}, "unsubscribed", "", reasonUnsubscribed},
		{"imported again after resubscribing", store.WritebackRow{Status: "imported", Lists: []string{"A"}, ImportedAt: t0.Add(time.Hour), UnsubscribedAt: t0}, "imported", "A", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := writebackValues(tc.row, t0)
			if v[crm.PropStatus] != tc.status || v[crm.PropLists] != tc.lists || v[crm.PropReason] != tc.why ||
				v[crm.PropSyncedAt] != fmt.Sprint(t0.UnixMilli()) {
				t.Errorf("values %v, want status %q lists %q reason %q", v, tc.status, tc.lists, tc.why)
			}
		})
	}
}

// TestWritebackCatchesUp is the order deployments take: the bridge imports
// for a while with no HubSpot token, then the token is set. The
// enrollments settled before are written back by the first write-back run,
// with the ones settled after, and a second process start queues nothing
// again.
func TestWritebackCatchesUp(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.MySQLDSN(t)
	before, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if _, err := before.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := newWBEnv(t, hssandbox.Options{}, "")
	after, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	after.EnableWriteback()
	// The first 150 settle before the token is set: nothing is queued.
	e.db, e.w.st = before, before
	e.settle(150, func(i int) string { return fmt.Sprint(9000 + i) }, func(i int) bool { return i == 7 })
	if n, err := after.SummarizeWriteback(ctx); err != nil || len(n.Counts) != 0 {
		t.Fatalf("outbox %v, %v before the token; want empty", n.Counts, err)
	}
	// The token is set and work restarts: its writer has the new store.
	e.db, e.w.st = after, after
	if err := e.w.handleWriteback(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got := e.contacts()
	if len(got) != 150 || got["9007"][crm.PropStatus] != "rejected" || got["9008"][crm.PropStatus] != "imported" {
		t.Errorf("%d contacts written (9007 %v, 9008 %v); want 150, 9007 rejected", len(got), got["9007"], got["9008"])
	}
	if s := e.states(); s["written"] != 150 {
		t.Errorf("outbox %v, want 150 written", s)
	}
	if n, _, err := after.QueueUnwritten(ctx, 0, 1000); err != nil || n != 0 {
		t.Errorf("a second catch-up queued %d, %v; want none", n, err)
	}
}

// fakeUnsubs is CC's list of unsubscribed contacts as UnsubscribeCC reads
// it, recording what it was asked.
type fakeUnsubs struct {
	emails   []string
	complete bool
	err      error
	since    []time.Time
	pages    []int
}

func (f *fakeUnsubs) UnsubscribedSince(_ context.Context, since time.Time, maxPages int) (map[string]bool, int, bool, error) {
	f.since, f.pages = append(f.since, since), append(f.pages, maxPages)
	if f.err != nil {
		return nil, 0, false, f.err
	}
	out := map[string]bool{}
	for _, e := range f.emails {
		out[e] = true
	}
	return out, 1, f.complete, nil
}

// TestUnsubscribeSync: a run reads CC's unsubscribes since its cursor (30
// days back the first time), marks the bridge's contacts among them and
// moves the cursor only when it read everything; CC not connected and a
// nearly spent budget skip the run without an error that asynq would run
// again for ever, and keep the cursor.
func TestUnsubscribeSync(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		cc        *fakeUnsubs
		remaining int
		prior     time.Time // the cursor before the run; zero: first run
		// wantSince is what CC is asked for (zero: CC is not asked).
		wantSince   time.Time
		wantOutcome string
		wantMarked  int
		wantCursor  time.Time
	}{
		{name: "first run reads 30 days", cc: &fakeUnsubs{emails: []string{"agent1@example.com", "stranger@example.com"}, complete: true},
			remaining: 8000, wantSince: t0.Add(-30 * 24 * time.Hour), wantOutcome: store.SyncDone, wantMarked: 1, wantCursor: t0},
		{name: "next run reads from its cursor", cc: &fakeUnsubs{emails: []string{"agent2@example.com"}, complete: true},
			remaining: 8000, prior: t0.Add(-15 * time.Minute), wantSince: t0.Add(-16 * time.Minute), wantOutcome: store.SyncDone,
			wantMarked: 1, wantCursor: t0},
		{name: "pages left keep the cursor", cc: &fakeUnsubs{emails: []string{"agent3@example.com"}},
			remaining: 8000, prior: t0.Add(-15 * time.Minute), wantSince: t0.Add(-16 * time.Minute), wantOutcome: store.SyncPartial,
			wantMarked: 1, wantCursor: t0.Add(-15 * time.Minute)},
		{name: "CC not connected", cc: &fakeUnsubs{err: fmt.Errorf("token: %w", ccauth.ErrNotConnected)},
			remaining: 8000, prior: t0.Add(-15 * time.Minute), wantSince: t0.Add(-16 * time.Minute), wantOutcome: store.SyncSkipped,
			wantCursor: t0.Add(-15 * time.Minute)},
		{name: "budget nearly spent", cc: &fakeUnsubs{}, remaining: 3, prior: t0.Add(-15 * time.Minute),
			wantOutcome: store.SyncSkipped, wantCursor: t0.Add(-15 * time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newWBEnv(t, hssandbox.Options{}, "")
			e.settle(5, func(i int) string { return fmt.Sprint(100 + i) }, func(int) bool { return false })
			if !tc.prior.IsZero() {
				if err := e.db.SaveUnsubscribeSync(ctx, store.UnsubscribeSync{SyncedTo: tc.prior, RanAt: tc.prior, Outcome: store.SyncDone}); err != nil {
					t.Fatal(err)
				}
			}
			e.w.cc, e.w.budget, e.w.now = tc.cc, fixedBudget(tc.remaining), func() time.Time { return t0 }
			if err := e.w.handleUnsubscribes(ctx, nil); err != nil {
				t.Fatalf("run: %v; want none", err)
			}
			if tc.wantSince.IsZero() != (len(tc.cc.since) == 0) || (len(tc.cc.since) > 0 && !tc.cc.since[0].Equal(tc.wantSince)) {
				t.Errorf("CC asked since %v, want %v", tc.cc.since, tc.wantSince)
			}
			got, err := e.db.GetUnsubscribeSync(ctx)
			if err != nil || got.Outcome != tc.wantOutcome || got.Marked != tc.wantMarked || !got.SyncedTo.Equal(tc.wantCursor) {
				t.Errorf("run %+v, %v; want %s, %d marked, cursor %v", got, err, tc.wantOutcome, tc.wantMarked, tc.wantCursor)
			}
		})
	}
}
