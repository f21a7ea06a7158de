package ccauth_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
)

// refreshLockKey is the Redis key of the cross-process refresh lock.
const refreshLockKey = "hs2cc:lock:cc-token-refresh"

// heldRefresher holds the first refresh until released, either before the
// call reaches CC or after CC answered (the refresh token already rotated,
// the new pair not saved yet), so that a test can act while it is in flight.
type heldRefresher struct {
	ccauth.Refresher
	afterCC bool
	entered chan struct{}
	release chan struct{}
	first   atomic.Bool
}

func newHeldRefresher(r ccauth.Refresher, afterCC bool) *heldRefresher {
	return &heldRefresher{Refresher: r, afterCC: afterCC, entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldRefresher) Refresh(ctx context.Context, rt string) (*ccclient.Token, error) {
	if !h.first.CompareAndSwap(false, true) {
		return h.Refresher.Refresh(ctx, rt)
	}
	if !h.afterCC {
		close(h.entered)
		<-h.release
		return h.Refresher.Refresh(ctx, rt)
	}
	tok, err := h.Refresher.Refresh(ctx, rt)
	close(h.entered)
	<-h.release
	return tok, err
}

// claimWatch counts the MySQL fence's claims of every Tokens built on it
// and signals each one once it has been decided.
type claimWatch struct {
	mu      sync.Mutex
	claims  int
	refused int
	changed chan struct{}
}

func newClaimWatch() *claimWatch { return &claimWatch{changed: make(chan struct{}, 1)} }

func (w *claimWatch) counts() (claims, refused int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.claims, w.refused
}

// watchedStore is a process's token store reporting to a claimWatch.
type watchedStore struct {
	*store.DB
	w *claimWatch
}

func (s watchedStore) ClaimRefresh(ctx context.Context, version int64, owner string, ttl time.Duration) (bool, error) {
	ok, err := s.DB.ClaimRefresh(ctx, version, owner, ttl)
	s.w.mu.Lock()
	s.w.claims++
	if err == nil && !ok {
		s.w.refused++
	}
	s.w.mu.Unlock()
	// Never block the caller: the test reads only the first few signals.
	select {
	case s.w.changed <- struct{}{}:
	default:
	}
	return ok, err
}

// TestTokensRefreshFenceHoldsWithoutTheRedisLock: Redis loses the refresh
// lock (a flush, a failover) while a refresh is in flight, and a second
// caller takes the lock. MySQL's fence must still let only the first
// refresh reach CC: a rotating refresh token spent twice answers
// invalid_grant and disconnects the bridge. Both callers end with the one
// new token.
func TestTokensRefreshFenceHoldsWithoutTheRedisLock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// sameProcess makes the second caller another goroutine of the
		// first caller's process (the same Tokens) instead of another
		// process.
		sameProcess bool
		// afterCC holds the first refresh after CC rotated the refresh
		// token instead of before the request.
		afterCC bool
	}{
		{name: "another process, first refresh not yet sent"},
		{name: "another process, first refresh answered but not saved", afterCC: true},
		{name: "same process, first refresh not yet sent", sameProcess: true},
		{name: "same process, first refresh answered but not saved", sameProcess: true, afterCC: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := noLimits
			opts.RefreshMode = ccsandbox.RefreshRotating
			// A second use of the spent refresh token would also kill the
			// new one, as CC support describes.
			opts.RevokeFamilyOnReuse = true
			te := newTokenEnv(t, opts)
			oldAccess, _ := te.connect(time.Now().Add(-time.Minute))
			watch := newClaimWatch()
			held := newHeldRefresher(te.oauth, tc.afterCC)
			first := ccauth.NewTokens(watchedStore{te.openDB(), watch}, te.cache(), held, newLogger(t), tokenMargin)
			second := first
			if !tc.sameProcess {
				second = ccauth.NewTokens(watchedStore{te.openDB(), watch}, te.cache(), te.oauth, newLogger(t), tokenMargin)
			}
			type result struct {
				tok string
				err error
			}
			firstDone, secondDone := make(chan result, 1), make(chan result, 1)
			go func() {
				tok, err := first.Token(ctx)
				firstDone <- result{tok, err}
			}()
			select {
			case <-held.entered:
			case r := <-firstDone:
				t.Fatalf("first Token returned %q, %v before refreshing", r.tok, r.err)
			case <-time.After(10 * time.Second):
				t.Fatal("the first refresh never started")
			}

			// Redis forgets the lock while its holder refreshes.
			rdb := redisClient(t, te.redisURL)
			if n, err := rdb.Exists(ctx, refreshLockKey).Result(); err != nil || n != 1 {
				t.Fatalf("refresh lock %s: exists %d, %v; want held during the refresh", refreshLockKey, n, err)
			}
			if err := rdb.Del(ctx, refreshLockKey).Err(); err != nil {
				t.Fatal(err)
			}
			go func() {
				tok, err := second.Token(ctx)
				secondDone <- result{tok, err}
			}()
			// Let the second caller take the free Redis lock and meet the
			// fence (or, were the fence missing, get through it) before the
			// first refresh goes on.
			deadline := time.After(10 * time.Second)
			for claims, _ := watch.counts(); claims < 2; claims, _ = watch.counts() {
				select {
				case <-watch.changed:
				case r := <-secondDone:
					t.Fatalf("second Token returned %q, %v without trying to refresh", r.tok, r.err)
				case <-deadline:
					t.Fatal("the second caller never tried to claim the refresh")
				}
			}
			close(held.release)

			var results []result
			for _, ch := range []chan result{firstDone, secondDone} {
				select {
				case r := <-ch:
					results = append(results, r)
				case <-time.After(20 * time.Second):
					t.Fatal("a Token call did not return")
				}
			}
			stored := te.stored()
			if stored.AccessToken == oldAccess || stored.Status != store.TokenConnected {
				t.Fatalf("stored token: refreshed %v, status %q; want refreshed and connected", stored.AccessToken != oldAccess, stored.Status)
			}
			for i, r := range results {
				if r.err != nil || r.tok != stored.AccessToken {
					t.Errorf("caller %d got %q, %v; want the stored new access token", i+1, r.tok, r.err)
				}
			}
			if _, refused := watch.counts(); refused == 0 {
				t.Error("the fence never refused the second caller")
			}
			st := te.sb.Stats()
			if st.Requests[tokenRoute] != 1 || st.TokenGrants[refreshGrant] != 1 {
				t.Errorf("token endpoint called %d times with %d refresh grants; want 1 and 1", st.Requests[tokenRoute], st.TokenGrants[refreshGrant])
			}
			if st.InvalidGrant != 0 {
				t.Errorf("%d invalid_grant answers; the refresh token was spent twice", st.InvalidGrant)
			}
			if _, err := te.client(ccclient.StaticToken(stored.AccessToken)).ContactLists(ctx); err != nil {
				t.Errorf("API call with the new token: %v", err)
			}
		})
	}
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestTokensReconnect: Connect stores a pair from a person's consent. It
// ends a needs_reconnect state (after which no process had called CC with
// the refused token again) and replaces a healthy connection, including the
// access token every process has cached; the new pair refreshes.
func TestTokensReconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup leaves a stored connection behind and returns the access
		// token the cache may hold.
		setup func(t *testing.T, te *tokenEnv, tokens *ccauth.Tokens) string
	}{
		{name: "after CC refused the refresh token", setup: func(t *testing.T, te *tokenEnv, tokens *ccauth.Tokens) string {
			ctx := context.Background()
			te.save(store.Token{AccessToken: "old", RefreshToken: "never-issued", ExpiresAt: time.Now().Add(-time.Hour)})
			if _, err := tokens.Token(ctx); !errors.Is(err, ccauth.ErrNotConnected) || !ccclient.IsInvalidGrant(err) {
				t.Fatalf("Token with a refused refresh token: %v, want ErrNotConnected with invalid_grant", err)
			}
			if st := te.stored(); st.Status != store.TokenNeedsReconnect || st.StatusReason == "" {
				t.Fatalf("status %q (%q), want needs_reconnect with a reason", st.Status, st.StatusReason)
			}
			// Marked: no process, this one or another, calls CC with the
			// refused token again.
			calls := te.sb.Stats().Requests[tokenRoute]
			for _, p := range []*ccauth.Tokens{tokens, te.process()} {
				if _, err := p.Token(ctx); !errors.Is(err, ccauth.ErrNotConnected) {
					t.Errorf("Token while needs_reconnect: %v, want ErrNotConnected", err)
				}
				if err := p.RefreshIfDue(ctx); !errors.Is(err, ccauth.ErrNotConnected) {
					t.Errorf("RefreshIfDue while needs_reconnect: %v, want ErrNotConnected", err)
				}
			}
			if n := te.sb.Stats().Requests[tokenRoute] - calls; n != 0 {
				t.Errorf("token endpoint called %d more times while needs_reconnect, want 0", n)
			}
			return ""
		}},
		{name: "replacing a healthy, cached connection", setup: func(t *testing.T, te *tokenEnv, tokens *ccauth.Tokens) string {
			access, _ := te.connect(time.Now().Add(time.Hour))
			if got, err := tokens.Token(context.Background()); err != nil || got != access {
				t.Fatalf("Token = %q, %v; want the stored one", got, err)
			}
			return access
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			te := newTokenEnv(t, noLimits)
			tokens := te.process()
			oldAccess := tc.setup(t, te, tokens)
			before := te.stored()

			access, refresh := te.sb.IssueToken("contact_data offline_access")
			expires := time.Now().Add(23 * time.Hour).Truncate(time.Second)
			callsBefore := te.sb.Stats().Requests[tokenRoute]
			if err := tokens.Connect(ctx, &ccclient.Token{AccessToken: access, RefreshToken: refresh, ExpiresAt: expires}); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			stored := te.stored()
			if stored.AccessToken != access || stored.RefreshToken != refresh || !stored.ExpiresAt.Equal(expires) {
				t.Errorf("stored pair is not the connected one (access %v, refresh %v, expires %v want %v)",
					stored.AccessToken == access, stored.RefreshToken == refresh, stored.ExpiresAt, expires)
			}
			if stored.Status != store.TokenConnected || stored.StatusReason != "" || stored.Version <= before.Version {
				t.Errorf("stored status %q (%q) version %d, want connected, no reason, after version %d",
					stored.Status, stored.StatusReason, stored.Version, before.Version)
			}
			state, err := te.db.TokenState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if state.Status != store.TokenConnected || state.ConnectedAt.IsZero() {
				t.Errorf("token state %+v, want connected with connected_at", state)
			}
			if cached, _ := te.cache().AccessToken(ctx); cached != access {
				t.Errorf("cache holds the old token (%v) or none, want the connected one", cached == oldAccess)
			}
			for _, p := range []*ccauth.Tokens{tokens, te.process()} {
				if got, err := p.Token(ctx); err != nil || got != access {
					t.Errorf("Token after Connect = %q, %v; want the connected access token", got, err)
				}
			}
			if n := te.sb.Stats().Requests[tokenRoute] - callsBefore; n != 0 {
				t.Errorf("token endpoint called %d times after Connect, want 0", n)
			}
			if _, err := te.client(tokens).ContactLists(ctx); err != nil {
				t.Errorf("API call after Connect: %v", err)
			}
			// The connected refresh token is the one used next: CC says it
			// rejected the access token, and the source refreshes.
			if err := tokens.Invalidate(ctx, access); err != nil {
				t.Fatalf("refresh after Connect: %v", err)
			}
			if after := te.stored(); after.AccessToken == access || after.Status != store.TokenConnected {
				t.Errorf("refresh after Connect did not replace the pair (status %q)", after.Status)
			}
			if st := te.sb.Stats(); st.TokenGrants[refreshGrant] != 1 {
				t.Errorf("%d refresh grants after Connect, want 1", st.TokenGrants[refreshGrant])
			}
		})
	}
}
