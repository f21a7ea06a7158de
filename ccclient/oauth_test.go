package ccclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testClientID     = "7f3c1a2e-1111-4222-8333-944455556666"
	testClientSecret = "client-SECRET-xyz"
	testRedirect     = "https://hs2cc.example.com/oauth/callback"
)

// oauthSetup starts a token server at /oauth2/default/v1/token whose
// handler the test supplies, and returns a config pointing at it.
func oauthSetup(t *testing.T, handler http.HandlerFunc) (OAuthConfig, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/default/v1/token", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handler(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(404)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return OAuthConfig{
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		AuthURL:      srv.URL + "/oauth2/default/v1/",
		RedirectURL:  testRedirect,
		HTTPClient:   srv.Client(),
	}, &calls
}

// tokenForm checks the parts every token request shares and returns its form.
func tokenForm(t *testing.T, r *http.Request, wantBasic bool) url.Values {
	t.Helper()
	if r.Method != "POST" {
		t.Errorf("method %s, want POST", r.Method)
	}
	testHeader(t, r, "Content-Type", "application/x-www-form-urlencoded")
	testHeader(t, r, "Accept", "application/json")
	id, secret, ok := r.BasicAuth()
	if wantBasic && (!ok || id != testClientID || secret != testClientSecret) {
		t.Errorf("basic auth = %q, %q, %v; want client id and secret", id, secret, ok)
	}
	if !wantBasic && r.Header.Get("Authorization") != "" {
		t.Errorf("Authorization sent by a public client: %q", r.Header.Get("Authorization"))
	}
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if r.PostForm.Get("client_secret") != "" {
		t.Error("client_secret sent in the body")
	}
	return r.PostForm
}

func TestAuthCodeURL(t *testing.T) {
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	sum := sha256.Sum256([]byte(verifier))
	wantChallenge := base64.RawURLEncoding.EncodeToString(sum[:])

	tests := []struct {
		name     string
		cfg      OAuthConfig
		verifier string
		wantBase string
		want     map[string]string // "" value: must be absent
	}{
		{
			name:     "defaults with PKCE",
			cfg:      OAuthConfig{ClientID: testClientID, ClientSecret: testClientSecret, RedirectURL: testRedirect},
			verifier: verifier,
			wantBase: "https://authz.constantcontact.com/oauth2/default/v1/authorize",
			want: map[string]string{
				"client_id": testClientID, "redirect_uri": testRedirect, "response_type": "code",
				"scope": "contact_data offline_access", "state": "st-123",
				"code_challenge": wantChallenge, "code_challenge_method": "S256",
			},
		},
		{
			name:     "custom auth url and scopes, no PKCE",
			cfg:      OAuthConfig{ClientID: testClientID, AuthURL: "http://127.0.0.1:9/oauth2/default/v1/", RedirectURL: testRedirect, Scopes: []string{"contact_data"}},
			wantBase: "http://127.0.0.1:9/oauth2/default/v1/authorize",
			want: map[string]string{
				"client_id": testClientID, "response_type": "code", "scope": "contact_data", "state": "st-123",
				"code_challenge": "", "code_challenge_method": "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.cfg.AuthCodeURL("st-123", tt.verifier)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if base := u.Scheme + "://" + u.Host + u.Path; base != tt.wantBase {
				t.Errorf("base %q, want %q", base, tt.wantBase)
			}
			q := u.Query()
			for k, v := range tt.want {
				if v == "" {
					if q.Has(k) {
						t.Errorf("%s present: %q", k, q.Get(k))
					}
				} else if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			if strings.Contains(u.RawQuery, "%2B") {
				t.Errorf("scope encoded with %%2B, which CC rejects: %s", u.RawQuery)
			}
			if strings.Contains(raw, testClientSecret) || strings.Contains(raw, verifier) {
				t.Errorf("URL leaks the secret or the verifier: %s", raw)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	a, b := NewVerifier(), NewVerifier()
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("verifiers %q %q are not 43 base64url characters", a, b)
	}
	if a == b {
		t.Error("two verifiers are equal")
	}
}

func TestExchange(t *testing.T) {
	cfg, calls := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
		f := tokenForm(t, r, true)
		want := url.Values{
			"grant_type": {"authorization_code"}, "code": {"code-abc"},
			"redirect_uri": {testRedirect}, "code_verifier": {"verifier-xyz"},
		}
		if f.Encode() != want.Encode() {
			t.Errorf("form %s, want %s", f.Encode(), want.Encode())
		}
		writeJSON(w, 200, `{"access_token":"eyJ.access.SECRET","token_type":"Bearer","expires_in":86400,`+
			`"scope":"contact_data offline_access","refresh_token":"refresh-SECRET-1","id_token":"x"}`)
	})
	before := time.Now()
	tok, err := cfg.Exchange(context.Background(), "code-abc", "verifier-xyz")
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "eyJ.access.SECRET" || tok.RefreshToken != "refresh-SECRET-1" || tok.TokenType != "Bearer" ||
		tok.Scope != "contact_data offline_access" {
		t.Errorf("token = %#v / %q %q", tok, tok.AccessToken, tok.RefreshToken)
	}
	if lo, hi := before.Add(86400*time.Second), time.Now().Add(86400*time.Second); tok.ExpiresAt.Before(lo) || tok.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt %v, want between %v and %v", tok.ExpiresAt, lo, hi)
	}
	if calls.Load() != 1 {
		t.Errorf("token calls = %d", calls.Load())
	}
}

func TestExchangePublicPKCEClient(t *testing.T) {
	cfg, _ := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
		f := tokenForm(t, r, false)
		if f.Get("client_id") != testClientID || f.Get("code_verifier") != "v" || f.Get("grant_type") != "authorization_code" {
			t.Errorf("form %s", f.Encode())
		}
		writeJSON(w, 200, `{"access_token":"a","token_type":"Bearer","expires_in":86400}`)
	})
	cfg.ClientSecret = ""
	tok, err := cfg.Exchange(context.Background(), "c", "v")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Errorf("refresh token %q without offline_access", tok.RefreshToken)
	}
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name, response, wantRefresh string
	}{
		{"rotating", `{"access_token":"new-access","token_type":"Bearer","expires_in":86400,"refresh_token":"rt-2"}`, "rt-2"},
		{"long-lived", `{"access_token":"new-access","token_type":"Bearer","expires_in":86400,"refresh_token":"rt-1"}`, "rt-1"},
		{"omitted", `{"access_token":"new-access","token_type":"Bearer","expires_in":86400}`, "rt-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, calls := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
				f := tokenForm(t, r, true)
				want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}}
				if f.Encode() != want.Encode() {
					t.Errorf("form %s, want %s", f.Encode(), want.Encode())
				}
				writeJSON(w, 200, tt.response)
			})
			tok, err := cfg.Refresh(context.Background(), "rt-1")
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "new-access" || tok.RefreshToken != tt.wantRefresh || tok.ExpiresAt.Before(time.Now().Add(23*time.Hour)) {
				t.Errorf("token access %q refresh %q expires %v", tok.AccessToken, tok.RefreshToken, tok.ExpiresAt)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("token endpoint called %d times, want 1", n)
			}
			// No caching between calls: a second Refresh is a second POST.
			if _, err := cfg.Refresh(context.Background(), "rt-1"); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("after two refreshes the endpoint saw %d calls, want 2", n)
			}
		})
	}
}

func TestRefreshShortExpiry(t *testing.T) {
	// A token that expires within oauth2's 10 s expiry delta must still be
	// returned, not refreshed again.
	cfg, calls := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"access_token":"a","token_type":"Bearer","expires_in":5,"refresh_token":"rt-2"}`)
	})
	tok, err := cfg.Refresh(context.Background(), "rt-1")
	if err != nil || tok.AccessToken != "a" || calls.Load() != 1 {
		t.Errorf("tok %v err %v calls %d", tok, err, calls.Load())
	}
}

func TestOAuthErrors(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		ctype        string
		body         string
		wantCode     string
		wantDesc     string
		invalidGrant bool
		temporary    bool
	}{
		{"invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"The refresh token is invalid or expired."}`,
			"invalid_grant", "The refresh token is invalid or expired.", true, false},
		{"invalid_client 401", 401, "application/json", `{"error":"invalid_client","error_description":"Client authentication failed."}`,
			"invalid_client", "Client authentication failed.", false, false},
		{"429 plain text", 429, "text/plain", `Too Many Requests`, "", "Too Many Requests", false, true},
		{"429 CC shape", 429, "application/json", `{"error_key":"throttled","error_message":"Too Many Requests"}`, "throttled", "Too Many Requests", false, true},
		{"500 HTML", 500, "text/html", `<html>oops</html>`, "", "Internal Server Error", false, true},
		{"200 with error", 200, "application/json", `{"error":"invalid_grant","error_description":"reused"}`, "invalid_grant", "reused", true, false},
	}
	for _, tt := range tests {
		for _, call := range []string{"refresh", "exchange"} {
			t.Run(tt.name+"/"+call, func(t *testing.T) {
				cfg, _ := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tt.ctype)
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				})
				var err error
				if call == "refresh" {
					_, err = cfg.Refresh(context.Background(), "refresh-SECRET-1")
				} else {
					_, err = cfg.Exchange(context.Background(), "code-SECRET", "verifier-SECRET")
				}
				var oe *OAuthError
				if !errors.As(err, &oe) {
					t.Fatalf("err = %v (%T), want *OAuthError", err, err)
				}
				if oe.StatusCode != tt.status || oe.Code != tt.wantCode || oe.Description != tt.wantDesc {
					t.Errorf("got %d %q %q, want %d %q %q", oe.StatusCode, oe.Code, oe.Description, tt.status, tt.wantCode, tt.wantDesc)
				}
				if IsInvalidGrant(err) != tt.invalidGrant || oe.Temporary() != tt.temporary {
					t.Errorf("IsInvalidGrant=%v Temporary=%v", IsInvalidGrant(err), oe.Temporary())
				}
				if !strings.HasPrefix(err.Error(), "ccclient: oauth "+call+": oauth") {
					t.Errorf("err = %q", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error leaks a secret: %q", err)
				}
			})
		}
	}
}

func TestOAuthTransportErrorAndEmptyInput(t *testing.T) {
	var calls atomic.Int32
	cfg := OAuthConfig{
		ClientID: testClientID, ClientSecret: testClientSecret, AuthURL: "http://127.0.0.1:9/oauth2/default/v1",
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			return nil, errors.New("connection refused")
		})},
	}
	_, err := cfg.Refresh(context.Background(), "refresh-SECRET-1")
	var oe *OAuthError
	if err == nil || errors.As(err, &oe) || IsInvalidGrant(err) {
		t.Errorf("err = %v, want a plain transport error", err)
	}
	if err != nil && strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error leaks a secret: %q", err)
	}
	if calls.Load() != 1 {
		t.Errorf("transport calls = %d, want 1", calls.Load())
	}
	if _, err := cfg.Refresh(context.Background(), ""); err == nil {
		t.Error("empty refresh token accepted")
	}
	if _, err := cfg.Exchange(context.Background(), "", "v"); err == nil {
		t.Error("empty code accepted")
	}
	if calls.Load() != 1 {
		t.Errorf("empty input reached the network: %d calls", calls.Load())
	}
	if IsInvalidGrant(nil) || IsInvalidGrant(errors.New("invalid_grant")) {
		t.Error("IsInvalidGrant matched a non-OAuth error")
	}
	if !IsInvalidGrant(fmt.Errorf("wrapped: %w", &OAuthError{StatusCode: 400, Code: "invalid_grant"})) {
		t.Error("IsInvalidGrant missed a wrapped error")
	}
}

func TestOAuthUsesConfiguredHTTPClient(t *testing.T) {
	var (
		mu     sync.Mutex
		seen   []string
		accept []string
	)
	cfg := OAuthConfig{
		ClientID: testClientID, ClientSecret: testClientSecret, AuthURL: "https://authz.example/oauth2/default/v1",
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r.URL.String())
			accept = append(accept, r.Header.Get("Accept"))
			mu.Unlock()
			return &http.Response{
				StatusCode: 200,
				Header:     http.Header{"Content-Type": {"application/json"}},
				Body:       io.NopCloser(strings.NewReader(`{"access_token":"a","token_type":"Bearer","expires_in":60}`)),
				Request:    r,
			}, nil
		})},
	}
	if _, err := cfg.Refresh(context.Background(), "rt"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "https://authz.example/oauth2/default/v1/token" || accept[0] != "application/json" {
		t.Errorf("requests %v accept %v", seen, accept)
	}
}

func TestTokenRedaction(t *testing.T) {
	tok := Token{AccessToken: "access-SECRET", RefreshToken: "refresh-SECRET", TokenType: "Bearer", Scope: "contact_data",
		ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, &tok)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("t", "token", tok)
	s += buf.String()
	if strings.Contains(s, "SECRET") {
		t.Errorf("token printed with secrets: %s", s)
	}
	if !strings.Contains(s, "contact_data") || !strings.Contains(s, "2026-01-01") {
		t.Errorf("redacted form lost the non-secret fields: %s", s)
	}
}

// TestOAuthWaitsForLimiter: CC's token endpoint allows one request a
// second per app, so Exchange and Refresh each take a slot from the
// configured limiter before they call it; a refused or abandoned wait
// calls nothing and returns the limiter's error, and an empty code or
// refresh token spends no slot.
func TestOAuthWaitsForLimiter(t *testing.T) {
	errLimit := errors.New("token endpoint limiter unavailable")
	tests := []struct {
		name      string
		limitErr  error
		block     bool // every Wait blocks until the context ends
		timeout   time.Duration
		empty     bool // call with an empty code or refresh token
		wantErr   error
		wantCalls int32
		wantWaits []int32 // token endpoint calls made by each Wait
	}{
		{name: "waits, then calls", wantCalls: 1, wantWaits: []int32{0}},
		{name: "a refused wait calls nothing", limitErr: errLimit, wantErr: errLimit, wantCalls: 0, wantWaits: []int32{0}},
		{
			name: "a wait cut short by the context calls nothing", block: true, timeout: 50 * time.Millisecond,
			wantErr: context.DeadlineExceeded, wantCalls: 0, wantWaits: []int32{0},
		},
		{name: "empty input spends no slot", empty: true, wantCalls: 0, wantWaits: nil},
	}
	for _, tt := range tests {
		for _, call := range []string{"exchange", "refresh"} {
			t.Run(tt.name+"/"+call, func(t *testing.T) {
				cfg, calls := oauthSetup(t, func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, 200, `{"access_token":"new-access","token_type":"Bearer","expires_in":86400,"refresh_token":"rt-2"}`)
				})
				lim := &countingLimiter{served: calls, err: tt.limitErr, block: tt.block}
				cfg.Limiter = lim
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				secret := "code-1"
				if call == "refresh" {
					secret = "rt-1"
				}
				if tt.empty {
					secret = ""
				}
				var tok *Token
				var err error
				if call == "refresh" {
					tok, err = cfg.Refresh(ctx, secret)
				} else {
					tok, err = cfg.Exchange(ctx, secret, "verifier-1")
				}
				switch {
				case tt.empty && err == nil:
					t.Errorf("%s with empty input succeeded", call)
				case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
					t.Errorf("%s error %v, want %v", call, err, tt.wantErr)
				case tt.wantErr != nil && !strings.HasPrefix(err.Error(), "ccclient: oauth "+call+": "):
					t.Errorf("%s error %q lacks the operation prefix", call, err)
				case !tt.empty && tt.wantErr == nil && (err != nil || tok.AccessToken != "new-access"):
					t.Errorf("%s = %v, %v; want the new token", call, tok, err)
				}
				if n := calls.Load(); n != tt.wantCalls {
					t.Errorf("token endpoint called %d times, want %d", n, tt.wantCalls)
				}
				if got := lim.waits(); !slices.Equal(got, tt.wantWaits) {
					t.Errorf("waits came after %v endpoint calls, want %v", got, tt.wantWaits)
				}
			})
		}
	}
}
