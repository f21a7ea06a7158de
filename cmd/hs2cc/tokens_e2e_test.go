package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// tokenWatch wraps the sandbox's token endpoint. It holds each refresh for
// a while and counts how many are in flight at once, so that two processes
// refreshing together would show even though the sandbox answers in
// microseconds, and it remembers every token issued so that the logs can
// be searched for them.
type tokenWatch struct {
	next http.Handler
	hold time.Duration

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	issued      []string
}

func (w *tokenWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/token") {
		w.next.ServeHTTP(rw, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	refresh := strings.Contains(string(body), "grant_type=refresh_token")
	if refresh {
		w.mu.Lock()
		w.inFlight++
		w.maxInFlight = max(w.maxInFlight, w.inFlight)
		w.mu.Unlock()
		time.Sleep(w.hold)
	}
	rec := httptest.NewRecorder()
	w.next.ServeHTTP(rec, r)
	var tok struct{ AccessToken, RefreshToken string }
	_ = json.Unmarshal(rec.Body.Bytes(), &struct {
		A *string `json:"access_token"`
		R *string `json:"refresh_token"`
	}{&tok.AccessToken, &tok.RefreshToken})
	w.mu.Lock()
	if refresh {
		w.inFlight--
	}
	for _, s := range []string{tok.AccessToken, tok.RefreshToken} {
		if s != "" {
			w.issued = append(w.issued, s)
		}
	}
	w.mu.Unlock()
	for k, v := range rec.Header() {
		rw.Header()[k] = v
	}
	rw.WriteHeader(rec.Code)
	_, _ = rw.Write(rec.Body.Bytes())
}

// TestFourWorkersShareRotatingTokens is issue 3's acceptance run: one serve
// and four work processes (in-process, through run as main calls it) on real
// MariaDB and Redis, against a sandbox that issues rotating refresh tokens
// and 2-second access tokens. CC is connected through /oauth/connect; 5,000
// enrollments are sent in two halves with Redis flushed in between, while
// imports are under way. It ends with every contact on its list once, no
// invalid_grant, no second consent (the token came back from MySQL), and
// refreshes that never overlapped.
func TestFourWorkersShareRotatingTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	dsn := storetest.MySQLDSN(t)
	redisURL := storetest.RedisURL(t)

	sb := ccsandbox.New(ccsandbox.Options{
		TokenTTL: 2 * time.Second, RefreshMode: ccsandbox.RefreshRotating, ActivityDelay: 300 * time.Millisecond,
	})
	watch := &tokenWatch{next: sb, hold: 150 * time.Millisecond}
	cc := httptest.NewServer(watch)
	defer cc.Close()
	sb.CreateList("New Agents")

	addr := freeAddr(t)
	secret := "tokens-secret-" + randomHex(6)
	env := map[string]string{
		"HS2CC_MYSQL_DSN":              dsn,
		"HS2CC_REDIS_URL":              redisURL,
		"HS2CC_ADDR":                   addr,
		"HS2CC_PUBLIC_URL":             "http://" + addr,
		"HS2CC_HUBSPOT_CLIENT_SECRET":  secret,
		"HS2CC_CC_API_URL":             cc.URL + "/v3",
		"HS2CC_CC_AUTH_URL":            cc.URL + "/oauth2/default/v1",
		"HS2CC_CC_CLIENT_ID":           ccsandbox.DefaultClientID,
		"HS2CC_CC_CLIENT_SECRET":       ccsandbox.DefaultClientSecret,
		"HS2CC_CC_REFRESH_MARGIN":      "1s",
		"HS2CC_TOKEN_REFRESH_INTERVAL": "1s",
		"HS2CC_TOKEN_KEY":              store.NewTokenKey(),
		"HS2CC_GROUP_GRACE_PERIOD":     "1s",
		"HS2CC_GROUP_MAX_DELAY":        "3s",
		"HS2CC_SWEEP_INTERVAL":         "1s",
		"HS2CC_SWEEP_AGE":              "5s",
		"HS2CC_WORKER_CONCURRENCY":     "4",
		"HS2CC_OPS_USER":               "ops",
		"HS2CC_OPS_PASSWORD":           "ops-password-" + randomHex(4),
		"HS2CC_LOG_FORMAT":             "json",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var out syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	const workers = 4
	logs := make([]*syncBuffer, workers+1)
	done := make(chan error, workers+1)
	for i := range logs {
		logs[i] = &syncBuffer{}
		cmd := "work"
		if i == 0 {
			cmd = "serve"
		}
		go func() { done <- run(ctx, []string{cmd}, getenv, logs[i], logs[i]) }()
	}
	base := "http://" + addr
	waitFor(t, "serve to answer", 15*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err := connectThroughBridge(ctx, base, env["HS2CC_OPS_USER"], env["HS2CC_OPS_PASSWORD"]); err != nil {
		t.Fatalf("connect through /oauth/connect: %v", err)
	}

	send := func(firstID int64, n int) {
		t.Helper()
		res, err := simulate(ctx, simOptions{
			URL: base + "/webhooks/hubspot", Secret: secret, Count: n, Concurrency: 8,
			FirstID: firstID, PortalID: 62515,
		})
		if err != nil {
			t.Fatalf("simulate: %v", err)
		}
		if res.Accepted != n || res.Failed != 0 || res.Rejected != 0 {
			t.Fatalf("answers: %d accepted, %d rejected, %d failed; want %d accepted", res.Accepted, res.Rejected, res.Failed, n)
		}
	}
	send(7_000_000, 2500)
	// Flush while the first half is being imported: queued tasks, the
	// cached access token, the refresh lock and the scheduler's lease all go.
	waitFor(t, "the first import to start", 60*time.Second, func() bool { return sb.Stats().Imports > 0 })
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("flushed Redis after %d imports", sb.Stats().Imports)
	send(7_100_000, 2500)

	waitFor(t, "5,000 contacts on the sandbox list", 3*time.Minute, func() bool { return onList(sb.Contacts(), "New Agents") >= 5000 })
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, "every enrollment marked imported", time.Minute, func() bool {
		counts, err := db.CountEnrollments(ctx)
		return err == nil && counts[store.StatusImported] == 5000
	})

	contacts := sb.Contacts()
	if len(contacts) != 5000 {
		t.Errorf("sandbox holds %d contacts, want 5000", len(contacts))
	}
	for _, c := range contacts {
		if len(c.ListNames) != 1 || c.ListNames[0] != "New Agents" {
			t.Errorf("contact %s on lists %v, want [New Agents]", c.Email, c.ListNames)
		}
	}
	st := sb.Stats()
	state, err := db.TokenState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watch.mu.Lock()
	maxInFlight, issued := watch.maxInFlight, append([]string(nil), watch.issued...)
	watch.mu.Unlock()
	t.Logf("token grants %v, invalid_grant %d, token 429s %d, stored version %d; imports %d, activity polls %d",
		st.TokenGrants, st.InvalidGrant, st.TokenThrottled, state.Version,
		st.Requests["POST /v3/activities/contacts_json_import"], st.Requests["GET /v3/activities/{id}"])
	if st.InvalidGrant != 0 {
		t.Errorf("sandbox answered invalid_grant %d times, want 0", st.InvalidGrant)
	}
	if st.TokenGrants["authorization_code"] != 1 {
		t.Errorf("%d authorization_code grants, want exactly the one consent (Redis's flush must not need a reconnect)",
			st.TokenGrants["authorization_code"])
	}
	if st.TokenGrants["refresh_token"] < 3 {
		t.Errorf("only %d refreshes in a run of 2-second tokens; the test did not exercise refreshing", st.TokenGrants["refresh_token"])
	}
	if maxInFlight != 1 {
		t.Errorf("%d refreshes were in flight at once, want never more than 1", maxInFlight)
	}
	// Every refresh CC granted was saved: one version for the consent and
	// one per refresh, so no rotated pair was lost between CC and MySQL.
	if want := int64(1 + st.TokenGrants["refresh_token"]); state.Version != want {
		t.Errorf("stored token version %d, want %d (1 + refreshes)", state.Version, want)
	}
	if state.Status != store.TokenConnected {
		t.Errorf("token status %q, want connected", state.Status)
	}

	cancel()
	for range logs {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("process returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a process did not shut down within 30s")
		}
	}
	var swept []string
	for _, l := range logs[1:] {
		for _, line := range strings.Split(l.String(), "\n") {
			if strings.Contains(line, `"msg":"sweep `) {
				swept = append(swept, line)
			}
		}
	}
	t.Logf("after the flush the sweep logged: %s", strings.Join(swept, "\n"))
	secrets := append(issued, secret, env["HS2CC_OPS_PASSWORD"], env["HS2CC_TOKEN_KEY"], ccsandbox.DefaultClientSecret)
	for i, l := range logs {
		text := l.String()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("process %d's log contains a secret (%.6s…)", i, s)
			}
		}
		if strings.Contains(text, "could not save the refreshed CC token") {
			t.Errorf("process %d could not save a refreshed token", i)
		}
	}
}
