package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestOAuthConnectNeedsTheStartingBrowser is issue 15's holes 5 and 6
// against a real serve, MariaDB, Redis and the CC sandbox. A consent URL
// that leaks (another person, another browser) cannot finish the
// connection: its callback without the starting browser's nonce cookie, or
// with another browser's, is answered 403, and the admin's own callback
// still connects after those attempts. /oauth/connect refuses another
// site's request. Once connected, the access token's Redis copy is sealed.
func TestOAuthConnectNeedsTheStartingBrowser(t *testing.T) {
	dsn, redisURL := storetest.MySQLDSN(t), storetest.RedisURL(t)
	sb := ccsandbox.New(ccsandbox.Options{})
	cc := httptest.NewServer(sb)
	defer cc.Close()
	addr := freeAddr(t)
	key := store.NewTokenKey()
	env := map[string]string{
		"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": redisURL, "HS2CC_ADDR": addr,
		"HS2CC_PUBLIC_URL": "http://" + addr, "HS2CC_HUBSPOT_CLIENT_SECRET": "oauth-secret-" + randomHex(6),
		"HS2CC_CC_API_URL": cc.URL + "/v3", "HS2CC_CC_AUTH_URL": cc.URL + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID": ccsandbox.DefaultClientID, "HS2CC_CC_CLIENT_SECRET": ccsandbox.DefaultClientSecret,
		"HS2CC_TOKEN_KEY": key, "HS2CC_OPS_USER": "ops", "HS2CC_OPS_PASSWORD": "ops-password-" + randomHex(8),
		"HS2CC_LOG_FORMAT": "json",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, &out, &out) }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("serve log:\n%s", out.String())
		}
	}()
	base := "http://" + addr
	waitFor(t, "serve to answer", 15*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A browser without a jar: the test decides which cookie each request
	// carries.
	browser := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string, cookie *http.Cookie, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(u, base+"/oauth/connect") {
			req.SetBasicAuth("ops", env["HS2CC_OPS_PASSWORD"])
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	// start opens /oauth/connect and CC's consent page (the sandbox
	// approves at once), and returns the callback URL and the nonce cookie.
	start := func() (string, *http.Cookie) {
		t.Helper()
		resp, body := get(base+"/oauth/connect", nil, "Sec-Fetch-Site", "same-origin")
		if resp.StatusCode != http.StatusFound || len(resp.Cookies()) != 1 {
			t.Fatalf("/oauth/connect: %d with cookies %v: %s", resp.StatusCode, resp.Cookies(), body)
		}
		consent, _ := get(resp.Header.Get("Location"), nil)
		back := consent.Header.Get("Location")
		if u, err := url.Parse(back); err != nil || u.Path != "/oauth/callback" || u.Query().Get("code") == "" {
			t.Fatalf("consent sent the browser to %q, want the callback with a code", back)
		}
		return back, resp.Cookies()[0]
	}

	if resp, _ := get(base+"/oauth/connect", nil, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/oauth/connect from another site: %d, want 403", resp.StatusCode)
	}
	callback, mine := start()
	_, theirs := start()
	attempts := []struct {
		name   string
		cookie *http.Cookie
		status int
		says   string
	}{
		{"no cookie", nil, http.StatusForbidden, "This browser did not start this connection"},
		{"another browser's nonce", theirs, http.StatusForbidden, "This browser did not start this connection"},
		{"a made-up nonce", &http.Cookie{Name: mine.Name, Value: "guessed-" + randomHex(16)}, http.StatusForbidden, "did not start"},
		{"the starting browser", mine, http.StatusOK, "Constant Contact is connected"},
		{"the starting browser again", mine, http.StatusBadRequest, "expired or was already used"},
	}
	for _, a := range attempts {
		resp, body := get(callback, a.cookie)
		if resp.StatusCode != a.status || !strings.Contains(body, a.says) {
			t.Errorf("%s: %d, want %d saying %q:\n%s", a.name, resp.StatusCode, a.status, a.says, body)
		}
	}

	// The connection made, serve cached the access token in Redis: sealed.
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := store.ParseTokenKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	db.SetTokenKeys(keys)
	tok, err := db.LoadToken(ctx)
	if err != nil {
		t.Fatalf("load the connected token: %v", err)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	raw, err := rdb.Get(ctx, "hs2cc:cc:access_token").Result()
	if err != nil {
		t.Fatalf("no cached access token after connecting: %v", err)
	}
	if len(tok.AccessToken) < 16 || strings.Contains(raw, tok.AccessToken) || strings.Contains(raw, tok.RefreshToken) {
		t.Errorf("Redis holds %q for access token %q: want it sealed", raw, tok.AccessToken)
	}
}
