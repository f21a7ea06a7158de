// Command hs2cc bridges HubSpot workflow webhooks to Constant Contact list
// imports. See README.md for the subcommands and their configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "hs2cc:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `hs2cc bridges HubSpot workflow webhooks to Constant Contact.

Usage: hs2cc <command> [flags]

Commands:
  serve      HTTP server: the HubSpot webhook, /oauth/connect, /healthz, /readyz, /metrics, /ops/queues
  work       asynq worker and scheduler: batches enrollments into CC imports
  migrate    apply the database migrations
  connect    connect Constant Contact from a terminal (OAuth consent, then tokens sealed in MySQL)
  status     the CC connection and enrollment counts; exits 1 while CC needs reconnecting
  quarantine list or replay the webhook requests refused for their signature
  keygen     print a new HS2CC_TOKEN_KEY
  backfill   queue again every enrollment of a window that is not imported (--since 24h)
  replay     queue again enrollments of a status (--status failed [--since T] [--list NAME] [--dry-run])
  reconcile  compare the routed CC lists with what the bridge imported ([--list NAME] [--since 30d] [--repair] [--dry-run] [--json])
  deliveries replay stored deliveries refused for the rules or fields (replay --verdict no_route [--since 72h] [--dry-run])
  trace      one contact's story, oldest first (trace EMAIL|HUBSPOT_ID [--live] [--json])
  sandbox    run the Constant Contact sandbox (a faithful in-memory CC)
  hubspot-sandbox  run the HubSpot CRM sandbox (contact properties and batch update, in memory)
  dev        the whole bridge in one process on embedded MySQL, Redis and sandbox
  simulate   send signed, realistic HubSpot webhooks and report latency

sandbox, hubspot-sandbox and dev are left out of builds made with -tags nodev, as the image is.

Configuration is read from HS2CC_* environment variables; see README.md.
`

// run is the whole program behind main, with its environment injected so
// that tests can run any subcommand in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "keygen":
		fmt.Fprintln(stdout, store.NewTokenKey())
		return nil
	case "serve", "work", "migrate", "connect", "status", "quarantine", "backfill", "replay", "deliveries", "reconcile", "trace":
		cfg, err := loadConfig(getenv)
		if err != nil {
			return err
		}
		log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
		switch cmd {
		case "serve":
			return runServe(ctx, cfg, log)
		case "work":
			return runWork(ctx, cfg, log)
		case "backfill":
			return runBackfill(ctx, cfg, rest, stdout, stderr, time.Now())
		case "replay":
			return runReplay(ctx, cfg, rest, stdout, stderr)
		case "connect":
			return runConnect(ctx, cfg, rest, stdout, stderr)
		case "status":
			return runStatus(ctx, cfg, stdout, time.Now())
		case "quarantine":
			return runQuarantine(ctx, cfg, rest, stdout, stderr, log)
		case "deliveries":
			return runDeliveries(ctx, cfg, rest, stdout, stderr, log)
		case "reconcile":
			return runReconcile(ctx, cfg, rest, stdout, stderr, log)
		case "trace":
			return runTrace(ctx, cfg, rest, stdout, stderr, log)
		default:
			return runMigrate(ctx, cfg, stdout)
		}
	case "sandbox":
		return runSandbox(ctx, rest, getenv, stdout, stderr)
	case "hubspot-sandbox":
		return runHubSpotSandbox(ctx, rest, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		return runSimulate(ctx, rest, getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "hs2cc: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// newLogger builds the process logger: JSON for machines in production,
// text for people in dev.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
