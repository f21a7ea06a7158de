package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestTokenStateIsVisible: whatever state the CC connection is in, and
// whatever stops work (a missing list), `hs2cc status`, the readiness checks
// and /metrics say the same thing, and none of them needs the token key or
// shows a token.
func TestTokenStateIsVisible(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(t *testing.T, db *store.DB)
		wantStatus  []string // lines `hs2cc status` prints
		wantExit    error    // what status returns: nil, errNeedsReconnect or errNeedsAttention
		wantReady   string   // "" for ready, else part of a check's error
		wantMetrics []string
	}{
		{"never connected", func(*testing.T, *store.DB) {},
			[]string{"Constant Contact: not connected"}, errNeedsReconnect, "not connected",
			[]string{"hs2cc_cc_connected 0", "hs2cc_cc_needs_reconnect 0", "hs2cc_cc_token_state_up 1"}},
		{"connected", func(t *testing.T, db *store.DB) {
			save(t, db, time.Now().Add(20*time.Hour+30*time.Second))
		}, []string{"Constant Contact: connected; access token expires", "(in 20h0m"}, nil, "",
			[]string{"hs2cc_cc_connected 1", "hs2cc_cc_needs_reconnect 0", "hs2cc_cc_token_expiry_seconds 7202",
				"hs2cc_cc_lists_missing 0", "hs2cc_attention_up 1"}},
		{"refused by CC", func(t *testing.T, db *store.DB) {
			v := save(t, db, time.Now().Add(time.Hour))
			if err := db.MarkNeedsReconnect(context.Background(), v, "oauth invalid_grant (status 400)"); err != nil {
				t.Fatal(err)
			}
		}, []string{"NEEDS RECONNECT since", "oauth invalid_grant (status 400)", "hs2cc connect"}, errNeedsReconnect, "needs reconnect since",
			[]string{"hs2cc_cc_connected 0", "hs2cc_cc_needs_reconnect 1"}},
		{"expired and nobody refreshing", func(t *testing.T, db *store.DB) {
			save(t, db, time.Now().Add(-time.Hour+30*time.Second))
		}, []string{"Constant Contact: connected; access token expires", "(in -59m"}, nil, "is a worker running?",
			[]string{"hs2cc_cc_connected 1", "hs2cc_cc_token_expiry_seconds -35"}},
		{"a list the rules name is missing", func(t *testing.T, db *store.DB) {
			save(t, db, time.Now().Add(20*time.Hour))
			if err := db.RaiseAttention(context.Background(), store.AttentionMissingList, "New Agents",
				`CC list "New Agents" does not exist: create it`); err != nil {
				t.Fatal(err)
			}
			for i, lists := range [][]string{{"New Agents"}, {"New Agents", "Gold"}, {"Gold"}} {
				if _, err := db.Ingest(context.Background(), &store.Delivery{Kind: store.KindWorkflow, Body: []byte("{}")},
					&store.Enrollment{PortalID: 1, ObjectKey: fmt.Sprint(i), Email: fmt.Sprintf("a%d@example.com", i),
						Lists: lists, ContentHash: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}, []string{`NEEDS ATTENTION since`, `CC list "New Agents" does not exist: create it.`, "2 enrollments wait for it"},
			errNeedsAttention, `CC list "New Agents" does not exist: create it (since`,
			[]string{`hs2cc_attention{kind="missing_list",subject="New Agents"} 1`, "hs2cc_cc_lists_missing 1", "hs2cc_cc_connected 1"}},
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
			if !errors.Is(err, tc.wantExit) || (err == nil) != (tc.wantExit == nil) {
				t.Errorf("status returned %v, want %v", err, tc.wantExit)
			}
			for _, w := range tc.wantStatus {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status output lacks %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(out.String(), "Quarantine: 0 requests kept") {
				t.Errorf("status output lacks the quarantine:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "Enrollments: pending ") {
				t.Errorf("status output lacks the enrollment counts:\n%s", out.String())
			}

			rerr := errors.Join(tokenReady(db, time.Now, 10*time.Minute)(ctx), attentionReady(db)(ctx))
			switch {
			case tc.wantReady == "" && rerr != nil:
				t.Errorf("readiness: %v, want ready", rerr)
			case tc.wantReady != "" && (rerr == nil || !strings.Contains(rerr.Error(), tc.wantReady)):
				t.Errorf("readiness: %v, want an error containing %q", rerr, tc.wantReady)
			}

			reg := newRegistry()
			reg.MustRegister(newTokenCollector(db, time.Now), newAttentionCollector(db))
			rec := httptest.NewRecorder()
			promHandler(reg, "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
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
