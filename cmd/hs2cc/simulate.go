package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/hs2cc/hs2cc/cmd/hs2cc/loadgen"
	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
)

// runSimulate wires `hs2cc simulate` to the load generator in package
// loadgen. It is in production builds too, because scripts/bench measures
// --in-process on the binary it deploys; loadgen links no sandbox.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f loadgen.Flags
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return loadgen.Command(ctx, &f, getenv, stdout, func(ctx context.Context) (func(context.Context, []byte) (int, error), func(), error) {
		return inProcessDelivery(ctx, getenv)
	})
}

// inProcessDelivery builds the in-process path: the webhook's own code
// after the signature (the ingest core: parse, route, durable upsert, asynq
// enqueue) on the configured MySQL and Redis, with no HTTP, answered with
// the status the webhook would give.
func inProcessDelivery(ctx context.Context, getenv func(string) string) (func(context.Context, []byte) (int, error), func(), error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, nil, err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	in := newIngester(cfg, d, newLogger(io.Discard, "text", "error"))
	deliver := func(ctx context.Context, body []byte) (int, error) {
		got, err := in.Ingest(ctx, body, hubspot.Verified{Version: hubspot.V3}, time.Time{})
		if err != nil {
			return handlers.Status(ingest.CodeUnavailable), err
		}
		return handlers.Status(got.Code), nil
	}
	return deliver, d.close, nil
}
