package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/cmd/hs2cc/loadgen"
)

// The simple admin password must be long, or a bcrypt hash of a cost that
// makes guessing dear; anything shaped like a hash must be one. The error
// names the variable and never the password.
func TestOpsPasswordRule(t *testing.T) {
	good := bcryptHash(t, "a long passphrase", bcrypt.DefaultCost)
	cheap := bcryptHash(t, "a long passphrase", bcrypt.MinCost)
	cases := []struct {
		name     string
		password string
		wantErr  string // "" when the password is accepted
	}{
		{name: "unset", password: ""},
		{name: "16 characters", password: "abcdefghijklmnop"},
		{name: "32 random hex characters, as dev makes", password: randomHex(16)},
		{name: "15 characters", password: "abcdefghijklmno", wantErr: "15 characters, want at least 16"},
		{name: "short in bytes, shorter in characters", password: "pässwörd-äöü-ß", wantErr: "14 characters, want at least 16"},
		{name: "a bcrypt hash of cost 10", password: good},
		{name: "a bcrypt hash of cost 4", password: cheap, wantErr: "bcrypt cost 4, want at least 10"},
		{name: "a cut hash", password: good[:59], wantErr: "looks like a bcrypt hash but is not one"},
		{name: "a hash with a bad cost", password: "$2a$xx" + good[6:], wantErr: "looks like a bcrypt hash but is not one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HS2CC_OPS_USER": "ops", "HS2CC_OPS_PASSWORD": tc.password}
			_, err := loadConfig(func(k string) string { return env[k] })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "HS2CC_OPS_PASSWORD: "+tc.wantErr)):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			case err != nil && tc.password != "" && strings.Contains(err.Error(), tc.password):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// Flood sizes of TestLoginFlood: the 640 wrong logins over 64
// connections, rounded up, from 16 addresses, while HubSpot sends its 10
// webhooks a second.
const (
	floodLogins    = 1000
	floodConns     = 64
	floodAddresses = 16
	floodSeconds   = 10
	webhookRate    = 10
)

// TestLoginFlood runs serve and work as main does, with the simple admin
// login as a bcrypt hash of cost 10, and sends 1,000 wrong ops logins over
// 64 connections from 16 loopback addresses while webhooks arrive at 10 a
// second. The webhook must not notice (ack p99 under 50 ms on a quiet
// machine without the race detector, else not stalled), and the bcrypt
// checks must stay within what the limiter allows each address. The ack
// latency of the same webhooks without the flood is measured first, for
// comparison.
func TestLoginFlood(t *testing.T) {
	sb := ccsandbox.New(ccsandbox.Options{ActivityDelay: 200 * time.Millisecond})
	cc := httptest.NewServer(sb)
	defer cc.Close()
	sb.CreateList("New Agents")
	br := startBridge(t, cc, sb, map[string]string{
		"HS2CC_OPS_USER":     "ops",
		"HS2CC_OPS_PASSWORD": bcryptHash(t, "the admin's long passphrase", bcrypt.DefaultCost),
	})
	base := "http://" + br.addr
	ctx, cancel := context.WithTimeout(br.ctx, 2*time.Minute)
	defer cancel()
	webhooks := func(seconds int, firstID int64) loadgen.Summary {
		o := simOptions{
			URL: base + "/webhooks/hubspot", Secret: br.secret, Count: seconds * webhookRate, Concurrency: 4,
			Rate: webhookRate, FirstID: firstID, PortalID: 62515, SignURL: "https://hooks.example.com/webhooks/hubspot",
		}
		res, err := simulate(ctx, o)
		if err != nil {
			t.Fatalf("simulate: %v", err)
		}
		sum := loadgen.Summarize(o, res)
		if sum.Accepted != o.Count || sum.Failed != 0 {
			t.Errorf("webhooks: %d accepted, %d failed; want all %d accepted", sum.Accepted, sum.Failed, o.Count)
		}
		return sum
	}
	calm := webhooks(floodSeconds/2, 9_100_000)

	var floodStatus sync.Map // status → *atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		flood(ctx, t, base, &floodStatus)
	}()
	stormy := webhooks(floodSeconds, 9_200_000)
	<-done

	counts := map[int]int64{}
	floodStatus.Range(func(k, v any) bool { counts[k.(int)] = v.(*atomic.Int64).Load(); return true })
	failures := loginFailureCounts(t, base+"/metrics")
	t.Logf("webhook ack without the flood: p50 %.1f ms, p99 %.1f ms, max %.1f ms", calm.P50Ms, calm.P99Ms, calm.MaxMs)
	t.Logf("webhook ack during the flood: p50 %.1f ms, p99 %.1f ms, max %.1f ms", stormy.P50Ms, stormy.P99Ms, stormy.MaxMs)
	t.Logf("flood answers by status: %v; hs2cc_ops_login_failures_total: %v", counts, failures)

	// Without the gate, 64 bcrypt checks at once held the ack for 17 s.
	// The 50 ms bound holds where the machine is quiet enough for the
	// webhook alone to keep its p99 at half of it. Under the race detector
	// one check of cost 10 takes seconds of a core, and on a machine
	// shared with other work the webhook misses 50 ms without any flood;
	// there the bound only says that the flood cannot stall it: 1 s more
	// than twice the p99 without the flood.
	maxP99 := 50.0
	if raceEnabled || calm.P99Ms >= maxP99/2 {
		maxP99 = 1000 + 2*calm.P99Ms
		t.Logf("the 50 ms bound does not apply (race detector %v, p99 %.1f ms without the flood): want under %.0f ms",
			raceEnabled, calm.P99Ms, maxP99)
	}
	if stormy.P99Ms >= maxP99 {
		t.Errorf("webhook ack p99 %.1f ms during the flood, want under %.0f ms", stormy.P99Ms, maxP99)
	}
	var total int64
	for status, n := range counts {
		total += n
		if status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
			t.Errorf("%d flood logins answered %d, want only 401 or 429", n, status)
		}
	}
	if total != floodLogins {
		t.Errorf("%d flood logins answered, want %d", total, floodLogins)
	}
	// Every check of the flood failed, so bad_login counts the bcrypt
	// checks run. The limiter allows an address its 5 free failures and
	// one more each time its back-off (1 s, 2 s, 4 s, …) runs out: within
	// the flood's 10 s and the slack of its last answers, at most 4 more.
	const maxChecks = floodAddresses * (5 + 4)
	if checks := failures["bad_login"]; checks > maxChecks || checks < 1 {
		t.Errorf("%v bcrypt checks ran, want between 1 and %d", checks, maxChecks)
	}
	if int64(failures["bad_login"]+failures["limited"]+failures["busy"]) != total {
		t.Errorf("failures %v do not add up to the %d flood logins", failures, total)
	}
	// An address is warned about when a failure puts it into back-off,
	// which a limited login needs, once however long the flood.
	warnings := strings.Count(br.serveLog.String(), "ops logins limited")
	if (failures["limited"] > 0 && warnings == 0) || warnings > floodAddresses {
		t.Errorf("%d warnings about limited addresses with %v logins limited; want one per limited address at most, and some",
			warnings, failures["limited"])
	}
}

// flood sends floodLogins wrong logins to /ops/status.json over floodConns
// connections, each bound to one of floodAddresses loopback addresses, paced
// evenly over floodSeconds, and counts the answers by status.
func flood(ctx context.Context, t *testing.T, base string, byStatus *sync.Map) {
	var wg sync.WaitGroup
	per := floodLogins / floodConns
	interval := floodSeconds * time.Second / time.Duration(per+1)
	for c := range floodConns {
		n := per
		if c < floodLogins%floodConns {
			n++
		}
		client := boundClient(fmt.Sprintf("127.0.0.%d", 10+c%floodAddresses))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.CloseIdleConnections()
			// Each connection starts at its own offset, so that the
			// flood arrives evenly rather than in 64-request bursts.
			next := time.Now().Add(interval * time.Duration(c) / floodConns)
			for i := range n {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				user := "ops"
				if i%2 == 1 {
					user = "root" // unknown names cost and count the same
				}
				status := send(ctx, t, client, base+"/ops/status.json", user, fmt.Sprintf("guess-%d-%d", c, i))
				v, _ := byStatus.LoadOrStore(status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
}

// boundClient is an HTTP client with one keep-alive connection whose
// source address is local, so that the server sees that address.
func boundClient(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
	}}
}

// send makes one GET with a basic-auth login and returns its status, or 0
// when no answer came.
func send(ctx context.Context, t *testing.T, client *http.Client, url, user, pass string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	req.SetBasicAuth(user, pass)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		t.Errorf("a 429 without Retry-After")
	}
	return resp.StatusCode
}

var loginFailureLine = regexp.MustCompile(`(?m)^hs2cc_ops_login_failures_total\{reason="(\w+)"\} (\S+)$`)

// loginFailureCounts reads hs2cc_ops_login_failures_total by reason from
// serve's /metrics.
func loginFailureCounts(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, m := range loginFailureLine.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", m[0], err)
		}
		out[m[1]] = v
	}
	if len(out) != 3 {
		t.Fatalf("hs2cc_ops_login_failures_total by reason: %v, want bad_login, limited and busy", out)
	}
	return out
}
