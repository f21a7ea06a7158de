package ccauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// StateTTL is how long a started connection may take: the state handed to
// CC's consent page is accepted for this long, once.
const StateTTL = 10 * time.Minute

// ErrBadState means a callback's state is unknown, expired or already used:
// the consent must be started again.
var ErrBadState = errors.New("ccauth: unknown, expired or already used OAuth state; start the connection again")

// ErrWrongBrowser means a callback came without the nonce of the browser
// that started the connection, or with another one: whoever got hold of
// the consent URL tried to finish it with their own CC account. The state
// is not spent, so the person who started can still finish.
var ErrWrongBrowser = errors.New("ccauth: this browser did not start the connection")

// OAuthFlow is the authorization-code flow with PKCE; ccclient.OAuthConfig
// is one.
type OAuthFlow interface {
	AuthCodeURL(state, verifier string) string
	Exchange(ctx context.Context, code, verifier string) (*ccclient.Token, error)
}

// StateStore keeps started connections; *store.Redis is one.
type StateStore interface {
	SaveOAuthState(ctx context.Context, state, binding, verifier string, ttl time.Duration) error
	TakeOAuthState(ctx context.Context, state, binding string) (string, error)
}

// Connector runs "connect Constant Contact" for /oauth/connect and
// /oauth/callback: a single-use state and PKCE verifier per attempt, kept in
// Redis for StateTTL, then the code exchange and a durable save.
type Connector struct {
	oauth  OAuthFlow
	states StateStore
	tokens *Tokens
}

// NewConnector builds the connection flow.
func NewConnector(oauth OAuthFlow, states StateStore, tokens *Tokens) *Connector {
	return &Connector{oauth: oauth, states: states, tokens: tokens}
}

// Begin starts a connection. It returns the CC consent URL to send the
// person to and a nonce for that person's browser alone (the handler keeps
// it in a cookie): the state is bound to the nonce's digest, so that only
// that browser can finish the connection.
func (c *Connector) Begin(ctx context.Context) (authURL, nonce string, err error) {
	state, verifier, nonce := randomID(), ccclient.NewVerifier(), randomID()
	if err := c.states.SaveOAuthState(ctx, state, bindingOf(nonce), verifier, StateTTL); err != nil {
		return "", "", err
	}
	return c.oauth.AuthCodeURL(state, verifier), nonce, nil
}

// Complete finishes a connection from the callback's state and code and
// the nonce the browser presented. A nonce that is missing or not the one
// the state was bound to fails with ErrWrongBrowser and leaves the state;
// otherwise the state is spent first, so a replayed callback fails with
// ErrBadState.
func (c *Connector) Complete(ctx context.Context, state, nonce, code string) (*ccclient.Token, error) {
	if state == "" {
		return nil, ErrBadState
	}
	if nonce == "" {
		return nil, ErrWrongBrowser
	}
	verifier, err := c.states.TakeOAuthState(ctx, state, bindingOf(nonce))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrBadState
	case errors.Is(err, store.ErrOAuthBinding):
		return nil, ErrWrongBrowser
	case err != nil:
		return nil, err
	}
	return ExchangeAndConnect(ctx, c.oauth, c.tokens, code, verifier)
}

// bindingOf is what the state store keeps of a browser's nonce: its
// SHA-256, so that reading Redis does not give the cookie's value.
func bindingOf(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(sum[:])
}

// ExchangeAndConnect trades a code for a pair and stores it; `hs2cc
// connect`, which keeps its state in memory, shares it with Complete.
func ExchangeAndConnect(ctx context.Context, oauth OAuthFlow, tokens *Tokens, code, verifier string) (*ccclient.Token, error) {
	tok, err := oauth.Exchange(ctx, code, verifier)
	// The token endpoint allows one request a second and a code lives five
	// minutes; a 429 or a passing 5xx did not spend the code, so try again
	// rather than send the person through consent once more.
	for attempt := 1; err != nil && attempt < exchangeAttempts && temporaryOAuth(err); attempt++ {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * time.Second):
		}
		tok, err = oauth.Exchange(ctx, code, verifier)
	}
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		return nil, fmt.Errorf("ccauth: CC issued no refresh token; the offline_access scope is needed")
	}
	if err := tokens.Connect(ctx, tok); err != nil {
		return nil, err
	}
	return tok, nil
}

// exchangeAttempts bounds the tries of one code exchange.
const exchangeAttempts = 5

func temporaryOAuth(err error) bool {
	var oe *ccclient.OAuthError
	return errors.As(err, &oe) && oe.Temporary()
}

// NewState returns a fresh OAuth state value.
func NewState() string { return randomID() }

// randomID returns 32 random bytes, base64url: OAuth states, browser
// nonces and owner tokens.
func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
