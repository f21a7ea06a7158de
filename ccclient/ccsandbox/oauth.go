package ccsandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scopes CC knows. contact_data is the one the bridge needs; offline_access
// is what earns a refresh token.
const (
	scopeContactData   = "contact_data"
	scopeOfflineAccess = "offline_access"
	defaultIssueScope  = scopeContactData + " " + scopeOfflineAccess
)

// Lifetimes CC support gives for the flows the sandbox serves.
const (
	authCodeTTL   = 5 * time.Minute
	deviceCodeTTL = 10 * time.Minute
)

// accessSweepAt is the number of stored access tokens at which issuing one
// first drops the expired ones.
const accessSweepAt = 1024

// Grant types the token endpoint accepts.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// OAuth error descriptions, worded as CC's Okta-based server words them where
// known (the refresh one is verbatim from a real response).
const (
	descInvalidRefresh = "The refresh token is invalid or expired."
	descInvalidCode    = "The authorization code is invalid or has expired."
	descRedirectURI    = "The 'redirect_uri' does not match the redirection URI used in the authorization request."
	descPKCE           = "PKCE verification failed."
	descInvalidClient  = "Client authentication failed. Either the client or the client credentials are invalid."
	descInvalidDevice  = "The device code is invalid or has expired."
)

// authCode is an authorization code waiting to be exchanged once.
type authCode struct {
	clientID    string
	redirectURI string
	scope       string
	challenge   string // PKCE S256 code_challenge, "" when the client sent none
	expires     time.Time
}

// deviceGrant is a device code; the sandbox approves it at once.
type deviceGrant struct {
	clientID string
	scope    string
	expires  time.Time
}

// accessToken is an opaque bearer token for the /v3 API.
type accessToken struct {
	clientID string
	scope    string
	expires  time.Time
}

// tokenFamily links the refresh tokens that descend from one consent, so
// that reuse of a rotated token can revoke the whole chain.
type tokenFamily struct {
	revoked bool
}

// refreshToken is one refresh token. public marks tokens from PKCE and device
// grants, which may be refreshed with a client_id and no secret.
type refreshToken struct {
	value    string
	clientID string
	scope    string
	public   bool
	family   *tokenFamily
	lastUsed time.Time
	dead     bool // rotated away
}

// tokenResponse is CC's token response (the SDK's AccessTokenResponse).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// oauthError is the RFC 6749 error body the token endpoint sends.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// knownScope reports whether CC's authorization server would grant s.
func knownScope(s string) bool {
	switch s {
	case scopeContactData, scopeOfflineAccess, "campaign_data", "account_read", "account_update", "billing_data", "openid", "profile":
		return true
	}
	return false
}

// normalizeScope splits a space-separated scope list, drops duplicates and
// rejoins it, reporting whether every scope is known. "contact_data+x" (a
// literal plus from %2B) is one unknown scope, which is how CC fails it.
func normalizeScope(raw string) (string, bool) {
	var out []string
	for _, f := range strings.Fields(raw) {
		if !knownScope(f) {
			return "", false
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return strings.Join(out, " "), true
}

// hasScope reports whether the space-separated scope list holds want.
func hasScope(scope, want string) bool {
	return slices.Contains(strings.Fields(scope), want)
}

// pkceS256 is the S256 code_challenge for a code_verifier (RFC 7636).
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// equalSecret compares credentials in constant time.
func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authorize is GET /oauth2/default/v1/authorize. The sandbox has no user to
// ask, so it approves at once and redirects back with a code, as the browser
// would after a person clicked "Allow". Errors that make the redirect_uri
// untrustworthy are shown here (400); the rest go back to the client.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !equalSecret(q.Get("client_id"), s.opts.ClientID) {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_client", "Invalid value for 'client_id' parameter."})
		return
	}
	redirectURI := q.Get("redirect_uri")
	back, err := url.Parse(redirectURI)
	if redirectURI == "" || err != nil || !back.IsAbs() {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "The 'redirect_uri' parameter must be an absolute URI."})
		return
	}
	state := q.Get("state")
	redirect := func(params url.Values) {
		bq := back.Query()
		for k, v := range params {
			bq[k] = v
		}
		if state != "" {
			bq.Set("state", state)
		}
		u := *back
		u.RawQuery = bq.Encode()
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusFound)
	}
	fail := func(code, desc string) {
		redirect(url.Values{"error": {code}, "error_description": {desc}})
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "The response type is not supported by the authorization server. Configured response types: [code].")
		return
	}
	scope, ok := normalizeScope(q.Get("scope"))
	if !ok || scope == "" {
		fail("invalid_scope", "One or more scopes are not configured for the authorization server resource.")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if (challenge != "" || method != "") && (challenge == "" || method != "S256") {
		fail("invalid_request", "PKCE requires a code_challenge with code_challenge_method S256.")
		return
	}

	s.mu.Lock()
	now := s.nowLocked()
	for c, ac := range s.codes {
		if !now.Before(ac.expires) {
			delete(s.codes, c)
		}
	}
	code := newOpaqueToken()
	s.codes[code] = &authCode{
		clientID:    s.opts.ClientID,
		redirectURI: redirectURI,
		scope:       scope,
		challenge:   challenge,
		expires:     now.Add(authCodeTTL),
	}
	s.mu.Unlock()
	s.log.Info("ccsandbox: authorization approved", "scope", scope, "pkce", challenge != "")
	redirect(url.Values{"code": {code}})
}

// deviceAuthorize is POST /oauth2/default/v1/device/authorize. The device
// code it returns is approved at once, since the sandbox has no user.
func (s *Server) deviceAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "The request body could not be parsed."})
		return
	}
	if !equalSecret(r.Form.Get("client_id"), s.opts.ClientID) {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", descInvalidClient})
		return
	}
	scope, ok := normalizeScope(r.Form.Get("scope"))
	if !ok || scope == "" {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_scope", "One or more scopes are not configured for the authorization server resource."})
		return
	}
	s.mu.Lock()
	code := newOpaqueToken()
	s.devices[code] = &deviceGrant{clientID: s.opts.ClientID, scope: scope, expires: s.nowLocked().Add(deviceCodeTTL)}
	s.mu.Unlock()
	userCode := strings.ToUpper(code[:4] + "-" + code[4:8])
	verify := "http://" + r.Host + "/oauth2/default/v1/device"
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               code,
		"user_code":                 userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(userCode),
		"expires_in":                int64(deviceCodeTTL / time.Second),
		"interval":                  5,
	})
}

// devicePage is where the device flow's verification_uri points. There is no
// one to approve anything in the sandbox, so it only says so.
func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("The Constant Contact sandbox approves device codes automatically; return to your device.\n"))
}

// token is POST /oauth2/default/v1/token: code exchange, refresh and device
// grants, with parameters from the form body or (as CC's own examples send
// them) the query string.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "The request body could not be parsed."})
		return
	}
	s.mu.Lock()
	status, body, basic := s.tokenLocked(r)
	s.mu.Unlock()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if status == http.StatusUnauthorized && basic {
		h.Set("WWW-Authenticate", `Basic realm="ConstantContact"`)
	}
	writeJSON(w, status, body)
}

// tokenLocked decides a token request. It returns the status, the body and
// whether the client tried Basic auth (which decides WWW-Authenticate on 401).
func (s *Server) tokenLocked(r *http.Request) (int, any, bool) {
	now := s.nowLocked()
	if s.tokenBucket != nil && !s.tokenBucket.take(now) {
		// CC support confirms the 429 but not its body; this is Okta's
		// wording in the OAuth shape clients already parse here.
		s.stats.TokenThrottled++
		return http.StatusTooManyRequests, oauthError{"too_many_requests", "API call exceeded rate limit due to too many requests."}, false
	}
	clientID, confidential, basic, ok := s.clientAuth(r)
	tr := &tokenRequest{form: r.Form, now: now, clientID: clientID, confidential: confidential, basic: basic}
	if !ok {
		return s.invalidClientLocked(tr)
	}
	switch r.Form.Get("grant_type") {
	case "":
		return http.StatusBadRequest, oauthError{"invalid_request", "The token request must specify a 'grant_type'. Valid values: [authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code]"}, basic
	case grantAuthorizationCode:
		return s.codeGrantLocked(tr)
	case grantRefreshToken:
		return s.refreshGrantLocked(tr)
	case grantDeviceCode:
		return s.deviceGrantLocked(tr)
	}
	return http.StatusBadRequest, oauthError{"unsupported_grant_type", "The authorization grant type is not supported by the authorization server. Configured grant types: [authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code]."}, basic
}

// tokenRequest is a token request whose client clientAuth has accepted,
// with what the grant handlers need to decide it.
type tokenRequest struct {
	form         url.Values
	now          time.Time
	clientID     string
	confidential bool // the client proved its secret
	basic        bool // the client tried Basic auth
}

// invalidClientLocked refuses a request whose client failed to
// authenticate, or may not use the grant without its secret, and counts
// the refusal in Stats.
func (s *Server) invalidClientLocked(tr *tokenRequest) (int, any, bool) {
	s.stats.InvalidClient++
	return http.StatusUnauthorized, oauthError{"invalid_client", descInvalidClient}, tr.basic
}

// invalidGrantLocked refuses a request whose code or token is unknown,
// expired, revoked or another client's, and counts the refusal in Stats.
func (s *Server) invalidGrantLocked(tr *tokenRequest, desc string) (int, any, bool) {
	s.stats.InvalidGrant++
	return http.StatusBadRequest, oauthError{"invalid_grant", desc}, tr.basic
}

// codeGrantLocked exchanges an authorization code, once, for tokens. The
// client proves it is the one the code was issued to by its secret, by the
// PKCE verifier, or by both.
func (s *Server) codeGrantLocked(tr *tokenRequest) (int, any, bool) {
	verifier := tr.form.Get("code_verifier")
	if !tr.confidential && verifier == "" {
		// A client without its secret must prove the code with PKCE.
		return s.invalidClientLocked(tr)
	}
	code := tr.form.Get("code")
	ac := s.codes[code]
	if ac == nil || !tr.now.Before(ac.expires) || ac.clientID != tr.clientID {
		return s.invalidGrantLocked(tr, descInvalidCode)
	}
	if tr.form.Get("redirect_uri") != ac.redirectURI {
		return s.invalidGrantLocked(tr, descRedirectURI)
	}
	switch {
	case ac.challenge != "" && (verifier == "" || !equalSecret(pkceS256(verifier), ac.challenge)):
		return s.invalidGrantLocked(tr, descPKCE)
	case ac.challenge == "" && verifier != "":
		return http.StatusBadRequest, oauthError{"invalid_request", "PKCE code verifier is specified but a code challenge was not specified in the authorize request."}, tr.basic
	}
	delete(s.codes, code) // single use
	s.stats.TokenGrants[grantAuthorizationCode]++
	return http.StatusOK, s.issueLocked(tr.clientID, ac.scope, !tr.confidential, hasScope(ac.scope, scopeOfflineAccess), tr.now), tr.basic
}

// refreshGrantLocked redeems a refresh token for a new access token. In
// RefreshLongLived mode the refresh token stays valid; otherwise it is
// rotated, and reuse of a rotated one may revoke its whole family.
func (s *Server) refreshGrantLocked(tr *tokenRequest) (int, any, bool) {
	rt := s.refresh[tr.form.Get("refresh_token")]
	if rt == nil || rt.clientID != tr.clientID {
		return s.invalidGrantLocked(tr, descInvalidRefresh)
	}
	if !tr.confidential && !rt.public {
		return s.invalidClientLocked(tr)
	}
	if rt.family.revoked || tr.now.Sub(rt.lastUsed) >= s.opts.RefreshIdleTTL {
		return s.invalidGrantLocked(tr, descInvalidRefresh)
	}
	if rt.dead {
		if s.opts.RevokeFamilyOnReuse {
			rt.family.revoked = true
		}
		return s.invalidGrantLocked(tr, descInvalidRefresh)
	}
	s.stats.TokenGrants[grantRefreshToken]++
	resp := s.issueLocked(tr.clientID, rt.scope, rt.public, false, tr.now)
	if s.opts.RefreshMode == RefreshLongLived {
		rt.lastUsed = tr.now
		resp.RefreshToken = rt.value
	} else {
		rt.dead = true
		resp.RefreshToken = s.newRefreshLocked(rt.clientID, rt.scope, rt.public, rt.family, tr.now).value
	}
	return http.StatusOK, resp, tr.basic
}

// deviceGrantLocked exchanges a device code, once, for tokens; the sandbox
// has approved every device code from the moment it was issued.
func (s *Server) deviceGrantLocked(tr *tokenRequest) (int, any, bool) {
	code := tr.form.Get("device_code")
	dg := s.devices[code]
	if dg == nil || !tr.now.Before(dg.expires) || dg.clientID != tr.clientID {
		return s.invalidGrantLocked(tr, descInvalidDevice)
	}
	delete(s.devices, code)
	s.stats.TokenGrants[grantDeviceCode]++
	// CC support says the device flow always yields a refresh token.
	return http.StatusOK, s.issueLocked(tr.clientID, dg.scope, true, true, tr.now), tr.basic
}

// clientAuth identifies the client of a token request: by HTTP Basic, by
// client_secret in the body when AllowClientSecretPost is set, or as a public
// client by client_id alone (which the grant must then allow). basic reports
// whether an Authorization header was sent.
func (s *Server) clientAuth(r *http.Request) (clientID string, confidential, basic, ok bool) {
	if user, pass, has := r.BasicAuth(); has {
		ok := s.isClient(user, pass)
		if !ok {
			// RFC 6749 §2.3.1 form-encodes the credentials before Base64;
			// most clients skip that, so accept both spellings.
			u, err1 := url.QueryUnescape(user)
			p, err2 := url.QueryUnescape(pass)
			ok = err1 == nil && err2 == nil && s.isClient(u, p)
		}
		return s.opts.ClientID, ok, true, ok
	}
	id := r.Form.Get("client_id")
	if secret := r.Form.Get("client_secret"); secret != "" {
		ok := s.opts.AllowClientSecretPost && s.isClient(id, secret)
		return id, ok, false, ok
	}
	ok = equalSecret(id, s.opts.ClientID)
	return id, false, false, ok
}

// isClient reports whether id and secret are the configured client's.
func (s *Server) isClient(id, secret string) bool {
	return equalSecret(id, s.opts.ClientID) && equalSecret(secret, s.opts.ClientSecret)
}

// issueLocked mints an access token and, when withRefresh is set, a refresh
// token that starts a new family.
func (s *Server) issueLocked(clientID, scope string, public, withRefresh bool, now time.Time) tokenResponse {
	if len(s.access) >= accessSweepAt {
		// A long-running `hs2cc dev` mints a token per refresh; dropping the
		// expired ones now and then keeps the map from growing for ever.
		for tok, at := range s.access {
			if !now.Before(at.expires) {
				delete(s.access, tok)
			}
		}
	}
	access := newOpaqueToken()
	s.access[access] = &accessToken{clientID: clientID, scope: scope, expires: now.Add(s.opts.TokenTTL)}
	resp := tokenResponse{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.opts.TokenTTL / time.Second),
		Scope:       scope,
	}
	if withRefresh {
		resp.RefreshToken = s.newRefreshLocked(clientID, scope, public, &tokenFamily{}, now).value
	}
	s.log.Info("ccsandbox: token issued", "scope", scope, "refresh", resp.RefreshToken != "")
	return resp
}

// newRefreshLocked stores a new refresh token in family.
func (s *Server) newRefreshLocked(clientID, scope string, public bool, family *tokenFamily, now time.Time) *refreshToken {
	rt := &refreshToken{
		value:    newOpaqueToken(),
		clientID: clientID,
		scope:    scope,
		public:   public,
		family:   family,
		lastUsed: now,
	}
	s.refresh[rt.value] = rt
	return rt
}

// bearerLocked returns the live access token a request carries, or nil.
func (s *Server) bearerLocked(r *http.Request, now time.Time) *accessToken {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	tok = strings.TrimSpace(tok)
	at := s.access[tok]
	if at == nil {
		return nil
	}
	if !now.Before(at.expires) {
		delete(s.access, tok)
		return nil
	}
	return at
}

// IssueToken mints a token pair for the configured client without the
// browser flow, as a code exchange with the given scope would (space-
// separated; "" means "contact_data offline_access"). refresh is "" when the
// scope lacks offline_access, as it would be from CC. It panics on a scope CC
// does not know, since that is a mistake in the test.
func (s *Server) IssueToken(scope string) (access, refresh string) {
	if scope == "" {
		scope = defaultIssueScope
	}
	norm, ok := normalizeScope(scope)
	if !ok {
		panic("ccsandbox: IssueToken: unknown scope in " + scope)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := s.issueLocked(s.opts.ClientID, norm, false, hasScope(norm, scopeOfflineAccess), s.nowLocked())
	return resp.AccessToken, resp.RefreshToken
}
