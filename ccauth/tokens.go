// Package ccauth is the bridge's authorisation with Constant Contact: the
// token source every process shares (Tokens: the access token cached in
// Redis, the sealed pair in MySQL, one refresher at a time), the connect
// flow a person runs once (Connector, ExchangeAndConnect), and the states
// that stop CC work until a person acts (ErrNotConnected, needs reconnect).
// jobs, handlers and cmd all use it; its errors are the named values here.
package ccauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// WaitError means the token cannot be had right now for a reason that
// passes by itself: another process is refreshing it, or CC's token
// endpoint is busy or failing for a moment. Asking again after After is the
// remedy; the caller's retry policy decides how (jobs waits without
// spending a task's retry).
type WaitError struct {
	After  time.Duration
	Reason string
}

func (e *WaitError) Error() string { return "ccauth: wait: " + e.Reason }

// ErrNotConnected means the bridge holds no usable CC token: nobody has
// connected CC yet, or CC refused the refresh token (invalid_grant) and a
// person must connect again. CC-bound tasks wait instead of failing.
var ErrNotConnected = errors.New("ccauth: Constant Contact is not connected")

// TokenStore keeps the token pair durably.
type TokenStore interface {
	LoadToken(ctx context.Context) (*store.Token, error)
	SaveToken(ctx context.Context, t store.Token, prevVersion int64) (int64, error)
	ClaimRefresh(ctx context.Context, version int64, owner string, ttl time.Duration) (bool, error)
	ReleaseRefresh(ctx context.Context, owner string) error
	MarkNeedsReconnect(ctx context.Context, version int64, reason string) error
}

// TokenCache caches the access token and provides the cross-process lock.
type TokenCache interface {
	AccessToken(ctx context.Context) (string, error)
	SetAccessToken(ctx context.Context, token string, ttl time.Duration) error
	DropAccessToken(ctx context.Context, token string) error
	Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error)
}

// Refresher exchanges a refresh token for a new pair.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string) (*ccclient.Token, error)
}

// Tokens is the CC TokenSource every worker shares. The access token is read
// from Redis; the pair lives in MySQL; refreshing happens under a Redis lock,
// re-reads MySQL after acquiring it, and saves the new pair before using it,
// so a rotating refresh token is never spent twice or lost.
type Tokens struct {
	store  TokenStore
	cache  TokenCache
	oauth  Refresher
	log    *slog.Logger
	margin time.Duration // refresh when the token expires within this
	now    func() time.Time

	// dead holds access tokens CC answered 401 to, so that this process
	// never hands one out again, even when another process re-caches it
	// from MySQL before the refreshed pair is saved.
	mu   sync.Mutex
	dead map[string]time.Time

	// onConnect runs after a person connected CC; see OnConnect.
	onConnect func(ctx context.Context) error
}

// OnConnect registers fn to run after every connection is saved: a person's
// consent through /oauth/callback or `hs2cc connect`, a reconnect after
// needs_reconnect included. Connecting is the moment the rules' lists can
// first be checked, so the caller queues that check; a failure of fn is
// logged and the connection stands.
func (t *Tokens) OnConnect(fn func(ctx context.Context) error) { t.onConnect = fn }

// NewTokens builds the shared token source. margin is how long before expiry
// a token counts as due for refresh.
func NewTokens(st TokenStore, cache TokenCache, oauth Refresher, log *slog.Logger, margin time.Duration) *Tokens {
	return &Tokens{store: st, cache: cache, oauth: oauth, log: log, margin: margin, now: time.Now, dead: map[string]time.Time{}}
}

const refreshLock = "cc-token-refresh"

// refreshHold bounds one refresh: the Redis lock and the MySQL fence both
// expire after it, so a process that dies mid-refresh blocks no one for
// longer. The save of a refreshed pair (saveRefreshedFor) fits inside it.
const refreshHold = 30 * time.Second

// errRefreshBusy means another refresher (of this process or another) holds
// MySQL's refresh fence although this one got the Redis lock (Redis lost the
// lock); wait for its result.
var errRefreshBusy = errors.New("ccauth: another process is refreshing the CC token")

// Token returns a usable access token.
func (t *Tokens) Token(ctx context.Context) (string, error) {
	if tok, err := t.cache.AccessToken(ctx); err == nil && tok != "" {
		if !t.isDead(tok) {
			return tok, nil
		}
		_ = t.cache.DropAccessToken(ctx, tok)
	}
	stored, err := t.load(ctx)
	if err != nil {
		return "", err
	}
	if t.fresh(stored) {
		t.cacheToken(ctx, stored)
		return stored.AccessToken, nil
	}
	return t.refresh(ctx, "")
}

// Invalidate is called after CC answered 401 to token: the next Token call
// refreshes unless another process already has.
func (t *Tokens) Invalidate(ctx context.Context, token string) error {
	t.markDead(token)
	if err := t.cache.DropAccessToken(ctx, token); err != nil {
		return err
	}
	tok, err := t.refresh(ctx, token)
	if err == nil && tok != "" {
		// Put the good token in the cache now: a caller elsewhere may have
		// cached the dead one from MySQL while the refresh ran.
		if cached, cerr := t.cache.AccessToken(ctx); cerr == nil && cached == token {
			_ = t.cache.DropAccessToken(ctx, token)
		}
	}
	return err
}

func (t *Tokens) markDead(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, at := range t.dead {
		if now.Sub(at) > time.Hour {
			delete(t.dead, k)
		}
	}
	t.dead[token] = now
}

func (t *Tokens) isDead(token string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.dead[token]
	return ok
}

// RefreshIfDue refreshes the token when it expires within the margin; the
// periodic cc:token-refresh task calls it.
func (t *Tokens) RefreshIfDue(ctx context.Context) error {
	stored, err := t.load(ctx)
	if err != nil {
		return err
	}
	if t.fresh(stored) {
		return nil
	}
	_, err = t.refresh(ctx, "")
	return err
}

func (t *Tokens) load(ctx context.Context) (*store.Token, error) {
	stored, err := t.store.LoadToken(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && stored.RefreshToken == "" && stored.AccessToken == ""):
		return nil, ErrNotConnected
	case errors.Is(err, store.ErrTokenKey):
		// The pair cannot be opened with the configured key: as good as no
		// connection until the key is fixed or CC is connected again.
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	case err != nil:
		return nil, err
	case stored.Status == store.TokenNeedsReconnect:
		return nil, fmt.Errorf("%w: CC refused the refresh token (%s)", ErrNotConnected, stored.StatusReason)
	}
	return stored, nil
}

// Connect stores a pair obtained from a person's consent, replacing any
// stored pair and clearing a needs-reconnect mark. Like a refreshed pair it
// is the only copy, so the save outlives the caller's context and retries
// passing faults.
func (t *Tokens) Connect(ctx context.Context, tok *ccclient.Token) error {
	saved := t.toSave(tok)
	if err := t.saveRefreshed(ctx, saved, 0); err != nil {
		return err
	}
	// Evict whatever the cache holds (an access token of the old
	// connection) before caching the new one.
	if old, err := t.cache.AccessToken(ctx); err == nil && old != "" {
		_ = t.cache.DropAccessToken(ctx, old)
	}
	t.cacheToken(ctx, &saved)
	t.log.Info("CC connected", "expires_at", saved.ExpiresAt)
	if t.onConnect != nil {
		if err := t.onConnect(context.WithoutCancel(ctx)); err != nil {
			t.log.Warn("CC is connected, but the check of the rules' lists could not be queued; the workers check them at their next start or import", "err", err)
		}
	}
	return nil
}

// assumedLifetime is the life given to an access token CC sent without
// expires_in: CC documents 24 h. A 401 sooner triggers a refresh anyway.
const assumedLifetime = 24 * time.Hour

// toSave is the stored form of a pair CC just issued, stamped with when it
// was received, which marginFor reads as the start of its life.
func (t *Tokens) toSave(tok *ccclient.Token) store.Token {
	now := t.now()
	saved := store.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt, UpdatedAt: now}
	if saved.ExpiresAt.IsZero() {
		saved.ExpiresAt = now.Add(assumedLifetime)
	}
	return saved
}

// marginFor is how long before its expiry tok counts as due for refresh:
// the configured margin, but never more than a third of the life CC
// granted (from when the pair was saved to its expiry). A margin longer
// than the token's life would refresh at every call, and CC's token
// endpoint allows one request a second; a third keeps each token in use for
// two thirds of its life, whatever lifetime CC grants.
func (t *Tokens) marginFor(tok *store.Token) time.Duration {
	if life := tok.ExpiresAt.Sub(tok.UpdatedAt); !tok.UpdatedAt.IsZero() && life > 0 && life/3 < t.margin {
		return life / 3
	}
	return t.margin
}

func (t *Tokens) fresh(tok *store.Token) bool {
	return tok.AccessToken != "" && tok.ExpiresAt.Sub(t.now()) > t.marginFor(tok) && !t.isDead(tok.AccessToken)
}

func (t *Tokens) cacheToken(ctx context.Context, tok *store.Token) {
	// Cache a little under the real expiry so that no process hands out a
	// token in its last seconds.
	ttl := tok.ExpiresAt.Sub(t.now()) - t.marginFor(tok)/2
	if err := t.cache.SetAccessToken(ctx, tok.AccessToken, ttl); err != nil {
		t.log.Warn("could not cache the CC access token", "err", err)
	}
}

// refresh runs one refresh across every process. bad, when set, is an
// access token CC rejected: a stored token other than it is good enough.
func (t *Tokens) refresh(ctx context.Context, bad string) (string, error) {
	deadline := t.now().Add(15 * time.Second)
	for {
		release, ok, err := t.cache.Lock(ctx, refreshLock, refreshHold)
		if err != nil {
			return "", err
		}
		if ok {
			tok, err := t.refreshLocked(ctx, bad)
			release()
			if !errors.Is(err, errRefreshBusy) {
				return tok, err
			}
		}
		// Someone else is refreshing; wait for them and use their result.
		if t.now().After(deadline) {
			return "", &WaitError{After: time.Second, Reason: "another process is still refreshing the CC token"}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		stored, err := t.load(ctx)
		if err != nil {
			return "", err
		}
		if stored.AccessToken != bad && t.fresh(stored) {
			return stored.AccessToken, nil
		}
	}
}

func (t *Tokens) refreshLocked(ctx context.Context, bad string) (string, error) {
	// Re-read under the lock: the holder before us may have refreshed already.
	stored, err := t.load(ctx)
	if err != nil {
		return "", err
	}
	if stored.AccessToken != bad && t.fresh(stored) {
		t.cacheToken(ctx, stored)
		return stored.AccessToken, nil
	}
	if stored.RefreshToken == "" {
		return "", ErrNotConnected
	}
	// The fence in MySQL: one refresher per stored version, even if Redis
	// lost the lock above. Each attempt claims under a name of its own, so
	// that the fence tells two goroutines of one process apart as well as
	// two processes: a name they shared could re-enter the other's claim.
	owner := randomID()
	claimed, err := t.store.ClaimRefresh(ctx, stored.Version, owner, refreshHold)
	if err != nil {
		return "", err
	}
	if !claimed {
		return "", errRefreshBusy
	}
	next, err := t.oauth.Refresh(ctx, stored.RefreshToken)
	if err != nil {
		if ccclient.IsInvalidGrant(err) {
			t.log.Error("CC refused the refresh token; a person must reconnect Constant Contact (hs2cc connect or /oauth/connect)", "err", err)
			if merr := t.store.MarkNeedsReconnect(context.WithoutCancel(ctx), stored.Version, err.Error()); merr != nil {
				t.log.Error("could not record that CC needs reconnecting", "err", merr)
			}
			return "", fmt.Errorf("%w: %w", ErrNotConnected, err)
		}
		if rerr := t.store.ReleaseRefresh(context.WithoutCancel(ctx), owner); rerr != nil {
			t.log.Warn("could not release the CC token refresh claim; it expires by itself", "err", rerr)
		}
		var oe *ccclient.OAuthError
		if errors.As(err, &oe) && oe.Temporary() {
			// The token endpoint allows one request a second and has bad
			// moments like any other; neither is the task's failure.
			return "", &WaitError{After: 2 * time.Second, Reason: "CC token endpoint: " + err.Error()}
		}
		return "", fmt.Errorf("ccauth: refresh CC token: %w", err)
	}
	saved := t.toSave(next)
	if saved.RefreshToken == "" {
		saved.RefreshToken = stored.RefreshToken
	}
	// Save before use: if this process dies now, the new pair is durable.
	if err := t.saveRefreshed(ctx, saved, stored.Version); err != nil {
		return "", err
	}
	t.cacheToken(ctx, &saved)
	t.log.Info("CC token refreshed", "expires_at", saved.ExpiresAt)
	return saved.AccessToken, nil
}

// saveRefreshed stores a pair CC has just issued. CC may already have killed
// the old refresh token, so this save is the only copy of the connection:
// it is not given up because the caller's context ended (a task deadline, a
// shutdown) and a passing MySQL fault is retried for a while before the
// error is returned. A compare-and-swap conflict is not retried: another
// writer's pair is newer.
func (t *Tokens) saveRefreshed(ctx context.Context, tok store.Token, prevVersion int64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveRefreshedFor)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		_, err := t.store.SaveToken(ctx, tok, prevVersion)
		if err == nil {
			return nil
		}
		if errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			t.log.Error("could not save the refreshed CC token; a rotating refresh token may be lost", "err", err)
			return fmt.Errorf("ccauth: save refreshed CC token: %w", err)
		}
		t.log.Warn("saving the refreshed CC token failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// saveRefreshedFor bounds saveRefreshed; it stays under the refresh lock's
// 30 s so that no second refresher starts while the save is retried.
const saveRefreshedFor = 20 * time.Second
