package ccauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/store/storetest"
)

// TestTokensRefreshErrorsByClass: what a refused refresh leaves behind
// depends on why CC refused it. The token endpoint's 429 (1 request/s) and
// its 5xx are waits, not task failures, and the next attempt tries again;
// invalid_grant marks the pair needs_reconnect so that nobody calls CC with
// it again; anything else is an ordinary failure. In every case the MySQL
// fence is released, so the next refresher is not held up for 30 s.
func TestTokensRefreshErrorsByClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		status       int
		body         string
		wantWait     bool // a *WaitError of 2 s: jobs waits without spending a retry
		wantNotConn  bool // ErrNotConnected: work waits for a person to connect
		wantStatus   string
		wantRetryHit bool // a second attempt calls the endpoint again
	}{
		{name: "429 from the token endpoint", status: 429,
			body:     `{"error":"too_many_requests","error_description":"API call exceeded rate limit due to too many requests."}`,
			wantWait: true, wantStatus: store.TokenConnected, wantRetryHit: true},
		{name: "500", status: 500, body: `{"error":"server_error","error_description":"oops"}`,
			wantWait: true, wantStatus: store.TokenConnected, wantRetryHit: true},
		{name: "503 with no OAuth body", status: 503, body: `<html>maintenance</html>`,
			wantWait: true, wantStatus: store.TokenConnected, wantRetryHit: true},
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"The refresh token is invalid or expired."}`,
			wantNotConn: true, wantStatus: store.TokenNeedsReconnect},
		{name: "invalid_client", status: 401, body: `{"error":"invalid_client","error_description":"Client authentication failed."}`,
			wantStatus: store.TokenConnected, wantRetryHit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			db := storetest.MySQL(t)
			if _, err := db.SaveToken(ctx, store.Token{AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(-time.Minute)}, 0); err != nil {
				t.Fatal(err)
			}
			oauth := ccclient.OAuthConfig{ClientID: "id", ClientSecret: "secret", AuthURL: srv.URL}
			tokens := NewTokens(db, nopCache{}, oauth, slog.New(slog.DiscardHandler), time.Minute)

			err := tokens.RefreshIfDue(ctx)
			if err == nil {
				t.Fatal("RefreshIfDue succeeded")
			}
			var w *WaitError
			if got := errors.As(err, &w); got != tc.wantWait || (got && w.After != 2*time.Second) {
				t.Errorf("WaitError = %v (%+v), want %v with a wait of 2s (err %v)", got, w, tc.wantWait, err)
			}
			if got := errors.Is(err, ErrNotConnected); got != tc.wantNotConn {
				t.Errorf("ErrNotConnected = %v, want %v (err %v)", got, tc.wantNotConn, err)
			}

			stored, err := db.LoadToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != tc.wantStatus || stored.RefreshToken != "r" {
				t.Errorf("stored status %q refresh %q, want %q and the pair kept", stored.Status, stored.RefreshToken, tc.wantStatus)
			}
			state, err := db.TokenState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !state.RefreshUntil.IsZero() {
				t.Errorf("refresh claim live until %v after the refused refresh, want it released", state.RefreshUntil)
			}

			// The next attempt (the task's retry, or another process).
			_ = tokens.RefreshIfDue(ctx)
			if got, want := calls.Load(), map[bool]int64{true: 2, false: 1}[tc.wantRetryHit]; got != want {
				t.Errorf("token endpoint called %d times after a second attempt, want %d", got, want)
			}
		})
	}
}

// TestTokensRefreshPointFitsTheToken: a token is due for refresh within
// the configured margin, or within a third of the life CC granted it when
// that is shorter, so that a short-lived token is used for two thirds of
// its life instead of refreshed at every call (CC's token endpoint allows
// one request a second).
func TestTokensRefreshPointFitsTheToken(t *testing.T) {
	t.Parallel()
	issued := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		life    time.Duration // from the save to the expiry; 0 with unknownStart
		margin  time.Duration
		elapsed time.Duration // since the save
		noStart bool          // the pair's save time is unknown
		wantDue bool
	}{
		{name: "a day-long token with the 2h margin, 2h01m left", life: 24 * time.Hour, margin: 2 * time.Hour, elapsed: 21*time.Hour + 59*time.Minute},
		{name: "a day-long token with the 2h margin, 1h59m left", life: 24 * time.Hour, margin: 2 * time.Hour, elapsed: 22*time.Hour + time.Minute, wantDue: true},
		{name: "a 3s token after 1.9s", life: 3 * time.Second, margin: 2 * time.Hour, elapsed: 1900 * time.Millisecond},
		{name: "a 3s token after 2.1s", life: 3 * time.Second, margin: 2 * time.Hour, elapsed: 2100 * time.Millisecond, wantDue: true},
		{name: "a 90s token and a 1m margin: a third is 30s", life: 90 * time.Second, margin: time.Minute, elapsed: 59 * time.Second},
		{name: "a 90s token and a 1m margin, 29s left", life: 90 * time.Second, margin: time.Minute, elapsed: 61 * time.Second, wantDue: true},
		{name: "an unknown start keeps the margin", life: 3 * time.Second, margin: 2 * time.Hour, noStart: true, wantDue: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tokens := NewTokens(nil, nopCache{}, nil, slog.New(slog.DiscardHandler), tc.margin)
			tokens.now = func() time.Time { return issued.Add(tc.elapsed) }
			tok := &store.Token{AccessToken: "a", ExpiresAt: issued.Add(tc.life), UpdatedAt: issued}
			if tc.noStart {
				tok.UpdatedAt = time.Time{}
			}
			if due := !tokens.fresh(tok); due != tc.wantDue {
				t.Errorf("due = %v, want %v (margin %s)", due, tc.wantDue, tokens.marginFor(tok))
			}
		})
	}
	t.Run("a pair CC sent without expires_in lives the documented 24h", func(t *testing.T) {
		tokens := NewTokens(nil, nopCache{}, nil, slog.New(slog.DiscardHandler), 2*time.Hour)
		tokens.now = func() time.Time { return issued }
		saved := tokens.toSave(&ccclient.Token{AccessToken: "a", RefreshToken: "r"})
		if !saved.ExpiresAt.Equal(issued.Add(24*time.Hour)) || !saved.UpdatedAt.Equal(issued) {
			t.Errorf("saved %v / %v, want an expiry 24h after %v", saved.ExpiresAt, saved.UpdatedAt, issued)
		}
	})
}

// TestConnectQueuesTheListsCheck: every connection runs the hook that
// queues the check of the rules' lists, and a hook that fails does not
// undo the connection, which is the only copy of the pair.
func TestConnectQueuesTheListsCheck(t *testing.T) {
	t.Parallel()
	for _, hookErr := range []error{nil, errors.New("redis down")} {
		ctx := context.Background()
		db := storetest.MySQL(t)
		tokens := NewTokens(db, nopCache{}, nil, slog.New(slog.DiscardHandler), time.Hour)
		calls := 0
		tokens.OnConnect(func(context.Context) error { calls++; return hookErr })
		if err := tokens.Connect(ctx, &ccclient.Token{AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("Connect with a hook answering %v: %v", hookErr, err)
		}
		if calls != 1 {
			t.Errorf("hook called %d times, want 1", calls)
		}
		if st, err := db.TokenState(ctx); err != nil || st.Status != store.TokenConnected {
			t.Errorf("token state %+v, %v; want connected", st, err)
		}
	}
}

// nopCache is a TokenCache with nothing cached and every lock free.
type nopCache struct{}

func (nopCache) AccessToken(context.Context) (string, error)                 { return "", nil }
func (nopCache) SetAccessToken(context.Context, string, time.Duration) error { return nil }
func (nopCache) DropAccessToken(context.Context, string) error               { return nil }
func (nopCache) Lock(context.Context, string, time.Duration) (func(), bool, error) {
	return func() {}, true, nil
}
