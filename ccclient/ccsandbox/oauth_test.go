package ccsandbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testRedirect = "http://localhost:8085/oauth/callback"
	testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-sandbox-verifier"
)

// authorizeURL builds an authorize request like a client would.
func authorizeURL(base string, mod func(url.Values)) string {
	q := url.Values{
		"client_id":             {DefaultClientID},
		"redirect_uri":          {testRedirect},
		"response_type":         {"code"},
		"scope":                 {"contact_data offline_access"},
		"state":                 {"st-123"},
		"code_challenge":        {pkceS256(testVerifier)},
		"code_challenge_method": {"S256"},
	}
	if mod != nil {
		mod(q)
	}
	return base + "/oauth2/default/v1/authorize?" + q.Encode()
}

// authorize runs the browser step and returns the redirect's query.
func (e *env) authorize(mod func(url.Values)) (resp, url.Values) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, authorizeURL(e.ts.URL, mod), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.send(req)
	if r.status != http.StatusFound {
		return r, nil
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return r, loc.Query()
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(url.Values)
		status    int
		wantError string // in the OAuth body (400) or the redirect (302)
	}{
		{"approves with PKCE", nil, http.StatusFound, ""},
		{"approves without PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, http.StatusFound, ""},
		{"keeps the redirect's own query", func(q url.Values) { q.Set("redirect_uri", testRedirect+"?tenant=7") }, http.StatusFound, ""},
		{"unknown client", func(q url.Values) { q.Set("client_id", "someone-else") }, http.StatusBadRequest, "invalid_client"},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, http.StatusBadRequest, "invalid_request"},
		{"relative redirect_uri", func(q url.Values) { q.Set("redirect_uri", "/callback") }, http.StatusBadRequest, "invalid_request"},
		{"implicit flow", func(q url.Values) { q.Set("response_type", "token") }, http.StatusFound, "unsupported_response_type"},
		{"missing scope", func(q url.Values) { q.Del("scope") }, http.StatusFound, "invalid_scope"},
		{"scope joined by %2B", func(q url.Values) { q.Set("scope", "contact_data+offline_access") }, http.StatusFound, "invalid_scope"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, http.StatusFound, "invalid_request"},
		{"PKCE method without challenge", func(q url.Values) { q.Del("code_challenge") }, http.StatusFound, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			r, back := e.authorize(tt.mod)
			wantStatus(t, r, tt.status)
			if tt.status == http.StatusBadRequest {
				var oe oauthError
				r.decode(t, &oe)
				if oe.Error != tt.wantError || oe.ErrorDescription == "" {
					t.Errorf("body %s: want error %q with a description", r.body, tt.wantError)
				}
				if r.header.Get("Location") != "" {
					t.Errorf("redirected to %q despite an untrusted request", r.header.Get("Location"))
				}
				return
			}
			loc := r.header.Get("Location")
			if !strings.HasPrefix(loc, testRedirect) {
				t.Errorf("Location %q: want the redirect_uri %q", loc, testRedirect)
			}
			if back.Get("state") != "st-123" {
				t.Errorf("state = %q, want st-123 echoed", back.Get("state"))
			}
			if got := back.Get("error"); got != tt.wantError {
				t.Errorf("redirect error = %q, want %q", got, tt.wantError)
			}
			if (back.Get("code") != "") != (tt.wantError == "") {
				t.Errorf("code = %q with error %q: want a code exactly when approved", back.Get("code"), back.Get("error"))
			}
			if tt.name == "keeps the redirect's own query" && back.Get("tenant") != "7" {
				t.Errorf("redirect lost its own query: %q", loc)
			}
		})
	}
}

func TestCodeExchange(t *testing.T) {
	tests := []struct {
		name         string
		pkce         bool          // the authorize request carries a challenge
		scope        string        // "" means contact_data offline_access
		user, pass   string        // Basic credentials; "" sends none
		form         url.Values    // token params added to the defaults
		inQuery      bool          // send the params in the query string, as CC's examples do
		advance      time.Duration // between authorize and exchange
		exchanges    int           // how many times the code is sent; the last answer is checked
		status       int
		wantError    string
		wantRefresh  bool
		wantDescribe string
	}{
		{name: "PKCE public client", pkce: true, form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}},
			status: 200, wantRefresh: true},
		{name: "PKCE params in the query string", pkce: true, inQuery: true, form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}},
			status: 200, wantRefresh: true},
		{name: "confidential client with Basic", user: DefaultClientID, pass: DefaultClientSecret, status: 200, wantRefresh: true},
		{name: "confidential client with PKCE", pkce: true, user: DefaultClientID, pass: DefaultClientSecret,
			form: url.Values{"code_verifier": {testVerifier}}, status: 200, wantRefresh: true},
		{name: "no offline_access, no refresh token", scope: "contact_data", user: DefaultClientID, pass: DefaultClientSecret, status: 200},
		{name: "wrong PKCE verifier", pkce: true, form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier + "x"}},
			status: 400, wantError: "invalid_grant", wantDescribe: descPKCE},
		{name: "PKCE code exchanged without a verifier", pkce: true, user: DefaultClientID, pass: DefaultClientSecret,
			status: 400, wantError: "invalid_grant", wantDescribe: descPKCE},
		{name: "public client without a verifier", form: url.Values{"client_id": {DefaultClientID}},
			status: 401, wantError: "invalid_client"},
		{name: "reused code", pkce: true, form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}}, exchanges: 2,
			status: 400, wantError: "invalid_grant", wantDescribe: descInvalidCode},
		{name: "code just inside its 5 minutes", pkce: true, advance: authCodeTTL - time.Second,
			form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}}, status: 200, wantRefresh: true},
		{name: "expired code", pkce: true, advance: authCodeTTL,
			form:   url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}},
			status: 400, wantError: "invalid_grant", wantDescribe: descInvalidCode},
		{name: "wrong redirect_uri", pkce: true, form: url.Values{"client_id": {DefaultClientID}, "code_verifier": {testVerifier}, "redirect_uri": {testRedirect + "/other"}},
			status: 400, wantError: "invalid_grant", wantDescribe: descRedirectURI},
		{name: "bad client secret", user: DefaultClientID, pass: "wrong", status: 401, wantError: "invalid_client"},
		{name: "unknown client", user: "stranger", pass: DefaultClientSecret, status: 401, wantError: "invalid_client"},
		{name: "client_secret_post is off by default", form: url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}},
			status: 401, wantError: "invalid_client"},
		{name: "unsupported grant", user: DefaultClientID, pass: DefaultClientSecret, form: url.Values{"grant_type": {"password"}},
			status: 400, wantError: "unsupported_grant_type"},
		{name: "unknown code", user: DefaultClientID, pass: DefaultClientSecret, form: url.Values{"code": {"made-up"}},
			status: 400, wantError: "invalid_grant", wantDescribe: descInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			_, back := e.authorize(func(q url.Values) {
				if tt.scope != "" {
					q.Set("scope", tt.scope)
				}
				if !tt.pkce {
					q.Del("code_challenge")
					q.Del("code_challenge_method")
				}
			})
			if back.Get("code") == "" {
				t.Fatalf("authorize gave no code: %v", back)
			}
			e.clock.Advance(tt.advance)
			v := url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {testRedirect}}
			for k, vals := range tt.form {
				v[k] = vals
			}
			var r resp
			for range max(1, tt.exchanges) {
				if tt.inQuery {
					req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/oauth2/default/v1/token?"+v.Encode(), nil)
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					r = e.send(req)
				} else {
					r = e.form("/oauth2/default/v1/token", v, tt.user, tt.pass)
				}
			}
			wantStatus(t, r, tt.status)
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
			}
			if tt.wantError != "" {
				var oe oauthError
				r.decode(t, &oe)
				if oe.Error != tt.wantError {
					t.Errorf("error = %q, want %q (%s)", oe.Error, tt.wantError, r.body)
				}
				if tt.wantDescribe != "" && oe.ErrorDescription != tt.wantDescribe {
					t.Errorf("error_description = %q, want %q", oe.ErrorDescription, tt.wantDescribe)
				}
				if tt.status == 401 && tt.user != "" && r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 to a Basic client without WWW-Authenticate")
				}
				return
			}
			var tok tokenResponse
			r.decode(t, &tok)
			wantScope := "contact_data offline_access"
			if tt.scope != "" {
				wantScope = tt.scope
			}
			if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 86400 || tok.Scope != wantScope {
				t.Errorf("token response %s: want a Bearer token for 86400 s with scope %q", r.body, wantScope)
			}
			if (tok.RefreshToken != "") != tt.wantRefresh {
				t.Errorf("refresh_token = %q, want one: %v", tok.RefreshToken, tt.wantRefresh)
			}
			api := e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(tok.AccessToken))
			wantStatus(t, api, http.StatusOK)
		})
	}
}

func TestRefreshRotating(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(map[bool]string{false: "old tokens die", true: "reuse revokes the chain"}[revoke], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{RevokeFamilyOnReuse: revoke})
			_, r1 := e.srv.IssueToken("")

			first := e.refresh(r1)
			wantStatus(t, first, http.StatusOK)
			var t2 tokenResponse
			first.decode(t, &t2)
			if t2.RefreshToken == "" || t2.RefreshToken == r1 {
				t.Fatalf("rotating refresh returned %q, want a new token", t2.RefreshToken)
			}
			wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(t2.AccessToken)), http.StatusOK)

			again := e.refresh(r1)
			wantStatus(t, again, http.StatusBadRequest)
			var oe oauthError
			again.decode(t, &oe)
			if oe != (oauthError{"invalid_grant", "The refresh token is invalid or expired."}) {
				t.Errorf("reused token answer %s, want CC's invalid_grant", again.body)
			}

			// The newest token survives the reuse only when the chain is not
			// revoked; either way the access token already issued stays valid.
			wantNewest := http.StatusOK
			if revoke {
				wantNewest = http.StatusBadRequest
			}
			wantStatus(t, e.refresh(t2.RefreshToken), wantNewest)
			wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(t2.AccessToken)), http.StatusOK)
			if got := e.srv.Stats().InvalidGrant; got != 1+map[bool]int{false: 0, true: 1}[revoke] {
				t.Errorf("Stats.InvalidGrant = %d", got)
			}
		})
	}
}

func TestRefreshLongLived(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RefreshMode: RefreshLongLived})
	_, rt := e.srv.IssueToken("")
	for i := range 3 {
		// Each use resets the 180-day idle clock, so a token used every 100
		// days lives on.
		e.clock.Advance(100 * 24 * time.Hour)
		r := e.refresh(rt)
		wantStatus(t, r, http.StatusOK)
		var tok tokenResponse
		r.decode(t, &tok)
		if tok.RefreshToken != rt {
			t.Fatalf("refresh %d returned %q, want the same long-lived token", i, tok.RefreshToken)
		}
		wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil, withToken(tok.AccessToken)), http.StatusOK)
	}
	e.clock.Advance(DefaultRefreshIdleTTL)
	wantStatus(t, e.refresh(rt), http.StatusBadRequest)
}

func TestRefreshRules(t *testing.T) {
	t.Run("idle for 180 days", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{})
		_, rt := e.srv.IssueToken("")
		e.clock.Advance(DefaultRefreshIdleTTL)
		wantStatus(t, e.refresh(rt), http.StatusBadRequest)
	})
	t.Run("public token refreshes with client_id only", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{})
		_, back := e.authorize(nil)
		r := e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")},
			"redirect_uri": {testRedirect}, "client_id": {DefaultClientID}, "code_verifier": {testVerifier}}, "", "")
		wantStatus(t, r, http.StatusOK)
		var tok tokenResponse
		r.decode(t, &tok)
		r = e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"client_id": {DefaultClientID}}, "", "")
		wantStatus(t, r, http.StatusOK)
	})
	t.Run("confidential token needs the secret", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{})
		_, rt := e.srv.IssueToken("")
		r := e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_id": {DefaultClientID}}, "", "")
		wantStatus(t, r, http.StatusUnauthorized)
		// The failed attempt must not have spent the rotating token.
		wantStatus(t, e.refresh(rt), http.StatusOK)
	})
	t.Run("client_secret_post when allowed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{AllowClientSecretPost: true})
		_, rt := e.srv.IssueToken("")
		r := e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}}, "", "")
		wantStatus(t, r, http.StatusOK)
	})
	t.Run("custom client and short TTL", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{ClientID: "app-1", ClientSecret: "s3cret", TokenTTL: 90 * time.Second})
		_, rt := e.srv.IssueToken("")
		r := e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "app-1", "s3cret")
		wantStatus(t, r, http.StatusOK)
		var tok tokenResponse
		r.decode(t, &tok)
		if tok.ExpiresIn != 90 {
			t.Errorf("expires_in = %d, want 90", tok.ExpiresIn)
		}
		wantStatus(t, e.form("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
			DefaultClientID, DefaultClientSecret), http.StatusUnauthorized)
	})
}

func TestTokenEndpointRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{TokenRateLimit: 1, RefreshMode: RefreshLongLived})
	_, rt := e.srv.IssueToken("")
	wantStatus(t, e.refresh(rt), http.StatusOK)
	r := e.refresh(rt)
	wantStatus(t, r, http.StatusTooManyRequests)
	var oe oauthError
	r.decode(t, &oe)
	if oe.Error == "" {
		t.Errorf("token 429 body %s: want an OAuth error", r.body)
	}
	e.clock.Advance(999 * time.Millisecond)
	wantStatus(t, e.refresh(rt), http.StatusTooManyRequests)
	e.clock.Advance(time.Millisecond)
	wantStatus(t, e.refresh(rt), http.StatusOK)
	// The token endpoint's limit is its own: the API is not charged.
	wantStatus(t, e.call(http.MethodGet, "/v3/contact_lists", nil), http.StatusOK)
	if st := e.srv.Stats(); st.TokenThrottled != 2 || st.Requests["POST /oauth2/default/v1/token"] != 4 || st.TokenGrants["refresh_token"] != 2 {
		t.Errorf("stats %+v: want 2 token 429s out of 4 calls, 2 grants", st)
	}
}

func TestAPIAuth(t *testing.T) {
	const unauthorized = `{"error_key":"unauthorized","error_message":"Unauthorized"}`
	tests := []struct {
		name    string
		token   func(e *env) string
		advance time.Duration
		status  int
	}{
		{"valid token", func(e *env) string { return e.token }, 0, http.StatusOK},
		{"token one second before expiry", func(e *env) string { return e.token }, DefaultTokenTTL - time.Second, http.StatusOK},
		{"expired token", func(e *env) string { return e.token }, DefaultTokenTTL, http.StatusUnauthorized},
		{"no Authorization header", func(e *env) string { return "" }, 0, http.StatusUnauthorized},
		{"unknown token", func(e *env) string { return "not-a-token" }, 0, http.StatusUnauthorized},
		{"refresh token used as bearer", func(e *env) string { _, rt := e.srv.IssueToken(""); return rt }, 0, http.StatusUnauthorized},
		{"token without contact_data", func(e *env) string { a, _ := e.srv.IssueToken("account_read"); return a }, 0, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Options{})
			tok := tt.token(e)
			e.clock.Advance(tt.advance)
			for _, path := range []string{"/v3/contact_lists", "/v3/activities/04fe9a97-a579-43c5-bb1a-58ed29bf0a6a", "/v3/contacts"} {
				r := e.call(http.MethodGet, path, nil, withToken(tok))
				if tt.status == http.StatusOK {
					if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
						t.Fatalf("%s: status %d for a good token", path, r.status)
					}
					continue
				}
				wantStatus(t, r, tt.status)
				if tt.status == http.StatusUnauthorized {
					if string(r.body) != unauthorized {
						t.Errorf("%s: body %q, want exactly %q", path, r.body, unauthorized)
					}
					if got := r.header.Get("WWW-Authenticate"); got != "Bearer realm=api.cc.email" {
						t.Errorf("%s: WWW-Authenticate %q", path, got)
					}
					if got := r.header.Get("Content-Type"); got != "application/json" {
						t.Errorf("%s: Content-Type %q", path, got)
					}
				}
			}
		})
	}
	t.Run("Bearer scheme is case-insensitive", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{})
		r := e.call(http.MethodGet, "/v3/contact_lists", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+e.token) })
		wantStatus(t, r, http.StatusOK)
	})
}

func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	r := e.form("/oauth2/default/v1/device/authorize", url.Values{"client_id": {DefaultClientID}, "scope": {"contact_data"}}, "", "")
	wantStatus(t, r, http.StatusOK)
	var dev struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
		Interval        int    `json:"interval"`
	}
	r.decode(t, &dev)
	if dev.DeviceCode == "" || dev.UserCode == "" || dev.VerificationURI == "" || dev.Interval == 0 {
		t.Fatalf("device response %s: missing fields", r.body)
	}
	grant := url.Values{"grant_type": {grantDeviceCode}, "device_code": {dev.DeviceCode}, "client_id": {DefaultClientID}}
	r = e.form("/oauth2/default/v1/token", grant, "", "")
	wantStatus(t, r, http.StatusOK)
	var tok tokenResponse
	r.decode(t, &tok)
	if tok.RefreshToken == "" {
		t.Error("device flow gave no refresh token")
	}
	wantStatus(t, e.call(http.MethodGet, "/v3/contacts", nil, withToken(tok.AccessToken)), http.StatusOK)
	wantStatus(t, e.form("/oauth2/default/v1/token", grant, "", ""), http.StatusBadRequest)
	wantStatus(t, e.form("/oauth2/default/v1/device/authorize", url.Values{"client_id": {"nobody"}, "scope": {"contact_data"}}, "", ""), http.StatusUnauthorized)
}

func TestExpiredAccessTokensAreSwept(t *testing.T) {
	clock := &fakeClock{t: epoch}
	s := New(Options{Now: clock.Now})
	live, _ := s.IssueToken("contact_data")
	clock.Advance(time.Hour)
	for range accessSweepAt {
		s.IssueToken("contact_data")
	}
	clock.Advance(DefaultTokenTTL - time.Hour)
	fresh, _ := s.IssueToken("contact_data")
	s.mu.Lock()
	n := len(s.access)
	_, liveKept := s.access[live]
	_, freshKept := s.access[fresh]
	s.mu.Unlock()
	if n != accessSweepAt+1 || liveKept || !freshKept {
		t.Errorf("%d access tokens after the sweep (first kept: %v, new kept: %v); want the expired first one gone", n, liveKept, freshKept)
	}
}
