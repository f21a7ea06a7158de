package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/store"
)

// tokenStater reads the CC token's state without opening it.
type tokenStater interface {
	TokenState(ctx context.Context) (*store.TokenState, error)
}

// expiredGrace is how long past its expiry, beyond one period of the
// periodic refresh check, an access token may sit before readiness fails.
// A token shorter-lived than that period is refreshed when work needs it
// and otherwise at the next check, so an idle bridge holds an expired one
// for up to a period; longer than that means no worker is refreshing.
const expiredGrace = 5 * time.Minute

// tokenReady is the cc_token readiness check: the bridge is not ready to
// deliver while CC is unconnected or needs reconnecting, or while no worker
// refreshes the token (refreshEvery is how often workers check it). The
// error text is what ops read in /readyz, so it says what to do.
func tokenReady(st tokenStater, now func() time.Time, refreshEvery time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		s, err := st.TokenState(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("not connected: connect Constant Contact at /oauth/connect or with `hs2cc connect`")
		}
		if err != nil {
			return err
		}
		if s.Status == store.TokenNeedsReconnect {
			return fmt.Errorf("needs reconnect since %s (%s): connect Constant Contact again at /oauth/connect or with `hs2cc connect`",
				s.StatusAt.UTC().Format(time.RFC3339), s.StatusReason)
		}
		if late := now().Sub(s.ExpiresAt); late > refreshEvery+expiredGrace {
			return fmt.Errorf("access token expired %s ago and was not refreshed: is a worker running?", late.Round(time.Second))
		}
		return nil
	}
}

// tokenCollector exports the token's state at scrape time, read from MySQL,
// so every process reports the same truth whichever refreshed last.
type tokenCollector struct {
	st             tokenStater
	now            func() time.Time
	connected      *prometheus.Desc
	needsReconnect *prometheus.Desc
	expiry         *prometheus.Desc
	up             *prometheus.Desc
}

func newTokenCollector(st tokenStater, now func() time.Time) *tokenCollector {
	return &tokenCollector{
		st: st, now: now,
		connected: prometheus.NewDesc("hs2cc_cc_connected",
			"1 when a CC token pair is stored and not refused by CC.", nil, nil),
		needsReconnect: prometheus.NewDesc("hs2cc_cc_needs_reconnect",
			"1 when CC refused the refresh token and a person must connect CC again.", nil, nil),
		expiry: prometheus.NewDesc("hs2cc_cc_token_expiry_seconds",
			"Seconds until the stored CC access token expires (negative once expired).", nil, nil),
		up: prometheus.NewDesc("hs2cc_cc_token_state_up",
			"1 when the token state could be read from MySQL for this scrape.", nil, nil),
	}
}

func (c *tokenCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connected
	ch <- c.needsReconnect
	ch <- c.expiry
	ch <- c.up
}

func (c *tokenCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.st.TokenState(ctx)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		gauge(c.up, 1)
		gauge(c.connected, 0)
		gauge(c.needsReconnect, 0)
	case err != nil:
		gauge(c.up, 0)
	default:
		gauge(c.up, 1)
		needs := s.Status == store.TokenNeedsReconnect
		gauge(c.connected, boolFloat(!needs))
		gauge(c.needsReconnect, boolFloat(needs))
		gauge(c.expiry, s.ExpiresAt.Sub(c.now()).Seconds())
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
