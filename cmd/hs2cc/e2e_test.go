package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
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

// bridgeRun is serve and work run as main runs them, through run(), on a
// fresh MySQL database and Redis, with CC (a sandbox) already connected.
type bridgeRun struct {
	env               map[string]string
	getenv            func(string) string
	db                *store.DB
	addr              string // where serve listens
	secret            string // the HubSpot signing secret
	access, refresh   string // the CC token pair stored before start
	ctx               context.Context
	cancel            context.CancelFunc
	done              chan error
	serveLog, workLog syncBuffer
}

// startBridge starts serve and work against cc, serving sb, with the common
// settings overridden or added to by extra, and waits until /readyz passes.
// Their logs are shown when the test fails.
func startBridge(t *testing.T, cc *httptest.Server, sb *ccsandbox.Server, extra map[string]string) *bridgeRun {
	t.Helper()
	b := &bridgeRun{addr: freeAddr(t), secret: "e2e-secret-" + randomHex(6), done: make(chan error, 2)}
	b.access, b.refresh = sb.IssueToken("contact_data offline_access")
	b.env = map[string]string{
		"HS2CC_MYSQL_DSN":             storetest.MySQLDSN(t),
		"HS2CC_REDIS_URL":             storetest.RedisURL(t),
		"HS2CC_ADDR":                  b.addr,
		"HS2CC_PUBLIC_URL":            "https://hooks.example.com",
		"HS2CC_HUBSPOT_CLIENT_SECRET": b.secret,
		"HS2CC_CC_API_URL":            cc.URL + "/v3",
		"HS2CC_CC_AUTH_URL":           cc.URL + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID":          ccsandbox.DefaultClientID,
		"HS2CC_CC_CLIENT_SECRET":      ccsandbox.DefaultClientSecret,
		"HS2CC_LOG_FORMAT":            "json",
		"HS2CC_TOKEN_KEY":             store.NewTokenKey(),
	}
	maps.Copy(b.env, extra)
	b.getenv = func(k string) string { return b.env[k] }
	b.ctx, b.cancel = context.WithCancel(context.Background())
	t.Cleanup(b.cancel)

	var out syncBuffer
	if err := run(b.ctx, []string{"migrate"}, b.getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := store.Open(b.ctx, b.env["HS2CC_MYSQL_DSN"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := store.ParseTokenKeys(b.env["HS2CC_TOKEN_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	db.SetTokenKeys(keys)
	if _, err := db.SaveToken(b.ctx, store.Token{AccessToken: b.access, RefreshToken: b.refresh, ExpiresAt: time.Now().Add(24 * time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	b.db = db

	go func() { b.done <- run(b.ctx, []string{"serve"}, b.getenv, &b.serveLog, &b.serveLog) }()
	go func() { b.done <- run(b.ctx, []string{"work"}, b.getenv, &b.workLog, &b.workLog) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s\nwork log:\n%s", b.serveLog.String(), b.workLog.String())
		}
	})
	waitFor(t, "/readyz", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + b.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return b
}

// stop ends serve and work as a signal would, and fails the test unless
// both return cleanly within 30 s.
func (b *bridgeRun) stop(t *testing.T) {
	t.Helper()
	b.cancel()
	for range 2 {
		select {
		case err := <-b.done:
			if err != nil {
				t.Errorf("process returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve or work did not shut down within 30s")
		}
	}
}

// TestEndToEnd drives the real serve and work code (through run, as main
// does) against real MariaDB and Redis and the CC sandbox: 1,000 signed
// webhooks plus repeats must end as 1,000 contacts on the sandbox list, in
// at most 3 contacts_json_import calls, with no secret in any log line.
func TestEndToEnd(t *testing.T) {
	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: 300 * time.Millisecond})
	cc := httptest.NewServer(ccspec.New(t).Wrap(sb))
	defer cc.Close()
	sb.CreateList("New Agents")
	br := startBridge(t, cc, sb, map[string]string{
		"HS2CC_GROUP_GRACE_PERIOD": "2s",
		"HS2CC_GROUP_MAX_DELAY":    "20s",
		"HS2CC_OPS_USER":           "ops",
		"HS2CC_OPS_PASSWORD":       "ops-password-" + randomHex(4),
	})
	ctx, db, addr, secret, getenv := br.ctx, br.db, br.addr, br.secret, br.getenv

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

	br.stop(t)
	for name, logs := range map[string]string{"serve": br.serveLog.String(), "work": br.workLog.String()} {
		for _, s := range []string{secret, br.access, br.refresh, br.env["HS2CC_OPS_PASSWORD"], ccsandbox.DefaultClientSecret, br.env["HS2CC_TOKEN_KEY"]} {
			if strings.Contains(logs, s) {
				t.Errorf("%s log contains a secret (%.6s…)", name, s)
			}
		}
		if strings.Contains(logs, "@example-travel.com") {
			t.Errorf("%s log contains an email address", name)
		}
	}
}
