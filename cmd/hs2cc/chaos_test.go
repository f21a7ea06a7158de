package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// proc is one hs2cc process of the chaos run.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProc(t *testing.T, bin, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p
}

// kill ends the process with SIGKILL: no shutdown, no lease release, tasks
// left active in Redis, as a crash or an OOM kill leaves them.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks for a clean shutdown and reports how it went.
func (p *proc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v on SIGTERM", p.name, err)
		}
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s did not stop within 40s of SIGTERM", p.name)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func postJSON(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d", url, resp.StatusCode)
	}
}

// TestChaos sends enrollments through separate sandbox, serve and work
// processes on real MariaDB and Redis while the work process is killed with
// SIGKILL twice, Redis is flushed once and the sandbox answers 5% of API
// calls with a 5xx, throttles 5% and ends every access token early once.
// It ends with every enrollment on its list once in the sandbox and no row
// stuck, and prints what it did. HS2CC_CHAOS_N sets the scale (5,000 by
// default; scripts/chaos runs 50,000).
//
// It runs as production does: default settings (batching, sweep, leader
// lease, refresh margin), a CC account without the list (the rules create
// it), and CC connected after serve and work started.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	n := 5000
	if v := os.Getenv("HS2CC_CHAOS_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 500 {
			t.Fatalf("HS2CC_CHAOS_N=%q: want a number of at least 500", v)
		}
	}
	dsn := storetest.MySQLDSN(t)
	redisURL := storetest.RedisURL(t)
	dir := t.TempDir()
	bin := hs2ccBinary(t)
	ccAddr, addr := freeAddr(t), freeAddr(t)
	ccBase, base := "http://"+ccAddr, "http://"+addr
	say := func(format string, args ...any) { t.Logf("chaos: "+format, args...) }
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			for _, p := range procs {
				tailLog(t, p)
			}
		}
	})

	sb := startProc(t, bin, dir, "sandbox", nil, "sandbox", "--addr", ccAddr,
		"--cc-fail-rate", "0.05", "--cc-throttle-rate", "0.05", "--cc-activity-delay", "500ms", "--cc-token-ttl", "3h")
	procs = append(procs, sb)
	waitFor(t, "the sandbox", 20*time.Second, func() bool {
		resp, err := http.Get(ccBase + "/sandbox/stats")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	secret := "chaos-" + randomHex(6)
	env := []string{
		"HS2CC_MYSQL_DSN=" + dsn, "HS2CC_REDIS_URL=" + redisURL, "HS2CC_ADDR=" + addr, "HS2CC_PUBLIC_URL=" + base,
		"HS2CC_HUBSPOT_CLIENT_SECRET=" + secret,
		"HS2CC_CC_API_URL=" + ccBase + "/v3", "HS2CC_CC_AUTH_URL=" + ccBase + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID=" + ccsandbox.DefaultClientID, "HS2CC_CC_CLIENT_SECRET=" + ccsandbox.DefaultClientSecret,
		"HS2CC_TOKEN_KEY=" + store.NewTokenKey(), "HS2CC_OPS_USER=ops", "HS2CC_OPS_PASSWORD=chaos-ops",
		"HS2CC_ROUTES=" + writeRoutes(t, "default_lists: [\"New Agents\"]\ncreate_missing_lists: true\n"),
	}
	var out syncBuffer
	getenv := func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	if err := run(context.Background(), []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	serve := startProc(t, bin, dir, "serve", env, "serve")
	procs = append(procs, serve)
	waitFor(t, "serve", 20*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	workN := 0
	startWork := func() *proc {
		workN++
		p := startProc(t, bin, dir, fmt.Sprintf("work-%d", workN), env, "work")
		procs = append(procs, p)
		return p
	}
	work := startWork()
	if err := connectThroughBridge(context.Background(), base, "ops", "chaos-ops"); err != nil {
		t.Fatalf("connect CC: %v", err)
	}
	stats := func() ccsandbox.Stats {
		var st ccsandbox.Stats
		getJSON(t, ccBase+"/sandbox/stats", &st)
		return st
	}

	// The traffic goes out in five slices, with one disturbance after each
	// of the first four, while earlier slices are still being imported.
	slice := n / 5
	send := func(i int) {
		count := slice
		if i == 4 {
			count = n - 4*slice
		}
		res, err := simulate(context.Background(), simOptions{
			URL: base + "/webhooks/hubspot", Secret: secret, Count: count, Concurrency: 8,
			FirstID: int64(20_000_000 + i*slice), PortalID: 62515,
		})
		if err != nil {
			t.Fatalf("simulate: %v", err)
		}
		if res.Accepted != count || res.Failed != 0 {
			t.Fatalf("slice %d: %d accepted, %d rejected, %d failed of %d", i, res.Accepted, res.Rejected, res.Failed, count)
		}
		say("sent slice %d: %d enrollments", i+1, count)
	}
	killMidImport := func() {
		before := stats().Imports
		waitFor(t, "an import to be posted", 60*time.Second, func() bool { return stats().Imports > before })
		work.kill()
		say("SIGKILLed %s right after CC accepted an import (%d accepted so far)", work.name, stats().Imports)
		work = startWork()
		say("started %s", work.name)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	start := time.Now()
	send(0)
	killMidImport()
	send(1)
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	say("flushed Redis: queued tasks, groups, the token cache, locks and leases are gone")
	send(2)
	var expired struct{ Expired int }
	resp, err := http.Post(ccBase+"/sandbox/expire-tokens", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&expired)
	resp.Body.Close()
	say("ended %d CC access tokens early", expired.Expired)
	send(3)
	killMidImport()
	send(4)
	sent := time.Since(start)

	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, "every enrollment imported", 10*time.Minute, func() bool {
		c, err := db.CountEnrollments(context.Background())
		return err == nil && c[store.StatusImported] == n
	})
	settled := time.Since(start)
	counts, _ := db.CountEnrollments(context.Background())
	if counts[store.StatusPending]+counts[store.StatusImporting]+counts[store.StatusFailed] != 0 {
		t.Errorf("rows left unimported: %v", counts)
	}

	var contacts struct{ Contacts []ccsandbox.SandboxContact }
	getJSON(t, ccBase+"/sandbox/contacts", &contacts)
	seen := map[string]int{}
	for _, c := range contacts.Contacts {
		for _, l := range c.ListNames {
			if l == "New Agents" {
				seen[strings.ToLower(c.Email)]++
			}
		}
	}
	if len(seen) != n {
		t.Errorf("%d contacts on New Agents, want %d", len(seen), n)
	}
	for email, k := range seen {
		if k != 1 {
			t.Errorf("%s on New Agents %d times", email, k)
		}
	}
	var imports int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM cc_imports WHERE state = 'completed'`).Scan(&imports); err != nil {
		t.Fatal(err)
	}
	st := stats()
	say("%d enrollments sent in %s, all imported after %s", n, sent.Round(time.Millisecond), settled.Round(time.Millisecond))
	say("CC: %d imports completed (%d accepted by CC), %d rows received by completed imports (%d sent twice), %d injected 5xx, %d throttled, %d 401s, token grants %v, invalid_grant %d",
		imports, st.Imports, st.ImportRows, st.ImportRows-n, st.Faults, st.Throttled, st.Unauthorized, st.TokenGrants, st.InvalidGrant)
	if st.ImportRows < n {
		t.Errorf("completed imports received %d rows, fewer than the %d contacts", st.ImportRows, n)
	}
	if st.InvalidGrant != 0 {
		t.Errorf("%d invalid_grant answers: the token was lost", st.InvalidGrant)
	}
	work.stop(t)
	serve.stop(t)
}

func tailLog(t *testing.T, p *proc) {
	f, err := os.Open(p.log)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	t.Logf("last lines of %s:\n%s", p.name, strings.Join(lines, "\n"))
}
