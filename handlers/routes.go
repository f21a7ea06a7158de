package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/store"
)

// Store is what the handlers need from the store: what the ingest core
// stores, and the quarantine.
type Store interface {
	ingest.Store
	// Quarantine keeps a request refused for its signature, or returns
	// store.ErrQuarantineFull when that would pass limit.
	Quarantine(ctx context.Context, q *store.Quarantined, limit store.QuarantineCap) error
	// AddUnshaped adds to the counts of refused requests not shaped like
	// HubSpot's, which are counted instead of quarantined.
	AddUnshaped(ctx context.Context, counts []store.UnshapedCount) error
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
	Router ingest.Router
	// MaxBodyBytes is the largest webhook body taken, DefaultMaxBodyBytes
	// when zero. A larger one is answered 413 and recorded as a too_large
	// delivery; the quarantine keeps bodies whole up to it.
	MaxBodyBytes int64
	// BodyMemoryBytes is the memory every webhook body in flight may hold
	// together, DefaultBodyMemoryBytes when zero; it must hold at least
	// one body of MaxBodyBytes. A body that cannot get memory within two
	// seconds is answered 503 busy.
	BodyMemoryBytes int64
	// QuarantineCap bounds the requests kept after a signature failure;
	// a zero field takes store.DefaultQuarantineCap's.
	QuarantineCap store.QuarantineCap
	// OpsUser and OpsPassword are the simple admin login to /ops and
	// /oauth/connect; with either empty it is off.
	OpsUser, OpsPassword string
	// OpsAccounts are further ops logins, each with a role and a bcrypt
	// hash. With neither these nor the simple login, the ops routes are
	// not served at all rather than served open.
	OpsAccounts []OpsAccount
	// BehindFly makes the ops login charge failures to the address in
	// Fly-Client-IP, which Fly's proxy sets; otherwise only the socket's
	// peer counts, since any header is the caller's to choose.
	BehindFly bool
	// LoginLimits bound failed ops logins per address; zero fields take
	// DefaultLoginLimits'.
	LoginLimits LoginLimits
	// Queues is the Asynqmon UI for admins, built for the root path
	// /ops/queues.
	Queues http.Handler
	// QueuesReadOnly is Asynqmon built with ReadOnly for the same root
	// path, served to viewers there; with it nil, viewers get no queues.
	QueuesReadOnly http.Handler
	// Ops supplies the figures of /ops and /ops/status.json; with it nil,
	// neither is served.
	Ops OpsData
	// CCBudget and Quarantine add their figures to /ops; each is shown as
	// n/a when nil.
	CCBudget   CCBudget
	Quarantine QuarantineSizer
	// HubSpotCalls adds HubSpot's calls today to the write-back's section
	// when the write-back is on.
	HubSpotCalls HubSpotCalls
	// Now is the clock of the ages /ops shows; time.Now when nil.
	Now func() time.Time
	// Connector runs the Constant Contact connection at /oauth/connect and
	// /oauth/callback; with it nil, neither route is served.
	Connector Connector
	// Metrics is served at GET /metrics when set, only to callers with
	// "Authorization: Bearer MetricsToken" when that is set.
	Metrics      http.Handler
	MetricsToken string
	// Trace tells one contact's story at /ops/trace, with a search box on
	// /ops; with it nil, neither is served.
	Trace Tracer
	// WebhookMetrics counts and times the webhook's answers when set.
	WebhookMetrics *Metrics
	Ready          []Check
	Logger         *slog.Logger

	// readiness runs Ready for /readyz and /ops; New makes it.
	readiness *readiness
}

// New builds the HTTP application.
func New(cfg Config, st Store, enq ingest.Enqueuer) *echo.Echo {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.readiness = newReadiness(cfg.Ready, cfg.Logger)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(middleware.RequestID())
	e.Use(requestLog(cfg.Logger))
	e.Use(middleware.Recover())

	core := ingest.New(ingest.Config{Fields: cfg.Fields, Lists: cfg.Lists, Router: cfg.Router, Logger: cfg.Logger}, st, enq)
	if m := cfg.WebhookMetrics; m != nil {
		e.POST("/webhooks/hubspot", handleWebhook(cfg, st, core), measureWebhook(m))
	} else {
		e.POST("/webhooks/hubspot", handleWebhook(cfg, st, core))
	}
	e.GET("/healthz", handleHealth())
	e.GET("/readyz", handleReady(cfg.readiness))

	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics), bearerAuth(cfg.MetricsToken))
	}

	// opsAuth is shared by every route for people rather than machines; it
	// stays nil without credentials, and each such route is then left out.
	auth, err := newOpsAuth(cfg)
	if err != nil {
		// Only making the dummy hash can fail, for want of randomness;
		// auth is then nil, and no login is safer than one that leaks
		// timing.
		cfg.Logger.Error("ops pages are disabled: could not prepare the ops logins", "err", err)
	}
	var opsAuth echo.MiddlewareFunc
	if auth != nil {
		opsAuth = auth.middleware()
	}
	registerOps(e, cfg, opsAuth)

	// The profiles need only the login: they are for debugging this process,
	// whatever else ops is configured to show.
	if opsAuth != nil {
		registerPprof(e, opsAuth)
	}

	// The callback is served only alongside /oauth/connect: the states it
	// accepts are made by Begin and nowhere else, so without /oauth/connect
	// it could only ever refuse.
	if cfg.Connector != nil && opsAuth != nil {
		// noStore comes first so that the 401 of a wrong password carries
		// its headers too.
		// sameSiteOnly comes before the login so that another site's
		// request is refused without a password check.
		e.GET("/oauth/connect", handleConnect(cfg), noStore, sameSiteOnly, opsAuth, requireAdmin)
		// The callback has no basic auth: CC's redirect brings the browser
		// back without it, and the single-use state, bound to the nonce
		// cookie /oauth/connect set, is its protection.
		e.GET("/oauth/callback", handleCallback(cfg), noStore)
	}
	return e
}

// requestLog logs one line per request with ids only: no bodies, no emails.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRequestID: true,
		// The error handler must run before the line is written: a handler
		// that returns an error has written nothing yet, and the line would
		// otherwise say 200 for every 401, 404 or 503 it answered.
		HandleError: true,
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

// registerOps serves the pages for people under /ops behind the login, or
// says in the log why they are left out.
func registerOps(e *echo.Echo, cfg Config, opsAuth echo.MiddlewareFunc) {
	switch {
	case opsAuth == nil:
		cfg.Logger.Warn("ops pages are disabled: set HS2CC_OPS_USER and HS2CC_OPS_PASSWORD, or HS2CC_OPS_USERS, to serve /ops, /oauth/connect and /debug/pprof")
	case cfg.Queues == nil && cfg.Ops == nil:
		cfg.Logger.Warn("ops pages are disabled: no queue UI and no ops figures are configured")
	default:
		ops := e.Group("/ops", opsHeaders, opsAuth)
		if cfg.Ops != nil {
			page := handleOpsPage(cfg)
			ops.GET("", page, noStore)
			ops.GET("/", page, noStore)
			ops.GET("/status.json", handleOpsStatus(cfg), noStore)
			if cfg.Trace != nil {
				ops.GET("/trace", handleTracePage(cfg), noStore)
			}
		} else {
			cfg.Logger.Warn("/ops is not served: no ops figures are configured")
		}
		if cfg.Queues != nil {
			queues := queuesByRole(cfg.Queues, cfg.QueuesReadOnly)
			ops.Any("/queues", queues, crossOrigin())
			ops.Any("/queues/*", queues, crossOrigin())
		} else {
			cfg.Logger.Warn("/ops/queues is not served: no queue UI is configured")
		}
	}
}
