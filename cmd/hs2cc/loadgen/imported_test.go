package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// TestSimulateUntilImported reads /sandbox/stats as the sandbox writes it
// (ccsandbox.Stats, marshalled), so a renamed field there fails here rather
// than leaving --until-imported waiting on a zero: loadgen decodes the
// stats with its own struct to keep the sandbox out of production builds.
func TestSimulateUntilImported(t *testing.T) {
	const (
		imp   = "POST /v3/activities/contacts_json_import"
		poll  = "GET /v3/activities/{id}"
		token = "POST /oauth2/default/v1/token"
		lists = "GET /v3/contact_lists"
	)
	before := ccsandbox.Stats{Requests: map[string]int{imp: 1, poll: 2, token: 1}, Imports: 1, ImportRows: 10}
	cases := []struct {
		name string
		// polls are what /sandbox/stats answers in turn, the last one
		// from then on.
		polls   []ccsandbox.Stats
		want    int
		limit   time.Duration
		listed  Listed
		wantErr string
	}{
		{
			name: "every row on the second poll",
			polls: []ccsandbox.Stats{
				before,
				{Requests: map[string]int{imp: 3, poll: 5, token: 4, lists: 1}, Imports: 3, ImportRows: 40},
			},
			want: 30, limit: 10 * time.Second,
			// Token grants are not API calls; the list read is.
			listed: Listed{CCCalls: 6, ImportCalls: 2, ActivityCalls: 3, Imports: 2, ImportRows: 30},
		},
		{
			name:  "rows missing until the limit",
			polls: []ccsandbox.Stats{{Requests: map[string]int{imp: 2}, Imports: 2, ImportRows: 14}},
			want:  5, limit: 300 * time.Millisecond,
			wantErr: "imported 4 of 5 contacts",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/sandbox/stats" {
					http.NotFound(w, r)
					return
				}
				mu.Lock()
				st := tc.polls[min(n, len(tc.polls)-1)]
				n++
				mu.Unlock()
				_ = json.NewEncoder(w).Encode(st)
			}))
			defer srv.Close()
			raw, err := json.Marshal(before)
			if err != nil {
				t.Fatal(err)
			}
			var b sandboxStats
			if err := json.Unmarshal(raw, &b); err != nil {
				t.Fatal(err)
			}
			got, err := awaitImported(context.Background(), srv.URL+"/", b, tc.want, tc.limit)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.at = time.Time{}
			if got != tc.listed {
				t.Errorf("listed %+v, want %+v", got, tc.listed)
			}
		})
	}
}
