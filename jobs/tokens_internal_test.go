package jobs

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

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
		wantWait     bool // a *waitError: not a failure, retried in 2 s
		wantNotConn  bool // ErrNotConnected: not a failure, retried in a minute
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
			var w *waitError
			if got := errors.As(err, &w); got != tc.wantWait {
				t.Errorf("waitError = %v, want %v (err %v)", got, tc.wantWait, err)
			}
			if got := errors.Is(err, ErrNotConnected); got != tc.wantNotConn {
				t.Errorf("ErrNotConnected = %v, want %v (err %v)", got, tc.wantNotConn, err)
			}
			wantFailure := !tc.wantWait && !tc.wantNotConn
			if got := isFailure(err); got != wantFailure {
				t.Errorf("isFailure = %v, want %v (err %v)", got, wantFailure, err)
			}
			d := retryDelay(time.Now)(0, err, asynq.NewTask(TypeTokenRefresh, nil))
			switch {
			case tc.wantWait && d != 2*time.Second:
				t.Errorf("retry delay %s, want 2s", d)
			case tc.wantNotConn && d != time.Minute:
				t.Errorf("retry delay %s, want 1m", d)
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
