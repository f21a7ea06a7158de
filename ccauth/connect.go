package ccauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

// OAuthFlow is the authorization-code flow with PKCE; ccclient.OAuthConfig
// is one.
type OAuthFlow interface {
	AuthCodeURL(state, verifier string) string
	Exchange(ctx context.Context, code, verifier string) (*ccclient.Token, error)
}

// StateStore keeps started connections; *store.Redis is one.
type StateStore interface {
	SaveOAuthState(ctx context.Context, state, verifier string, ttl time.Duration) error
	TakeOAuthState(ctx context.Context, state string) (string, error)
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

// Begin starts a connection and returns the CC consent URL to send the
// person to.
func (c *Connector) Begin(ctx context.Context) (string, error) {
	state, verifier := randomID(), ccclient.NewVerifier()
	if err := c.states.SaveOAuthState(ctx, state, verifier, StateTTL); err != nil {
		return "", err
	}
	return c.oauth.AuthCodeURL(state, verifier), nil
}

// Complete finishes a connection from the callback's state and code: the
// state is spent first, so a replayed callback fails with ErrBadState.
func (c *Connector) Complete(ctx context.Context, state, code string) (*ccclient.Token, error) {
	if state == "" {
		return nil, ErrBadState
	}
	verifier, err := c.states.TakeOAuthState(ctx, state)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadState
	}
	if err != nil {
		return nil, err
	}
	return ExchangeAndConnect(ctx, c.oauth, c.tokens, code, verifier)
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

// randomID returns 32 random bytes, base64url: OAuth states and owner
// tokens.
func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
