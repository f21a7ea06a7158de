package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// poll runs the activity poll of the import the last run posted.
func (e *importerEnv) poll(t *testing.T) {
	t.Helper()
	imps, err := e.db.RecentImports(context.Background(), 1)
	if err != nil || len(imps) != 1 || imps[0].ActivityID == "" {
		t.Fatalf("imports %+v, %v; want one accepted by CC", imps, err)
	}
	payload, _ := json.Marshal(activityPayload{ImportID: imps[0].ID})
	if err := e.im.handleActivity(context.Background(), asynq.NewTask(TypeCCActivity, payload)); err != nil {
		t.Fatalf("poll: %v", err)
	}
}

// TestRefusedRowsSettleOneByOne: the rows CC refuses in a completed import
// are rejected with CC's message, one by one, and every other row is
// imported, whether CC names the rows by line and email, by email alone,
// or only counts them (then the contacts CC changed are read back).
func TestRefusedRowsSettleOneByOne(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	emails := make([]string, 80)
	for i := range emails {
		emails[i] = fmt.Sprintf("agent%02d@example.com", i)
	}
	for _, detail := range []string{ccsandbox.RejectDetailLineEmail, ccsandbox.RejectDetailEmail, ccsandbox.RejectDetailCount} {
		t.Run(detail, func(t *testing.T) {
			e := newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1, RejectRate: 0.1, RejectDetail: detail, Seed: 7},
				staticToken, nil, []string{"Agents"}, emails...)
			if err := e.run(t); err != nil {
				t.Fatal(err)
			}
			e.poll(t)
			onCC := e.contactsOnCC()
			refused := 0
			for i, id := range e.ids {
				r, err := e.db.GetEnrollment(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case onCC[emails[i]] && r.Status != store.StatusImported:
					t.Errorf("%s is on CC but %q %q, want imported", emails[i], r.Status, r.StatusReason)
				case !onCC[emails[i]] && (r.Status != store.StatusRejected || !strings.Contains(r.StatusReason, "Constant Contact refused this row")):
					t.Errorf("%s was refused by CC but %q %q, want rejected with the reason", emails[i], r.Status, r.StatusReason)
				case !onCC[emails[i]]:
					refused++
				}
			}
			st := e.sb.Stats()
			if refused == 0 || refused != st.RowsRejected {
				t.Errorf("%d rows rejected, CC refused %d; want the same, and some", refused, st.RowsRejected)
			}
			// Reading back costs calls only when CC did not name the rows.
			wantReads := map[string]int{ccsandbox.RejectDetailCount: 1}[detail]
			if n := st.Requests["GET /v3/contacts"]; n != wantReads {
				t.Errorf("%d contacts read back, want %d", n, wantReads)
			}
		})
	}
}

// contactsOnCC returns the emails of the sandbox's contacts on any list.
func (e *importerEnv) contactsOnCC() map[string]bool {
	out := map[string]bool{}
	for _, c := range e.sb.Contacts() {
		if len(c.ListIDs) > 0 {
			out[c.Email] = true
		}
	}
	return out
}

// TestLostAnswerIsNotPostedAgain: when CC queued an import but its answer
// was lost (the connection closed without one), the retry finds the import
// among CC's activities and polls it instead of posting the rows a second
// time; when CC never got it, the retry posts it.
func TestLostAnswerIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	tests := []struct {
		name      string
		reachesCC bool // the post reaches CC before the connection is cut
		wantPosts int
	}{
		{name: "CC queued it", reachesCC: true, wantPosts: 1},
		{name: "CC never got it", wantPosts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e *importerEnv
			cut := true
			override := func(w http.ResponseWriter, r *http.Request) {
				if !cut {
					e.sb.ServeHTTP(w, r)
					return
				}
				cut = false
				if tc.reachesCC {
					e.sb.ServeHTTP(discard{header: http.Header{}}, r)
				} else {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				// The answer is lost: the connection closes without one.
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
			}
			e = newImporterEnv(t, redisURL, ccsandbox.Options{ActivityDelay: -1}, staticToken, override, []string{"Agents"},
				"ann@example.com", "bob@example.com")
			err := e.run(t)
			if err == nil || !noAnswer(err) {
				t.Fatalf("first run: %v, want an error with no answer", err)
			}
			imps, _ := e.db.RecentImports(context.Background(), 1)
			if len(imps) != 1 || imps[0].PostedAt.IsZero() || imps[0].PostedContacts != 2 {
				t.Fatalf("import %+v, want it marked posted with 2 contacts", imps)
			}
			if err := e.run(t); err != nil {
				t.Fatalf("retry: %v", err)
			}
			e.poll(t)
			if got := e.rows(t); strings.Join(got, ",") != "imported: ,imported: " {
				t.Errorf("rows %v, want imported", got)
			}
			st := e.sb.Stats()
			if st.Imports != tc.wantPosts || st.ImportRows != 2 {
				t.Errorf("CC accepted %d imports with %d rows, want %d with 2", st.Imports, st.ImportRows, tc.wantPosts)
			}
		})
	}
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ header http.Header }

func (d discard) Header() http.Header       { return d.header }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
