package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
	"github.com/hs2cc/hs2cc/trace"
)

const traceUsage = `Usage:
  hs2cc trace EMAIL|HUBSPOT_ID [--live] [--json]

Prints one contact's story as the bridge saw it, oldest first: each delivery
(received, signature, verdict, stale or duplicate), each version and what
changed, the lists the rules chose and why, the CC import that carried it and
CC's outcome for that row, rejections with their reasons, and replays. A
contact the bridge never saw is said to be so, with the closest known emails.
--live also reads the contact from CC now (its lists and email status),
spending one CC call of the shared budget. --json prints the story as JSON.
`

// errUnknownContact makes `hs2cc trace` exit 1 for a contact the bridge
// never saw, so that a script can tell.
var errUnknownContact = errors.New("the bridge has never seen this contact")

func runTrace(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	live := fs.Bool("live", false, "also read the contact from CC now (one CC call)")
	asJSON := fs.Bool("json", false, "print the story as JSON")
	// The contact may come before or after the flags.
	var keys []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			fmt.Fprint(stderr, traceUsage)
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		keys, rest = append(keys, fs.Arg(0)), fs.Args()[1:]
	}
	if len(keys) != 1 || strings.TrimSpace(keys[0]) == "" {
		fmt.Fprint(stderr, traceUsage)
		return errUsage
	}
	story, err := traceStory(ctx, cfg, keys[0], *live, log)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(story); err != nil {
			return err
		}
	} else {
		for _, line := range trace.Lines(story) {
			fmt.Fprintln(stdout, line)
		}
	}
	if !story.Found {
		return errUnknownContact
	}
	return nil
}

// traceStory reads the story from MySQL alone, or with Redis and CC's
// token too when it must ask CC.
func traceStory(ctx context.Context, cfg config, key string, live bool, log *slog.Logger) (*trace.Story, error) {
	if !live {
		db, err := openStore(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return trace.NewTracer(db, nil).Trace(ctx, key, false)
	}
	if err := cfg.requireTokenKey(); err != nil {
		return nil, err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer d.close()
	cc, err := d.traceCC(cfg, log)
	if err != nil {
		return nil, err
	}
	return trace.NewTracer(d.db, cc).Trace(ctx, key, true)
}

// traceCC is the CC client of a trace's live check: the shared token and
// the shared limiter, so that its one call counts in the daily budget and
// the 4 requests a second of every process.
func (d *deps) traceCC(cfg config, log *slog.Logger) (*ccclient.Client, error) {
	return ccclient.New(cfg.CCAPIURL, d.tokens(cfg, log), ccclient.WithUserAgent("hs2cc"),
		ccclient.WithLimiter(store.NewCCLimits(d.rdb, cfg.CCRate, cfg.CCDailyBudget)))
}
