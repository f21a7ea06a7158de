//go:build !nodev

// The embedded dev stack (go-mysql-server, whose ICU regexp package
// compiles a WebAssembly module at init) costs every process that links it
// about 250 ms and 60 MB before main runs, so production images are built
// with -tags nodev and leave it out; see dev_nodev.go.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/devstack"
	"github.com/hs2cc/hs2cc/cmd/hs2cc/sandboxcmd"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// runDev runs the whole bridge in one process: embedded MySQL and Redis
// (unless HS2CC_MYSQL_DSN / HS2CC_REDIS_URL name real ones), the CC sandbox on
// its own port, serve and work together, CC connected through the sandbox's
// real OAuth flow, and short batching delays so a demo finishes in seconds.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the bridge")
	ccAddr := fs.String("cc-addr", "127.0.0.1:8081", "listen address of the CC sandbox")
	hsAddr := fs.String("hs-addr", "127.0.0.1:8082", "listen address of the HubSpot sandbox")
	var sf sandboxcmd.Flags
	sf.Register(fs)
	var hf hsSandboxFlags
	hf.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs, err := listenDevHubSpot(ctx, hf, *hsAddr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(hs.env(devEnv(getenv, *addr, sf)))
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	notes, stop, err := embedStores(ctx, getenv, &cfg)
	defer stop()
	if err != nil {
		return err
	}
	if err := runMigrate(ctx, cfg, io.Discard); err != nil {
		return fmt.Errorf("dev: migrate: %w", err)
	}

	errc := make(chan error, 4)
	ccBase, err := startDevCCSandbox(ctx, sf, *ccAddr, log, errc)
	if err != nil {
		return err
	}
	cfg.CCAPIURL, cfg.CCAuthURL = ccBase+"/v3", ccBase+"/oauth2/default/v1"
	go func() { errc <- hs.serve(ctx, log.With("component", "hubspot-sandbox")) }()

	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	// serve and work share one process here, so their metrics share the
	// one /metrics too.
	reg := newRegistry()
	app, closeApp := newHTTPApp(cfg, d, log, reg)
	defer closeApp()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	go func() { errc <- serveListener(ctx, ln, app, log) }()

	w, err := startDevWorker(cfg, d, log, reg)
	if err != nil {
		return err
	}
	defer w.Shutdown()
	base := "http://" + ln.Addr().String()
	// Connect CC the way a person does in production, after the worker
	// runs and through the bridge's own /oauth/connect; the sandbox
	// approves at once, and the connection queues the lists' check. A
	// failure leaves dev running for a person to connect by hand.
	if err := connectThroughBridge(ctx, base, cfg.OpsUser, cfg.OpsPassword); err != nil {
		log.Error("dev: could not connect the CC sandbox; open /oauth/connect with the ops login to connect it", "err", err)
	}
	printDevBanner(stdout, cfg, notes, base, ccBase, hs.base)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// startDevCCSandbox starts dev's CC sandbox on addr, serving until ctx
// ends and reporting a failure to errc, and returns its base URL.
func startDevCCSandbox(ctx context.Context, sf sandboxcmd.Flags, addr string, log *slog.Logger, errc chan<- error) (string, error) {
	sb, err := sf.New(log.With("component", "sandbox"))
	if err != nil {
		return "", err
	}
	ccLn, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("dev: sandbox: %w", err)
	}
	go func() { errc <- serveListener(ctx, ccLn, sb, log) }()
	return "http://" + ccLn.Addr().String(), nil
}

// startDevWorker starts the worker of dev. The sandbox starts empty, so dev
// creates whatever lists and custom fields the rules name, whether or not
// the rules allow it in production.
func startDevWorker(cfg config, d *deps, log *slog.Logger, reg *prometheus.Registry) (*jobs.Worker, error) {
	policy := rulesPolicy(cfg)
	policy.CreateLists, policy.CreateFields = true, true
	w, err := newWorker(cfg, d, log, reg, policy)
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

// devEnv is getenv with dev's defaults where the environment is silent.
func devEnv(getenv func(string) string, addr string, sf sandboxcmd.Flags) func(string) string {
	defaults := map[string]string{
		"HS2CC_LOG_FORMAT":            "text",
		"HS2CC_GROUP_GRACE_PERIOD":    "1s",
		"HS2CC_GROUP_MAX_DELAY":       "3s",
		"HS2CC_OPS_USER":              "ops",
		"HS2CC_OPS_PASSWORD":          randomHex(16), // 32 characters: serve wants at least 16
		"HS2CC_HUBSPOT_CLIENT_SECRET": randomHex(4) + "-dev-" + randomHex(4),
		"HS2CC_PUBLIC_URL":            "http://" + addr,
		"HS2CC_CC_CLIENT_ID":          sf.ClientID,
		"HS2CC_CC_CLIENT_SECRET":      sf.ClientSecret,
		// A throwaway key: the embedded MySQL forgets the tokens on exit
		// anyway, and dev connects CC again at every start.
		"HS2CC_TOKEN_KEY": store.NewTokenKey(),
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}
}

// storeNotes say, for the banner, which MySQL and Redis dev runs on.
type storeNotes struct{ mysql, redis string }

// embedStores starts the embedded MySQL and Redis where the environment
// names no real ones, and points cfg at them. stop ends what it started,
// even after an error.
func embedStores(ctx context.Context, getenv func(string) string, cfg *config) (storeNotes, func(), error) {
	notes := storeNotes{mysql: "real: HS2CC_MYSQL_DSN", redis: "real: HS2CC_REDIS_URL"}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if getenv("HS2CC_MYSQL_DSN") == "" {
		dsn, stopMySQL, err := devstack.MySQL(ctx, "127.0.0.1:0", "hs2cc")
		if err != nil {
			return notes, stop, fmt.Errorf("dev: embedded MySQL: %w", err)
		}
		stops = append(stops, stopMySQL)
		cfg.MySQLDSN, notes.mysql = dsn, "embedded go-mysql-server, in memory"
	}
	if getenv("HS2CC_REDIS_URL") == "" {
		u, stopRedis, err := devstack.Redis("127.0.0.1:0")
		if err != nil {
			return notes, stop, fmt.Errorf("dev: embedded Redis: %w", err)
		}
		stops = append(stops, stopRedis)
		cfg.RedisURL, notes.redis = u, "embedded miniredis, in memory"
	}
	return notes, stop, nil
}

// printDevBanner tells a person where everything is and how to send
// webhooks.
func printDevBanner(stdout io.Writer, cfg config, notes storeNotes, base, ccBase, hsBase string) {
	fmt.Fprintf(stdout, `
hs2cc dev is running (MySQL: %s; Redis: %s).

  Webhook URL       %s/webhooks/hubspot   (signed URI base: %s)
  Signing secret    %s
  Asynqmon          %s/ops/queues   user %q, password %q
  Ops page          %s/ops   (same login; figures as JSON at /ops/status.json)
  Connect CC again  %s/oauth/connect   (same login)
  Health            %s/healthz   %s/readyz
  CC sandbox API    %s/v3   OAuth %s/oauth2/default/v1
  Sandbox contacts  %s/sandbox/contacts
  Sandbox stats     %s/sandbox/stats
  HubSpot sandbox   %s   (write-back; contacts at /sandbox/contacts, counts at /sandbox/stats)
  CC lists          %s

Send 200 signed webhooks:

  go run ./cmd/hs2cc simulate --url %s/webhooks/hubspot --secret '%s' --count 200 --concurrency 8

Press Ctrl-C to stop.
`, notes.mysql, notes.redis, base, cfg.PublicURL, cfg.HubSpotSecrets[0], base, cfg.OpsUser, cfg.OpsPassword, base, base,
		base, base, ccBase, ccBase, ccBase, ccBase, hsBase, strings.Join(cfg.Rules.AllLists(), ", "),
		cfg.PublicURL, cfg.HubSpotSecrets[0])
}
