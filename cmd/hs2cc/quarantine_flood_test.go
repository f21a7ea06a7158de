package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestQuarantineFlood is issue 15's fourth hole as an attacker tries it and
// an operator lives it: with a quarantine of three rows, 2,000 header-less
// junk POSTs are all answered 401 and counted, not kept, so the quarantine
// still has room when HubSpot, its secret rotated before the bridge was
// told, sends a genuine request; that one is kept, and replays once the new
// secret is added. list, status and /metrics show the junk's count, and
// purge clears what it is told to.
func TestQuarantineFlood(t *testing.T) {
	const (
		publicURL = "https://hooks.example.com"
		current   = "current-secret-0000"
		rotated   = "rotated-secret-1111"
		junk      = 2000
		senders   = 8
	)
	dsn := storetest.MySQLDSN(t)
	addr := freeAddr(t)
	env := map[string]string{
		"HS2CC_MYSQL_DSN":             dsn,
		"HS2CC_REDIS_URL":             storetest.RedisURL(t),
		"HS2CC_ADDR":                  addr,
		"HS2CC_PUBLIC_URL":            publicURL,
		"HS2CC_HUBSPOT_CLIENT_SECRET": current,
		"HS2CC_TOKEN_KEY":             store.NewTokenKey(),
		"HS2CC_LOG_FORMAT":            "json",
		// Small, so that the junk would fill it at once if it were kept.
		"HS2CC_QUARANTINE_MAX_ROWS": "3",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	cmd := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		var out, errOut syncBuffer
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if out, err := cmd(t, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}

	serveCtx, stopServe := context.WithCancel(ctx)
	var serveLog syncBuffer
	served := make(chan error, 1)
	go func() { served <- run(serveCtx, []string{"serve"}, getenv, &serveLog, &serveLog) }()
	defer func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("serve: %v\n%s", err, serveLog.String())
		}
	}()
	base := "http://" + addr
	waitFor(t, "serve", 15*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	post := func(body []byte, h http.Header) int {
		req, err := http.NewRequest(http.MethodPost, base+"/webhooks/hubspot", bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < junk; i += senders {
				if post([]byte(`{"vid":1,"junk":"`+strings.Repeat("x", i%64)+`"}`), nil) == http.StatusUnauthorized {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := refused.Load(); n != junk {
		t.Fatalf("%d of %d junk requests answered 401", n, junk)
	}
	genuine := contactBody(62515, 8101, 0)
	if status := post(genuine, hubspot.Sign(rotated, http.MethodPost, publicURL+"/webhooks/hubspot", genuine, time.Now())); status != http.StatusUnauthorized {
		t.Fatalf("the request signed with the rotated secret: %d, want 401", status)
	}

	// The counts reach MySQL within about a second of the last request.
	waitFor(t, "the junk's count in MySQL", 10*time.Second, func() bool {
		out, _ := cmd(t, "quarantine", "list")
		return strings.Contains(out, "no_signature 2000,")
	})
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `hs2cc_quarantine_unshaped_total{reason="no_signature"} 2000`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	out, err := cmd(t, "quarantine", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Quarantine: 1 of 3 requests", "bad_signature", "no_signature 2000, first "} {
		if !strings.Contains(out, want) {
			t.Errorf("quarantine list lacks %q:\n%s", want, out)
		}
	}
	out, _ = cmd(t, "status")
	if !strings.Contains(out, "Quarantine: 1 requests kept") || !strings.Contains(out, "no_signature 2000 (last ") {
		t.Errorf("status does not show the quarantine:\n%s", out)
	}

	env["HS2CC_HUBSPOT_CLIENT_SECRET"] = current + "," + rotated
	out, err = cmd(t, "quarantine", "replay", "--all")
	if err != nil || !strings.Contains(out, "Replayed 1 quarantined requests: ingested 1.") {
		t.Fatalf("replay after adding the rotated secret: %v\n%s", err, out)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if counts, err := db.CountEnrollments(ctx); err != nil || counts[store.StatusPending] != 1 {
		t.Errorf("enrollments after the replay: %v, %v; want the genuine one pending", counts, err)
	}

	// purge takes each filter; what it deletes is what it says.
	purges := []struct {
		args []string
		want string
	}{
		{[]string{"--before", "7d"}, "Purged 0 quarantined requests and the counts of 0 reasons"},
		{[]string{"--reason", hubspot.UnshapedNoSignature}, "Purged 0 quarantined requests and the counts of 1 reasons"},
		{[]string{"--reason", store.QuarantineBadSignature, "--before", time.Now().Add(time.Minute).UTC().Format(time.RFC3339)},
			"Purged 1 quarantined requests and the counts of 0 reasons"},
		{[]string{"--all"}, "Purged 0 quarantined requests and the counts of 0 reasons"},
	}
	for _, p := range purges {
		out, err := cmd(t, append([]string{"quarantine", "purge"}, p.args...)...)
		if err != nil || !strings.Contains(out, p.want) {
			t.Errorf("purge %v: %v, %q; want %q", p.args, err, out, p.want)
		}
	}
	if out, _ := cmd(t, "quarantine", "list"); !strings.Contains(out, "Quarantine: 0 of 3 requests") ||
		!strings.Contains(out, "counted, not kept): none.") {
		t.Errorf("list after the purges:\n%s", out)
	}
}

// TestQuarantinePurgeRefusesBadInvocations: a purge must name what it
// deletes, and a reason or time it cannot read deletes nothing.
func TestQuarantinePurgeRefusesBadInvocations(t *testing.T) {
	cases := []struct {
		args []string
		want string // part of the error; "" for errUsage
	}{
		{nil, ""},
		{[]string{"--all", "--reason", "bad_signature"}, ""},
		{[]string{"--all", "--before", "7d"}, ""},
		{[]string{"--reason", "bad_signature", "extra"}, ""},
		{[]string{"--reason", "no_such_reason"}, `unknown --reason "no_such_reason"`},
		{[]string{"--before", "last tuesday"}, `--before: "last tuesday"`},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		// No database is configured: each must fail before it needs one.
		err := run(context.Background(), append([]string{"quarantine", "purge"}, tc.args...),
			func(string) string { return "" }, &out, &out)
		switch {
		case tc.want == "" && !errors.Is(err, errUsage):
			t.Errorf("purge %v: %v, want a usage error", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("purge %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestParseTimeOrAge reads every form --since and --before take.
func TestParseTimeOrAge(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "7d", want: now.AddDate(0, 0, -7)},
		{in: "0d", want: now},
		{in: "12h", want: now.Add(-12 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "2026-03-01T00:00:00Z", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "-3d", bad: true},
		{in: "d", bad: true},
		{in: "7 days", bad: true},
		{in: "2026-03-01", bad: true},
	}
	for _, tc := range cases {
		got, err := parseTimeOrAge(tc.in, now)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("parseTimeOrAge(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
