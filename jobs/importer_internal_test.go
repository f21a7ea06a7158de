package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

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

// Ids the start-up check already found are used as they are: an import
// then costs its post and no list lookup, and a list it was not told of is
// still looked up.
func TestImportUsesKnownListIDs(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	tests := []struct {
		name        string
		known       func(e *importerEnv) map[string]string
		wantLookups int
	}{
		{"known", func(e *importerEnv) map[string]string {
			ids := map[string]string{}
			for _, l := range e.sb.Lists() {
				ids[l.Name] = l.ListID
			}
			return ids
		}, 0},
		{"not known", func(*importerEnv) map[string]string { return nil }, 1},
		{"an empty id is not an id", func(*importerEnv) map[string]string { return map[string]string{"Agents": ""} }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, nil, []string{"Agents"}, "ann@example.com")
			e.im.knowLists(tc.known(e))
			if err := e.run(t); err != nil {
				t.Fatal(err)
			}
			reqs := e.sb.Stats().Requests
			if got := reqs["GET /v3/contact_lists"]; got != tc.wantLookups {
				t.Errorf("%d list lookups, want %d (requests %v)", got, tc.wantLookups, reqs)
			}
			if reqs[importRoute] != 1 {
				t.Errorf("%d imports posted, want 1", reqs[importRoute])
			}
		})
	}
}
