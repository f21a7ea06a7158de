package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// serve warns at start when anyone may read /metrics, and not when
// HS2CC_METRICS_TOKEN guards it.
func TestServeWarnsOfPublicMetrics(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	var out syncBuffer
	env := map[string]string{"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": storetest.RedisURL(t),
		"HS2CC_TOKEN_KEY": store.NewTokenKey(), "HS2CC_PUBLIC_URL": "https://hooks.example.com", "HS2CC_LOG_FORMAT": "json"}
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	cases := []struct {
		name   string
		token  string
		warned bool
		status int // of GET /metrics without a token
	}{
		{"no token", "", true, http.StatusOK},
		{"a token", "metrics-" + randomHex(8), false, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			vars := map[string]string{"HS2CC_ADDR": addr, "HS2CC_METRICS_TOKEN": tc.token}
			getenv := func(k string) string {
				if v, ok := vars[k]; ok {
					return v
				}
				return env[k]
			}
			var log syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"serve"}, getenv, &log, &log) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve returned %v", err)
				}
			}()
			waitFor(t, "serve", 20*time.Second, func() bool { return httpStatus("http://"+addr+"/healthz") == http.StatusOK })
			if got := strings.Contains(log.String(), "/metrics is public"); got != tc.warned {
				t.Errorf("warned %v, want %v:\n%s", got, tc.warned, log.String())
			}
			if code := httpStatus("http://" + addr + "/metrics"); code != tc.status {
				t.Errorf("GET /metrics %d, want %d", code, tc.status)
			}
		})
	}
}
