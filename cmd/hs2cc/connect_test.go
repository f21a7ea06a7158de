package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestConnectCommand runs `hs2cc connect` against the sandbox's real OAuth
// server as a person would: open the printed address, let CC redirect, and
// read the verdict. The redirect either reaches the command's own listener
// or, when the browser is elsewhere, is pasted into the terminal.
func TestConnectCommand(t *testing.T) {
	sb := ccsandbox.New(ccsandbox.Options{})
	cc := httptest.NewServer(sb)
	defer cc.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	cases := []struct {
		name         string
		clientSecret string
		// browse plays the person: given the consent URL it returns the
		// text to paste into the terminal ("" to paste nothing).
		browse      func(t *testing.T, consent string) string
		wantErr     string
		wantSuccess bool
	}{
		{"the redirect reaches the listener", ccsandbox.DefaultClientSecret, func(t *testing.T, consent string) string {
			resp, err := http.Get(consent) // follows CC's 302 to the listener
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), "Constant Contact is connected") {
				t.Errorf("browser page %q does not say the connection worked", body)
			}
			return ""
		}, "", true},
		{"the redirect address is pasted", ccsandbox.DefaultClientSecret, func(t *testing.T, consent string) string {
			resp, err := noFollow.Get(consent)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return "some noise first\n" + resp.Header.Get("Location") + "\n"
		}, "", true},
		{"the person denies access", ccsandbox.DefaultClientSecret, func(t *testing.T, consent string) string {
			return "http://localhost/oauth/callback?error=access_denied&error_description=The+user+denied\n"
		}, "refused the connection: access_denied: The user denied", false},
		{"an answer to another attempt", ccsandbox.DefaultClientSecret, func(t *testing.T, consent string) string {
			resp, err := noFollow.Get(consent)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := loc.Query()
			q.Set("state", "forged")
			loc.RawQuery = q.Encode()
			return loc.String() + "\n"
		}, "state mismatch", false},
		{"a wrong client secret", "not-the-secret", func(t *testing.T, consent string) string {
			resp, err := noFollow.Get(consent)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.Header.Get("Location") + "\n"
		}, "invalid_client", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			listen := freeAddr(t)
			env := map[string]string{
				"HS2CC_MYSQL_DSN":        storetest.MySQLDSN(t),
				"HS2CC_REDIS_URL":        storetest.RedisURL(t),
				"HS2CC_CC_API_URL":       cc.URL + "/v3",
				"HS2CC_CC_AUTH_URL":      cc.URL + "/oauth2/default/v1",
				"HS2CC_CC_CLIENT_ID":     ccsandbox.DefaultClientID,
				"HS2CC_CC_CLIENT_SECRET": tc.clientSecret,
				"HS2CC_CC_REDIRECT_URL":  "http://" + listen + "/oauth/callback",
				"HS2CC_TOKEN_KEY":        store.NewTokenKey(),
				"HS2CC_LOG_FORMAT":       "json",
			}
			getenv := func(k string) string { return env[k] }
			var out syncBuffer
			if err := run(context.Background(), []string{"migrate"}, getenv, &out, &out); err != nil {
				t.Fatal(err)
			}
			pasteR, pasteW := io.Pipe()
			connectInput = pasteR
			t.Cleanup(func() { connectInput = os.Stdin; pasteW.Close() })

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"connect"}, getenv, &stdout, &stderr) }()
			urlRE := regexp.MustCompile(`http://\S+/authorize\?\S+`)
			waitFor(t, "the consent URL", 10*time.Second, func() bool { return urlRE.MatchString(stdout.String()) })
			consent := urlRE.FindString(stdout.String())
			if paste := tc.browse(t, consent); paste != "" {
				go func() { _, _ = io.WriteString(pasteW, paste) }()
			}
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				t.Fatal("connect did not finish")
			}

			db, oerr := store.Open(context.Background(), env["HS2CC_MYSQL_DSN"])
			if oerr != nil {
				t.Fatal(oerr)
			}
			defer db.Close()
			keys, _ := store.ParseTokenKeys(env["HS2CC_TOKEN_KEY"])
			db.SetTokenKeys(keys)
			tok, lerr := db.LoadToken(context.Background())
			if tc.wantSuccess {
				if err != nil {
					t.Fatalf("connect: %v\nstderr: %s", err, stderr.String())
				}
				if !strings.Contains(stdout.String(), "Constant Contact is connected") {
					t.Errorf("stdout %q does not report success", stdout.String())
				}
				if lerr != nil || tok.RefreshToken == "" || tok.Status != store.TokenConnected {
					t.Fatalf("stored token %v, %v; want a connected pair", tok, lerr)
				}
				for _, s := range []string{tok.AccessToken, tok.RefreshToken, env["HS2CC_TOKEN_KEY"], tc.clientSecret} {
					if strings.Contains(stdout.String()+stderr.String(), s) {
						t.Errorf("connect's output contains a secret (%.6s…)", s)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("connect: %v, want an error containing %q", err, tc.wantErr)
			}
			if lerr == nil {
				t.Errorf("a failed connect stored a token")
			}
		})
	}
}
