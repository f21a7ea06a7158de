package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// TestWorkerSweepResumesLostImports: an import whose task Redis lost stays
// claimed in MySQL with its rows importing, where the pending-row sweep
// cannot see them. The sweep resumes it under its own task id, so that it
// carries on with its claim: the rows are imported by exactly one accepted
// contacts_json_import and one cc_imports row. An import CC already
// accepted whose poll was lost is polled again instead of posted again.
func TestWorkerSweepResumesLostImports(t *testing.T) {
	t.Parallel()
	const list = "Agents"
	tests := []struct {
		name string
		// lose leaves an open import for the rows behind, with no task for
		// it in Redis, and returns the sweep age that makes it stale.
		lose func(t *testing.T, e *env, ps []person, res []store.IngestResult) time.Duration
		// wantPosts is how often contacts_json_import is called in all, by
		// the test and the workers, failed calls included.
		wantPosts int
	}{
		{
			name:      "claimed by a task that failed at CC and was then lost",
			wantPosts: 2, // the 503 and the resumed import
			lose: func(t *testing.T, e *env, _ []person, res []store.IngestResult) time.Duration {
				if err := e.sb.SetFaults(ccsandbox.Faults{Status: map[string]int{importRoute: 503}}); err != nil {
					t.Fatal(err)
				}
				e.enqueue(res)
				first := e.startWorkers(1, testConfig(), e.db)
				// CC's 503 sends the task to retry for asynq's 15 s or
				// more; Redis loses it there.
				var retry *asynq.TaskInfo
				waitFor(t, settleTimeout, func() (bool, string) {
					tasks, err := e.insp.ListRetryTasks(jobs.Queue)
					if err != nil || len(tasks) != 1 || tasks[0].Type != jobs.TypeCCImport {
						return false, fmt.Sprintf("retry tasks %v (err %v), want the import", tasks, err)
					}
					retry = tasks[0]
					return true, ""
				})
				first.stops[0]()
				if err := e.insp.DeleteTask(jobs.Queue, retry.ID); err != nil {
					t.Fatal(err)
				}
				if err := e.sb.SetFaults(ccsandbox.Faults{}); err != nil {
					t.Fatal(err)
				}
				imps := e.imports()
				if len(imps) != 1 || imps[0].State != store.ImportClaimed || imps[0].TaskID != retry.ID {
					t.Fatalf("imports %+v, want one claimed by task %s", imps, retry.ID)
				}
				for _, r := range e.rows(ids(res)) {
					if r.Status != store.StatusImporting {
						t.Fatalf("row %s is %q, want importing under the lost task", r.Email, r.Status)
					}
				}
				if n := e.sb.Stats().Requests[importRoute]; n != 1 {
					t.Fatalf("contacts_json_import called %d times before the loss, want the one 503", n)
				}
				return time.Second
			},
		},
		{
			name:      "claimed, lost before it posted",
			wantPosts: 1,
			lose: func(t *testing.T, e *env, _ []person, res []store.IngestResult) time.Duration {
				e.db.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
				defer e.db.SetClock(time.Now)
				imp, err := e.db.ClaimImport(context.Background(), "lost-before-post", jobs.GroupKey([]string{list}), ids(res))
				if err != nil || imp == nil {
					t.Fatalf("claim: %v, %v", imp, err)
				}
				return 10 * time.Minute
			},
		},
		{
			name:      "posted, its activity poll lost",
			wantPosts: 1, // the test's own post; the worker only polls
			lose: func(t *testing.T, e *env, ps []person, res []store.IngestResult) time.Duration {
				ctx := context.Background()
				e.db.SetClock(func() time.Time { return time.Now().Add(-time.Hour) })
				defer e.db.SetClock(time.Now)
				imp, err := e.db.ClaimImport(ctx, "lost-poll", jobs.GroupKey([]string{list}), ids(res))
				if err != nil || imp == nil {
					t.Fatalf("claim: %v, %v", imp, err)
				}
				l, err := e.cc.ContactListByName(ctx, list)
				if err != nil {
					t.Fatal(err)
				}
				req := &ccclient.ImportRequest{ListIDs: []string{l.ListID}}
				for _, p := range ps {
					req.ImportData = append(req.ImportData, ccclient.ImportContact{Email: p.email, FirstName: p.first, LastName: "Tester"})
				}
				act, err := e.cc.ImportContacts(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.db.SubmitImport(ctx, imp.ID, []string{list}, []string{l.ListID}, act.ActivityID, act.State); err != nil {
					t.Fatal(err)
				}
				return 10 * time.Minute
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, unlimited)
			listID := e.sb.CreateList(list).ListID
			ps := people("lost", 6, list)
			res := e.ingest(ps)
			age := tc.lose(t, e, ps, res)
			if tasks, err := e.insp.GetQueueInfo(jobs.Queue); err == nil && tasks.Size != 0 {
				t.Fatalf("%d tasks still queued; the import's task must be lost", tasks.Size)
			}

			cfg := testConfig()
			cfg.SweepInterval = time.Second
			cfg.SweepAge = age
			counter := &sweepCounter{Store: e.db}
			e.startWorkers(1, cfg, counter)
			rows := e.waitSettled(ids(res), settleTimeout)

			imps := e.imports()
			if len(imps) != 1 {
				t.Fatalf("%d cc_imports rows, want the one claimed: %+v", len(imps), imps)
			}
			imp := imps[0]
			if imp.State != "completed" || imp.CompletedAt.IsZero() || imp.ContactCount != len(ps) {
				t.Errorf("import %+v, want completed with %d contacts", imp, len(ps))
			}
			for _, r := range rows {
				if r.Status != store.StatusImported || r.ImportID != imp.ID {
					t.Errorf("row %s: %q (%q) import %d, want imported by %d", r.Email, r.Status, r.StatusReason, r.ImportID, imp.ID)
				}
			}
			check := func(phase string) {
				t.Helper()
				st := e.sb.Stats()
				if st.Imports != 1 || st.Requests[importRoute] != tc.wantPosts {
					t.Errorf("%s: CC accepted %d imports out of %d calls, want 1 out of %d", phase, st.Imports, st.Requests[importRoute], tc.wantPosts)
				}
				contacts := e.contactsByEmail()
				if len(contacts) != len(ps) {
					t.Errorf("%s: sandbox holds %d contacts, want %d", phase, len(contacts), len(ps))
				}
				for _, p := range ps {
					if c, ok := contacts[p.email]; !ok || len(c.ListIDs) != 1 || c.ListIDs[0] != listID {
						t.Errorf("%s: contact %s is %+v, want it on %s only", phase, p.email, c, list)
					}
				}
			}
			check("settled")
			// Later sweeps find nothing to resume.
			swept := counter.n.Load()
			waitFor(t, 5*time.Second, func() (bool, string) {
				n := counter.n.Load() - swept
				return n >= 2, fmt.Sprintf("%d sweeps since the rows settled, want 2", n)
			})
			check("two sweeps later")
			if imps := e.imports(); len(imps) != 1 || imps[0].State != "completed" {
				t.Errorf("two sweeps later: imports %+v, want the one, completed", imps)
			}
			if archived, err := e.insp.ListArchivedTasks(jobs.Queue); err != nil || len(archived) != 0 {
				t.Errorf("archived tasks %v (err %v), want none", archived, err)
			}
		})
	}
}
