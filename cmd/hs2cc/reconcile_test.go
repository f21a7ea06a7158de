package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// apiCalls is how many /v3 calls the sandbox has answered in all.
func apiCalls(sb *ccsandbox.Server) int {
	n := 0
	for route, c := range sb.Stats().Requests {
		if strings.Contains(route, " /v3/") {
			n += c
		}
	}
	return n
}

// reconcileJSON runs `hs2cc reconcile --json` with args and decodes what it
// printed; err is the command's own.
func reconcileJSON(t *testing.T, br *bridgeRun, getenv func(string) string, args ...string) (reconcileSummary, error) {
	t.Helper()
	var out, talk syncBuffer
	err := run(br.ctx, append([]string{"reconcile", "--json"}, args...), getenv, &out, &talk)
	var sum reconcileSummary
	if jerr := json.Unmarshal([]byte(out.String()), &sum); jerr != nil {
		t.Fatalf("reconcile %v printed %q (stderr %q, err %v): %v", args, out.String(), talk.String(), err, jerr)
	}
	t.Logf("reconcile %v: %+v\n%s", args, sum, talk.String())
	return sum, err
}

// removeFromList takes contacts off a list the way a CC user's bulk action
// does: POST /v3/activities/remove_list_memberships, checked against CC's
// spec like every other call.
func removeFromList(t *testing.T, cc *httptest.Server, sb *ccsandbox.Server, listID string, contactIDs []string) {
	t.Helper()
	access, _ := sb.IssueToken("contact_data")
	body, _ := json.Marshal(map[string]any{"source": map[string]any{"contact_ids": contactIDs}, "list_ids": []string{listID}})
	req, _ := http.NewRequest("POST", cc.URL+"/v3/activities/remove_list_memberships", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("remove_list_memberships: %d, want 201", resp.StatusCode)
	}
}

// TestReconcileAfterImports imports 1,000 enrollments through the real
// bridge, then takes 10 contacts off their list through CC's API and
// unsubscribes 5 in the sandbox: reconcile must report exactly those, spend
// exactly the calls it announced, and with --repair bring the 10 back and
// not the 5, after which a second reconcile finds nothing missing.
func TestReconcileAfterImports(t *testing.T) {
	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: 300 * time.Millisecond})
	cc := httptest.NewServer(ccspec.New(t).Wrap(sb))
	defer cc.Close()
	list := sb.CreateList("New Agents")
	br := startBridge(t, cc, sb, map[string]string{"HS2CC_GROUP_GRACE_PERIOD": "2s", "HS2CC_GROUP_MAX_DELAY": "20s",
		"HS2CC_OPS_USER": "ops", "HS2CC_OPS_PASSWORD": "ops-password-" + randomHex(4)})
	defer br.stop(t)
	res, err := simulate(br.ctx, simOptions{
		URL: "http://" + br.addr + "/webhooks/hubspot", Secret: br.secret, Count: 1000, Concurrency: 8,
		FirstID: 7_000_000, PortalID: 62515, SignURL: "https://hooks.example.com/webhooks/hubspot",
	})
	if err != nil || res.Accepted != 1000 {
		t.Fatalf("simulate: %+v, %v", res, err)
	}
	waitImported := func(want int) {
		waitFor(t, fmt.Sprintf("%d enrollments imported", want), 90*time.Second, func() bool {
			counts, err := br.db.CountEnrollments(br.ctx)
			return err == nil && counts[store.StatusImported] == want && counts[store.StatusPending]+counts[store.StatusImporting] == 0
		})
	}
	waitImported(1000)

	contacts := sb.Contacts()
	var removedIDs []string
	removed, unsubscribed := map[string]bool{}, map[string]bool{}
	for _, c := range contacts[:10] {
		removedIDs = append(removedIDs, c.ContactID)
		removed[c.Email] = true
	}
	removeFromList(t, cc, sb, list.ListID, removedIDs)
	for _, c := range contacts[10:15] {
		postJSON(t, cc.URL+"/sandbox/unsubscribe", fmt.Sprintf(`{"email":%q}`, c.Email))
		unsubscribed[c.Email] = true
	}
	waitFor(t, "985 contacts left on the list", 10*time.Second, func() bool { return onList(sb.Contacts(), "New Agents") == 985 })

	// 1 call counts the lists, 2 read 985 members, 15 look up the missing.
	for _, step := range []struct {
		args                                  []string
		missing, unsub, unknown, repaired, cc int
	}{
		{nil, 10, 5, 0, 0, 18},
		{[]string{"--repair"}, 10, 5, 0, 10, 18},
	} {
		before := apiCalls(sb)
		sum, err := reconcileJSON(t, br, br.getenv, step.args...)
		if err != nil {
			t.Fatalf("reconcile %v: %v", step.args, err)
		}
		got := [5]int{sum.Missing, sum.Unsubscribed, sum.Unknown, sum.Repaired, sum.CCCalls}
		if want := [5]int{step.missing, step.unsub, step.unknown, step.repaired, step.cc}; got != want {
			t.Errorf("reconcile %v: missing/unsubscribed/unknown/repaired/cc_calls %v, want %v", step.args, got, want)
		}
		if spent := apiCalls(sb) - before; spent != sum.CCCalls || sum.AnnouncedCalls != sum.CCCalls {
			t.Errorf("reconcile %v: the sandbox answered %d calls, the run counted %d and announced %d", step.args, spent, sum.CCCalls, sum.AnnouncedCalls)
		}
	}

	waitImported(1000)
	waitFor(t, "the 10 removed contacts back on the list", 60*time.Second, func() bool { return onList(sb.Contacts(), "New Agents") == 995 })
	for _, c := range sb.Contacts() {
		onIt := slices.Contains(c.ListNames, "New Agents")
		if unsubscribed[c.Email] == onIt {
			t.Errorf("%s (unsubscribed %v, removed %v) on the list: %v", c.Email, unsubscribed[c.Email], removed[c.Email], onIt)
		}
	}

	sum, err := reconcileJSON(t, br, br.getenv)
	if err != nil || sum.Missing != 0 || sum.Unsubscribed != 5 || sum.Unknown != 0 || sum.CCCalls != 1+2+5 {
		t.Errorf("reconcile after the repair: %+v, %v; want 0 missing, 5 unsubscribed, 0 unknown in 8 calls", sum, err)
	}
	last, err := br.db.LastReconcileRun(br.ctx)
	if err != nil || last == nil || last.Outcome != store.ReconcileDone || last.Missing != 0 || last.Unsubscribed != 5 || last.Source != "command" {
		t.Errorf("last stored run: %+v, %v", last, err)
	}

	// A budget with 2 calls left allows the count (1) but not the read (2).
	opt, err := store.ParseRedisURL(br.env["HS2CC_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	used, err := store.NewCCLimits(rdb, 4, 8000).Used(br.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tight := func(k string) string {
		if k == "HS2CC_CC_DAILY_BUDGET" {
			return fmt.Sprint(used + 2)
		}
		return br.getenv(k)
	}
	before := apiCalls(sb)
	sum, err = reconcileJSON(t, br, tight)
	if !errors.Is(err, jobs.ErrReconcileRefused) || sum.Outcome != store.ReconcileRefused || sum.CCCalls != 1 || apiCalls(sb)-before != 1 {
		t.Errorf("reconcile over the budget: %+v, %v; want refused after 1 call", sum, err)
	}
	checkOpsReconcile(t, br)
}

// checkOpsReconcile wants the last run, the refused one, on /ops and in
// status.json.
func checkOpsReconcile(t *testing.T, br *bridgeRun) {
	t.Helper()
	get := func(path string) []byte {
		req, _ := http.NewRequest("GET", "http://"+br.addr+path, nil)
		req.SetBasicAuth("ops", br.env["HS2CC_OPS_PASSWORD"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return b
	}
	var status struct {
		Reconcile *struct {
			Outcome  string   `json:"outcome"`
			Lists    []string `json:"lists"`
			CCCalls  int      `json:"cc_calls"`
			Detail   string   `json:"detail"`
			Source   string   `json:"source"`
			Finished string   `json:"finished_at"`
		} `json:"reconcile"`
	}
	if err := json.Unmarshal(get("/ops/status.json"), &status); err != nil {
		t.Fatal(err)
	}
	if r := status.Reconcile; r == nil || r.Outcome != store.ReconcileRefused || r.CCCalls != 1 || !slices.Equal(r.Lists, []string{"New Agents"}) || r.Source != "command" {
		t.Errorf("status.json reconcile: %+v", r)
	}
	page := string(get("/ops"))
	for _, want := range []string{"<h2>Reconcile with CC</h2>", "(command): refused: reconcile refused: read needs 2 CC calls", "Lists: New Agents"} {
		if !strings.Contains(page, want) {
			t.Errorf("/ops lacks %q", want)
		}
	}
}
