package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// The tests in this file follow the README's "First deploy" in its own
// order, as a new user would: a fresh CC account (the sandbox with no
// lists), `hs2cc migrate`, `hs2cc serve` and `hs2cc work` as separate
// processes on MariaDB and Redis, CC connected through /oauth/connect over
// HTTP with the ops login once both run, then signed webhooks. Settings are
// the defaults unless a scenario names one; none pre-creates a list or a
// token, shortens a timeout or connects CC before work starts.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// hs2ccBinary builds the command once for the package's process tests, as
// the Dockerfile does but with the dev stack, which `dev` needs.
func hs2ccBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hs2cc-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "hs2cc")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// opsCheck is one readiness check as /ops/status.json shows it.
type opsCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// deployment is one first deploy: its processes, addresses and settings.
type deployment struct {
	t        *testing.T
	bin      string
	dir      string
	ccBase   string // the sandbox
	base     string // serve
	redisURL string // the bridge's Redis database
	secret   string
	opsPass  string
	env      []string
	procs    []*proc
	db       *store.DB
	sent     int
}

// deploy starts a fresh sandbox with sandboxArgs, migrates, and starts serve
// and work with the default settings plus env; CC is not connected.
func deploy(t *testing.T, sandboxArgs []string, env map[string]string) *deployment {
	t.Helper()
	d := &deployment{t: t, bin: hs2ccBinary(t), dir: t.TempDir(), secret: "deploy-" + randomHex(6),
		opsPass: "ops-" + randomHex(8)}
	ccAddr, addr := freeAddr(t), freeAddr(t)
	d.ccBase, d.base = "http://"+ccAddr, "http://"+addr
	dsn := storetest.MySQLDSN(t)
	d.redisURL = storetest.RedisURL(t)
	vars := map[string]string{
		"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": d.redisURL,
		"HS2CC_ADDR": addr, "HS2CC_PUBLIC_URL": d.base, "HS2CC_HUBSPOT_CLIENT_SECRET": d.secret,
		"HS2CC_CC_API_URL": d.ccBase + "/v3", "HS2CC_CC_AUTH_URL": d.ccBase + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID": ccsandbox.DefaultClientID, "HS2CC_CC_CLIENT_SECRET": ccsandbox.DefaultClientSecret,
		"HS2CC_TOKEN_KEY": store.NewTokenKey(), "HS2CC_OPS_USER": "ops", "HS2CC_OPS_PASSWORD": d.opsPass,
	}
	for k, v := range env {
		vars[k] = v
	}
	for k, v := range vars {
		d.env = append(d.env, k+"="+v)
	}
	t.Cleanup(func() {
		for _, p := range d.procs {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			for _, p := range d.procs {
				tailLog(t, p)
			}
		}
	})

	d.start("sandbox", append([]string{"sandbox", "--addr", ccAddr}, sandboxArgs...)...)
	waitFor(t, "the sandbox", 20*time.Second, func() bool { return d.get(d.ccBase+"/sandbox/stats", nil) == http.StatusOK })
	if out, err := d.command("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	d.start("serve", "serve")
	d.start("work", "work")
	waitFor(t, "serve", 20*time.Second, func() bool { return d.get(d.base+"/healthz", nil) == http.StatusOK })
	waitFor(t, "work", 20*time.Second, func() bool { return d.logHas("work", "worker started") })
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d.db = db
	return d
}

func (d *deployment) start(name string, args ...string) {
	d.procs = append(d.procs, startProc(d.t, d.bin, d.dir, name, d.env, args...))
}

// command runs one hs2cc command to its end, as a person would in a shell.
func (d *deployment) command(args ...string) (string, error) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *deployment) logHas(name, text string) bool {
	for _, p := range d.procs {
		if p.name == name {
			b, _ := os.ReadFile(p.log)
			return strings.Contains(string(b), text)
		}
	}
	return false
}

// get fetches url (with the ops login for the bridge's /ops) into v and
// returns the status, or 0 when nothing answered.
func (d *deployment) get(url string, v any) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if strings.Contains(url, "/ops") {
		req.SetBasicAuth("ops", d.opsPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if s, ok := v.(*string); ok {
			*s = string(body)
		} else {
			_ = json.Unmarshal(body, v)
		}
	}
	return resp.StatusCode
}

// connect connects CC as ops do once serve and work run: /oauth/connect
// with the ops login, the consent page (the sandbox approves at once), and
// the callback.
func (d *deployment) connect() {
	d.t.Helper()
	if err := connectThroughBridge(context.Background(), d.base, "ops", d.opsPass); err != nil {
		d.t.Fatalf("connect CC: %v", err)
	}
}

// send signs and sends n new enrollments.
func (d *deployment) send(n int) {
	d.t.Helper()
	res, err := simulate(context.Background(), simOptions{URL: d.base + "/webhooks/hubspot", Secret: d.secret,
		Count: n, Concurrency: 8, FirstID: int64(30_000_000 + d.sent), PortalID: 62515})
	if err != nil {
		d.t.Fatalf("simulate: %v", err)
	}
	if res.Accepted != n || res.Failed != 0 {
		d.t.Fatalf("sent %d: %d accepted, %d rejected, %d failed", n, res.Accepted, res.Rejected, res.Failed)
	}
	d.sent += n
}

func (d *deployment) stats() ccsandbox.Stats {
	var st ccsandbox.Stats
	d.get(d.ccBase+"/sandbox/stats", &st)
	return st
}

// listed reports how many stored enrollments are in the sandbox on exactly
// the lists the rules chose for them, and what is wrong with the first that
// is not.
func (d *deployment) listed() (int, string) {
	var body struct{ Contacts []ccsandbox.SandboxContact }
	if d.get(d.ccBase+"/sandbox/contacts", &body) != http.StatusOK {
		return 0, "the sandbox did not answer"
	}
	byEmail := map[string][]string{}
	for _, c := range body.Contacts {
		byEmail[strings.ToLower(c.Email)] = c.ListNames
	}
	rows, err := d.db.SQL().Query(`SELECT email, lists FROM enrollments`)
	if err != nil {
		return 0, err.Error()
	}
	defer rows.Close()
	n, first := 0, ""
	for rows.Next() {
		var email, raw string
		var want []string
		if rows.Scan(&email, &raw) != nil || json.Unmarshal([]byte(raw), &want) != nil {
			return 0, "unreadable row"
		}
		got := slices.Clone(byEmail[strings.ToLower(email)])
		slices.Sort(got)
		slices.Sort(want)
		if slices.Equal(got, want) {
			n++
		} else if first == "" {
			first = fmt.Sprintf("%s is on %v, want %v", email, got, want)
		}
	}
	return n, first
}

// waitListed waits until every enrollment sent is on its lists, and
// returns when that happened.
func (d *deployment) waitListed(within time.Duration) time.Time {
	d.t.Helper()
	var last string
	deadline := time.Now().Add(within)
	for {
		n, wrong := d.listed()
		if n == d.sent {
			return time.Now()
		}
		last = fmt.Sprintf("%d of %d listed; %s", n, d.sent, wrong)
		if time.Now().After(deadline) {
			d.t.Fatalf("not every contact listed within %s: %s", within, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// counts returns the enrollments by status.
func (d *deployment) counts() map[string]int {
	c, err := d.db.CountEnrollments(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// waitImported waits until the bridge has recorded every enrollment as
// imported: CC lists a contact when its import completes, and the bridge
// learns so at its next poll of the activity.
func (d *deployment) waitImported() {
	d.t.Helper()
	var c map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for c = d.counts(); c[store.StatusImported] != d.sent; c = d.counts() {
		if time.Now().After(deadline) {
			d.t.Fatalf("enrollments %v, want all %d imported", c, d.sent)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stillRunning fails the test for any process that exited.
func (d *deployment) stillRunning() {
	d.t.Helper()
	for _, p := range d.procs {
		select {
		case err := <-p.done:
			d.t.Errorf("%s exited: %v", p.name, err)
		default:
		}
	}
}

// stop ends the bridge's processes as Fly would, each within its budget.
func (d *deployment) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop(d.t)
	}
	d.procs = nil
}

func writeRoutes(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// inCC does in the CC account what a person would, through CC's own API: a
// POST of body to path with a token of the account. CC must answer 201.
func (d *deployment) inCC(t *testing.T, path, body string) {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	resp, err := http.Post(d.ccBase+"/sandbox/token", "application/json", strings.NewReader(`{"scope":"contact_data"}`))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("sandbox token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.ccBase+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d, want 201", path, resp.StatusCode)
	}
}

// checkRefreshes: a run that outlived its 3 s tokens refreshed, and never
// more often than once per two thirds of a token's life (2 s), however
// many calls wanted a token: no refresh storm.
func checkRefreshes(t *testing.T, st ccsandbox.Stats, run time.Duration) {
	t.Helper()
	n, most := st.TokenGrants["refresh_token"], int(run/(2*time.Second))+1
	if n == 0 || n > most {
		t.Errorf("%d refreshes in %s, want from 1 to %d", n, run.Round(time.Second), most)
	}
}

// routesCreating routes by country and tier to three lists that a fresh
// CC account does not have, and allows creating them.
const routesCreating = `default_lists: ["New Agents"]
create_missing_lists: true
routes:
  - when: {country: ["US", "CA"]}
    lists: ["Agents - North America"]
  - when: {property: agent_tier, equals: gold}
    lists: ["Gold Agents"]
`

// TestFirstDeploy runs the README's first deploy, in its order, in the ways
// it goes in production; see the comment at the top of this file.
func TestFirstDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	hs2ccBinary(t)

	// Scenario 1: rules that create missing lists, a fresh account.
	t.Run("rules create the lists of a fresh account", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		d.connect()
		d.send(600)
		d.waitListed(2 * time.Minute)
		d.waitImported()
		d.stillRunning()
		d.stop()
	})

	// Scenario 2: the default configuration names "New Agents" and may not
	// create it. Everything waits, visibly, until the list exists.
	t.Run("a missing list is named everywhere and waited for", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, nil)
		d.connect()
		d.send(300)
		var ops struct {
			Attention []struct {
				Kind, Subject, Detail string
				Waiting               *int
			}
			Readiness []opsCheck
		}
		waitFor(t, "/ops to name the missing list with its waiting enrollments", time.Minute, func() bool {
			d.get(d.base+"/ops/status.json", &ops)
			return len(ops.Attention) == 1 && ops.Attention[0].Subject == "New Agents" &&
				ops.Attention[0].Waiting != nil && *ops.Attention[0].Waiting == d.sent
		})
		if a := ops.Attention[0]; a.Kind != store.AttentionMissingList || !strings.Contains(a.Detail, "create_missing_lists") {
			t.Errorf("/ops attention %+v, want a missing list with what to do", a)
		}
		var page string
		d.get(d.base+"/ops", &page)
		if i, j := strings.Index(page, "Needs attention"), strings.Index(page, "<h2>Enrollments"); i < 0 || j < 0 || i > j ||
			!strings.Contains(page[i:j], "New Agents") {
			t.Errorf("/ops does not name the missing list at the top:\n%s", page)
		}
		out, err := d.command("status")
		if err == nil || !strings.Contains(out, `CC list "New Agents" does not exist`) || !strings.Contains(out, fmt.Sprintf("%d enrollments wait", d.sent)) {
			t.Errorf("hs2cc status exited %v, want 1, naming the list and the %d waiting:\n%s", err, d.sent, out)
		}
		// /readyz needs no login, so it names the failing check and no
		// more; the detail is on /ops.
		var ready string
		if code := d.get(d.base+"/readyz", &ready); code != http.StatusServiceUnavailable || !strings.Contains(ready, `"cc_attention":"fail"`) ||
			strings.Contains(ready, "New Agents") {
			t.Errorf("/readyz %d %s, want 503 with cc_attention failing, not naming the list", code, ready)
		}
		if !slices.ContainsFunc(ops.Readiness, func(c opsCheck) bool {
			return c.Name == "cc_attention" && !c.OK && strings.Contains(c.Detail, `"New Agents" does not exist`)
		}) {
			t.Errorf("/ops/status.json readiness %+v, want cc_attention failing, naming the list", ops.Readiness)
		}
		if code := d.get(d.base+"/healthz", nil); code != http.StatusOK {
			t.Errorf("/healthz %d, want 200: liveness must not restart a process for a missing list", code)
		}
		var metrics string
		d.get(d.base+"/metrics", &metrics)
		if !strings.Contains(metrics, `hs2cc_attention{kind="missing_list",subject="New Agents"} 1`) || !strings.Contains(metrics, "hs2cc_cc_lists_missing 1") {
			t.Errorf("/metrics does not count the missing list")
		}
		if c := d.counts(); c[store.StatusPending] != d.sent {
			t.Errorf("enrollments %v while the list is missing, want all %d pending", c, d.sent)
		}

		// A person creates the list in CC, through CC's own API.
		d.inCC(t, "/v3/contact_lists", `{"name":"New Agents"}`)
		created := time.Now()
		done := d.waitListed(time.Minute)
		t.Logf("every contact listed %s after the list was created", done.Sub(created).Round(time.Second))
		d.waitImported()
		waitFor(t, "the attention to clear", time.Minute, func() bool {
			d.get(d.base+"/ops/status.json", &ops)
			return len(ops.Attention) == 0 && d.get(d.base+"/readyz", nil) == http.StatusOK
		})
		if out, err := d.command("status"); err != nil {
			t.Errorf("hs2cc status exited %v once the list exists:\n%s", err, out)
		}
		d.stillRunning()
		d.stop()
	})

	// Scenario 3: access tokens of three seconds that rotate, with the
	// default refresh margin of two hours, in the three-process topology
	// (the standalone sandbox) and in dev.
	shortTokens := []string{"--cc-token-ttl", "3s", "--cc-refresh-tokens", "rotating"}
	t.Run("three-second rotating tokens, three processes", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, shortTokens, map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		start := time.Now()
		d.connect()
		// Slices over about twenty seconds, so that imports and polls meet
		// several token lifetimes.
		for range 4 {
			d.send(150)
			time.Sleep(5 * time.Second)
		}
		d.waitListed(2 * time.Minute)
		st := d.stats()
		t.Logf("token grants %v, invalid_grant %d, throttled token requests %d", st.TokenGrants, st.InvalidGrant, st.TokenThrottled)
		if st.InvalidGrant != 0 || st.TokenThrottled != 0 {
			t.Errorf("invalid_grant %d, throttled token requests %d; want 0 and 0", st.InvalidGrant, st.TokenThrottled)
		}
		checkRefreshes(t, st, time.Since(start))
		d.stillRunning()
		d.stop()
	})
	t.Run("three-second rotating tokens, dev", func(t *testing.T) {
		t.Parallel()
		addr, ccAddr := freeAddr(t), freeAddr(t)
		secret := "dev-" + randomHex(6)
		dir := t.TempDir()
		p := startProc(t, hs2ccBinary(t), dir, "dev", []string{"HS2CC_HUBSPOT_CLIENT_SECRET=" + secret},
			append([]string{"dev", "--addr", addr, "--cc-addr", ccAddr, "--hs-addr", "127.0.0.1:0"}, shortTokens...)...)
		t.Cleanup(func() {
			_ = p.cmd.Process.Kill()
			if t.Failed() {
				tailLog(t, p)
			}
		})
		d := &deployment{t: t, ccBase: "http://" + ccAddr, base: "http://" + addr, secret: secret, procs: []*proc{p}}
		start := time.Now()
		waitFor(t, "dev", time.Minute, func() bool {
			b, _ := os.ReadFile(p.log)
			return strings.Contains(string(b), "Press Ctrl-C")
		})
		for range 3 {
			d.send(60)
			time.Sleep(4 * time.Second)
		}
		var body struct{ Contacts []ccsandbox.SandboxContact }
		waitFor(t, "every contact on New Agents", 2*time.Minute, func() bool {
			d.get(d.ccBase+"/sandbox/contacts", &body)
			return onList(body.Contacts, "New Agents") == d.sent
		})
		st := d.stats()
		t.Logf("token grants %v, invalid_grant %d, throttled token requests %d", st.TokenGrants, st.InvalidGrant, st.TokenThrottled)
		if st.InvalidGrant != 0 || st.TokenThrottled != 0 {
			t.Errorf("invalid_grant %d, throttled token requests %d; want 0 and 0", st.InvalidGrant, st.TokenThrottled)
		}
		checkRefreshes(t, st, time.Since(start))
		d.stillRunning()
		p.stop(t)
	})

	// Scenario 4: CC fails 5% of calls and throttles 5% from its very
	// first request, and every list call fails outright until the bridge
	// has been running (and connected) for a while.
	t.Run("faults from the first request", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, []string{"--cc-fail-rate", "0.05", "--cc-throttle-rate", "0.05"},
			map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		postJSON(t, d.ccBase+"/sandbox/faults", `{"status":{"GET /v3/contact_lists":503,"POST /v3/contact_lists":500}}`)
		d.connect()
		d.send(300)
		waitFor(t, "work to meet the failing list calls", time.Minute, func() bool {
			return d.stats().Faults >= 3
		})
		d.stillRunning()
		postJSON(t, d.ccBase+"/sandbox/faults", `{"status":{}}`)
		d.send(300)
		d.waitListed(3 * time.Minute)
		d.waitImported()
		st := d.stats()
		t.Logf("injected 5xx %d, throttled %d", st.Faults, st.Throttled)
		d.stillRunning()
		d.stop()
	})

	// Scenario 5: Redis loses its data in the middle of a run, on the
	// default sweep settings (a ten-minute sweep age).
	t.Run("Redis flushed mid-run", func(t *testing.T) {
		t.Parallel()
		d := deploy(t, nil, map[string]string{"HS2CC_ROUTES": writeRoutes(t, routesCreating)})
		d.connect()
		d.send(500)
		if c := d.counts(); c[store.StatusPending] == 0 {
			t.Fatalf("enrollments %v: nothing was waiting when Redis was flushed", c)
		}
		opt, err := redis.ParseURL(d.redisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		d.send(500)
		last := time.Now()
		done := d.waitListed(jobs.DefaultConfig().GroupMaxDelay + 30*time.Second)
		t.Logf("every contact listed %s after the last webhook", done.Sub(last).Round(time.Second))
		if st := d.stats(); st.ImportRows != d.sent {
			t.Errorf("CC received %d rows, want %d: some were sent twice", st.ImportRows, d.sent)
		}
		d.stillRunning()
		d.stop()
	})
}
