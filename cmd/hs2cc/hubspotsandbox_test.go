//go:build !nodev

package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/hubspot/crm"
)

// TestHubSpotSandboxCommand runs `hs2cc hubspot-sandbox` and uses it the
// way the banner says: the printed URL and token work with the crm client.
func TestHubSpotSandboxCommand(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"hubspot-sandbox", "--addr", addr, "--hs-token", "tok-1", "--hs-rate", "3"}, func(string) string { return "" }, &out, &logs)
	}()
	waitFor(t, "the banner", 10*time.Second, func() bool { return strings.Contains(out.String(), "stats:") })
	for _, want := range []string{"HS2CC_HUBSPOT_API_URL=http://" + addr, "HS2CC_HUBSPOT_TOKEN=tok-1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	c := crm.New("http://"+addr, "tok-1", nil)
	// EnsureProperties makes six calls on an empty account, so --hs-rate 3
	// must stop it with a 429.
	err := c.EnsureProperties(ctx)
	if _, daily, ok := crm.IsRateLimited(err); !ok || daily {
		t.Errorf("EnsureProperties under --hs-rate 3: %v, want the secondly 429", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("hubspot-sandbox returned %v on shutdown", err)
	}
}

// TestDevHubSpotEnv checks that dev points write-back at its sandbox even
// when the environment names a real HubSpot account, and passes the rest
// through.
func TestDevHubSpotEnv(t *testing.T) {
	hs, err := listenDevHubSpot(context.Background(), hsSandboxFlags{token: "sb-token"}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hs.ln.Close()
	real := map[string]string{"HS2CC_HUBSPOT_TOKEN": "real-token", "HS2CC_HUBSPOT_API_URL": crm.DefaultBaseURL, "HS2CC_LOG_LEVEL": "debug"}
	env := hs.env(func(k string) string { return real[k] })
	for k, want := range map[string]string{
		"HS2CC_HUBSPOT_TOKEN":   "sb-token",
		"HS2CC_HUBSPOT_API_URL": "http://" + hs.ln.Addr().(*net.TCPAddr).String(),
		"HS2CC_LOG_LEVEL":       "debug",
	} {
		if got := env(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
