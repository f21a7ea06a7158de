package handlers

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/store"
)

// Store is what the handlers need from the store.
type Store interface {
	Ingest(ctx context.Context, d *store.Delivery, e *store.Enrollment) (store.IngestResult, error)
	RecordDelivery(ctx context.Context, d *store.Delivery) error
}

// Enqueuer queues an enrollment version for import; *jobs.Enqueuer is one.
type Enqueuer interface {
	EnqueueEnrollment(ctx context.Context, id int64, version int, lists []string) error
}

// Router decides which CC lists an enrollment goes to.
type Router interface {
	Lists(e *store.Enrollment) ([]string, error)
}

// Check is one readiness probe: MySQL, Redis, the schema.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Config holds what the routes close over.
type Config struct {
	// PublicURL is the base URL HubSpot calls (scheme and host, and a path
	// prefix if a proxy strips one). The signed URI is this base plus the
	// request's path and query as received.
	PublicURL string
	Verifier  *hubspot.Verifier
	Fields    hubspot.FieldNames
	// Lists are the CC list names every enrollment goes to, unless Router
	// is set.
	Lists []string
	// Router picks each enrollment's CC lists from its fields and
	// properties; *routing.Rules is one.
	Router Router
	// OpsUser and OpsPassword guard /ops and /oauth/connect; with either
	// empty, those routes are not served at all rather than served open.
	OpsUser, OpsPassword string
	// Queues is the Asynqmon UI, built for the root path /ops/queues.
	Queues http.Handler
	// Connector runs the Constant Contact connection at /oauth/connect and
	// /oauth/callback; with it nil, neither route is served.
	Connector Connector
	// BadState is the error Connector.Complete returns (possibly wrapped)
	// for an unknown, expired or used state, jobs.ErrBadState; it is a
	// field so that handlers need not import jobs.
	BadState error
	// Metrics is served at GET /metrics when set.
	Metrics http.Handler
	Ready   []Check
	Logger  *slog.Logger
}

// MaxBodyBytes is the largest webhook body accepted. HubSpot's "include all
// properties" profile of a contact is a few KB; 1 MiB leaves ample room.
const MaxBodyBytes = 1 << 20

// New builds the HTTP application.
func New(cfg Config, st Store, enq Enqueuer) *echo.Echo {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(middleware.RequestID())
	e.Use(requestLog(cfg.Logger))
	e.Use(middleware.Recover())

	e.POST("/webhooks/hubspot", handleWebhook(cfg, st, enq))
	e.GET("/healthz", handleHealth())
	e.GET("/readyz", handleReady(cfg.Ready))

	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}

	// opsAuth is shared by every route for people rather than machines; it
	// stays nil without credentials, and each such route is then left out.
	var opsAuth echo.MiddlewareFunc
	if cfg.OpsUser != "" && cfg.OpsPassword != "" {
		opsAuth = middleware.BasicAuthWithConfig(middleware.BasicAuthConfig{
			Realm:     "hs2cc ops",
			Validator: opsValidator(cfg.OpsUser, cfg.OpsPassword),
		})
	}
	switch {
	case opsAuth == nil:
		cfg.Logger.Warn("ops pages are disabled: set HS2CC_OPS_USER and HS2CC_OPS_PASSWORD to serve /ops/queues and /oauth/connect")
	case cfg.Queues == nil:
		cfg.Logger.Warn("ops pages are disabled: no queue UI is configured for /ops/queues")
	default:
		ops := e.Group("/ops", opsAuth)
		queues := echo.WrapHandler(cfg.Queues)
		ops.Any("/queues", queues)
		ops.Any("/queues/*", queues)
	}

	// The callback is served only alongside /oauth/connect: the states it
	// accepts are made by Begin and nowhere else, so without /oauth/connect
	// it could only ever refuse.
	if cfg.Connector != nil && opsAuth != nil {
		if cfg.BadState == nil {
			cfg.Logger.Warn("no BadState error is configured: an expired or used OAuth state will be answered 503, not 400")
		}
		// noStore comes first so that the 401 of a wrong password carries
		// its headers too.
		e.GET("/oauth/connect", handleConnect(cfg.Connector), noStore, opsAuth)
		// The callback has no basic auth: CC's redirect brings the browser
		// back without it, and the single-use state is its protection.
		e.GET("/oauth/callback", handleCallback(cfg), noStore)
	}
	return e
}

// opsValidator checks basic-auth credentials in constant time, comparing
// both fields every time so that timing reveals neither.
func opsValidator(user, password string) middleware.BasicAuthValidator {
	return func(u, p string, _ echo.Context) (bool, error) {
		uok := subtle.ConstantTimeCompare([]byte(u), []byte(user))
		pok := subtle.ConstantTimeCompare([]byte(p), []byte(password))
		return uok&pok == 1, nil
	}
}

// requestLog logs one line per request with ids only: no bodies, no emails.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRequestID: true,
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			// Probes and scrapes come every few seconds and would drown
			// the requests worth reading.
			return p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/ops/queues/static")
		},
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "http request",
				slog.String("method", v.Method), slog.String("path", v.URIPath), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}
