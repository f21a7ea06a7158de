package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/store"
)

const deliveriesUsage = `Usage:
  hs2cc deliveries replay --verdict no_route|no_email|malformed [--since 72h] [--dry-run]

Runs stored workflow deliveries of a verdict through the webhook's code again,
with today's routing rules and field names, dated when HubSpot sent them.
HubSpot never retries a 4xx, so after the rules or HS2CC_FIELDS are fixed this
is how the deliveries refused for them reach CC. A replay of a delivery that
already made an enrollment is a no-op, so running it twice is safe.
`

// replayable are the verdicts a fix of ours can change; the others made an
// enrollment already or are not a workflow body.
var replayable = []string{store.VerdictNoRoute, store.VerdictNoEmail, store.VerdictMalformed}

func runDeliveries(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprint(stderr, deliveriesUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("deliveries replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verdict := fs.String("verdict", "", "replay the deliveries stored with this verdict: "+strings.Join(replayable, ", "))
	since := fs.Duration("since", 72*time.Hour, "only deliveries received this long ago or later (HubSpot's own retry window is 3 days)")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed, change nothing")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *since <= 0 {
		fmt.Fprint(stderr, deliveriesUsage)
		return errUsage
	}
	if !slices.Contains(replayable, *verdict) {
		fmt.Fprintf(stderr, "hs2cc: --verdict must be one of %s\n\n%s", strings.Join(replayable, ", "), deliveriesUsage)
		return errUsage
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	in := newIngester(cfg, d, log)

	from := time.Now().Add(-*since)
	outcomes := map[string]int{}
	total := 0
	var after int64
	for {
		page, err := d.db.DeliveriesToReplay(ctx, *verdict, from, after, 500)
		if err != nil {
			return err
		}
		for _, dl := range page {
			after = dl.ID
			total++
			if *dryRun {
				continue
			}
			verified := hubspot.Verified{Version: hubspot.Version(dl.SignatureVersion), SignedAt: dl.SignedAt}
			got, err := in.Ingest(ctx, dl.Body, verified, dl.ReceivedAt)
			if err != nil {
				// A fault of ours (MySQL or Redis down): what was replayed
				// stays replayed, and running the command again is safe.
				return fmt.Errorf("deliveries replay: delivery %d: %w (replayed %d before it)", dl.ID, err, total-1)
			}
			outcomes[outcomeOf(got)]++
			// The link lets a trace show the new delivery as this one's
			// replay. A replay that is an exact repeat names the delivery
			// it was counted on: one made by an earlier replay, which is
			// newer and linked already, or an older one, this one
			// included, which is no replay and keeps what it is.
			if got.DeliveryID > dl.ID {
				if err := d.db.LinkReplay(ctx, got.DeliveryID, dl.ID); err != nil {
					return fmt.Errorf("deliveries replay: delivery %d: %w", dl.ID, err)
				}
			}
		}
		if len(page) < 500 {
			break
		}
	}
	if *dryRun {
		fmt.Fprintf(stdout, "deliveries replay: %d %s deliveries since %s match (dry run: nothing replayed)\n",
			total, *verdict, from.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "deliveries replay: replayed %d %s deliveries%s\n", total, *verdict, outcomeSummary(outcomes))
	return nil
}

// outcomeOf names what became of one replayed body by the verdict of the
// delivery it stored.
func outcomeOf(res ingest.Result) string {
	switch res.Code {
	case ingest.CodeAccepted:
		return res.Verdict + " (new version)"
	case ingest.CodeEvents:
		return "webhooks api events"
	}
	return res.Verdict
}

// outcomeSummary lists the outcomes and their counts, by name.
func outcomeSummary(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return ": " + strings.Join(parts, ", ")
}
