package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		wantErr []string // every one must appear in the error
		check   func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			check: func(t *testing.T, c config) {
				if c.RedisURL != "redis://127.0.0.1:6379/0" || c.Addr != ":8080" || c.CCAPIURL != "https://api.cc.email/v3" ||
					c.CCAuthURL != "https://authz.constantcontact.com/oauth2/default/v1" || c.Fields.Email != "email" ||
					c.Fields.EnrolledAt != "createdate" || len(c.Lists) != 1 || c.Lists[0] != "New Agents" ||
					c.Worker.GroupGracePeriod != 10*time.Second || c.CCRefreshMargin != 2*time.Hour || !c.RequireV3 {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "values and lists",
			env: map[string]string{
				"HS2CC_HUBSPOT_CLIENT_SECRET": "old-secret, new-secret", "HS2CC_CC_LISTS": "New Agents, Gold Agents",
				"HS2CC_PUBLIC_URL": "https://hooks.example.com/", "HS2CC_GROUP_MAX_SIZE": "100", "HS2CC_HUBSPOT_REQUIRE_V3": "false",
			},
			check: func(t *testing.T, c config) {
				if len(c.HubSpotSecrets) != 2 || c.HubSpotSecrets[1] != "new-secret" || len(c.Lists) != 2 ||
					c.PublicURL != "https://hooks.example.com" || c.Worker.GroupMaxSize != 100 || c.RequireV3 {
					t.Errorf("parsed: %+v", c)
				}
			},
		},
		{
			name: "every malformed value is reported at once",
			env: map[string]string{
				"HS2CC_GROUP_GRACE_PERIOD": "soon", "HS2CC_GROUP_MAX_SIZE": "-3", "HS2CC_HUBSPOT_REQUIRE_V3": "maybe",
				"HS2CC_LOG_FORMAT": "xml", "HS2CC_CC_LISTS": " , ",
			},
			wantErr: []string{"HS2CC_GROUP_GRACE_PERIOD", "HS2CC_GROUP_MAX_SIZE", "HS2CC_HUBSPOT_REQUIRE_V3", "HS2CC_LOG_FORMAT", "HS2CC_CC_LISTS"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tc.env[k] })
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("want an error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestREADMEConfigTable keeps the README's table and the settings in step:
// every variable the code reads is documented with its default.
func TestREADMEConfigTable(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	for _, s := range settings {
		row := ""
		for _, line := range strings.Split(readme, "\n") {
			if strings.HasPrefix(line, "| `"+s.name+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("README has no row for %s", s.name)
			continue
		}
		if s.def != "" && !strings.Contains(row, "`"+s.def+"`") {
			t.Errorf("README row for %s does not give its default %q", s.name, s.def)
		}
	}
}

func TestRunRefusesBadInvocations(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "Usage"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"serve without MySQL", []string{"serve"}, nil, "HS2CC_MYSQL_DSN is required"},
		{"work without MySQL", []string{"work"}, nil, "HS2CC_MYSQL_DSN is required"},
		{"serve without a token key", []string{"serve"}, map[string]string{"HS2CC_MYSQL_DSN": "u@tcp(127.0.0.1:1)/x"}, "HS2CC_TOKEN_KEY is required"},
		{"work without a token key", []string{"work"}, map[string]string{"HS2CC_MYSQL_DSN": "u@tcp(127.0.0.1:1)/x"}, "HS2CC_TOKEN_KEY is required"},
		{"connect without a token key", []string{"connect"}, map[string]string{"HS2CC_MYSQL_DSN": "u@tcp(127.0.0.1:1)/x"}, "HS2CC_TOKEN_KEY is required"},
		{"a token key of the wrong length", []string{"serve"}, map[string]string{"HS2CC_TOKEN_KEY": "c2hvcnQ="}, "HS2CC_TOKEN_KEY: store: CC token key: key 1: want 32 bytes, got 5"},
		{"a token key that is not base64 or hex", []string{"work"}, map[string]string{"HS2CC_TOKEN_KEY": "not a key!"}, "HS2CC_TOKEN_KEY: store: CC token key: key 1: want 32 bytes as base64 or 64 hex digits"},
		{"connect without a redirect URL", []string{"connect"}, map[string]string{"HS2CC_MYSQL_DSN": "u@tcp(127.0.0.1:1)/x", "HS2CC_TOKEN_KEY": store.NewTokenKey()}, "set HS2CC_CC_REDIRECT_URL"},
		{"migrate with a bad config", []string{"migrate"}, map[string]string{"HS2CC_GROUP_MAX_DELAY": "x"}, "HS2CC_GROUP_MAX_DELAY"},
		{"simulate without a secret", []string{"simulate"}, nil, "--secret is required"},
		// serve never builds a URL from a request's Host header, so it needs
		// the one HubSpot calls.
		{"serve without a public URL", []string{"serve"}, map[string]string{"HS2CC_MYSQL_DSN": "u@tcp(127.0.0.1:1)/x", "HS2CC_TOKEN_KEY": store.NewTokenKey()}, "HS2CC_PUBLIC_URL is required"},
		{"a public URL without a scheme", []string{"serve"}, map[string]string{"HS2CC_PUBLIC_URL": "hs2cc.fly.dev"}, "HS2CC_PUBLIC_URL: want an http:// or https:// URL"},
		{"a public URL of another scheme", []string{"work"}, map[string]string{"HS2CC_PUBLIC_URL": "ftp://hs2cc.fly.dev"}, "HS2CC_PUBLIC_URL: want an http:// or https:// URL"},
		{"a public URL with a query", []string{"serve"}, map[string]string{"HS2CC_PUBLIC_URL": "https://hs2cc.fly.dev/?a=b"}, "has a query or fragment"},
		{"body memory below one body", []string{"serve"}, map[string]string{"HS2CC_BODY_MEMORY": "1048576"}, "HS2CC_BODY_MEMORY: at least HS2CC_MAX_BODY (8388608 bytes)"},
		{"body memory below a raised body limit", []string{"serve"}, map[string]string{"HS2CC_MAX_BODY": "16777215", "HS2CC_BODY_MEMORY": "16777214"}, "HS2CC_BODY_MEMORY: at least HS2CC_MAX_BODY (16777215 bytes)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &out)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error()+out.String(), tc.want) && !(errors.Is(err, errUsage) && strings.Contains(out.String(), tc.want)) {
				t.Errorf("error %q, output %q: want %q", err, out.String(), tc.want)
			}
		})
	}
}

// TestServeAndWorkRefuseAnOldSchema: neither process may run against a
// database that `hs2cc migrate` has not brought up to date.
func TestServeAndWorkRefuseAnOldSchema(t *testing.T) {
	dsn := storetest.MySQLDSN(t)
	env := map[string]string{"HS2CC_MYSQL_DSN": dsn, "HS2CC_REDIS_URL": storetest.RedisURL(t), "HS2CC_ADDR": freeAddr(t),
		"HS2CC_TOKEN_KEY": store.NewTokenKey(), "HS2CC_PUBLIC_URL": "https://hooks.example.com"}
	getenv := func(k string) string { return env[k] }
	for _, cmd := range []string{"serve", "work"} {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, []string{cmd}, getenv, &out, &out)
		cancel()
		if !errors.Is(err, store.ErrSchemaOutdated) {
			t.Errorf("%s on an empty database: %v, want ErrSchemaOutdated", cmd, err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "applied migrations") {
		t.Errorf("migrate said %q", out.String())
	}
}
