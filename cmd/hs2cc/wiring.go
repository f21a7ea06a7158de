package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/hs2cc/hs2cc/ccauth"
	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/hubspot/crm"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/trace"
)

// deps are the connections serve and work share.
type deps struct {
	db       *store.DB
	redisOpt *redis.Options
	rdb      *redis.Client
	cache    *store.Redis
	// aq is the process's one asynq client, behind enq; every producer of
	// tasks in the process uses it.
	aq  *asynq.Client
	enq *jobs.Enqueuer
}

// openStore opens MySQL for a command that needs nothing else and refuses an
// old schema.
func openStore(ctx context.Context, cfg config) (*store.DB, error) {
	if err := cfg.requireMySQL(); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.HubSpotToken != "" {
		db.EnableWriteback()
	}
	return db, nil
}

// connect opens MySQL and Redis and refuses an old schema.
func connect(ctx context.Context, cfg config) (*deps, error) {
	db, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opt, err := store.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		db.Close()
		return nil, err
	}
	rdb := redis.NewClient(opt)
	cache := store.NewRedis(rdb)
	// The same keys seal the pair in MySQL and the access token's copy in
	// Redis; without them neither is stored.
	if cfg.TokenKeys != nil {
		db.SetTokenKeys(cfg.TokenKeys)
		cache.SetTokenKeys(cfg.TokenKeys)
	}
	aq := asynq.NewClient(asynqOpt(opt))
	return &deps{db: db, redisOpt: opt, rdb: rdb, cache: cache, aq: aq, enq: jobs.NewEnqueuer(aq)}, nil
}

// newIngester builds the webhook's code after the signature, configured as
// serve configures it, for the commands that store bodies without HTTP
// (quarantine and delivery replays, simulate --in-process).
func newIngester(cfg config, d *deps, log *slog.Logger) *ingest.Core {
	return ingest.New(ingest.Config{Fields: cfg.Fields, Lists: cfg.Lists, Router: cfg.Rules, Logger: log}, d.db, d.enq)
}

// oauthConfig describes the CC app for the connect flow and refreshes.
// Every call to CC's token endpoint, which allows one request a second per
// app, waits for a slot shared in Redis by every process.
func (d *deps) oauthConfig(cfg config) ccclient.OAuthConfig {
	return ccclient.OAuthConfig{ClientID: cfg.CCClientID, ClientSecret: cfg.CCClientSecret, AuthURL: cfg.CCAuthURL,
		RedirectURL: cfg.CCRedirectURL, Limiter: store.NewTokenEndpointLimiter(d.rdb)}
}

// tokens builds the shared CC token source of one process. A connection
// made through it (the callback, `hs2cc connect`, a reconnect) queues a
// check of the rules' lists, which a worker runs at once.
func (d *deps) tokens(cfg config, log *slog.Logger) *ccauth.Tokens {
	t := ccauth.NewTokens(d.db, d.cache, d.oauthConfig(cfg), log, cfg.CCRefreshMargin)
	t.OnConnect(d.enq.EnqueueListsCheck)
	return t
}

func (d *deps) close() {
	d.aq.Close()
	d.rdb.Close()
	d.db.Close()
}

// asynqOpt turns the Redis options into asynq's connection option.
func asynqOpt(o *redis.Options) asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
}

// hubSpotLimits is the one HubSpot rate and daily limit every process
// shares through Redis.
func (d *deps) hubSpotLimits(cfg config) *store.HubSpotLimits {
	return store.NewHubSpotLimits(d.rdb, cfg.HubSpotRate, cfg.HubSpotDaily)
}

// newHTTPApp builds the HTTP application of `serve`, whose /metrics serves
// reg after adding serve's own metrics to it. The returned close func
// releases the inspector and Asynqmon's connections.
func newHTTPApp(cfg config, d *deps, log *slog.Logger, reg *prometheus.Registry) (http.Handler, func()) {
	mon := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: asynqOpt(d.redisOpt)})
	// Viewers get their own Asynqmon, read-only, on the same path; it holds
	// Redis connections of its own, so it is made only when someone can
	// use it.
	var monRO *asynqmon.HTTPHandler
	var queuesRO http.Handler
	if slices.ContainsFunc(cfg.OpsAccounts, func(a handlers.OpsAccount) bool { return a.Role == handlers.RoleViewer }) {
		monRO = asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: asynqOpt(d.redisOpt), ReadOnly: true})
		queuesRO = monRO
	}
	ins := asynq.NewInspector(asynqOpt(d.redisOpt))
	limits := store.NewCCLimits(d.rdb, cfg.CCRate, cfg.CCDailyBudget)
	var hsCalls handlers.HubSpotCalls
	if cfg.HubSpotToken != "" {
		hsCalls = d.hubSpotLimits(cfg)
	}
	registerServeMetrics(reg, d.db, limits, ins, hsCalls)
	webhookMetrics := handlers.NewMetrics(reg)
	var connector handlers.Connector
	if cfg.CCRedirectURL != "" {
		connector = ccauth.NewConnector(d.oauthConfig(cfg), d.cache, d.tokens(cfg, log))
	} else {
		log.Warn("/oauth/connect is off: set HS2CC_PUBLIC_URL or HS2CC_CC_REDIRECT_URL")
	}
	tracer := trace.NewTracer(d.db, nil)
	if cc, err := d.traceCC(cfg, log); err != nil {
		log.Warn("/ops/trace cannot check CC now", "err", err)
	} else {
		tracer = trace.NewTracer(d.db, cc)
	}
	app := handlers.New(handlers.Config{
		PublicURL: cfg.PublicURL,
		Verifier:  &hubspot.Verifier{Secrets: cfg.HubSpotSecrets, RequireV3: cfg.RequireV3},
		Fields:    cfg.Fields,
		Lists:     cfg.Lists,
		Router:    cfg.Rules,
		OpsUser:   cfg.OpsUser, OpsPassword: cfg.OpsPassword,
		OpsAccounts:     cfg.OpsAccounts,
		BehindFly:       cfg.BehindFly,
		Queues:          mon,
		QueuesReadOnly:  queuesRO,
		Ops:             opsData{d.db},
		CCBudget:        limits,
		Quarantine:      d.db,
		HubSpotCalls:    hsCalls,
		Connector:       connector,
		Trace:           tracer,
		Metrics:         promHandler(reg, ""),
		MetricsToken:    cfg.MetricsToken,
		WebhookMetrics:  webhookMetrics,
		QuarantineCap:   cfg.QuarantineCap,
		MaxBodyBytes:    cfg.MaxBody,
		BodyMemoryBytes: cfg.BodyMemory,
		Ready: []handlers.Check{
			{Name: "mysql", Fn: d.db.Ping},
			{Name: "redis", Fn: d.cache.Ping},
			{Name: "schema", Fn: d.db.CheckSchema},
			{Name: "cc_token", Fn: tokenReady(d.db, time.Now, cfg.Worker.TokenRefreshInterval)},
			{Name: "cc_attention", Fn: attentionReady(d.db)},
		},
		Logger: log,
	}, d.db, d.enq)
	return app, func() {
		mon.Close()
		if monRO != nil {
			monRO.Close()
		}
		ins.Close()
	}
}

// runServe runs the HTTP server until ctx ends, then drains it.
func runServe(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := cfg.requireMySQL(); err != nil {
		return err
	}
	if err := cfg.requireTokenKey(); err != nil {
		return err
	}
	if err := cfg.requirePublicURL(); err != nil {
		return err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	if cfg.MetricsToken == "" {
		log.Warn("/metrics is public: set HS2CC_METRICS_TOKEN to answer only Authorization: Bearer <token>")
	}
	if len(cfg.HubSpotSecrets) == 0 {
		log.Warn("HS2CC_HUBSPOT_CLIENT_SECRET is not set: every webhook will be answered 503 until it is")
	}
	app, closeApp := newHTTPApp(cfg, d, log, newRegistry())
	defer closeApp()
	return serveHTTP(ctx, cfg.Addr, app, log)
}

// httpDrain is how long serveHTTP gives in-flight requests after ctx ends;
// fly.toml's kill_timeout must exceed it (deploy_test.go checks).
const httpDrain = 10 * time.Second

// serveHTTP listens until ctx ends, then gives in-flight requests time to
// finish; the budget fits inside fly.toml's kill_timeout.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving HTTP", "addr", addr)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), httpDrain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	log.Info("HTTP server stopped")
	return nil
}

// newWorker builds the `work` process's worker, whose metrics go to reg.
// policy is what it may do with the rules' lists.
func newWorker(cfg config, d *deps, log *slog.Logger, reg prometheus.Registerer, policy jobs.Policy) (*jobs.Worker, error) {
	tokens := d.tokens(cfg, log)
	limits := store.NewCCLimits(d.rdb, cfg.CCRate, cfg.CCDailyBudget)
	wm := newWorkerMetrics(reg, d.db.SQL(), log)
	cc, err := ccclient.New(cfg.CCAPIURL, tokens, ccclient.WithUserAgent("hs2cc"), ccclient.WithLimiter(limits),
		ccclient.WithObserver(wm.observeCC))
	if err != nil {
		return nil, err
	}
	opts := []jobs.Option{jobs.WithBudget(limits), jobs.WithMapper(cfg.Rules), jobs.WithMetrics(wm), jobs.WithPolicy(policy)}
	if cfg.HubSpotToken != "" {
		hs := crm.New(cfg.HubSpotAPIURL, cfg.HubSpotToken, nil,
			crm.WithLimiter(d.hubSpotLimits(cfg)), crm.WithObserver(wm.observeHubSpot))
		opts = append(opts, jobs.WithWriter(jobs.NewWriter(hs, d.db, cc, limits, d.enq, log, wm)))
	} else {
		log.Info("HubSpot write-back is off: HS2CC_HUBSPOT_TOKEN is not set")
	}
	w := jobs.NewWorker(asynqOpt(d.redisOpt), cfg.Worker, d.db, cc, d.enq, tokens, log, opts...)
	return w, nil
}

// rulesPolicy is what the routing rules name in the CC account and allow
// creating there.
func rulesPolicy(cfg config) jobs.Policy {
	return jobs.Policy{Lists: cfg.Rules.AllLists(), CreateLists: cfg.Rules.CreateMissing(),
		Fields: cfg.Rules.CustomFields(), CreateFields: cfg.Rules.CreateMissingFields()}
}

// runWork runs the worker and scheduler until ctx ends.
func runWork(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := cfg.requireMySQL(); err != nil {
		return err
	}
	if err := cfg.requireTokenKey(); err != nil {
		return err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	reg := newRegistry()
	w, err := newWorker(cfg, d, log, reg, rulesPolicy(cfg))
	if err != nil {
		return err
	}
	// work has no HTTP server of its own; its counters are served by a
	// listener of their own when HS2CC_METRICS_ADDR asks for one. It
	// listens before the worker starts, so that a taken port stops work
	// at once rather than leaving it running unobserved.
	errc := make(chan error, 1)
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("work: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promHandler(reg, cfg.MetricsToken))
		go func() { errc <- serveListener(ctx, ln, mux, log) }()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	if err := w.Start(); err != nil {
		return err
	}
	log.Info("worker started", "concurrency", cfg.Worker.Concurrency)
	var result error
	select {
	case <-ctx.Done():
	case err := <-errc:
		result = fmt.Errorf("work: metrics listener: %w", err)
	}
	w.Shutdown()
	log.Info("worker stopped")
	return result
}

// runMigrate applies pending migrations. It is the one command that opens
// MySQL without openStore, whose schema check would refuse the very schema
// it is here to bring up to date.
func runMigrate(ctx context.Context, cfg config, stdout interface{ Write([]byte) (int, error) }) error {
	if err := cfg.requireMySQL(); err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", store.LatestVersion())
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v; schema at version %d\n", applied, store.LatestVersion())
	return nil
}
