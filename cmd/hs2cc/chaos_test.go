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
)

// proc is one hs2cc process of the chaos run.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan error
	log    string
	killed bool // by kill: stop has nothing left to do
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
	p.killed = true
}

// stop asks for a clean shutdown and reports how it went.
func (p *proc) stop(t *testing.T) {
	if p.killed {
		return
	}
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
// calls with a 5xx, throttles 5%, carries out 5% and drops their answer
// (and once drops the answer of an import it accepted, for certain), and
// ends every access token early once.
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
	say := func(format string, args ...any) { t.Logf("chaos: "+format, args...) }
	d := deploy(t, []string{"--cc-fail-rate", "0.05", "--cc-throttle-rate", "0.05", "--cc-drop-rate", "0.05",
		"--cc-activity-delay", "500ms", "--cc-token-ttl", "3h"},
		map[string]string{"HS2CC_ROUTES": writeRoutes(t, "default_lists: [\"New Agents\"]\ncreate_missing_lists: true\n")})
	work := d.procs[len(d.procs)-1]
	workN := 1
	d.connect()

	// The traffic goes out in five slices, with one disturbance after each
	// of the first four, while earlier slices are still being imported.
	slice := n / 5
	send := func(i int) {
		count := slice
		if i == 4 {
			count = n - 4*slice
		}
		d.send(count)
		say("sent slice %d: %d enrollments", i+1, count)
	}
	killMidImport := func() {
		before := d.stats().Imports
		waitFor(t, "an import to be posted", 60*time.Second, func() bool { return d.stats().Imports > before })
		work.kill()
		say("SIGKILLed %s right after CC accepted an import (%d accepted so far)", work.name, d.stats().Imports)
		workN++
		d.start(fmt.Sprintf("work-%d", workN), "work")
		work = d.procs[len(d.procs)-1]
		say("started %s", work.name)
	}
	// Besides the random 5%, one import CC accepts has its answer dropped
	// for certain, so that every run meets a lost answer.
	dropAnImportsAnswer := func() {
		before := d.stats()
		postJSON(t, d.ccBase+"/sandbox/faults", `{"drop_rate":1}`)
		waitFor(t, "an import whose answer is dropped", 2*time.Minute, func() bool {
			st := d.stats()
			return st.Imports > before.Imports && st.Dropped > before.Dropped
		})
		postJSON(t, d.ccBase+"/sandbox/faults", `{"drop_rate":0.05}`)
		say("CC accepted an import and its answer was dropped (%d answers dropped so far)", d.stats().Dropped)
	}
	opt, err := redis.ParseURL(d.redisURL)
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
	dropAnImportsAnswer()
	var expired struct{ Expired int }
	resp, err := http.Post(d.ccBase+"/sandbox/expire-tokens", "application/json", nil)
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

	waitFor(t, "every enrollment imported", 10*time.Minute, func() bool { return d.counts()[store.StatusImported] == n })
	settled := time.Since(start)
	if c := d.counts(); c[store.StatusPending]+c[store.StatusImporting]+c[store.StatusFailed] != 0 {
		t.Errorf("rows left unimported: %v", c)
	}

	var contacts struct{ Contacts []ccsandbox.SandboxContact }
	d.get(d.ccBase+"/sandbox/contacts", &contacts)
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
	if err := d.db.SQL().QueryRow(`SELECT COUNT(*) FROM cc_imports WHERE state = 'completed'`).Scan(&imports); err != nil {
		t.Fatal(err)
	}
	st := d.stats()
	say("%d enrollments sent in %s, all imported after %s", n, sent.Round(time.Millisecond), settled.Round(time.Millisecond))
	say("CC: %d imports completed (%d accepted by CC), %d rows received by completed imports (%d sent twice), %d injected 5xx, %d throttled, %d answers dropped, %d 401s, token grants %v, invalid_grant %d",
		imports, st.Imports, st.ImportRows, st.ImportRows-n, st.Faults, st.Throttled, st.Dropped, st.Unauthorized, st.TokenGrants, st.InvalidGrant)
	// An import whose answer was lost, to a dropped connection or to a
	// SIGKILL before its activity id was saved, is found among CC's
	// activities and polled, never posted again.
	if st.ImportRows != n {
		t.Errorf("completed imports received %d rows, want exactly the %d contacts", st.ImportRows, n)
	}
	if st.InvalidGrant != 0 {
		t.Errorf("%d invalid_grant answers: the token was lost", st.InvalidGrant)
	}
	d.stop()
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
