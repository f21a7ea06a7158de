package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/loadgen"
)

// The load generator is package loadgen; the names below keep this
// package's tests, which send webhooks through it, as short as they were.
type (
	simOptions = loadgen.Options
	simSummary = loadgen.Summary
)

func simulate(ctx context.Context, o simOptions) (loadgen.Result, error) { return loadgen.Run(ctx, o) }

func contactBody(portal, vid int64, i int) []byte { return loadgen.ContactBody(portal, vid, i) }

// TestSimulateCommand runs `hs2cc simulate` as scripts/bench does: the
// flags reach the load generator, --json prints its summary, a refused
// request fails the command, and a bad flag is a usage error.
func TestSimulateCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	// GOMAXPROCS is named so that the command leaves the test binary's Ps
	// alone instead of keeping to one, as a real run does.
	env := func(k string) string {
		if k == "GOMAXPROCS" {
			return "test"
		}
		return ""
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, out string)
	}{
		{name: "json", args: []string{"--url", srv.URL, "--secret", "s", "--count", "5", "--rate", "50", "--json"},
			check: func(t *testing.T, out string) {
				var s simSummary
				if err := json.Unmarshal([]byte(out), &s); err != nil || s.Mode != "open" || s.Requests != 5 || s.Accepted != 5 || s.P99Ms <= 0 {
					t.Errorf("--json printed %q (%v)", out, err)
				}
			}},
		{name: "text", args: []string{"--url", srv.URL, "--secret", "s", "--count", "3", "--repeats", "1"},
			check: func(t *testing.T, out string) {
				if !strings.Contains(out, "sent 4 requests (3 contacts, 1 repeats)") || !strings.Contains(out, "ack latency p50") {
					t.Errorf("printed %q", out)
				}
			}},
		{name: "refused", args: []string{"--url", srv.URL + "/refuse", "--secret", "s", "--count", "2"}, wantErr: "simulate: 2 rejected, 0 failed"},
		{name: "no secret", args: []string{"--url", srv.URL}, wantErr: "--secret is required"},
		{name: "until-imported without the sandbox", args: []string{"--secret", "s", "--until-imported"}, wantErr: "needs --cc-sandbox"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: errUsage.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"simulate"}, tc.args...), env, &out, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v\n%s", err, stderr.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, out.String())
			}
		})
	}
}
