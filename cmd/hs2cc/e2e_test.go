package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox/ccspec"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// syncBuffer collects a process's log output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// onList counts the sandbox contacts that are on the named list.
func onList(contacts []ccsandbox.SandboxContact, list string) int {
	n := 0
	for _, c := range contacts {
		if slices.Contains(c.ListNames, list) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEndToEnd drives the real serve and work code (through run, as main
// does) against real MariaDB and Redis and the CC sandbox: 1,000 signed
// webhooks plus repeats must end as 1,000 contacts on the sandbox list, in
// at most 3 contacts_json_import calls, with no secret in any log line.
func TestEndToEnd(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	redisURL := storetest.RedisURL(t)

	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: 300 * time.Millisecond})
	cc := httptest.NewServer(ccspec.New(t).Wrap(sb))
	defer cc.Close()
	sb.CreateList("New Agents")
	access, refresh := sb.IssueToken("contact_data offline_access")

	addr := freeAddr(t)
	secret := "e2e-secret-" + randomHex(6)
	env := map[string]string{
		"HS2CC_MYSQL_DSN":             dsn,
		"HS2CC_REDIS_URL":             redisURL,
		"HS2CC_ADDR":                  addr,
		"HS2CC_PUBLIC_URL":            "https://hooks.example.com",
		"HS2CC_HUBSPOT_CLIENT_SECRET": secret,
		"HS2CC_CC_API_URL":            cc.URL + "/v3",
		"HS2CC_CC_AUTH_URL":           cc.URL + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID":          ccsandbox.DefaultClientID,
		"HS2CC_CC_CLIENT_SECRET":      ccsandbox.DefaultClientSecret,
		"HS2CC_GROUP_GRACE_PERIOD":    "2s",
		"HS2CC_GROUP_MAX_DELAY":       "20s",
		"HS2CC_OPS_USER":              "ops",
		"HS2CC_OPS_PASSWORD":          "ops-password-" + randomHex(4),
		"HS2CC_LOG_FORMAT":            "json",
		"HS2CC_TOKEN_KEY":             store.NewTokenKey(),
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var out syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := store.ParseTokenKeys(env["HS2CC_TOKEN_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	db.SetTokenKeys(keys)
	if _, err := db.SaveToken(ctx, store.Token{AccessToken: access, RefreshToken: refresh, ExpiresAt: time.Now().Add(24 * time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}

	var serveLog, workLog syncBuffer
	done := make(chan error, 2)
	go func() { done <- run(ctx, []string{"serve"}, getenv, &serveLog, &serveLog) }()
	go func() { done <- run(ctx, []string{"work"}, getenv, &workLog, &workLog) }()
	waitFor(t, "/readyz", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// HubSpot calls the public URL; the proxy in front of us forwards to the
	// internal address. simulate signs the public URL and we send to addr.
	res, err := simulate(ctx, simOptions{
		URL: "http://" + addr + "/webhooks/hubspot", Secret: secret, Count: 1000, Concurrency: 8,
		Repeats: 100, FirstID: 5_000_000, PortalID: 62515,
		SignURL: "https://hooks.example.com/webhooks/hubspot",
	})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if res.Accepted != 1000 || res.Duplicates != 100 || res.Rejected != 0 || res.Failed != 0 {
		t.Fatalf("answers: %d accepted, %d duplicates, %d rejected, %d failed; want 1000, 100, 0, 0",
			res.Accepted, res.Duplicates, res.Rejected, res.Failed)
	}

	waitFor(t, "1,000 contacts on the sandbox list", 90*time.Second, func() bool { return onList(sb.Contacts(), "New Agents") >= 1000 })

	contacts := sb.Contacts()
	seen := map[string]bool{}
	for _, c := range contacts {
		if seen[strings.ToLower(c.Email)] {
			t.Errorf("contact %s twice in the sandbox", c.Email)
		}
		seen[strings.ToLower(c.Email)] = true
		if len(c.ListNames) != 1 || c.ListNames[0] != "New Agents" {
			t.Errorf("contact %s on lists %v, want [New Agents]", c.Email, c.ListNames)
		}
	}
	if len(contacts) != 1000 {
		t.Errorf("sandbox holds %d contacts, want 1000", len(contacts))
	}
	imports := sb.Stats().Requests["POST /v3/activities/contacts_json_import"]
	if imports < 1 || imports > 3 {
		t.Errorf("contacts_json_import called %d times, want 1 to 3", imports)
	}
	t.Logf("1,000 enrollments (+100 repeats) imported with %d contacts_json_import calls; CC requests %v",
		imports, sb.Stats().Requests)
	waitFor(t, "every enrollment marked imported", 30*time.Second, func() bool {
		counts, err := db.CountEnrollments(ctx)
		return err == nil && counts[store.StatusImported] == 1000
	})

	// The benchmark's in-process path and its wait for the sandbox: 200
	// more contacts stored without HTTP, imported by the running worker.
	var simOut syncBuffer
	args := []string{"simulate", "--in-process", "--count", "200", "--concurrency", "4", "--first-id", "6000000",
		"--cc-sandbox", cc.URL, "--until-imported", "--wait", "60s", "--json"}
	if err := run(ctx, args, getenv, &simOut, &simOut); err != nil {
		t.Fatalf("simulate --in-process: %v\n%s", err, simOut.String())
	}
	var sum simSummary
	if err := json.Unmarshal([]byte(simOut.String()), &sum); err != nil {
		t.Fatalf("simulate --json printed %q: %v", simOut.String(), err)
	}
	if sum.Accepted != 200 || sum.Listed == nil || sum.Listed.ImportRows < 200 || sum.Listed.ImportCalls < 1 ||
		sum.Listed.AfterLastAckS <= 0 || sum.Listed.WallS < sum.Listed.AfterLastAckS {
		t.Errorf("in-process run: %+v, listed %+v", sum, sum.Listed)
	}
	if n := onList(sb.Contacts(), "New Agents"); n != 1200 {
		t.Errorf("%d contacts on the list after the in-process run, want 1200", n)
	}

	cancel()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("process returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve or work did not shut down within 30s")
		}
	}
	for name, logs := range map[string]string{"serve": serveLog.String(), "work": workLog.String()} {
		for _, s := range []string{secret, access, refresh, env["HS2CC_OPS_PASSWORD"], ccsandbox.DefaultClientSecret, env["HS2CC_TOKEN_KEY"]} {
			if strings.Contains(logs, s) {
				t.Errorf("%s log contains a secret (%.6s…)", name, s)
			}
		}
		if strings.Contains(logs, "@example-travel.com") {
			t.Errorf("%s log contains an email address", name)
		}
	}
}
