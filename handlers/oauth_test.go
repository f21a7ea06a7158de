package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/handlers"
)

// The real connection flow must fit the handlers' interface.
var _ handlers.Connector = (*ccauth.Connector)(nil)

// Secrets of the OAuth tests: none of them may reach a page or the log.
const (
	beginState   = "begin-state-9f3KxQ"
	authURL      = "https://authz.example.com/authorize?client_id=app&state=" + beginState
	cbState      = "callback-state-Zq81Lm"
	cbCode       = "callback-code-Wr55Pt"
	accessToken  = "access-token-Hn42Vb"
	refreshToken = "refresh-token-Jc07Ds"
	// beginNonce is the nonce Begin hands out for the browser's cookie.
	beginNonce = "begin-nonce-Ux38Ke"
)

var secrets = []string{beginState, cbState, cbCode, accessToken, refreshToken, beginNonce}

// fakeConnector answers as configured and records what it was asked.
type fakeConnector struct {
	url         string
	beginErr    error
	tok         *ccclient.Token
	completeErr error

	mu        sync.Mutex
	begins    int
	completes [][3]string // state, nonce, code
}

func (f *fakeConnector) Begin(context.Context) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begins++
	if f.beginErr != nil {
		return "", "", f.beginErr
	}
	return f.url, beginNonce, nil
}

func (f *fakeConnector) Complete(_ context.Context, state, nonce, code string) (*ccclient.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completes = append(f.completes, [3]string{state, nonce, code})
	return f.tok, f.completeErr
}

func (f *fakeConnector) calls() (int, [][3]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.begins, append([][3]string(nil), f.completes...)
}

// startHTTP runs the application without a store or a queue, which no
// route exercised here touches, so these tests need neither MySQL nor
// Redis. Its log records everything down to debug.
func startHTTP(t testing.TB, conn *fakeConnector, opts ...func(*handlers.Config)) *app {
	t.Helper()
	logs := &logBuffer{}
	cfg := handlers.Config{
		PublicURL:   publicURL,
		OpsUser:     opsUser,
		OpsPassword: opsPass,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	// A nil *fakeConnector must become a nil interface, not a typed nil.
	if conn != nil {
		cfg.Connector = conn
	}
	for _, o := range opts {
		o(&cfg)
	}
	e := handlers.New(cfg, nil, nil)
	return serveApp(t, e, logs)
}

// wantPrivate checks the headers every OAuth answer carries.
func wantPrivate(t testing.TB, r reply) {
	t.Helper()
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	if got := r.header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer", got)
	}
}

// wantNoSecrets checks that no state, code or token reached the reply or
// the log, and that the log did record the request, so that an empty log
// cannot pass for a clean one.
func wantNoSecrets(t testing.TB, a *app, r reply, path string) {
	t.Helper()
	logs := a.logs.String()
	if !strings.Contains(logs, "path="+path) {
		t.Errorf("log has no request line for %s:\n%s", path, logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q:\n%s", s, logs)
		}
		if strings.Contains(string(r.body), s) {
			t.Errorf("reply contains %q:\n%s", s, r.body)
		}
	}
}

// /oauth/connect is behind the ops credentials, refuses what another site
// sent through the admin's browser, and sends the person to the consent URL
// that Begin made with the nonce cookie the callback wants back.
func TestOAuthConnect(t *testing.T) {
	cases := []struct {
		name       string
		user, pass string // no Authorization header when both are empty
		fetchSite  string // Sec-Fetch-Site; none sent when empty
		beginErr   error
		status     int
		code       string // the JSON error code; "" for the redirect
		begins     int
	}{
		{name: "no credentials", status: http.StatusUnauthorized, code: handlers.CodeUnauthorized},
		{name: "wrong password", user: opsUser, pass: "wrong", status: http.StatusUnauthorized, code: handlers.CodeUnauthorized},
		{name: "wrong user", user: "admin", pass: opsPass, status: http.StatusUnauthorized, code: handlers.CodeUnauthorized},
		{name: "right credentials", user: opsUser, pass: opsPass, status: http.StatusFound, begins: 1},
		{name: "typed or bookmarked", user: opsUser, pass: opsPass, fetchSite: "none", status: http.StatusFound, begins: 1},
		{name: "from the ops page", user: opsUser, pass: opsPass, fetchSite: "same-origin", status: http.StatusFound, begins: 1},
		{name: "from another site", user: opsUser, pass: opsPass, fetchSite: "cross-site",
			status: http.StatusForbidden, code: handlers.CodeForbidden},
		{name: "from a sibling subdomain", user: opsUser, pass: opsPass, fetchSite: "same-site",
			status: http.StatusForbidden, code: handlers.CodeForbidden},
		// Refused before the password is checked: another site's request
		// costs no bcrypt.
		{name: "from another site without credentials", fetchSite: "cross-site",
			status: http.StatusForbidden, code: handlers.CodeForbidden},
		{
			name: "Begin fails", user: opsUser, pass: opsPass, beginErr: errors.New("redis: connection refused"),
			status: http.StatusServiceUnavailable, code: handlers.CodeUnavailable, begins: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := &fakeConnector{url: authURL, beginErr: tc.beginErr}
			a := startHTTP(t, conn)
			req := a.request(t, http.MethodGet, "/oauth/connect", nil)
			if tc.user != "" || tc.pass != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.fetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			r := a.do(t, req)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
			} else if r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusFound {
				if loc := r.header.Get("Location"); loc != authURL {
					t.Errorf("Location %q, want %q", loc, authURL)
				}
				wantNonceCookie(t, r, "/oauth/", true)
			} else {
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("Location %q on a %d", loc, r.status)
				}
				if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
					t.Errorf("Set-Cookie %q on a %d", sc, r.status)
				}
			}
			if tc.status == http.StatusUnauthorized {
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(got), "basic realm=") {
					t.Errorf("WWW-Authenticate %q, want a basic challenge", got)
				}
			}
			if tc.beginErr != nil && !strings.Contains(a.logs.String(), tc.beginErr.Error()) {
				t.Errorf("log does not name the cause %q", tc.beginErr)
			}
			wantPrivate(t, r)
			if begins, completes := conn.calls(); begins != tc.begins || len(completes) != 0 {
				t.Errorf("Begin called %d times and Complete %v, want Begin %d times only", begins, completes, tc.begins)
			}
			// The redirect's body may name the URL; the log must not.
			r.body = nil
			wantNoSecrets(t, a, r, "/oauth/connect")
		})
	}
}

func ptr[T any](v T) *T { return &v }

// wantNonceCookie checks the one cookie /oauth/connect sets: the nonce,
// for /oauth/ under the public path only, out of script's reach, sent on
// the top-level redirect back from CC but not on other sites' requests,
// for as long as the state lives, and over TLS when the bridge is served
// over TLS.
func wantNonceCookie(t testing.TB, r reply, path string, secure bool) {
	t.Helper()
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Set-Cookie %q, want the nonce cookie alone", r.header.Values("Set-Cookie"))
	}
	c := cookies[0]
	if c.Name != handlers.NonceCookie || c.Value != beginNonce || c.Path != path || !c.HttpOnly ||
		c.SameSite != http.SameSiteLaxMode || c.MaxAge != int(ccauth.StateTTL/time.Second) || c.Secure != secure || c.Domain != "" {
		t.Errorf("cookie %q: want %s=%s, Path=%s, HttpOnly, SameSite=Lax, Max-Age=%d, Secure=%v, no Domain",
			r.header.Get("Set-Cookie"), handlers.NonceCookie, beginNonce, path, int(ccauth.StateTTL/time.Second), secure)
	}
}

// The nonce cookie's path and Secure flag follow HS2CC_PUBLIC_URL.
func TestOAuthNonceCookie(t *testing.T) {
	cases := []struct {
		publicURL string
		path      string
		secure    bool
	}{
		{"https://hooks.example.com", "/oauth/", true},
		{"https://example.com/bridge/", "/bridge/oauth/", true},
		{"http://127.0.0.1:8080", "/oauth/", false},
	}
	for _, tc := range cases {
		t.Run(tc.publicURL, func(t *testing.T) {
			a := startHTTP(t, &fakeConnector{url: authURL, tok: &ccclient.Token{AccessToken: accessToken}},
				func(c *handlers.Config) { c.PublicURL = tc.publicURL })
			r := a.as(t, http.MethodGet, "/oauth/connect", opsUser, opsPass)
			if r.status != http.StatusFound {
				t.Fatalf("status %d, want 302: %s", r.status, r.body)
			}
			wantNonceCookie(t, r, tc.path, tc.secure)
			// After a connection the callback deletes it, on the same path.
			req := a.request(t, http.MethodGet, "/oauth/callback?"+url.Values{"state": {cbState}, "code": {cbCode}}.Encode(), nil)
			req.AddCookie(&http.Cookie{Name: handlers.NonceCookie, Value: beginNonce})
			r = a.do(t, req)
			gone := (&http.Response{Header: r.header}).Cookies()
			if r.status != http.StatusOK || len(gone) != 1 || gone[0].Name != handlers.NonceCookie || gone[0].MaxAge >= 0 ||
				gone[0].Path != tc.path || gone[0].Value != "" {
				t.Errorf("callback: %d with Set-Cookie %q; want 200 deleting the nonce cookie on %s", r.status, r.header.Values("Set-Cookie"), tc.path)
			}
		})
	}
}

// /oauth/callback answers a person with an HTML page: the connection made,
// or why not and where to start again.
func TestOAuthCallback(t *testing.T) {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := &ccclient.Token{AccessToken: accessToken, RefreshToken: refreshToken, Scope: "contact_data offline_access", ExpiresAt: expires}
	ok := url.Values{"state": {cbState}, "code": {cbCode}}
	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for kk, vv := range v {
			out[kk] = vv
		}
		if val == "" {
			out.Del(k)
		} else {
			out.Set(k, val)
		}
		return out
	}
	restart := `href="` + publicURL + `/oauth/connect"`
	cases := []struct {
		name        string
		query       url.Values
		tok         *ccclient.Token
		err         error
		status      int
		contains    []string
		notContains []string
		// nonce is the cookie's value, beginNonce when nil; noCookie
		// sends none.
		nonce    *string
		noCookie bool
		complete bool   // whether Complete is called, with cbState, the nonce and cbCode
		logs     string // a part of the log that must appear
	}{
		{
			name: "connected", query: ok, tok: tok, status: http.StatusOK, complete: true,
			contains:    []string{"Constant Contact is connected", "2030-01-02T03:04:05Z", "2 January 2030 03:04:05 UTC"},
			notContains: []string{"Start again"},
		},
		{
			name: "connected, expiry unknown", query: ok, status: http.StatusOK, complete: true,
			tok:      &ccclient.Token{AccessToken: accessToken, RefreshToken: refreshToken},
			contains: []string{"Constant Contact is connected", "did not say when the access token expires"},
		},
		{
			name:   "consent refused",
			query:  url.Values{"state": {cbState}, "error": {"access_denied"}, "error_description": {"The user denied <b>access</b>"}},
			status: http.StatusBadRequest,
			contains: []string{"Constant Contact was not connected", "refused", "<code>access_denied</code>",
				"The user denied &lt;b&gt;access&lt;/b&gt;", restart},
			notContains: []string{"<b>"},
			logs:        "oauth_error=access_denied",
		},
		{
			name:     "error with a code too is still a refusal",
			query:    with(ok, "error", "server_error"),
			status:   http.StatusBadRequest,
			contains: []string{"<code>server_error</code>", restart},
		},
		{
			name:        "error text is escaped",
			query:       url.Values{"error": {`"><script>alert(1)</script>`}},
			status:      http.StatusBadRequest,
			contains:    []string{"&lt;script&gt;alert(1)&lt;/script&gt;"},
			notContains: []string{"<script>"},
		},
		{
			name:     "error text is cut short",
			query:    url.Values{"error": {strings.Repeat("x", 5000)}},
			status:   http.StatusBadRequest,
			contains: []string{strings.Repeat("x", 200) + "…"},
			// A 201st x would mean the cut did not happen.
			notContains: []string{strings.Repeat("x", 201)},
		},
		{name: "no code", query: with(ok, "code", ""), status: http.StatusBadRequest, contains: []string{"lacked its code or state", restart}},
		{name: "no state", query: with(ok, "state", ""), status: http.StatusBadRequest, contains: []string{"lacked its code or state", restart}},
		{name: "no query", query: url.Values{}, status: http.StatusBadRequest, contains: []string{"lacked its code or state"}},
		{
			name: "bad state", query: ok, err: fmt.Errorf("wrapped: %w", ccauth.ErrBadState), complete: true,
			status:   http.StatusBadRequest,
			contains: []string{"This connection link expired or was already used; start again at /oauth/connect.", restart},
			logs:     "reason=\"bad state\"",
		},
		{
			// Whoever got hold of a consent URL, finishing it in their
			// own browser: refused before the state is looked at.
			name: "no nonce cookie", query: ok, noCookie: true, status: http.StatusForbidden,
			contains: []string{"This browser did not start this connection", restart},
			logs:     "reason=\"no nonce cookie\"",
		},
		{
			name: "empty nonce cookie", query: ok, nonce: ptr(""), status: http.StatusForbidden,
			contains: []string{"This browser did not start this connection", restart},
		},
		{
			name: "another browser's nonce", query: ok, nonce: ptr("another-browsers-nonce"), complete: true,
			err: fmt.Errorf("wrapped: %w", ccauth.ErrWrongBrowser), status: http.StatusForbidden,
			contains: []string{"This browser did not start this connection", restart},
			logs:     "reason=\"nonce mismatch\"",
		},
		{
			name: "code refused", query: ok, complete: true,
			err: fmt.Errorf("exchange: %w", &ccclient.OAuthError{
				StatusCode: 400, Code: "invalid_grant", Description: "The authorization code is <invalid>"}),
			status:   http.StatusBadRequest,
			contains: []string{"<code>invalid_grant</code>", "The authorization code is &lt;invalid&gt;", restart},
			logs:     "oauth_error=invalid_grant",
		},
		{
			name: "token endpoint unavailable", query: ok, complete: true,
			err:      &ccclient.OAuthError{StatusCode: 503, Code: "temporarily_unavailable"},
			status:   http.StatusServiceUnavailable,
			contains: []string{"Could not save the connection", restart},
			logs:     "temporarily_unavailable",
		},
		{
			name: "save fails", query: ok, complete: true, err: errors.New("store: save token: deadlock"),
			status:      http.StatusServiceUnavailable,
			contains:    []string{"Could not save the connection; try again", restart},
			notContains: []string{"deadlock"},
			logs:        "store: save token: deadlock",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := &fakeConnector{tok: tc.tok, completeErr: tc.err}
			// No ops credentials are sent: the callback must not need them.
			a := startHTTP(t, conn)
			req := a.request(t, http.MethodGet, "/oauth/callback?"+tc.query.Encode(), nil)
			nonce := beginNonce
			if tc.nonce != nil {
				nonce = *tc.nonce
			}
			if !tc.noCookie {
				req.AddCookie(&http.Cookie{Name: handlers.NonceCookie, Value: nonce})
			}
			r := a.do(t, req)
			if r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mt != "text/html" ||
				!strings.EqualFold(params["charset"], "utf-8") {
				t.Errorf("Content-Type %q, want HTML in UTF-8", r.header.Get("Content-Type"))
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q, want default-src 'none'", csp)
			}
			wantPrivate(t, r)
			body := string(r.body)
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.notContains {
				if strings.Contains(body, s) {
					t.Errorf("page contains %q:\n%s", s, body)
				}
			}
			if tc.logs != "" && !strings.Contains(a.logs.String(), tc.logs) {
				t.Errorf("log lacks %q", tc.logs)
			}
			begins, completes := conn.calls()
			want := 0
			if tc.complete {
				want = 1
			}
			if begins != 0 || len(completes) != want || (want == 1 && completes[0] != [3]string{cbState, nonce, cbCode}) {
				t.Errorf("Begin called %d times, Complete with %v; want Complete %d times with the query's state and code and the cookie's nonce",
					begins, completes, want)
			}
			wantNoSecrets(t, a, r, "/oauth/callback")
		})
	}
}

// Without a Connector, or without ops credentials to guard /oauth/connect,
// neither OAuth route exists: both answer the JSON 404 of any unknown path.
func TestOAuthRoutesAbsent(t *testing.T) {
	cases := []struct {
		name string
		conn bool
		cfg  func(*handlers.Config)
	}{
		{"no connector", false, func(*handlers.Config) {}},
		{"no ops user", true, func(c *handlers.Config) { c.OpsUser = "" }},
		{"no ops password", true, func(c *handlers.Config) { c.OpsPassword = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conn *fakeConnector
			if tc.conn {
				conn = &fakeConnector{url: authURL}
			}
			a := startHTTP(t, conn, tc.cfg)
			for _, path := range []string{"/oauth/connect", "/oauth/callback?" + url.Values{"state": {cbState}, "code": {cbCode}}.Encode()} {
				for _, creds := range [][2]string{{opsUser, opsPass}, {"", opsPass}, {opsUser, ""}} {
					req := a.request(t, http.MethodGet, path, nil)
					req.SetBasicAuth(creds[0], creds[1])
					wantError(t, a.do(t, req), http.StatusNotFound, handlers.CodeNotFound)
				}
			}
			if conn != nil {
				if begins, completes := conn.calls(); begins != 0 || len(completes) != 0 {
					t.Errorf("Begin called %d times, Complete with %v; want neither", begins, completes)
				}
			}
		})
	}
}

// /metrics is the given handler, served without credentials, and absent
// without one.
func TestMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "hs2cc_up 1\n")
	})
	cases := []struct {
		name    string
		handler http.Handler
		noOps   bool
		status  int
	}{
		{name: "served", handler: metrics, status: http.StatusOK},
		{name: "served without ops credentials", handler: metrics, noOps: true, status: http.StatusOK},
		{name: "absent without a handler", status: http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := startHTTP(t, nil, func(c *handlers.Config) {
				c.Metrics = tc.handler
				if tc.noOps {
					c.OpsUser, c.OpsPassword = "", ""
				}
			})
			r := a.do(t, a.request(t, http.MethodGet, "/metrics", nil))
			if tc.status == http.StatusNotFound {
				wantError(t, r, tc.status, handlers.CodeNotFound)
				return
			}
			if r.status != tc.status || string(r.body) != "hs2cc_up 1\n" {
				t.Errorf("status %d body %q, want the handler's answer", r.status, r.body)
			}
			// Scrapes every few seconds would drown the request log.
			if strings.Contains(a.logs.String(), "path=/metrics") {
				t.Errorf("scrape was logged:\n%s", a.logs)
			}
		})
	}
}
