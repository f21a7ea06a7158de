package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/store"
)

// Metrics are the HTTP application's own Prometheus metrics: what the
// webhook answered and how fast, and the ops logins refused.
type Metrics struct {
	requests      *prometheus.CounterVec
	ack           prometheus.Histogram
	unshaped      *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	bodyMemory    prometheus.Gauge
}

// Webhook outcomes beyond the delivery verdicts of a workflow delivery
// (accepted, duplicate, stale, malformed, no_email, no_route, rejected), which are
// used as they are.
const (
	// OutcomeWebhooksAPI is a Webhooks API batch stored whole: its events
	// have verdicts of their own, one request may hold many.
	OutcomeWebhooksAPI  = "webhooks_api"
	OutcomeBadSignature = "bad_signature"
	OutcomeTooLarge     = "too_large"
	OutcomeUnavailable  = "unavailable"
	// OutcomeIncompleteBody is a body the sender broke off: not our fault,
	// so not counted as unavailable.
	OutcomeIncompleteBody = CodeIncompleteBody
	// OutcomeBusy is a body shed for want of body memory.
	OutcomeBusy  = CodeBusy
	OutcomeOther = "other"
)

// knownOutcomes start at zero, so that a rate over an outcome that has not
// happened yet is 0 rather than absent.
var knownOutcomes = []string{store.VerdictAccepted, store.VerdictDuplicate, store.VerdictStale, store.VerdictMalformed,
	store.VerdictNoEmail, store.VerdictNoRoute, store.VerdictRejected, OutcomeWebhooksAPI, OutcomeBadSignature, OutcomeTooLarge,
	OutcomeUnavailable, OutcomeIncompleteBody, OutcomeBusy}

// NewMetrics makes the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hs2cc_webhook_requests_total",
			Help: "HubSpot webhook requests by outcome: the delivery's verdict when one was stored, else why none was.",
		}, []string{"outcome"}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hs2cc_webhook_ack_seconds",
			Help: "Time from receiving a POST /webhooks/hubspot to having answered it.",
			// HubSpot gives a webhook a few seconds; the buckets are fine
			// below one second and reach past its timeout.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		unshaped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hs2cc_quarantine_unshaped_total",
			Help: "Webhook requests refused for their signature and not quarantined, since they are not shaped like HubSpot's, by reason.",
		}, []string{"reason"}),
		bodyMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hs2cc_webhook_body_memory_bytes",
			Help: "Memory reserved now by webhook bodies being read or handled, against HS2CC_BODY_MEMORY.",
		}),
	}
	for _, o := range knownOutcomes {
		m.requests.WithLabelValues(o)
	}
	for _, r := range hubspot.UnshapedReasons {
		m.unshaped.WithLabelValues(r)
	}
	m.loginFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hs2cc_ops_login_failures_total",
		Help: "Ops logins refused: bad_login (checked and wrong), limited (the address waits out its back-off), busy (no check slot free).",
	}, []string{"reason"})
	for _, r := range []string{loginBadLogin, loginLimited, loginBusy} {
		m.loginFailures.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.ack, m.unshaped, m.loginFailures, m.bodyMemory)
	return m
}

// countUnshaped counts one request not shaped like HubSpot's; with m nil
// (no metrics) it does nothing.
func (m *Metrics) countUnshaped(reason string) {
	if m != nil {
		m.unshaped.WithLabelValues(reason).Inc()
	}
}

// inc counts a refused ops login.
func (m *Metrics) inc(reason string) { m.loginFailures.WithLabelValues(reason).Inc() }

// outcomeKey finds a request's outcome slot in its context.
type outcomeKey struct{}

// noteOutcome records what became of a webhook request, for the metrics.
// The last note wins; without a slot (no metrics) it does nothing.
func noteOutcome(ctx context.Context, outcome string) {
	if p, ok := ctx.Value(outcomeKey{}).(*string); ok {
		*p = outcome
	}
}

// outcomeOfResult names what the ingest core made of a request that was
// answered 2xx: a Webhooks API batch as such (its events have verdicts of
// their own), otherwise the stored delivery's verdict, which is the truth
// about a request where its status alone is not (a 200 is a duplicate or a
// stale delivery).
func outcomeOfResult(res ingest.Result) string {
	if res.Code == ingest.CodeEvents {
		return OutcomeWebhooksAPI
	}
	return res.Verdict
}

// measureWebhook counts each webhook request by outcome and times its
// answer. It writes the error answer itself, so that the time includes it.
func measureWebhook(m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			var noted string
			r := c.Request()
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), outcomeKey{}, &noted)))
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			m.ack.Observe(time.Since(start).Seconds())
			m.requests.WithLabelValues(outcomeOf(err, noted, c.Response().Status)).Inc()
			return nil
		}
	}
}

// outcomeOf names a request's outcome. An error answer is named by its
// code, since a delivery stored before a later failure was not what the
// caller was told.
func outcomeOf(err error, noted string, status int) string {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.code {
		case CodeBadSignature:
			return OutcomeBadSignature
		case CodeMalformed:
			return store.VerdictMalformed
		case CodeNoEmail:
			return store.VerdictNoEmail
		case CodeNoRoute:
			return store.VerdictNoRoute
		case CodeFieldTooLong:
			return store.VerdictRejected
		case CodeUnavailable:
			return OutcomeUnavailable
		case CodeBodyTooLarge:
			return OutcomeTooLarge
		case CodeIncompleteBody:
			return OutcomeIncompleteBody
		case CodeBusy:
			return OutcomeBusy
		}
		return OutcomeOther
	}
	switch {
	case err != nil:
		return OutcomeOther
	case noted != "":
		return noted
	case status == http.StatusAccepted:
		return store.VerdictAccepted
	}
	return OutcomeOther
}

// bearerOK reports whether r carries "Authorization: Bearer <token>" for
// the token whose digest is want, comparing digests in constant time so
// that timing reveals neither the token nor its length.
func bearerOK(r *http.Request, want []byte) bool {
	// The scheme's name is case-insensitive (RFC 9110, section 11.1).
	auth := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare(digest([]byte(auth[len(scheme):])), want) == 1
}

// bearerAuth is BearerOnly for an Echo route, answering the one JSON error
// shape; with token empty it lets every request through.
func bearerAuth(token string) echo.MiddlewareFunc {
	want := digest([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if token == "" {
			return next
		}
		return func(c echo.Context) error {
			if !bearerOK(c.Request(), want) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hs2cc metrics"`)
				return newError(http.StatusUnauthorized, CodeUnauthorized, "a bearer token is required", nil)
			}
			return next(c)
		}
	}
}

// BearerOnly serves h only to requests that carry "Authorization: Bearer
// token"; with token empty it serves h to everyone. It is for listeners
// outside the Echo application, such as the metrics listener of `work`.
func BearerOnly(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := digest([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerOK(r, want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hs2cc metrics"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
