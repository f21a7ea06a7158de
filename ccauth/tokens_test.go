package ccauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

const (
	tokenRoute   = "POST /oauth2/default/v1/token"
	refreshGrant = "refresh_token"
	tokenMargin  = 5 * time.Minute
)

// tokenEnv is a sandbox OAuth server with a database and a Redis database
// that any number of "processes" (Tokens over their own connections) share.
type tokenEnv struct {
	t        *testing.T
	dsn      string
	db       *store.DB
	redisURL string
	sb       *ccsandbox.Server
	srv      *httptest.Server
	oauth    ccclient.OAuthConfig
	// apiBearer, when set, is called with the bearer token of every /v3
	// request before the sandbox sees it.
	mu        sync.Mutex
	apiBearer func(token string)
	keys      *store.TokenKeys
}

func newTokenEnv(t *testing.T, opts ccsandbox.Options) *tokenEnv {
	t.Helper()
	te := &tokenEnv{t: t, dsn: storetest.MySQLDSN(t), redisURL: storetest.RedisURL(t), keys: storetest.TokenKeys(t)}
	te.db = te.openDB()
	if _, err := te.db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	te.sb = ccsandbox.New(opts)
	te.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.mu.Lock()
		check := te.apiBearer
		te.mu.Unlock()
		if check != nil && strings.HasPrefix(r.URL.Path, "/v3/") {
			check(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		}
		te.sb.ServeHTTP(w, r)
	}))
	t.Cleanup(te.srv.Close)
	te.oauth = ccclient.OAuthConfig{
		ClientID: ccsandbox.DefaultClientID, ClientSecret: ccsandbox.DefaultClientSecret,
		AuthURL: te.srv.URL + "/oauth2/default/v1",
	}
	return te
}

func (te *tokenEnv) openDB() *store.DB {
	te.t.Helper()
	db, err := store.Open(context.Background(), te.dsn)
	if err != nil {
		te.t.Fatal(err)
	}
	te.t.Cleanup(func() { db.Close() })
	// Every process of one deployment shares HS2CC_TOKEN_KEY.
	db.SetTokenKeys(te.keys)
	return db
}

// process returns a Tokens with its own MySQL pool and Redis client, as a
// separate worker process would have.
func (te *tokenEnv) process() *ccauth.Tokens {
	te.t.Helper()
	opt, err := redis.ParseURL(te.redisURL)
	if err != nil {
		te.t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	te.t.Cleanup(func() { rdb.Close() })
	return ccauth.NewTokens(te.openDB(), te.sealedCache(rdb), te.oauth, newLogger(te.t), tokenMargin)
}

// sealedCache is the token cache of a process holding the deployment's
// HS2CC_TOKEN_KEY, which seals the access token's Redis copy too.
func (te *tokenEnv) sealedCache(rdb redis.UniversalClient) *store.Redis {
	c := store.NewRedis(rdb)
	c.SetTokenKeys(te.keys)
	return c
}

func (te *tokenEnv) cache() *store.Redis {
	te.t.Helper()
	opt, err := redis.ParseURL(te.redisURL)
	if err != nil {
		te.t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	te.t.Cleanup(func() { rdb.Close() })
	return te.sealedCache(rdb)
}

// connect stores a pair the sandbox issued, expiring (as far as the bridge
// knows) at expires.
func (te *tokenEnv) connect(expires time.Time) (access, refresh string) {
	te.t.Helper()
	access, refresh = te.sb.IssueToken("contact_data offline_access")
	te.save(store.Token{AccessToken: access, RefreshToken: refresh, ExpiresAt: expires})
	return access, refresh
}

// save stores tok as if CC had issued it with its usual 24 h life: the
// refresh point depends on when the pair was saved, and a pair due within
// minutes was issued nearly a day ago.
func (te *tokenEnv) save(tok store.Token) {
	te.t.Helper()
	te.db.SetClock(func() time.Time { return tok.ExpiresAt.Add(-24 * time.Hour) })
	defer te.db.SetClock(time.Now)
	if _, err := te.db.SaveToken(context.Background(), tok, 0); err != nil {
		te.t.Fatal(err)
	}
}

func (te *tokenEnv) stored() *store.Token {
	te.t.Helper()
	tok, err := te.db.LoadToken(context.Background())
	if err != nil {
		te.t.Fatal(err)
	}
	return tok
}

func (te *tokenEnv) client(ts ccclient.TokenSource) *ccclient.Client {
	te.t.Helper()
	c, err := ccclient.New(te.srv.URL+"/v3", ts)
	if err != nil {
		te.t.Fatal(err)
	}
	return c
}

// noLimits lifts CC's 1 request/s on the token endpoint and 4/s on the API
// for tests that refresh, or call, more often on purpose.
var noLimits = ccsandbox.Options{TokenRateLimit: -1, RateLimit: -1}

func TestTokensFreshTokenServedFromCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	te := newTokenEnv(t, ccsandbox.Options{})
	access, _ := te.connect(time.Now().Add(time.Hour))
	tokens := te.process()

	got, err := tokens.Token(ctx)
	if err != nil || got != access {
		t.Fatalf("Token = %q, %v; want the stored access token", got, err)
	}
	if cached, _ := te.cache().AccessToken(ctx); cached != access {
		t.Fatalf("cache holds %q, want the access token", cached)
	}
	// MySQL now holds another token: a served token can only come from
	// the cache.
	te.save(store.Token{AccessToken: "from-mysql", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)})
	for _, ts := range []*ccauth.Tokens{tokens, te.process()} {
		if got, err := ts.Token(ctx); err != nil || got != access {
			t.Errorf("Token = %q, %v; want the cached %q", got, err, access)
		}
	}
	if n := te.sb.Stats().Requests[tokenRoute]; n != 0 {
		t.Errorf("token endpoint called %d times, want 0", n)
	}
	if err := tokens.RefreshIfDue(ctx); err != nil {
		t.Errorf("RefreshIfDue on a fresh token: %v", err)
	}
	if n := te.sb.Stats().Requests[tokenRoute]; n != 0 {
		t.Errorf("RefreshIfDue on a fresh token called the token endpoint %d times", n)
	}
}

// TestTokensCacheSealedInRedis: what the token source leaves in Redis under
// hs2cc:cc:access_token is not the bearer token and does not contain it, so
// a Redis dump or AOF file gives no access to CC; a value changed in Redis
// is a miss that falls back to MySQL, never a token sent to CC.
func TestTokensCacheSealedInRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	te := newTokenEnv(t, ccsandbox.Options{})
	access, refresh := te.connect(time.Now().Add(time.Hour))
	tokens := te.process()
	rdb := redisClient(t, te.redisURL)

	steps := []struct {
		name   string
		tamper func(raw string) string // changes the Redis value first; nil leaves it
	}{
		{name: "first read caches it"},
		{name: "a cache hit"},
		{name: "a flipped byte", tamper: func(raw string) string {
			b := []byte(raw)
			b[len(b)-3] ^= 0x04
			return string(b)
		}},
		{name: "a plain-text token planted", tamper: func(string) string { return "planted-token-not-from-cc" }},
	}
	for _, st := range steps {
		if st.tamper != nil {
			raw := rdb.Get(ctx, "hs2cc:cc:access_token").Val()
			if err := rdb.Set(ctx, "hs2cc:cc:access_token", st.tamper(raw), time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		got, err := tokens.Token(ctx)
		if err != nil || got != access {
			t.Fatalf("%s: Token = %q, %v; want the stored access token", st.name, got, err)
		}
		raw, err := rdb.Get(ctx, "hs2cc:cc:access_token").Result()
		if err != nil {
			t.Fatalf("%s: nothing cached: %v", st.name, err)
		}
		if raw == access || strings.Contains(raw, access) || strings.Contains(raw, refresh) {
			t.Errorf("%s: Redis holds the token in plain text: %q", st.name, raw)
		}
		if _, err := te.client(tokens).ContactLists(ctx); err != nil {
			t.Errorf("%s: API call with the token served: %v", st.name, err)
		}
	}
}

// TestTokensNearExpiryRefreshesOnceAndSavesFirst: a token inside the margin
// is refreshed once, and the new pair is in MySQL before CC ever sees the
// new access token, so a crash cannot lose a rotated refresh token.
func TestTokensNearExpiryRefreshesOnceAndSavesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	te := newTokenEnv(t, noLimits)
	oldAccess, oldRefresh := te.connect(time.Now().Add(time.Minute))
	var (
		mu        sync.Mutex
		used      []string
		unsavedAt []string
	)
	te.apiBearer = func(tok string) {
		stored := te.stored()
		mu.Lock()
		defer mu.Unlock()
		used = append(used, tok)
		if stored.AccessToken != tok {
			unsavedAt = append(unsavedAt, tok)
		}
	}
	tokens := te.process()
	cc := te.client(tokens)
	// Callers keep arriving every few milliseconds while the refresh
	// happens, so that a token handed out (say, from the cache) before it
	// is saved would be seen.
	const callers, calls = 20, 2
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			for range calls {
				_, err := cc.ContactLists(ctx)
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("ContactLists: %v", err)
		}
	}
	st := te.sb.Stats()
	if st.TokenGrants[refreshGrant] != 1 || st.Requests[tokenRoute] != 1 {
		t.Errorf("refresh grants %d, token requests %d; want 1 and 1", st.TokenGrants[refreshGrant], st.Requests[tokenRoute])
	}
	stored := te.stored()
	if stored.AccessToken == oldAccess || stored.RefreshToken == oldRefresh || stored.RefreshToken == "" {
		t.Errorf("stored pair not replaced: access changed %v, refresh changed %v",
			stored.AccessToken != oldAccess, stored.RefreshToken != oldRefresh)
	}
	if d := time.Until(stored.ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("stored expiry in %s, want about 24h", d)
	}
	mu.Lock()
	if len(used) != callers*calls {
		t.Errorf("CC saw %d calls, want %d", len(used), callers*calls)
	}
	for _, tok := range used {
		if tok != stored.AccessToken {
			t.Errorf("CC saw a token other than the new one (old: %v)", tok == oldAccess)
			break
		}
	}
	if len(unsavedAt) != 0 {
		t.Errorf("CC saw %d tokens that MySQL did not hold yet", len(unsavedAt))
	}
	mu.Unlock()
	// Rotating: the old refresh token is spent, the stored one works.
	if _, err := te.oauth.Refresh(ctx, oldRefresh); !ccclient.IsInvalidGrant(err) {
		t.Errorf("old refresh token: %v, want invalid_grant", err)
	}
	if _, err := te.oauth.Refresh(ctx, stored.RefreshToken); err != nil {
		t.Errorf("stored refresh token: %v", err)
	}
}

// TestTokensConcurrentRefreshIsSingleFlight: two processes with eight
// callers each find the token expired at once; exactly one refresh reaches
// CC, nobody spends the rotated token again, and everyone gets the new one.
func TestTokensConcurrentRefreshIsSingleFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// CC's own 1 request/s on the token endpoint stays on: a second refresh
	// would show up as a 429 or an invalid_grant.
	te := newTokenEnv(t, ccsandbox.Options{RefreshMode: ccsandbox.RefreshRotating})
	oldAccess, _ := te.connect(time.Now().Add(-time.Minute))
	procs := []*ccauth.Tokens{te.process(), te.process()}

	const perProcess = 8
	start := make(chan struct{})
	type result struct {
		tok string
		err error
	}
	results := make(chan result, perProcess*len(procs))
	var wg sync.WaitGroup
	for _, p := range procs {
		for range perProcess {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tok, err := p.Token(ctx)
				results <- result{tok, err}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(results)

	stored := te.stored()
	if stored.AccessToken == oldAccess {
		t.Fatal("token was not refreshed")
	}
	n := 0
	for r := range results {
		n++
		if r.err != nil || r.tok != stored.AccessToken {
			t.Errorf("caller got %q, %v; want the new access token", r.tok, r.err)
		}
	}
	if n != perProcess*len(procs) {
		t.Fatalf("%d results, want %d", n, perProcess*len(procs))
	}
	st := te.sb.Stats()
	if st.TokenGrants[refreshGrant] != 1 || st.Requests[tokenRoute] != 1 {
		t.Errorf("refresh grants %d, token requests %d; want exactly 1 and 1", st.TokenGrants[refreshGrant], st.Requests[tokenRoute])
	}
	if st.InvalidGrant != 0 || st.TokenThrottled != 0 {
		t.Errorf("invalid_grant %d, throttled %d; want 0 and 0", st.InvalidGrant, st.TokenThrottled)
	}
	// The one refresh is usable against the API.
	if _, err := te.client(procs[1]).ContactLists(ctx); err != nil {
		t.Errorf("API call with the refreshed token: %v", err)
	}
}

// TestTokensRefreshModes refreshes twice in each of CC's refresh-token
// modes: rotating saves a new refresh token each time, long-lived keeps
// the one it has, and both keep working.
func TestTokensRefreshModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ccsandbox.RefreshRotating, ccsandbox.RefreshLongLived} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := noLimits
			opts.RefreshMode = mode
			te := newTokenEnv(t, opts)
			_, firstRefresh := te.connect(time.Now().Add(-time.Minute))
			tokens := te.process()
			cache := te.cache()
			prevRefresh := firstRefresh
			for round := 1; round <= 2; round++ {
				before := te.stored()
				got, err := tokens.Token(ctx)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				after := te.stored()
				if got != after.AccessToken || got == before.AccessToken {
					t.Fatalf("round %d: got %q, stored %q, before %q; want a new stored token", round, got, after.AccessToken, before.AccessToken)
				}
				if after.Version != before.Version+1 {
					t.Errorf("round %d: version %d after %d, want one save", round, after.Version, before.Version)
				}
				sameRefresh := after.RefreshToken == prevRefresh
				if want := mode == ccsandbox.RefreshLongLived; sameRefresh != want {
					t.Errorf("round %d: refresh token kept = %v, want %v", round, sameRefresh, want)
				}
				if _, err := te.client(ccclient.StaticToken(got)).ContactLists(ctx); err != nil {
					t.Errorf("round %d: API call: %v", round, err)
				}
				prevRefresh = after.RefreshToken
				// Expire it again for the next round: as far as the bridge
				// knows the token is over, and the cache has lost it.
				if _, err := te.db.SaveToken(ctx, store.Token{AccessToken: after.AccessToken, RefreshToken: after.RefreshToken,
					ExpiresAt: time.Now().Add(-time.Minute)}, after.Version); err != nil {
					t.Fatal(err)
				}
				if err := cache.DropAccessToken(ctx, got); err != nil {
					t.Fatal(err)
				}
			}
			st := te.sb.Stats()
			if st.TokenGrants[refreshGrant] != 2 || st.InvalidGrant != 0 {
				t.Errorf("refresh grants %d, invalid_grant %d; want 2 and 0", st.TokenGrants[refreshGrant], st.InvalidGrant)
			}
		})
	}
}

// TestTokensNotConnected: when no usable refresh token exists the source
// says ErrNotConnected (a person must reconnect) and leaves the stored pair
// alone; a token endpoint that is merely down is not that.
func TestTokensNotConnected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup prepares the stored token; it may spend the refresh token.
		setup            func(te *tokenEnv)
		authURL          string // overrides the OAuth root when set
		wantNotConnected bool
		wantInvalidGrant bool // the error also carries CC's invalid_grant
		wantTokenCalls   int
	}{
		{name: "nothing stored", setup: func(*tokenEnv) {}, wantNotConnected: true},
		{name: "unknown refresh token", setup: func(te *tokenEnv) {
			te.save(store.Token{AccessToken: "old", RefreshToken: "never-issued", ExpiresAt: time.Now().Add(-time.Hour)})
		}, wantNotConnected: true, wantInvalidGrant: true, wantTokenCalls: 1},
		{name: "refresh token already rotated away", setup: func(te *tokenEnv) {
			_, refresh := te.connect(time.Now().Add(-time.Hour))
			if _, err := te.oauth.Refresh(context.Background(), refresh); err != nil {
				te.t.Fatal(err)
			}
		}, wantNotConnected: true, wantInvalidGrant: true, wantTokenCalls: 1},
		{name: "refresh token idle for 180 days", setup: func(te *tokenEnv) {
			te.connect(time.Now().Add(-time.Hour))
			te.sb.Advance(181 * 24 * time.Hour)
		}, wantNotConnected: true, wantInvalidGrant: true, wantTokenCalls: 1},
		{name: "expired pair without a refresh token", setup: func(te *tokenEnv) {
			te.save(store.Token{AccessToken: "a", ExpiresAt: time.Now().Add(-time.Hour)})
		}, wantNotConnected: true},
		{name: "token endpoint down is not a disconnection", setup: func(te *tokenEnv) {
			te.connect(time.Now().Add(-time.Hour))
		}, authURL: "down", wantNotConnected: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			te := newTokenEnv(t, noLimits)
			tc.setup(te)
			if tc.authURL == "down" {
				down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"try later"}`))
				}))
				t.Cleanup(down.Close)
				te.oauth.AuthURL = down.URL + "/oauth2/default/v1"
			}
			before, _ := te.db.LoadToken(ctx)
			calls := func() int { return te.sb.Stats().Requests[tokenRoute] }
			callsBefore := calls()
			tokens := te.process()
			tok, err := tokens.Token(ctx)
			if err == nil {
				t.Fatalf("Token = %q, want an error", tok)
			}
			if got := errors.Is(err, ccauth.ErrNotConnected); got != tc.wantNotConnected {
				t.Errorf("errors.Is(%v, ErrNotConnected) = %v, want %v", err, got, tc.wantNotConnected)
			}
			if got := ccclient.IsInvalidGrant(err); got != tc.wantInvalidGrant {
				t.Errorf("IsInvalidGrant(%v) = %v, want %v", err, got, tc.wantInvalidGrant)
			}
			if got := calls() - callsBefore; tc.authURL == "" && got != tc.wantTokenCalls {
				t.Errorf("token endpoint called %d times, want %d", got, tc.wantTokenCalls)
			}
			if err := tokens.RefreshIfDue(ctx); errors.Is(err, ccauth.ErrNotConnected) != tc.wantNotConnected || err == nil {
				t.Errorf("RefreshIfDue: %v, want an error with ErrNotConnected = %v", err, tc.wantNotConnected)
			}
			// A refused refresh token is marked, so the second attempt
			// (any process's) does not call CC with it again.
			if got := calls() - callsBefore; tc.authURL == "" && got != tc.wantTokenCalls {
				t.Errorf("after RefreshIfDue the token endpoint was called %d times, want still %d", got, tc.wantTokenCalls)
			}
			after, _ := te.db.LoadToken(ctx)
			if before != nil {
				wantStatus := store.TokenConnected
				if tc.wantInvalidGrant {
					wantStatus = store.TokenNeedsReconnect
				}
				if after.Status != wantStatus {
					t.Errorf("stored status %q, want %q", after.Status, wantStatus)
				}
				// The pair itself is kept: it is evidence, and a reconnect
				// replaces it.
				before.Status, before.StatusReason, after.Status, after.StatusReason = "", "", "", ""
			}
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("stored token changed from %+v to %+v", before, after)
			}
		})
	}
}

// TestTokensInvalidateAfter401: CC expired the access token before the
// bridge expected (the sandbox clock jumps a day); the client's 401 makes
// the source refresh once, and the call is retried and succeeds, also when
// several callers in two processes hit the 401 together.
func TestTokensInvalidateAfter401(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	te := newTokenEnv(t, noLimits)
	first, _ := te.connect(time.Now().Add(23 * time.Hour))
	procs := []*ccauth.Tokens{te.process(), te.process()}
	clients := []*ccclient.Client{te.client(procs[0]), te.client(procs[1])}

	// Warm the caches so that both processes hold the soon-dead token.
	for _, p := range procs {
		if tok, err := p.Token(ctx); err != nil || tok != first {
			t.Fatalf("Token = %q, %v", tok, err)
		}
	}
	rounds := []struct {
		name    string
		callers int // per process
	}{
		{"one caller", 1},
		{"four callers in each of two processes", 4},
	}
	prev := first
	for i, r := range rounds {
		te.sb.Advance(25 * time.Hour)
		before := te.sb.Stats()
		var wg sync.WaitGroup
		errs := make(chan error, r.callers*len(clients))
		for ci, c := range clients {
			if i == 0 && ci > 0 {
				continue
			}
			for range r.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.ContactLists(ctx)
					errs <- err
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("%s: call after the token died: %v", r.name, err)
			}
		}
		after := te.sb.Stats()
		if g := after.TokenGrants[refreshGrant] - before.TokenGrants[refreshGrant]; g != 1 {
			t.Errorf("%s: %d refresh grants, want 1", r.name, g)
		}
		if after.InvalidGrant != 0 {
			t.Errorf("%s: %d invalid_grant", r.name, after.InvalidGrant)
		}
		if after.Unauthorized == before.Unauthorized {
			t.Errorf("%s: CC never answered 401; the case tests nothing", r.name)
		}
		stored := te.stored()
		if stored.AccessToken == prev {
			t.Errorf("%s: stored token not replaced", r.name)
		}
		for _, p := range procs {
			if tok, err := p.Token(ctx); err != nil || tok != stored.AccessToken {
				t.Errorf("%s: Token after the refresh = %q, %v; want the stored one", r.name, tok, err)
			}
		}
		prev = stored.AccessToken
	}
}

// flakyTokenStore fails the first saves, as MySQL does during a failover.
type flakyTokenStore struct {
	*store.DB
	mu    sync.Mutex
	fails int
}

func (f *flakyTokenStore) SaveToken(ctx context.Context, t store.Token, prev int64) (int64, error) {
	f.mu.Lock()
	fail := f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return 0, errors.New("driver: bad connection")
	}
	return f.DB.SaveToken(ctx, t, prev)
}

// TestTokensSaveOfARotatedPairSurvives: once CC has rotated the refresh
// token, the new pair must reach MySQL even if the first saves fail or the
// caller gives up, or the connection is lost until a person reconnects.
func TestTokensSaveOfARotatedPairSurvives(t *testing.T) {
	cases := []struct {
		name   string
		fails  int
		cancel bool // the caller's context ends as soon as the refresh is sent
	}{
		{name: "two failed saves are retried", fails: 2},
		{name: "a cancelled caller does not stop the save", cancel: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te := newTokenEnv(t, noLimits)
			_, oldRefresh := te.connect(time.Now().Add(time.Minute)) // inside the margin: due
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fs := &flakyTokenStore{DB: te.openDB(), fails: tc.fails}
			oauth := cancellingRefresher{Refresher: te.oauth, cancel: cancel, on: tc.cancel}
			tokens := ccauth.NewTokens(fs, te.cache(), oauth, newLogger(t), tokenMargin)
			_ = tokens.RefreshIfDue(ctx)
			got := te.stored()
			if got.RefreshToken == oldRefresh || got.Version != 2 {
				t.Fatalf("stored pair is still the old one (version %d): the rotated refresh token was lost", got.Version)
			}
			if n := te.sb.Stats().TokenGrants[refreshGrant]; n != 1 {
				t.Errorf("%d refresh grants, want 1", n)
			}
		})
	}
}

// cancellingRefresher cancels the caller's context right after CC answers.
type cancellingRefresher struct {
	ccauth.Refresher
	cancel func()
	on     bool
}

func (c cancellingRefresher) Refresh(ctx context.Context, rt string) (*ccclient.Token, error) {
	tok, err := c.Refresher.Refresh(ctx, rt)
	if c.on {
		c.cancel()
	}
	return tok, err
}
