package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestImportTaskRunAgainAfterItSettled: asynq delivers a task at least
// once, so a cc:import task can run again after its import settled. The
// second run must leave the recorded outcome alone and post nothing.
func TestImportTaskRunAgainAfterItSettled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		emails    []string
		wantState string
		wantPosts int
	}{
		{name: "every row rejected before the post", wantState: store.ImportRejected,
			emails: []string{strings.Repeat("x", 45) + "@example.com", strings.Repeat("y", 45) + "@example.com"}},
		{name: "imported", wantState: "completed", wantPosts: 1,
			emails: []string{"ann@example.com", "bob@example.com"}},
	}
	redisURL := storetest.RedisURL(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, []string{"Agents"}, tc.emails...)
			if err := e.run(t); err != nil {
				t.Fatalf("first run: %v", err)
			}
			imps, err := e.db.RecentImports(ctx, 10)
			if err != nil || len(imps) != 1 {
				t.Fatalf("imports %v (err %v), want one", imps, err)
			}
			if imps[0].ActivityID != "" {
				// Settle it as the activity poll would.
				if err := e.db.RecordActivity(ctx, imps[0].ID, store.ActivityResult{State: "completed", Final: true}, true, ""); err != nil {
					t.Fatal(err)
				}
			}
			settled, err := e.db.GetImport(ctx, imps[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if settled.State != tc.wantState || settled.CompletedAt.IsZero() {
				t.Fatalf("import after the first run: %+v, want %s and settled", settled, tc.wantState)
			}
			rowsBefore := fmt.Sprint(e.rows(t))

			if err := e.run(t); err != nil {
				t.Fatalf("second run: %v", err)
			}
			again, err := e.db.GetImport(ctx, settled.ID)
			if err != nil {
				t.Fatal(err)
			}
			if again.State != settled.State || !slices.Equal(again.ActivityErrors, settled.ActivityErrors) || !again.CompletedAt.Equal(settled.CompletedAt) {
				t.Errorf("the second run changed the settled import from %+v to %+v", settled, again)
			}
			if rows := fmt.Sprint(e.rows(t)); rows != rowsBefore {
				t.Errorf("the second run changed the rows from %s to %s", rowsBefore, rows)
			}
			if n := e.sb.Stats().Requests[importRoute]; n != tc.wantPosts {
				t.Errorf("contacts_json_import called %d times, want %d", n, tc.wantPosts)
			}
		})
	}
}

// rows returns each row's status and reason.
func (e *importerEnv) rows(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, id := range e.ids {
		r, err := e.db.GetEnrollment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Status+": "+r.StatusReason)
	}
	return out
}

// A list the process resolved once costs no lookup again: the second
// import posts and asks CC for no list, whether the first found the list
// or created it.
func TestImportUsesResolvedListIDs(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	tests := []struct {
		name        string
		exists      bool
		wantCreates int
	}{
		{"found", true, 0},
		{"created", false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, nil)
			e.im.resolver.policy = Policy{Lists: []string{"Agents"}, CreateLists: true}
			if tc.exists {
				e.sb.CreateList("Agents")
			}
			e.addRows(t, []string{"Agents"}, "ann@example.com")
			if err := e.run(t); err != nil {
				t.Fatal(err)
			}
			first := e.ids
			// The test runs have no asynq task id; give the first import
			// one of its own so that the second claims anew.
			if _, err := e.db.SQL().Exec(`UPDATE cc_imports SET task_id = 'first'`); err != nil {
				t.Fatal(err)
			}
			e.addRows(t, []string{"Agents"}, "bob@example.com")
			if err := e.run(t); err != nil {
				t.Fatal(err)
			}
			e.ids = append(first, e.ids...)
			reqs := e.sb.Stats().Requests
			if got := reqs["GET /v3/contact_lists"]; got != 1 {
				t.Errorf("%d list lookups, want 1 (requests %v)", got, reqs)
			}
			if got := reqs["POST /v3/contact_lists"]; got != tc.wantCreates {
				t.Errorf("%d list creations, want %d", got, tc.wantCreates)
			}
			if reqs[importRoute] != 2 {
				t.Errorf("%d imports posted, want 2", reqs[importRoute])
			}
		})
	}
}

// addRows stores one new enrollment per email, bound for lists, and makes
// them the rows the next run imports.
func (e *importerEnv) addRows(t *testing.T, lists []string, emails ...string) {
	t.Helper()
	e.ids = nil
	for _, email := range emails {
		res, err := e.db.Ingest(context.Background(),
			&store.Delivery{Kind: store.KindWorkflow, SignatureVersion: "v3", Body: []byte("{}")},
			&store.Enrollment{PortalID: 1, ObjectKey: email, Email: email, FirstName: "F", LastName: "L",
				Lists: lists, ContentHash: email})
		if err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, res.EnrollmentID)
	}
}

// TestImportParksWhileBlocked: an import whose lists cannot be used yet
// (CC not connected, a list missing that may not be created) gives its rows
// back as pending, fails nothing, spends no retry, and leaves one waiting
// task for its list set; once the block clears, that task sends the rows
// on as an import.
func TestImportParksWhileBlocked(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { insp.Close() })
	tests := []struct {
		name    string
		list    string
		setup   func(e *importerEnv) // makes the block
		unblock func(e *importerEnv)
	}{
		{name: "CC not connected", list: "Not Connected",
			setup: func(e *importerEnv) {
				e.sb.CreateList("Not Connected")
				e.ts = notConnectedSource{}
				e.im.tokens = e.ts
				e.clientOptions(t)
			},
			unblock: func(e *importerEnv) {
				access, _ := e.sb.IssueToken("contact_data offline_access")
				e.ts = ccclient.StaticToken(access)
				e.im.tokens = e.ts
				e.clientOptions(t)
			}},
		{name: "a missing list the rules may not create", list: "Missing",
			setup: func(e *importerEnv) { e.im.resolver.policy = Policy{Lists: []string{"Missing"}} },
			unblock: func(e *importerEnv) {
				e.sb.CreateList("Missing")
				e.im.resolver.now = func() time.Time { return time.Now().Add(recheck) }
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, nil)
			e.addRows(t, []string{tc.list}, "ann@example.com", "bob@example.com")
			tc.setup(e)
			if err := e.run(t); err != nil {
				t.Fatalf("a blocked import must end its task, not fail it: %v", err)
			}
			for _, r := range e.rows(t) {
				if r != store.StatusPending+": " {
					t.Errorf("row %s, want pending with no reason", r)
				}
			}
			if imps, _ := e.db.RecentImports(ctx, 10); len(imps) != 0 {
				t.Errorf("imports %+v left behind, want none", imps)
			}
			if n := e.sb.Stats().Requests[importRoute]; n != 0 {
				t.Errorf("%d imports posted while blocked", n)
			}
			waitID := importWaitTaskID(GroupKey([]string{tc.list}))
			info, err := insp.GetTaskInfo(Queue, waitID)
			if err != nil {
				t.Fatalf("the waiting task: %v", err)
			}
			// A second blocked import of the set adds no second waiting task.
			if err := e.im.enq.enqueueImportWait(ctx, []string{tc.list}); err != nil {
				t.Fatal(err)
			}

			// Still blocked: the waiting task waits again, spending nothing.
			werr := e.im.handleImportWait(ctx, asynq.NewTask(TypeImportWait, info.Payload))
			var w *waitError
			if !errors.As(werr, &w) || isFailure(werr) || w.after != importWaitPoll {
				t.Fatalf("waiting task while blocked: %v, want a wait of %s", werr, importWaitPoll)
			}

			tc.unblock(e)
			if err := e.im.handleImportWait(ctx, asynq.NewTask(TypeImportWait, info.Payload)); err != nil {
				t.Fatalf("waiting task once unblocked: %v", err)
			}
			pending, err := insp.ListPendingTasks(Queue)
			if err != nil {
				t.Fatal(err)
			}
			var queued []int64
			for _, task := range pending {
				if task.Type != TypeCCImport {
					continue
				}
				var p importPayload
				if err := json.Unmarshal(task.Payload, &p); err != nil {
					t.Fatal(err)
				}
				if p.Group == GroupKey([]string{tc.list}) {
					queued = append(queued, p.EnrollmentIDs...)
				}
			}
			if !slices.Equal(queued, e.ids) {
				t.Errorf("queued %v for import, want the parked rows %v", queued, e.ids)
			}
		})
	}
}

// TestImportAfterListDeletedInCC: a list deleted in CC after its id was
// cached makes CC refuse the import. The importer looks the lists up again
// instead of failing the rows: a list made again under the same name is
// posted to under its new id; a list gone for good parks the rows, pending,
// and names the list as attention.
func TestImportAfterListDeletedInCC(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	tests := []struct {
		name     string
		list     string
		recreate bool
	}{
		{name: "made again under the same name", list: "Remade", recreate: true},
		{name: "gone for good", list: "Gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, []string{tc.list}, "ann@example.com")
			e.im.resolver.policy = Policy{Lists: []string{tc.list}}
			if err := e.run(t); err != nil {
				t.Fatal(err)
			}
			old := e.im.resolver.ids[tc.list]
			if _, err := e.db.SQL().Exec(`UPDATE cc_imports SET task_id = 'first'`); err != nil {
				t.Fatal(err)
			}
			if err := e.im.cc.(*ccclient.Client).DeleteContactList(ctx, old); err != nil {
				t.Fatal(err)
			}
			if tc.recreate {
				e.sb.CreateList(tc.list)
			}
			e.addRows(t, []string{tc.list}, "bob@example.com")

			err := e.run(t)
			if !tc.recreate {
				if err != nil {
					t.Fatalf("a list gone for good must park the rows, not fail the task: %v", err)
				}
				if got := e.rows(t); !slices.Equal(got, []string{"pending: "}) {
					t.Errorf("rows %v, want pending", got)
				}
				if _, err := e.db.GetAttention(ctx, store.AttentionMissingList, tc.list); err != nil {
					t.Errorf("the missing list is not attention: %v", err)
				}
				return
			}
			var w *waitError
			if !errors.As(err, &w) || isFailure(err) {
				t.Fatalf("first run after the deletion: %v, want a wait that spends no retry", err)
			}
			if err := e.run(t); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if now := e.im.resolver.ids[tc.list]; now == old || now != e.sb.Lists()[0].ListID {
				t.Errorf("posted under %s, want the new id %s (old %s)", now, e.sb.Lists()[0].ListID, old)
			}
			if got := e.rows(t); !slices.Equal(got, []string{"importing: "}) {
				t.Errorf("rows %v, want importing under the accepted import", got)
			}
			if n := e.sb.Stats().Imports; n != 2 {
				t.Errorf("%d imports accepted, want 2", n)
			}
		})
	}
}
