package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
	"github.com/hs2cc/hs2cc/cmd/hs2cc/loadgen"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/hubspot/crm/hssandbox"
	"github.com/hs2cc/hs2cc/store"
)

// writebackRoutes sends every agent to New Agents and the gold ones to Gold
// Agents as well, so that some contacts are written back with two lists.
// The lists do not exist until the bridge makes them.
const writebackRoutes = `default_lists: ["New Agents"]
create_missing_lists: true
routes:
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
`

const (
	writebackPortal = 62515
	batchUpdate     = "POST /crm/v3/objects/contacts/batch/update"
	// reasonUnsubscribed is what hs2cc_cc_reason says of a contact CC
	// unsubscribed (jobs words it; the issue fixes it).
	reasonUnsubscribed = "unsubscribed in Constant Contact"
)

// writebackCase is one run of the bridge with the HubSpot write-back on.
type writebackCase struct {
	name     string
	contacts int
	firstID  int64
	// ccRejectRate is the share of rows CC refuses one by one.
	ccRejectRate float64
	// hs configures the HubSpot sandbox (its faults, how it answers a
	// batch naming a deleted contact).
	hs hssandbox.Options
	// env adds to or overrides the bridge's settings; without
	// HS2CC_UNSUBSCRIBE_SYNC_INTERVAL the default (15m) holds, under which
	// the periodic unsubscribe sync never runs here.
	env map[string]string
	// unsubscribeAfter contacts are unsubscribed in CC once every import
	// outcome is written back; only hubspot:unsubscribes can find them.
	unsubscribeAfter int
	// unsubscribeBefore unsubscribes one contact in CC before its
	// enrollment arrives: CC refuses it at import (cannot_add_to_list).
	unsubscribeBefore bool
	// deleteBefore deletes one contact in HubSpot before its outcome is
	// written.
	deleteBefore bool
	// maxImportBatches bounds the batch updates of the import outcomes
	// (zero: no bound).
	maxImportBatches int
	// wantFaults requires the HubSpot sandbox to have answered some 429s
	// and some 5xx.
	wantFaults bool
	// wantMissingStatus is the status HubSpot answered the batch naming
	// the deleted contact with (207 or, in the refusing modes, 400).
	wantMissingStatus int
}

// TestWriteback runs serve and work with HS2CC_HUBSPOT_TOKEN set against
// the CC sandbox and the HubSpot sandbox, and reads what each HubSpot
// contact ends up carrying. Each run starts the bridge before anything
// exists in HubSpot, so the hs2cc properties are the bridge's own work.
//
//   - outcomes: 2,000 enrollments, 1% of rows refused by CC, then 20
//     contacts unsubscribed in CC. HS2CC_UNSUBSCRIBE_SYNC_INTERVAL is
//     shortened to 2s so that the test sees the sync run: it proves the
//     sync finds and writes CC's unsubscribes, not that the default 15m
//     schedule fires. The import outcomes may take at most 25 batch
//     updates.
//   - faults: HubSpot answers 5% 429s and 5% 5xx from its first request
//     (the seed makes that first request a 429 and the thirteenth a 5xx,
//     so both are met whatever the draw); nothing may be missing. A
//     contact unsubscribed in CC before its enrollment arrives must end
//     unsubscribed on default settings: CC refuses it at import
//     (cannot_add_to_list), which needs no unsubscribe sync.
//   - deleted contact, in both readings of HubSpot's answer: a contact
//     deleted in HubSpot is skipped (outbox state missing) and the others
//     of its batch are written.
//   - no token: HubSpot is never called and the outbox stays empty, while
//     the imports reach CC as before.
func TestWriteback(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	cases := []writebackCase{
		{name: "outcomes", contacts: 2000, firstID: 7_000_000, ccRejectRate: 0.01,
			unsubscribeAfter: 20, maxImportBatches: 25,
			env: map[string]string{"HS2CC_UNSUBSCRIBE_SYNC_INTERVAL": "2s", "HS2CC_GROUP_GRACE_PERIOD": "2s"}},
		{name: "faults", contacts: 300, firstID: 7_100_000, unsubscribeBefore: true, wantFaults: true,
			hs: hssandbox.Options{ThrottleRate: 0.05, FailRate: 0.05, Seed: 5315}},
		{name: "deleted contact, 207", contacts: 60, firstID: 7_200_000, deleteBefore: true, unsubscribeBefore: true,
			hs: hssandbox.Options{Missing: hssandbox.MissingMultiStatus}, wantMissingStatus: http.StatusMultiStatus},
		{name: "deleted contact, refused batch", contacts: 60, firstID: 7_300_000, deleteBefore: true,
			hs: hssandbox.Options{Missing: hssandbox.MissingRefuse}, wantMissingStatus: http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runWriteback(t, tc)
		})
	}
	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		writebackOff(t)
	})
}

// simAgent is what the load generator's body for contact i says of it.
type simAgent struct {
	id, email, tier string
}

func simAgents(firstID int64, n int) []simAgent {
	agents := make([]simAgent, n)
	for i := range agents {
		vid := firstID + int64(i)
		var body struct {
			Properties map[string]struct{ Value string } `json:"properties"`
		}
		if err := json.Unmarshal(loadgen.ContactBody(writebackPortal, vid, i), &body); err != nil {
			panic(err)
		}
		agents[i] = simAgent{id: strconv.FormatInt(vid, 10), email: strings.ToLower(body.Properties["email"].Value),
			tier: body.Properties["agent_tier"].Value}
	}
	return agents
}

// routedLists is what writebackRoutes chooses for a, sorted.
func (a simAgent) routedLists() []string {
	if a.tier == "gold" {
		return []string{"Gold Agents", "New Agents"}
	}
	return []string{"New Agents"}
}

// newHubSpot starts the HubSpot sandbox on its own server.
func newHubSpot(t *testing.T, o hssandbox.Options) (*hssandbox.Server, *httptest.Server) {
	t.Helper()
	sb, err := hssandbox.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

// hubspotCall makes one authorised call to the HubSpot sandbox, as a person
// with the app's token would, and decodes the answer into v when non-nil.
func hubspotCall(t *testing.T, sb *hssandbox.Server, srv *httptest.Server, method, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+sb.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func sendAgents(t *testing.T, br *bridgeRun, firstID int64, n int) {
	t.Helper()
	res, err := simulate(br.ctx, simOptions{
		URL: "http://" + br.addr + "/webhooks/hubspot", Secret: br.secret, Count: n, Concurrency: 4,
		FirstID: firstID, PortalID: writebackPortal, SignURL: "https://hooks.example.com/webhooks/hubspot",
	})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if res.Accepted != n || res.Rejected != 0 || res.Failed != 0 {
		t.Fatalf("answers: %d accepted, %d rejected, %d failed; want %d, 0, 0", res.Accepted, res.Rejected, res.Failed, n)
	}
}

// settled counts the enrollments that CC's imports settled for good.
func settled(br *bridgeRun) (map[string]int, int) {
	c, err := br.db.CountEnrollments(br.ctx)
	if err != nil {
		return nil, -1
	}
	return c, c[store.StatusImported] + c[store.StatusRejected]
}

// outboxRow is an enrollment with its write-back, read from MySQL.
type outboxRow struct {
	objectKey, email, status, reason string
	lists                            []string
	state, lastError, writtenStatus  string // "" when no write-back was queued
}

func readOutbox(t *testing.T, br *bridgeRun) map[string]outboxRow {
	t.Helper()
	rows, err := br.db.SQL().QueryContext(br.ctx,
		`SELECT e.object_key, e.email, e.status, e.status_reason, e.lists,
		   COALESCE(w.state, ''), COALESCE(w.last_error, ''), COALESCE(w.written_status, '')
		 FROM enrollments e LEFT JOIN hubspot_writeback w ON w.enrollment_id = e.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]outboxRow{}
	for rows.Next() {
		var r outboxRow
		var lists string
		if err := rows.Scan(&r.objectKey, &r.email, &r.status, &r.reason, &lists, &r.state, &r.lastError, &r.writtenStatus); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(lists), &r.lists); err != nil {
			t.Fatal(err)
		}
		out[r.objectKey] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func outboxStates(br *bridgeRun) map[string]int {
	sum, err := br.db.SummarizeWriteback(br.ctx)
	if err != nil {
		return nil
	}
	return sum.Counts
}

func hubspotStatuses(sb *hssandbox.Server) map[int]int {
	out := map[int]int{}
	for _, byStatus := range sb.Stats() {
		for status, n := range byStatus {
			out[status] += n
		}
	}
	return out
}

func sumStatuses(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func runWriteback(t *testing.T, tc writebackCase) {
	start := time.Now()
	hs, hsSrv := newHubSpot(t, tc.hs)
	cc := ccsandbox.New(ccsandbox.Options{ActivityDelay: 300 * time.Millisecond, RejectRate: tc.ccRejectRate, Seed: 17})
	ccSrv := httptest.NewServer(ccspec.New(t).Wrap(cc))
	t.Cleanup(ccSrv.Close)
	env := map[string]string{
		"HS2CC_ROUTES":             writeRoutes(t, writebackRoutes),
		"HS2CC_GROUP_GRACE_PERIOD": "1s",
		"HS2CC_GROUP_MAX_DELAY":    "30s",
		"HS2CC_HUBSPOT_TOKEN":      hs.Token(),
		"HS2CC_HUBSPOT_API_URL":    hsSrv.URL,
	}
	maps.Copy(env, tc.env)
	// The bridge runs before anything is made in HubSpot.
	br := startBridge(t, ccSrv, cc, env)

	agents := simAgents(tc.firstID, tc.contacts)
	unsubscribed := map[string]bool{} // HubSpot ids whose contact CC unsubscribed
	deleted := ""
	if tc.deleteBefore {
		deleted = agents[3].id
		if st := hubspotCall(t, hs, hsSrv, http.MethodDelete, "/crm/v3/objects/contacts/"+deleted, nil); st != http.StatusNoContent {
			t.Fatalf("deleting HubSpot contact %s: %d", deleted, st)
		}
	}
	if tc.unsubscribeBefore {
		cc.Unsubscribe(agents[5].email)
		unsubscribed[agents[5].id] = true
	}

	sendAgents(t, br, tc.firstID, tc.contacts)
	var counts map[string]int
	waitFor(t, "every enrollment settled by CC", 2*time.Minute, func() bool {
		var n int
		counts, n = settled(br)
		return n == tc.contacts
	})
	waitFor(t, "every import outcome written back", 3*time.Minute, func() bool {
		s := outboxStates(br)
		return s[store.WritebackWritten]+s[store.WritebackMissing] == tc.contacts
	})
	importBatches := sumStatuses(hs.Stats()[batchUpdate])
	if tc.maxImportBatches > 0 && importBatches > tc.maxImportBatches {
		t.Errorf("%d batch updates for %d import outcomes, want at most %d", importBatches, tc.contacts, tc.maxImportBatches)
	}
	ccStats := cc.Stats()
	wantRejected := ccStats.RowsRejected + len(unsubscribed)
	if counts[store.StatusRejected] != wantRejected || (tc.ccRejectRate > 0 && ccStats.RowsRejected == 0) {
		t.Errorf("%d enrollments rejected; CC refused %d rows and %d contacts were unsubscribed before: want the sum, and some refused",
			counts[store.StatusRejected], ccStats.RowsRejected, len(unsubscribed))
	}

	if tc.unsubscribeAfter > 0 {
		var picked []string
		for _, r := range readOutbox(t, br) {
			if r.status == store.StatusImported && len(picked) < tc.unsubscribeAfter {
				picked = append(picked, r.objectKey)
				unsubscribed[r.objectKey] = true
				cc.Unsubscribe(r.email)
			}
		}
		waitFor(t, fmt.Sprintf("%d contacts unsubscribed in CC written back", len(picked)), 2*time.Minute, func() bool {
			byID := map[string]map[string]string{}
			for _, c := range hs.Contacts() {
				byID[c.ID] = c.Properties
			}
			for _, id := range picked {
				if byID[id][crm.PropStatus] != crm.StatusUnsubscribed {
					return false
				}
			}
			return true
		})
		// HubSpot has the values a moment before the outbox records the
		// answer.
		waitFor(t, "the outbox to record the unsubscribes written", time.Minute, func() bool {
			return outboxStates(br)[store.WritebackPending] == 0
		})
	}

	checkWrittenBack(t, br, hs, cc, agents, unsubscribed, deleted, start)
	stats := hs.Stats()
	byStatus := hubspotStatuses(hs)
	throttled, failed := byStatus[http.StatusTooManyRequests], byStatus[http.StatusInternalServerError]+byStatus[http.StatusBadGateway]
	if tc.wantFaults && (throttled == 0 || failed == 0) {
		t.Errorf("HubSpot answered %d 429s and %d 5xx, want some of each", throttled, failed)
	}
	if tc.deleteBefore && stats[batchUpdate][tc.wantMissingStatus] == 0 {
		t.Errorf("no batch update was answered %d for the deleted contact: %v", tc.wantMissingStatus, stats[batchUpdate])
	}
	if !tc.wantFaults {
		// A sandbox injecting faults may refuse these reads too; there
		// the values written, which HubSpot takes for existing
		// properties only, stand for them.
		checkProperties(t, hs, hsSrv)
	}
	t.Logf("%d contacts: CC refused %d rows; enrollments %v; %d batch updates for the import outcomes, %d in all; "+
		"HubSpot answered %d 429s and %d 5xx; requests %v; %s",
		tc.contacts, ccStats.RowsRejected, counts, importBatches, sumStatuses(stats[batchUpdate]),
		throttled, failed, stats, time.Since(start).Round(time.Millisecond))
	br.stop(t)
}

// checkWrittenBack reads every enrollment and its HubSpot contact and says
// where they differ from the write-back policy.
func checkWrittenBack(t *testing.T, br *bridgeRun, hs *hssandbox.Server, cc *ccsandbox.Server, agents []simAgent,
	unsubscribed map[string]bool, deleted string, start time.Time) {
	t.Helper()
	outbox := readOutbox(t, br)
	written := map[string]map[string]string{}
	for _, c := range hs.Contacts() {
		written[c.ID] = c.Properties
	}
	inCC := map[string][]string{}
	for _, c := range cc.Contacts() {
		inCC[strings.ToLower(c.Email)] = c.ListNames
	}
	want := len(agents)
	if deleted != "" {
		want--
	}
	if len(written) != want {
		t.Errorf("HubSpot has %d contacts written, want %d", len(written), want)
	}
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	seen := map[string]int{}
	for _, a := range agents {
		r, ok := outbox[a.id]
		if !ok {
			fail("contact %s: no enrollment", a.id)
			continue
		}
		p := written[a.id]
		if a.id == deleted {
			if r.state != store.WritebackMissing || !strings.Contains(r.lastError, a.id) {
				fail("deleted contact %s: outbox state %q (%q), want missing, naming it", a.id, r.state, r.lastError)
			}
			if p != nil {
				fail("deleted contact %s was written: %v", a.id, p)
			}
			continue
		}
		// Each run of the unsubscribe sync reads back a minute before its
		// cursor (jobs.unsubscribeSkew), so under a 2s interval every run
		// reads the same unsubscribes again; a contact already known
		// unsubscribed is not queued again, so every row stays written.
		if r.state != store.WritebackWritten {
			fail("contact %s (%s): outbox state %q (%q), want written", a.id, r.status, r.state, r.lastError)
		}
		if p == nil {
			fail("contact %s (%s): nothing written in HubSpot", a.id, r.status)
			continue
		}
		if ms, err := strconv.ParseInt(p[crm.PropSyncedAt], 10, 64); err != nil ||
			ms < start.Add(-time.Minute).UnixMilli() || ms > time.Now().Add(time.Minute).UnixMilli() {
			fail("contact %s: %s = %q, want the epoch ms of its write", a.id, crm.PropSyncedAt, p[crm.PropSyncedAt])
		}
		status, lists, reason := p[crm.PropStatus], p[crm.PropLists], p[crm.PropReason]
		seen[status]++
		switch {
		case unsubscribed[a.id]:
			if status != crm.StatusUnsubscribed || lists != "" || reason != reasonUnsubscribed {
				fail("contact %s, unsubscribed in CC (enrollment %s): HubSpot has %q, lists %q, reason %q; want unsubscribed, \"\", %q",
					a.id, r.status, status, lists, reason, reasonUnsubscribed)
			}
			if len(inCC[a.email]) != 0 {
				fail("contact %s is unsubscribed but on CC lists %v", a.id, inCC[a.email])
			}
		case r.status == store.StatusImported:
			got := strings.Split(lists, "; ")
			slices.Sort(got)
			ccLists := slices.Sorted(slices.Values(inCC[a.email]))
			if status != crm.StatusImported || reason != "" || !slices.Equal(got, a.routedLists()) ||
				!slices.Equal(ccLists, a.routedLists()) || lists != strings.Join(r.lists, "; ") {
				fail("imported contact %s (tier %s, on CC lists %v): HubSpot has %q, lists %q, reason %q; want imported, %q, \"\"",
					a.id, a.tier, inCC[a.email], status, lists, reason, strings.Join(a.routedLists(), "; "))
			}
		case r.status == store.StatusRejected:
			if status != crm.StatusRejected || lists != "" || reason != r.reason ||
				!strings.HasPrefix(reason, "Constant Contact refused this row: ") || len(reason) < 40 {
				fail("contact %s refused by CC (%q): HubSpot has %q, lists %q, reason %q; want rejected, \"\", CC's refusal",
					a.id, r.reason, status, lists, reason)
			}
			if _, ok := inCC[a.email]; ok {
				fail("contact %s refused by CC is in CC", a.id)
			}
		default:
			fail("contact %s: enrollment %s (%q), not settled", a.id, r.status, r.reason)
		}
	}
	if errs > 20 {
		t.Errorf("… and %d more", errs-20)
	}
	t.Logf("HubSpot statuses %v", seen)
}

// checkProperties checks that the bridge made the hs2cc group and
// properties as crm.Properties defines them.
func checkProperties(t *testing.T, hs *hssandbox.Server, srv *httptest.Server) {
	t.Helper()
	var groups struct{ Results []struct{ Name string } }
	if st := hubspotCall(t, hs, srv, http.MethodGet, "/crm/v3/properties/contacts/groups", &groups); st != http.StatusOK ||
		!slices.ContainsFunc(groups.Results, func(g struct{ Name string }) bool { return g.Name == crm.GroupName }) {
		t.Errorf("property groups %v (%d), want %q among them", groups.Results, st, crm.GroupName)
	}
	for _, want := range crm.Properties() {
		var got crm.Property
		st := hubspotCall(t, hs, srv, http.MethodGet, "/crm/v3/properties/contacts/"+want.Name, &got)
		if st != http.StatusOK || got.Type != want.Type || got.FieldType != want.FieldType || got.GroupName != crm.GroupName ||
			!slices.Equal(got.Options, want.Options) {
			t.Errorf("property %s: %d %+v, want %+v", want.Name, st, got, want)
		}
	}
}

// writebackOff runs the bridge with no HubSpot token but the API URL
// pointed at the HubSpot sandbox: the imports reach CC as before, HubSpot
// gets no request and nothing is queued for it, not even for a contact CC
// refuses as unsubscribed.
func writebackOff(t *testing.T) {
	const n = 150
	hs, hsSrv := newHubSpot(t, hssandbox.Options{})
	cc := ccsandbox.New(ccsandbox.Options{ActivityDelay: 300 * time.Millisecond})
	ccSrv := httptest.NewServer(ccspec.New(t).Wrap(cc))
	t.Cleanup(ccSrv.Close)
	br := startBridge(t, ccSrv, cc, map[string]string{
		"HS2CC_ROUTES":                    writeRoutes(t, writebackRoutes),
		"HS2CC_GROUP_GRACE_PERIOD":        "1s",
		"HS2CC_HUBSPOT_API_URL":           hsSrv.URL,
		"HS2CC_UNSUBSCRIBE_SYNC_INTERVAL": "1s",
	})
	agents := simAgents(7_400_000, n)
	cc.Unsubscribe(agents[5].email)
	sendAgents(t, br, 7_400_000, n)
	var counts map[string]int
	waitFor(t, "every enrollment settled by CC", 2*time.Minute, func() bool {
		var done int
		counts, done = settled(br)
		return done == n
	})
	if counts[store.StatusImported] != n-1 || counts[store.StatusRejected] != 1 {
		t.Errorf("enrollments %v, want %d imported and the unsubscribed one rejected", counts, n-1)
	}
	if listed := onList(cc.Contacts(), "New Agents"); listed != n-1 {
		t.Errorf("%d contacts on New Agents in CC, want %d", listed, n-1)
	}
	// A write-back would be sent writebackDelay (2 s) after the settle,
	// and an unsubscribe sync every second: give both time to show.
	time.Sleep(3 * time.Second)
	if st := hs.Stats(); len(st) != 0 {
		t.Errorf("HubSpot got requests with no token: %v", st)
	}
	var queued, synced int
	if err := br.db.SQL().QueryRow(`SELECT COUNT(*) FROM hubspot_writeback`).Scan(&queued); err != nil || queued != 0 {
		t.Errorf("%d write-backs queued (%v), want none", queued, err)
	}
	if err := br.db.SQL().QueryRow(`SELECT COUNT(*) FROM hubspot_unsubscribe_sync`).Scan(&synced); err != nil || synced != 0 {
		t.Errorf("the unsubscribe sync ran %d times (%v) with no token", synced, err)
	}
	if !strings.Contains(br.workLog.String(), "HubSpot write-back is off") {
		t.Errorf("work did not say the write-back is off")
	}
	br.stop(t)
}
