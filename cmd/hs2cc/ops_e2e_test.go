package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// TestOpsAndMetricsEndToEnd runs serve and work as main does, with a viewer
// login, a metrics token and work's metrics listener, sends webhooks until
// they are imported, and reads the outcome where ops would: the figures
// behind the viewer's login and both processes' /metrics behind the token.
func TestOpsAndMetricsEndToEnd(t *testing.T) {
	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: 200 * time.Millisecond})
	cc := httptest.NewServer(sb)
	defer cc.Close()
	sb.CreateList("New Agents")

	const viewer, viewerPassword, metricsToken = "vera", "vera's passphrase", "scrape-token-e2e"
	hash, err := bcrypt.GenerateFromPassword([]byte(viewerPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := freeAddr(t)
	br := startBridge(t, cc, sb, map[string]string{
		"HS2CC_GROUP_GRACE_PERIOD": "1s",
		"HS2CC_GROUP_MAX_DELAY":    "5s",
		"HS2CC_OPS_USERS":          viewer + ":viewer:" + string(hash),
		"HS2CC_METRICS_TOKEN":      metricsToken,
		"HS2CC_METRICS_ADDR":       metricsAddr,
	})
	ctx, addr, secret := br.ctx, br.addr, br.secret

	const n, repeats = 20, 5
	res, err := simulate(ctx, simOptions{
		URL: "http://" + addr + "/webhooks/hubspot", Secret: secret, Count: n, Concurrency: 4,
		Repeats: repeats, FirstID: 7_000_000, PortalID: 62515,
		SignURL: "https://hooks.example.com/webhooks/hubspot",
	})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if res.Accepted != n || res.Duplicates != repeats {
		t.Fatalf("answers: %d accepted, %d duplicates; want %d, %d", res.Accepted, res.Duplicates, n, repeats)
	}

	get := func(url string, h ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		if strings.Contains(url, "/ops") || strings.Contains(url, "/oauth") {
			req.SetBasicAuth(viewer, viewerPassword)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	type status struct {
		Enrollments      map[string]int  `json:"enrollments"`
		OldestUnimported json.RawMessage `json:"oldest_unimported"`
		Imports          []struct {
			State       string `json:"state"`
			PersonCount int    `json:"person_count"`
		} `json:"recent_imports"`
		CCCalls *struct{ Used, Budget int } `json:"cc_calls"`
		Token   *struct {
			Status string `json:"status"`
		} `json:"cc_token"`
	}
	var st status
	waitFor(t, "every enrollment imported, as /ops/status.json tells the viewer", 60*time.Second, func() bool {
		code, body := get("http://" + addr + "/ops/status.json")
		return code == http.StatusOK && json.Unmarshal([]byte(body), &st) == nil && st.Enrollments["imported"] == n
	})
	if string(st.OldestUnimported) != "null" || len(st.Imports) == 0 || st.Imports[0].State != "completed" ||
		st.CCCalls == nil || st.CCCalls.Used == 0 || st.CCCalls.Budget != 8000 || st.Token == nil || st.Token.Status != "connected" {
		t.Errorf("status.json: %+v", st)
	}
	if code, body := get("http://" + addr + "/ops"); code != http.StatusOK || !strings.Contains(body, "signed in as <code>vera</code> (viewer)") {
		t.Errorf("/ops as the viewer: %d\n%s", code, body)
	}
	if code, _ := get("http://" + addr + "/oauth/connect"); code != http.StatusForbidden {
		t.Errorf("/oauth/connect as the viewer: %d, want 403", code)
	}

	// metric returns the value of the first sample line that starts with
	// series, or -1.
	metric := func(body, series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	for name, url := range map[string]string{"serve": "http://" + addr + "/metrics", "work": "http://" + metricsAddr + "/metrics"} {
		if code, _ := get(url); code != http.StatusUnauthorized {
			t.Errorf("%s /metrics without the token: %d, want 401", name, code)
		}
		if code, _ := get(url, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s /metrics with a wrong token: %d, want 401", name, code)
		}
	}
	_, serveMetrics := get("http://"+addr+"/metrics", "Authorization", "Bearer "+metricsToken)
	for series, want := range map[string]float64{
		`hs2cc_webhook_requests_total{outcome="accepted"}`:     n,
		`hs2cc_webhook_requests_total{outcome="duplicate"}`:    repeats,
		`hs2cc_webhook_ack_seconds_count`:                      n + repeats,
		`hs2cc_cc_daily_budget`:                                8000,
		`hs2cc_cc_budget_up`:                                   1,
		`hs2cc_cc_connected`:                                   1,
		`hs2cc_cc_token_state_up`:                              1,
		`hs2cc_queue_up`:                                       1,
		`hs2cc_queue_tasks{queue="hs2cc",state="aggregating"}`: 0,
	} {
		if got := metric(serveMetrics, series); got != want {
			t.Errorf("serve: %s = %v, want %v", series, got, want)
		}
	}
	if got := metric(serveMetrics, "hs2cc_cc_calls_today"); got < 2 {
		t.Errorf("serve: hs2cc_cc_calls_today = %v, want the import and its polls counted", got)
	}

	// The age is observed just after the rows settle, so it may trail the
	// status by a moment.
	var workMetrics string
	waitFor(t, "work's import-age histogram", 10*time.Second, func() bool {
		_, workMetrics = get("http://"+metricsAddr+"/metrics", "Authorization", "Bearer "+metricsToken)
		return metric(workMetrics, "hs2cc_enrollment_import_age_seconds_count") == n
	})
	if got := metric(workMetrics, `hs2cc_cc_calls_total{endpoint="/activities/contacts_json_import",method="POST",status="201"}`); got < 1 {
		t.Errorf("work: CC import calls = %v, want at least 1", got)
	}
	if got := metric(workMetrics, `hs2cc_enrollment_import_age_seconds_sum`); got <= 0 || got > n*60 {
		t.Errorf("work: import ages sum to %vs, want each under a minute", got)
	}
	if metric(workMetrics, `hs2cc_webhook_ack_seconds_count`) != -1 || metric(serveMetrics, `hs2cc_enrollment_import_age_seconds_count`) != -1 {
		t.Errorf("each process must export only its own counters")
	}

	br.stop(t)
	for name, logs := range map[string]string{"serve": br.serveLog.String(), "work": br.workLog.String()} {
		for _, s := range []string{viewerPassword, string(hash), metricsToken, br.access, br.refresh} {
			if strings.Contains(logs, s) {
				t.Errorf("%s log contains a secret (%.6s…)", name, s)
			}
		}
	}
}
