package ccclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DefaultAuthURL is the root of CC's OAuth endpoints (authorize, token).
const DefaultAuthURL = "https://authz.constantcontact.com/oauth2/default/v1"

// defaultScopes are what the bridge needs: contact_data for the API and
// offline_access for a refresh token.
var defaultScopes = []string{"contact_data", "offline_access"}

// OAuthConfig describes this app to CC's OAuth server.
type OAuthConfig struct {
	// ClientID is the app's API key; ClientSecret its secret. With a
	// secret the token endpoint gets HTTP Basic auth; without one (a
	// public PKCE client) client_id goes in the form body instead.
	ClientID, ClientSecret string
	// AuthURL is the OAuth root, e.g.
	// https://authz.constantcontact.com/oauth2/default/v1 (the default);
	// "/authorize" and "/token" are appended.
	AuthURL string
	// RedirectURL must match one registered for the app.
	RedirectURL string
	// Scopes default to contact_data and offline_access.
	Scopes []string
	// HTTPClient is used for the token endpoint; nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	// Limiter, when set, is waited for before every call to the token
	// endpoint, which CC allows once a second per app; a limiter shared by
	// every process (store.TokenEndpointLimiter) keeps them all inside it.
	Limiter Limiter
}

// wait takes a slot from the token endpoint's limiter, when there is one.
func (c OAuthConfig) wait(ctx context.Context) error {
	if c.Limiter == nil {
		return nil
	}
	return c.Limiter.Wait(ctx)
}

// Token is a CC token pair. Its String, GoString and LogValue methods
// redact both tokens so that a stray %v or slog call does not leak them.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"` // zero if CC sent no expires_in
}

// String describes t without its secrets.
func (t Token) String() string {
	return fmt.Sprintf("ccclient.Token{AccessToken:%s RefreshToken:%s TokenType:%q Scope:%q ExpiresAt:%s}",
		redact(t.AccessToken), redact(t.RefreshToken), t.TokenType, t.Scope, t.ExpiresAt.Format(time.RFC3339))
}

// GoString describes t without its secrets.
func (t Token) GoString() string { return t.String() }

// LogValue describes t without its secrets.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_token", redact(t.AccessToken)),
		slog.String("refresh_token", redact(t.RefreshToken)),
		slog.String("scope", t.Scope),
		slog.Time("expires_at", t.ExpiresAt),
	)
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// OAuthError is an error answer from the token endpoint, e.g.
// invalid_grant (the refresh token is expired, revoked or already used; a
// person has to reconnect the app) or invalid_client.
type OAuthError struct {
	StatusCode        int
	Code, Description string
}

func (e *OAuthError) Error() string {
	var b strings.Builder
	b.WriteString("oauth")
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	fmt.Fprintf(&b, " (status %d)", e.StatusCode)
	if e.Description != "" {
		d := e.Description
		if len(d) > maxErrorMessage {
			d = d[:maxErrorMessage] + "…"
		}
		b.WriteString(": ")
		b.WriteString(d)
	}
	return b.String()
}

// Temporary reports a 429 (the token endpoint allows 1 request/s) or 5xx.
func (e *OAuthError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// IsInvalidGrant reports whether err is the token endpoint's invalid_grant:
// retrying cannot help, the app needs a fresh consent.
func IsInvalidGrant(err error) bool {
	var e *OAuthError
	return errors.As(err, &e) && e.Code == "invalid_grant"
}

func (c OAuthConfig) config() *oauth2.Config {
	base := strings.TrimRight(c.AuthURL, "/")
	if base == "" {
		base = DefaultAuthURL
	}
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = defaultScopes
	}
	style := oauth2.AuthStyleInHeader
	if c.ClientSecret == "" {
		style = oauth2.AuthStyleInParams // PKCE public client: client_id, no secret
	}
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RedirectURL:  c.RedirectURL,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   base + "/authorize",
			TokenURL:  base + "/token",
			AuthStyle: style,
		},
	}
}

// ctx carries the HTTP client to x/oauth2, with Accept: application/json
// added as CC's examples send it.
func (c OAuthConfig) ctx(ctx context.Context) context.Context {
	hc := http.Client{Timeout: defaultTimeout}
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = acceptJSON{base: base}
	return context.WithValue(ctx, oauth2.HTTPClient, &hc)
}

type acceptJSON struct{ base http.RoundTripper }

func (t acceptJSON) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "application/json")
	}
	return t.base.RoundTrip(r)
}

// AuthCodeURL returns the URL to send a person to for consent:
// response_type=code, client_id, redirect_uri, space-separated scope and
// state, plus a PKCE S256 code_challenge when verifier is not empty (pass
// the same verifier to Exchange).
func (c OAuthConfig) AuthCodeURL(state, verifier string) string {
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	return c.config().AuthCodeURL(state, opts...)
}

// NewVerifier returns a fresh PKCE code verifier (32 random octets,
// base64url); use one per authorization.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// Exchange trades an authorization code (single use, valid 5 minutes) for
// a token pair. verifier is the PKCE verifier given to AuthCodeURL, or "".
func (c OAuthConfig) Exchange(ctx context.Context, code, verifier string) (*Token, error) {
	const op = "ccclient: oauth exchange"
	if code == "" {
		return nil, fmt.Errorf("%s: empty code", op)
	}
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	if err := c.wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := c.config().Exchange(c.ctx(ctx), code, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, oauthError(err))
	}
	return fromOAuth2(t), nil
}

// Refresh trades a refresh token for a new pair with exactly one call to
// the token endpoint. With rotating refresh tokens the returned
// RefreshToken is new and the old one is dead from now on, so persist the
// result before using it; with long-lived ones it is the same value. If
// the response has no refresh_token, the old one is kept.
func (c OAuthConfig) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	const op = "ccclient: oauth refresh"
	if refreshToken == "" {
		return nil, fmt.Errorf("%s: empty refresh token", op)
	}
	// A new TokenSource per call, seeded with an already expired token
	// that has no access token, refreshes exactly once and caches nothing
	// between calls.
	expired := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}
	if err := c.wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := c.config().TokenSource(c.ctx(ctx), expired).Token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, oauthError(err))
	}
	tok := fromOAuth2(t)
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	return tok, nil
}

func fromOAuth2(t *oauth2.Token) *Token {
	scope, _ := t.Extra("scope").(string)
	return &Token{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    t.TokenType,
		Scope:        scope,
		ExpiresAt:    t.Expiry,
	}
}

// oauthError turns x/oauth2's *RetrieveError into an *OAuthError; other
// errors (transport, malformed success body) pass through. The body is not
// kept: it is not needed and an error string must never carry a secret.
func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	e := &OAuthError{Code: re.ErrorCode, Description: re.ErrorDescription}
	if re.Response != nil {
		e.StatusCode = re.Response.StatusCode
	}
	if e.Code == "" && e.Description == "" {
		// Not the OAuth shape; maybe CC's own {"error_key",…} (a 429).
		if ds := parseErrorBody(re.Body); len(ds) > 0 {
			e.Code, e.Description = ds[0].Key, ds[0].Message
		}
	}
	if e.Description == "" && e.Code == "" {
		e.Description = http.StatusText(e.StatusCode)
	}
	return e
}
