package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestDeclaredSizeFlood repeats the attack of issue 15's second hole on
// the production build: 300 connections that each declare a body of
// 1 MiB and one byte and send a few bytes of it. serve's memory must follow
// what arrives (a peak RSS under 150 MB, where a buffer sized from the
// declared length took it past 400 MB), and every connection must end with
// a 400 or be closed once serve's 30 s read timeout has passed; serve keeps
// serving.
func TestDeclaredSizeFlood(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read serve's RSS")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hs2cc")
	if out, err := exec.Command("go", "build", "-tags", "nodev", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nodev: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	env := []string{
		"HS2CC_MYSQL_DSN=" + storetest.MySQLDSN(t), "HS2CC_REDIS_URL=" + storetest.RedisURL(t),
		"HS2CC_ADDR=" + addr, "HS2CC_PUBLIC_URL=https://hooks.example.com", "HS2CC_TOKEN_KEY=" + store.NewTokenKey(),
		"HS2CC_HUBSPOT_CLIENT_SECRET=flood-" + randomHex(6),
	}
	migrate := exec.Command(bin, "migrate")
	migrate.Env = append(os.Environ(), env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	serve := startProc(t, bin, dir, "serve", env, "serve")
	t.Cleanup(func() {
		if t.Failed() {
			tailLog(t, serve)
		}
		serve.stop(t)
	})
	base := "http://" + addr
	waitFor(t, "serve", 20*time.Second, func() bool { return httpStatus(base+"/healthz") == http.StatusOK })
	idle := procStatus(t, serve.cmd.Process.Pid, "VmRSS")

	const conns, declared = 300, 1<<20 + 1
	head := fmt.Sprintf("POST /webhooks/hubspot HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"vid\":",
		addr, declared)
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			answer := "closed"
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				answer = strconv.Itoa(resp.StatusCode)
				resp.Body.Close()
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				answer = "no answer within 60 s"
			}
			mu.Lock()
			answers[answer]++
			mu.Unlock()
		}()
	}
	held := procStatus(t, serve.cmd.Process.Pid, "VmRSS")
	// serve answers its probes while the flood holds its connections.
	if code := httpStatus(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d during the flood, want 200", code)
	}
	wg.Wait()
	took := time.Since(began)
	peak := procStatus(t, serve.cmd.Process.Pid, "VmHWM")
	t.Logf("serve RSS: idle %.1f MB, %d connections held %.1f MB, peak %.1f MB; answers %v after %v",
		megabytes(idle), conns, megabytes(held), megabytes(peak), answers, took.Round(time.Second))
	if peak >= 150<<20 {
		t.Errorf("serve's peak RSS %.1f MB, want under 150 MB", megabytes(peak))
	}
	if answers["400"]+answers["closed"] != conns {
		t.Errorf("answers %v, want all %d 400 or closed", answers, conns)
	}
	if code := httpStatus(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d after the flood, want 200", code)
	}
	log, err := os.ReadFile(serve.log)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(log, []byte(`"code":"incomplete_body"`)); n == 0 || bytes.Contains(log, []byte(`"level":"ERROR"`)) {
		t.Errorf("%d incomplete_body warnings and an error in serve's log, want warnings only", n)
	}
}

// httpStatus is the status of a GET of url, 0 when there was no answer.
func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// procStatus reads a size in bytes, such as VmRSS (resident now) or VmHWM
// (the peak resident), from /proc/pid/status.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func megabytes(n int64) float64 { return float64(n) / (1 << 20) }
