package trace_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/routing"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
	"github.com/hs2cc/hs2cc/trace"
)

// noQueue stands in for the asynq enqueuer: the story test drives the
// imports through the store as the worker does, so nothing is queued.
type noQueue struct{}

func (noQueue) EnqueueEnrollment(context.Context, int64, int, []string) error { return nil }

// clock is the store's clock, moved by the test, so that every stored time
// and so every line of the story is known in advance.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

const rulesYAML = `default_lists: ["New Agents"]
routes:
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
`

// body is a flat workflow body of contact 101 of portal 62515; modified
// is HubSpot's lastmodifieddate, which orders its versions.
func body(tier string, modified time.Time) []byte {
	return fmt.Appendf(nil, `{"portalId":62515,"hs_object_id":"101","email":"ann@example.com","firstname":"Ann",`+
		`"agent_tier":%q,"lastmodifieddate":"%d"}`, tier, modified.UnixMilli())
}

// importVersion runs one CC import of enrollment id as the worker does:
// claim, CC's 201 with its activity id, then the final activity, with the
// row refused by CC when reject is set.
func importVersion(t *testing.T, db *store.DB, clk *clock, at time.Time, task string, id int64, lists []string, reject string) *store.Import {
	t.Helper()
	ctx := t.Context()
	clk.set(at)
	imp, err := db.ClaimImport(ctx, task, store.ListKey(lists), []int64{id})
	if err != nil || imp == nil {
		t.Fatalf("claim %s: %v, %v", task, imp, err)
	}
	ids := make([]string, len(lists))
	for i, l := range lists {
		ids[i] = "id-" + strings.ReplaceAll(strings.ToLower(l), " ", "-")
	}
	if err := db.SubmitImport(ctx, imp.ID, lists, ids, "act-"+task, "processing"); err != nil {
		t.Fatal(err)
	}
	clk.set(at.Add(time.Minute))
	if reject != "" {
		if err := db.RejectRows(ctx, imp.ID, map[int64]string{id: reject}); err != nil {
			t.Fatal(err)
		}
	}
	final := store.ActivityResult{State: "completed", Final: true}
	if err := db.RecordActivity(ctx, imp.ID, final, true, ""); err != nil {
		t.Fatal(err)
	}
	return imp
}

// TestTraceTellsTheStory follows one contact through a request quarantined
// for its signature and replayed, an import, a new version that the rules
// route to a second list, a stale delivery, CC refusing the row, a replay
// of the rejected row and its import, and checks every line of the story.
func TestTraceTellsTheStory(t *testing.T) {
	ctx := t.Context()
	db := storetest.MySQL(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	db.SetClock(clk.now)
	rules, err := routing.Parse([]byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	core := ingest.New(ingest.Config{Router: rules, Logger: slog.New(slog.DiscardHandler)}, db, noQueue{})

	// A request signed with a secret not yet configured is quarantined,
	// then replayed once the secret is, as `hs2cc quarantine replay` does.
	first := body("silver", t0.Add(-time.Minute))
	q := &store.Quarantined{ReceivedAt: t0, Method: "POST", Scheme: "https", Host: "hs2cc.example", RequestURI: "/webhooks/hubspot",
		Body: first, Reason: "mismatch", Detail: "no configured secret matches", SignatureVersion: "v3"}
	if err := db.Quarantine(ctx, q, store.QuarantineCap{}); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(5 * time.Minute))
	res, err := core.Ingest(ctx, first, hubspot.Verified{Version: hubspot.V3}, q.ReceivedAt)
	if err != nil || res.Code != ingest.CodeAccepted {
		t.Fatalf("replay of the quarantined request: %+v, %v", res, err)
	}
	if err := db.MarkReplayed(ctx, q.ID, store.ReplayIngested, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.LinkQuarantined(ctx, q.ID, res.DeliveryID); err != nil {
		t.Fatal(err)
	}
	enr := res.EnrollmentID
	importVersion(t, db, clk, t0.Add(10*time.Minute), "one", enr, []string{"New Agents"}, "")

	// HubSpot sends the contact as gold, then a late retry of data older
	// than that.
	goldAt, staleAt := t0.Add(59*time.Minute), t0.Add(30*time.Minute)
	for _, d := range []struct {
		body []byte
		at   time.Time
		code ingest.Code
	}{
		{body("gold", goldAt), t0.Add(time.Hour), ingest.CodeAccepted},
		{body("platinum", staleAt), t0.Add(65 * time.Minute), ingest.CodeStale},
	} {
		clk.set(d.at)
		if res, err := core.Ingest(ctx, d.body, hubspot.Verified{Version: hubspot.V3}, d.at); err != nil || res.Code != d.code {
			t.Fatalf("delivery at %s: %+v, %v; want %s", d.at, res, err, d.code)
		}
	}
	both := []string{"Gold Agents", "New Agents"}
	refusal := "Line 1: ann@example.com: The job title is too long"
	importVersion(t, db, clk, t0.Add(70*time.Minute), "two", enr, both, refusal)

	// `hs2cc replay --status rejected` after the cause is fixed in HubSpot.
	clk.set(t0.Add(2 * time.Hour))
	if refs, err := db.RequeueBatch(ctx, store.RequeueFilter{Statuses: []string{store.StatusRejected}}, 0, 100); err != nil || len(refs) != 1 {
		t.Fatalf("requeue: %v, %v", refs, err)
	}
	importVersion(t, db, clk, t0.Add(130*time.Minute), "three", enr, both, "")

	stale := fmt.Sprintf("HubSpot data of %s is older than the stored data of %s",
		staleAt.Format("2006-01-02T15:04:05.000Z"), goldAt.Format("2006-01-02T15:04:05.000Z"))
	want := []string{
		fmt.Sprintf("Contact ann@example.com (HubSpot id 101, portal 62515): enrollment %d, version 2, imported, lists Gold Agents, New Agents", enr),
		fmt.Sprintf("2026-03-02 09:00:00 UTC  request refused for its signature and quarantined as %d (mismatch: no configured secret matches; claimed v3)", q.ID),
		fmt.Sprintf("2026-03-02 09:00:00 UTC  delivery 1 (workflow, signature v3, replayed from quarantine %d at 2026-03-02 09:05:00 UTC): accepted as version 1 of enrollment %d", q.ID, enr),
		"2026-03-02 09:00:00 UTC  version 1: first version; lists New Agents (default_lists → New Agents)",
		"2026-03-02 09:10:00 UTC  import 1 took version 1 (CC activity act-one, lists New Agents)",
		"2026-03-02 09:11:00 UTC  import 1: CC imported version 1",
		fmt.Sprintf("2026-03-02 10:00:00 UTC  delivery 2 (workflow, signature v3): accepted as version 2 of enrollment %d", enr),
		"2026-03-02 10:00:00 UTC  version 2: changed lists, property:agent_tier, property:lastmodifieddate; lists Gold Agents, New Agents " +
			"(routes[0] (agent_tier = gold) → Gold Agents; default_lists → New Agents)",
		"2026-03-02 10:05:00 UTC  delivery 3 (workflow, signature v3): stale, version 2 kept: " + stale,
		"2026-03-02 10:10:00 UTC  import 2 took version 2 (CC activity act-two, lists Gold Agents, New Agents)",
		"2026-03-02 10:11:00 UTC  import 2: version 2 rejected: " + refusal,
		"2026-03-02 11:00:00 UTC  replay queued version 2 again (it was rejected)",
		"2026-03-02 11:10:00 UTC  import 3 took version 2 (CC activity act-three, lists Gold Agents, New Agents)",
		"2026-03-02 11:11:00 UTC  import 3: CC imported version 2",
	}
	for _, key := range []string{"ann@example.com", "ANN@example.com", "101"} {
		s, err := trace.Build(ctx, db, key, trace.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := trace.Lines(s); !slices.Equal(got, want) {
			t.Errorf("trace %s:\n%s\nwant:\n%s", key, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestTraceTellsTheWriteback: with the HubSpot write-back on, the story
// says what HubSpot was told and when, what the bridge learned from CC
// afterwards, and why the newest value is not written yet.
func TestTraceTellsTheWriteback(t *testing.T) {
	ctx := t.Context()
	db := storetest.MySQL(t)
	db.EnableWriteback()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	db.SetClock(clk.now)
	rules, err := routing.Parse([]byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	core := ingest.New(ingest.Config{Router: rules, Logger: slog.New(slog.DiscardHandler)}, db, noQueue{})
	res, err := core.Ingest(ctx, body("silver", t0.Add(-time.Minute)), hubspot.Verified{Version: hubspot.V3}, t0)
	if err != nil || res.Code != ingest.CodeAccepted {
		t.Fatalf("ingest: %+v, %v", res, err)
	}
	importVersion(t, db, clk, t0.Add(10*time.Minute), "one", res.EnrollmentID, []string{"New Agents"}, "")

	clk.set(t0.Add(12 * time.Minute))
	rows, err := db.ClaimWriteback(ctx, "a", 10, time.Minute)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v, %v", rows, err)
	}
	if err := db.FinishWriteback(ctx, "a", []store.WritebackDone{{EnrollmentID: res.EnrollmentID, State: store.WritebackWritten, Status: "imported"}}); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(time.Hour))
	if _, err := db.MarkUnsubscribed(ctx, []string{"ann@example.com"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(61 * time.Minute))
	if _, err := db.ClaimWriteback(ctx, "b", 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseWriteback(ctx, "b", "crm: 502: Bad Gateway", true); err != nil {
		t.Fatal(err)
	}
	s, err := trace.Build(ctx, db, "101", trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := trace.Lines(s)
	want := []string{
		"2026-03-02 09:11:00 UTC  import 1: CC imported version 1",
		"2026-03-02 09:12:00 UTC  HubSpot told: hs2cc_cc_status = imported",
		"2026-03-02 10:00:00 UTC  found unsubscribed in CC",
		"2026-03-02 10:00:00 UTC  queued for HubSpot, not written yet: crm: 502: Bad Gateway",
	}
	if !slices.Equal(got[len(got)-len(want):], want) {
		t.Errorf("trace:\n%s\nwant it to end:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
