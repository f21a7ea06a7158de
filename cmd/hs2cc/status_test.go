package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestTokenStateIsVisible: whatever state the CC connection is in, `hs2cc
// status`, the cc_token readiness check and /metrics say the same thing,
// and none of them needs the token key or shows a token.
func TestTokenStateIsVisible(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(t *testing.T, db *store.DB)
		wantStatus  []string // lines `hs2cc status` prints
		wantExit    bool     // status returns errNeedsReconnect
		wantReady   string   // "" for ready, else part of the check's error
		wantMetrics []string
	}{
		{"never connected", func(*testing.T, *store.DB) {},
			[]string{"Constant Contact: not connected"}, true, "not connected",
			[]string{"hs2cc_cc_connected 0", "hs2cc_cc_needs_reconnect 0", "hs2cc_cc_token_state_up 1"}},
		{"connected", func(t *testing.T, db *store.DB) {
			save(t, db, time.Now().Add(20*time.Hour+30*time.Second))
		}, []string{"Constant Contact: connected; access token expires", "(in 20h0m"}, false, "",
			[]string{"hs2cc_cc_connected 1", "hs2cc_cc_needs_reconnect 0", "hs2cc_cc_token_expiry_seconds 7202"}},
		{"refused by CC", func(t *testing.T, db *store.DB) {
			v := save(t, db, time.Now().Add(time.Hour))
			if err := db.MarkNeedsReconnect(context.Background(), v, "oauth invalid_grant (status 400)"); err != nil {
				t.Fatal(err)
			}
		}, []string{"NEEDS RECONNECT since", "oauth invalid_grant (status 400)", "hs2cc connect"}, true, "needs reconnect since",
			[]string{"hs2cc_cc_connected 0", "hs2cc_cc_needs_reconnect 1"}},
		{"expired and nobody refreshing", func(t *testing.T, db *store.DB) {
			save(t, db, time.Now().Add(-time.Hour+30*time.Second))
		}, []string{"Constant Contact: connected; access token expires", "(in -59m"}, false, "is a worker running?",
			[]string{"hs2cc_cc_connected 1", "hs2cc_cc_token_expiry_seconds -35"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := storetest.MySQLDSN(t)
			db, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			db.SetTokenKeys(storetest.TokenKeys(t))
			tc.setup(t, db)

			var out bytes.Buffer
			// No HS2CC_TOKEN_KEY: status never opens the tokens.
			err = run(ctx, []string{"status"}, func(k string) string {
				return map[string]string{"HS2CC_MYSQL_DSN": dsn}[k]
			}, &out, &out)
			if got := errors.Is(err, errNeedsReconnect); got != tc.wantExit || (err != nil && !got) {
				t.Errorf("status returned %v, want needs-reconnect exit %v", err, tc.wantExit)
			}
			for _, w := range tc.wantStatus {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status output lacks %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(out.String(), "Enrollments: pending 0") {
				t.Errorf("status output lacks the enrollment counts:\n%s", out.String())
			}

			rerr := tokenReady(db, time.Now)(ctx)
			switch {
			case tc.wantReady == "" && rerr != nil:
				t.Errorf("readiness: %v, want ready", rerr)
			case tc.wantReady != "" && (rerr == nil || !strings.Contains(rerr.Error(), tc.wantReady)):
				t.Errorf("readiness: %v, want an error containing %q", rerr, tc.wantReady)
			}

			rec := httptest.NewRecorder()
			metricsHandler(db).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body, _ := io.ReadAll(rec.Body)
			for _, w := range tc.wantMetrics {
				if !strings.Contains(string(body), w) {
					t.Errorf("/metrics lacks %q", w)
				}
			}
		})
	}
}

func save(t *testing.T, db *store.DB, expires time.Time) int64 {
	t.Helper()
	v, err := db.SaveToken(context.Background(), store.Token{AccessToken: "eyJ-access", RefreshToken: "refresh-1", ExpiresAt: expires}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
