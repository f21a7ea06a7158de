package ccauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// callbackURL is the redirect_uri the tests register; nothing listens
// there, since the test reads the sandbox's redirect instead of following it.
const callbackURL = "http://127.0.0.1:1/oauth/callback"

// connectFlow drives the consent flow against the sandbox's real authorize
// and token endpoints, as a browser and /oauth/callback would.
type connectFlow struct {
	t   *testing.T
	te  *tokenEnv
	c   *ccauth.Connector
	rdb *redis.Client
	// nonces holds the nonce Begin gave for each state it made.
	nonces map[string]string
}

// nonceOf is the nonce of the browser that started state.
func (f *connectFlow) nonceOf(state string) string { return f.nonces[state] }

// callback is what a browser brings to /oauth/callback: the redirect's
// state and code, and the nonce from its cookie.
type callback struct{ state, nonce, code string }

// begin starts a connection, follows the consent URL to the sandbox (which
// approves at once), and returns the callback of the browser that started
// it.
func (f *connectFlow) begin() callback {
	f.t.Helper()
	ctx := context.Background()
	consent, nonce, err := f.c.Begin(ctx)
	if err != nil {
		f.t.Fatalf("Begin: %v", err)
	}
	if len(nonce) < 32 {
		f.t.Fatalf("Begin's nonce %q, want a long random value", nonce)
	}
	u, err := url.Parse(consent)
	if err != nil {
		f.t.Fatal(err)
	}
	q := u.Query()
	if !strings.HasPrefix(consent, f.te.oauth.AuthURL+"/authorize?") || q.Get("redirect_uri") != callbackURL ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		f.t.Fatalf("consent URL %s: want the authorize endpoint with redirect_uri, state and an S256 challenge", consent)
	}
	// The state is kept in Redis for StateTTL, and only there, with a
	// digest of the nonce but not the nonce itself.
	keys, err := f.rdb.Keys(ctx, "*"+q.Get("state")+"*").Result()
	if err != nil || len(keys) != 1 {
		f.t.Fatalf("Redis keys holding the state: %v, %v; want one", keys, err)
	}
	if fields := f.rdb.HGetAll(ctx, keys[0]).Val(); strings.Contains(fmt.Sprint(fields), nonce) || len(fields) == 0 {
		f.t.Errorf("state %s holds %v: want it bound to the nonce's digest, not the nonce", keys[0], fields)
	}
	if ttl := f.rdb.PTTL(ctx, keys[0]).Val(); ttl <= ccauth.StateTTL-10*time.Second || ttl > ccauth.StateTTL {
		f.t.Errorf("state key %s lives %s, want about %s", keys[0], ttl, ccauth.StateTTL)
	}

	noFollow := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	resp, err := noFollow.Get(consent)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		f.t.Fatalf("authorize answered %d, want 302", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		f.t.Fatal(err)
	}
	bq := back.Query()
	if got := back.Scheme + "://" + back.Host + back.Path; got != callbackURL || bq.Get("error") != "" {
		f.t.Fatalf("redirected to %s: want %s with a code", back, callbackURL)
	}
	if bq.Get("state") != q.Get("state") || bq.Get("code") == "" {
		f.t.Fatalf("callback state %q code %q; want the consent's state and a code", bq.Get("state"), bq.Get("code"))
	}
	if f.nonces == nil {
		f.nonces = map[string]string{}
	}
	f.nonces[bq.Get("state")] = nonce
	return callback{state: bq.Get("state"), nonce: nonce, code: bq.Get("code")}
}

func (f *connectFlow) complete(cb callback) *ccclient.Token {
	f.t.Helper()
	tok, err := f.c.Complete(context.Background(), cb.state, cb.nonce, cb.code)
	if err != nil {
		f.t.Fatalf("Complete: %v", err)
	}
	return tok
}

// expire makes a started connection's state run out, as StateTTL would.
func (f *connectFlow) expire(state string) {
	f.t.Helper()
	ctx := context.Background()
	keys, err := f.rdb.Keys(ctx, "*"+state+"*").Result()
	if err != nil || len(keys) != 1 {
		f.t.Fatalf("Redis keys holding the state: %v, %v; want one", keys, err)
	}
	if err := f.rdb.PExpire(ctx, keys[0], time.Millisecond).Err(); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, 2*time.Second, func() (bool, string) {
		return f.rdb.Exists(ctx, keys[0]).Val() == 0, "the state key did not expire"
	})
}

// TestConnectorCallback runs "connect Constant Contact" against the
// sandbox's authorize endpoint and checks which callbacks connect. A state
// works once, whatever came of its exchange, and a callback with a state
// that is not one this bridge handed out and still holds never reaches CC's
// token endpoint. A code works once too: CC refuses a second exchange. A
// callback from another browser (no nonce, or not the starting browser's)
// is refused without spending the state, so the starting browser still
// connects after it.
func TestConnectorCallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// scopes overrides the consent's scopes.
		scopes []string
		// callback runs the flow up to the callback under test and returns
		// the state and code that callback carries.
		callback     func(f *connectFlow) callback
		wantBadState bool
		// wantWrongBrowser: refused as another browser's; the starting
		// browser's own callback then connects.
		wantWrongBrowser bool
		// wantOAuth is CC's error code for the exchange, "" if none.
		wantOAuth string
		wantErr   string // a substring of another error
	}{
		{name: "a fresh state and code connect", callback: func(f *connectFlow) callback {
			return f.begin()
		}},
		{name: "a replayed callback", wantBadState: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			f.complete(cb)
			return cb
		}},
		{name: "a state this bridge never issued", wantBadState: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			cb.state = "never-issued"
			return cb
		}},
		{name: "no state", wantBadState: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			cb.state = ""
			return cb
		}},
		{name: "an expired state", wantBadState: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			f.expire(cb.state)
			return cb
		}},
		{name: "a state whose exchange failed", wantBadState: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			if _, err := f.c.Complete(context.Background(), cb.state, cb.nonce, "not-a-code"); !ccclient.IsInvalidGrant(err) {
				f.t.Fatalf("Complete with a bad code: %v, want invalid_grant", err)
			}
			return cb
		}},
		{name: "a code already exchanged", wantOAuth: "invalid_grant", callback: func(f *connectFlow) callback {
			first, second := f.begin(), f.begin()
			f.complete(first)
			second.code = first.code
			return second
		}},
		{name: "a consent without offline_access", scopes: []string{"contact_data"}, wantErr: "no refresh token",
			callback: func(f *connectFlow) callback { return f.begin() }},
		{name: "a browser without the nonce", wantWrongBrowser: true, callback: func(f *connectFlow) callback {
			cb := f.begin()
			cb.nonce = ""
			return cb
		}},
		{name: "another browser's nonce", wantWrongBrowser: true, callback: func(f *connectFlow) callback {
			mine, theirs := f.begin(), f.begin()
			mine.nonce = theirs.nonce
			return mine
		}},
	}
	te := newTokenEnv(t, noLimits)
	te.oauth.RedirectURL = callbackURL
	rdb := redisClient(t, te.redisURL)
	// The cases share one sandbox and database, so they run one at a time.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			oauth := te.oauth
			oauth.Scopes = tc.scopes
			tokens := te.process()
			f := &connectFlow{t: t, te: te, c: ccauth.NewConnector(oauth, te.cache(), tokens), rdb: rdb}
			cb := tc.callback(f)
			rightNonce := f.nonceOf(cb.state)

			before, _ := te.db.LoadToken(ctx)
			callsBefore := te.sb.Stats().Requests[tokenRoute]
			tok, err := f.c.Complete(ctx, cb.state, cb.nonce, cb.code)
			calls := te.sb.Stats().Requests[tokenRoute] - callsBefore
			after, _ := te.db.LoadToken(ctx)

			wantOK := !tc.wantBadState && !tc.wantWrongBrowser && tc.wantOAuth == "" && tc.wantErr == ""
			if !wantOK {
				if err == nil {
					t.Fatalf("Complete connected (%v), want an error", tok)
				}
				if got := errors.Is(err, ccauth.ErrBadState); got != tc.wantBadState {
					t.Errorf("errors.Is(%v, ErrBadState) = %v, want %v", err, got, tc.wantBadState)
				}
				if got := errors.Is(err, ccauth.ErrWrongBrowser); got != tc.wantWrongBrowser {
					t.Errorf("errors.Is(%v, ErrWrongBrowser) = %v, want %v", err, got, tc.wantWrongBrowser)
				}
				var oe *ccclient.OAuthError
				if tc.wantOAuth != "" && (!errors.As(err, &oe) || oe.Code != tc.wantOAuth) {
					t.Errorf("Complete: %v, want CC's %s", err, tc.wantOAuth)
				}
				if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Complete: %v, want an error saying %q", err, tc.wantErr)
				}
				if (tc.wantBadState || tc.wantWrongBrowser) && calls != 0 {
					t.Errorf("a refused callback reached CC's token endpoint %d times", calls)
				}
				if fmt.Sprint(before) != fmt.Sprint(after) {
					t.Errorf("a failed callback changed the stored token from %+v to %+v", before, after)
				}
				if tc.wantWrongBrowser {
					// The state was not spent: the starting browser finishes.
					cb.nonce = rightNonce
					if tok := f.complete(cb); tok.RefreshToken == "" {
						t.Errorf("the starting browser's callback after the refusal: %v, want a pair", tok)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if calls != 1 {
				t.Errorf("token endpoint called %d times, want one exchange", calls)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("Complete returned %v, want a pair", tok)
			}
			if after == nil || after.AccessToken != tok.AccessToken || after.RefreshToken != tok.RefreshToken ||
				after.Status != store.TokenConnected || (before != nil && after.Version <= before.Version) {
				t.Errorf("stored %+v, want the exchanged pair, connected, as a new version", after)
			}
			if got, err := tokens.Token(ctx); err != nil || got != tok.AccessToken {
				t.Errorf("Token after connecting = %q, %v; want the exchanged access token", got, err)
			}
			if _, err := te.client(te.process()).ContactLists(ctx); err != nil {
				t.Errorf("API call after connecting: %v", err)
			}
			// The state is spent.
			if _, err := f.c.Complete(ctx, cb.state, cb.nonce, cb.code); !errors.Is(err, ccauth.ErrBadState) {
				t.Errorf("the same callback again: %v, want ErrBadState", err)
			}
		})
	}
}
