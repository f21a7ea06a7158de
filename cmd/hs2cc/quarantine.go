package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/hubspot"
	"github.com/hs2cc/hs2cc/ingest"
	"github.com/hs2cc/hs2cc/store"
)

const quarantineUsage = `Usage:
  hs2cc quarantine list [--limit N]
  hs2cc quarantine replay (--id N | --all) [--dry-run]
  hs2cc quarantine purge (--all | [--reason R] [--before T])

list shows the newest quarantined requests (never a body or a signature), the
quarantine's size against HS2CC_QUARANTINE_MAX_ROWS / _MAX_BYTES, and how many
refused requests were only counted, by reason, for not being shaped like
HubSpot's (no signature header, a malformed one, a timestamp out of window).

replay verifies each request again under the current HS2CC_HUBSPOT_CLIENT_SECRET
and HS2CC_PUBLIC_URL, its timestamp judged against when it arrived, and ingests
those that verify exactly as the webhook would have. --all takes every request
not yet replayed or still invalid; --dry-run only reports what would happen.

purge deletes quarantined requests, 500 at a time, and the counts of unshaped
requests: --all everything, else those of reason R (as list shows it) and/or
received (for counts: last seen) before T, an RFC 3339 time or an age such as
7d or 12h. It prints how many it deleted.
`

// runQuarantine is `hs2cc quarantine`: the webhook requests answered 401 for
// their signature, which HubSpot never retries, kept for a replay.
func runQuarantine(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, quarantineUsage)
		return errUsage
	}
	switch args[0] {
	case "list":
		return runQuarantineList(ctx, cfg, args[1:], stdout, stderr)
	case "replay":
		return runQuarantineReplay(ctx, cfg, args[1:], stdout, stderr, log)
	case "purge":
		return runQuarantinePurge(ctx, cfg, args[1:], stdout, stderr, time.Now())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, quarantineUsage)
		return nil
	}
	fmt.Fprintf(stderr, "hs2cc quarantine: unknown command %q\n\n%s", args[0], quarantineUsage)
	return errUsage
}

func runQuarantineList(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	limit := fs.Int("limit", 50, "how many of the newest requests to show")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *limit <= 0 {
		fmt.Fprint(stderr, quarantineUsage)
		return errUsage
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	usage, err := db.QuarantineUsage(ctx)
	if err != nil {
		return err
	}
	qs, err := db.ListQuarantine(ctx, *limit)
	if err != nil {
		return err
	}
	if len(qs) > 0 {
		// Only columns the bridge wrote itself or checked: the reason and
		// version are our words, so nothing the sender chose reaches the
		// terminal.
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED (UTC)\tREASON\tSIGNATURE\tBODY\tREPLAY")
		for _, q := range qs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", q.ID, q.ReceivedAt.UTC().Format(time.RFC3339),
				q.Reason, orDash(q.SignatureVersion), bodySize(q), replayState(q))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	caps := cfg.QuarantineCap.OrDefault()
	fmt.Fprintf(stdout, "Quarantine: %d of %d requests, %s of %s of bodies", usage.Rows, caps.MaxRows,
		byteSize(usage.Bytes), byteSize(caps.MaxBytes))
	if int64(len(qs)) < usage.Rows {
		fmt.Fprintf(stdout, "; the newest %d shown", len(qs))
	}
	fmt.Fprintln(stdout, ".")
	if usage.Rows >= caps.MaxRows || usage.Bytes >= caps.MaxBytes {
		fmt.Fprintln(stdout, "It is FULL: new requests refused for their signature are answered 401 without being kept.")
	}
	unshaped, err := db.UnshapedCounts(ctx)
	if err != nil {
		return err
	}
	printUnshaped(stdout, unshaped)
	return nil
}

// printQuarantineStatus is the quarantine's line in `hs2cc status`: what
// it keeps, and what it only counted, by reason.
func printQuarantineStatus(ctx context.Context, db *store.DB, w io.Writer) error {
	usage, err := db.QuarantineUsage(ctx)
	if err != nil {
		return err
	}
	unshaped, err := db.UnshapedCounts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Quarantine: %d requests kept, %s of bodies; not shaped like HubSpot's (counted, not kept):",
		usage.Rows, byteSize(usage.Bytes))
	if len(unshaped) == 0 {
		fmt.Fprint(w, " none")
	}
	for _, c := range unshaped {
		fmt.Fprintf(w, " %s %d (last %s)", c.Reason, c.Count, c.LastSeen.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	return nil
}

// printUnshaped lists the refused requests that were counted rather than
// kept, one line per reason.
func printUnshaped(w io.Writer, counts []store.UnshapedCount) {
	if len(counts) == 0 {
		fmt.Fprintln(w, "Not shaped like HubSpot's (counted, not kept): none.")
		return
	}
	fmt.Fprintln(w, "Not shaped like HubSpot's (counted, not kept):")
	for _, c := range counts {
		fmt.Fprintf(w, "  %s %d, first %s, last %s\n", c.Reason, c.Count,
			c.FirstSeen.UTC().Format(time.RFC3339), c.LastSeen.UTC().Format(time.RFC3339))
	}
}

// purgeReasons are the reasons `quarantine purge --reason` takes: those of
// kept requests, old and new, and those of counted ones.
var purgeReasons = append([]string{store.QuarantineBadSignature, store.QuarantineMissingSignature,
	store.QuarantineStaleTimestamp, store.QuarantineFutureTimestamp, store.QuarantineBadTimestamp},
	hubspot.UnshapedReasons...)

// runQuarantinePurge is `hs2cc quarantine purge`: it frees the quarantine of
// requests no one will replay, such as a flood of forged ones.
func runQuarantinePurge(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("quarantine purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "delete every quarantined request and every count")
	reason := fs.String("reason", "", "only those of this reason")
	before := fs.String("before", "", "only those received before this time (RFC 3339) or age (e.g. 7d, 12h)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *all == (*reason != "" || *before != "") {
		fmt.Fprint(stderr, quarantineUsage)
		return errUsage
	}
	p := store.QuarantinePurge{All: *all, Reason: *reason}
	if p.Reason != "" && !slices.Contains(purgeReasons, p.Reason) {
		return fmt.Errorf("quarantine purge: unknown --reason %q; the reasons are %s", p.Reason, strings.Join(purgeReasons, ", "))
	}
	if *before != "" {
		var err error
		if p.Before, err = parseTimeOrAge(*before, now); err != nil {
			return fmt.Errorf("quarantine purge: --before: %w", err)
		}
	}
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.PurgeQuarantine(ctx, p, func(n int64) {
		if n >= store.PurgeBatch {
			fmt.Fprintf(stderr, "deleted %d quarantined requests so far\n", n)
		}
	})
	if err != nil {
		return fmt.Errorf("quarantine purge: %w (%d quarantined requests were deleted before it)", err, res.Requests)
	}
	fmt.Fprintf(stdout, "Purged %d quarantined requests and the counts of %d reasons of unshaped requests.\n",
		res.Requests, res.Unshaped)
	return nil
}

// bodySize is a quarantined body's size; a body cut when it was kept, which
// only requests kept before bodies were kept whole can be, says so.
func bodySize(q *store.Quarantined) string {
	if q.BodyTruncated {
		return fmt.Sprintf("%s (cut to %s)", byteSize(int64(q.BodyLength)), byteSize(int64(q.BodyBytes)))
	}
	return byteSize(int64(q.BodyLength))
}

func replayState(q *store.Quarantined) string {
	if q.ReplayOutcome == "" {
		return "-"
	}
	return q.ReplayOutcome + " " + q.ReplayedAt.UTC().Format(time.RFC3339)
}

// byteSize is n in the largest binary unit that keeps it at least 1.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Outcomes of a dry run, which stores nothing and so cannot know what the
// webhook's own checks would make of a request that verifies.
const dryRunVerifies = "verifies"

func runQuarantineReplay(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("quarantine replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.Int64("id", 0, "replay this quarantined request, whatever became of it before")
	all := fs.Bool("all", false, "replay every request not yet replayed or still invalid")
	dryRun := fs.Bool("dry-run", false, "verify and report, change nothing")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || (*id > 0) == *all || *id < 0 {
		fmt.Fprint(stderr, quarantineUsage)
		return errUsage
	}
	if len(cfg.HubSpotSecrets) == 0 {
		return fmt.Errorf("config: HS2CC_HUBSPOT_CLIENT_SECRET is required to verify quarantined requests")
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	// The same configuration serve gives the webhook, so that a replay
	// parses and routes as a request verified on arrival would be.
	in := newIngester(cfg, d, log)
	r := &replayer{
		db:        d.db,
		verifier:  &hubspot.Verifier{Secrets: cfg.HubSpotSecrets, RequireV3: cfg.RequireV3},
		ingester:  in,
		publicURL: cfg.PublicURL,
		dryRun:    *dryRun,
		out:       stdout,
	}
	ids := []int64{*id}
	if *all {
		if ids, err = d.db.QuarantineToReplay(ctx); err != nil {
			return err
		}
	}
	return r.replay(ctx, ids)
}

// replayer verifies and ingests quarantined requests one by one.
type replayer struct {
	db        *store.DB
	verifier  *hubspot.Verifier
	ingester  *ingest.Core
	publicURL string
	dryRun    bool
	out       io.Writer
}

// replay replays each of ids and prints one line for each and a summary. A
// fault on our side (MySQL, say) leaves that request unmarked, to be tried
// again, and makes the command fail once the rest are done.
func (r *replayer) replay(ctx context.Context, ids []int64) error {
	counts := map[string]int{}
	var order []string
	failed := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		outcome, detail, err := r.one(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) && len(ids) == 1 {
				return fmt.Errorf("quarantine replay: no quarantined request %d", id)
			}
			failed++
			fmt.Fprintf(r.out, "quarantined %d: failed, not marked: %v\n", id, err)
			continue
		}
		if counts[outcome] == 0 {
			order = append(order, outcome)
		}
		counts[outcome]++
		if detail != "" {
			fmt.Fprintf(r.out, "quarantined %d: %s (%s)\n", id, outcome, detail)
		} else {
			fmt.Fprintf(r.out, "quarantined %d: %s\n", id, outcome)
		}
	}
	var parts []string
	for _, o := range order {
		parts = append(parts, fmt.Sprintf("%s %d", o, counts[o]))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("failed %d", failed))
	}
	summary := strings.Join(parts, ", ")
	if summary == "" {
		summary = "nothing to replay"
	}
	if r.dryRun {
		fmt.Fprintf(r.out, "Dry run of %d quarantined requests: %s. Nothing was changed.\n", len(ids), summary)
	} else {
		fmt.Fprintf(r.out, "Replayed %d quarantined requests: %s.\n", len(ids), summary)
	}
	if failed > 0 {
		return fmt.Errorf("quarantine replay: %d of %d requests failed on our side; run it again", failed, len(ids))
	}
	return nil
}

// one replays the quarantined request id and, unless this is a dry run,
// marks it with the outcome.
func (r *replayer) one(ctx context.Context, id int64) (outcome, detail string, err error) {
	q, err := r.db.GetQuarantined(ctx, id)
	if err != nil {
		return "", "", err
	}
	outcome, detail, deliveryID, err := r.judge(ctx, q)
	if err != nil || r.dryRun {
		return outcome, detail, err
	}
	if err := r.db.MarkReplayed(ctx, id, outcome, detail); err != nil {
		return "", "", err
	}
	// The link lets a trace of the contact show the delivery as this
	// request's replay.
	if deliveryID != 0 {
		if err := r.db.LinkQuarantined(ctx, id, deliveryID); err != nil {
			return "", "", err
		}
	}
	return outcome, detail, nil
}

func (r *replayer) judge(ctx context.Context, q *store.Quarantined) (outcome, detail string, deliveryID int64, err error) {
	if q.BodyTruncated {
		return store.ReplayTruncated, fmt.Sprintf("only %d of its %d body bytes were kept, so it cannot be verified",
			len(q.Body), q.BodyLength), 0, nil
	}
	verified, verr := r.verifier.VerifyAt(hubspot.Request{
		Method: q.Method, URI: handlers.SignedURI(r.publicURL, q.Scheme, q.Host, q.RequestURI),
		Body: q.Body, Header: q.Header,
	}, q.ReceivedAt)
	if verr != nil {
		return store.ReplayStillInvalid, verr.Error(), 0, nil
	}
	if r.dryRun {
		return dryRunVerifies, fmt.Sprintf("signature %s; it would be ingested", verified.Version), 0, nil
	}
	res, err := r.ingester.Ingest(ctx, q.Body, verified, q.ReceivedAt)
	if err != nil {
		return "", "", 0, err
	}
	switch res.Code {
	case ingest.CodeAccepted:
		return store.ReplayIngested, fmt.Sprintf("enrollment %d version %d", res.EnrollmentID, res.Version), res.DeliveryID, nil
	case ingest.CodeDuplicate:
		return store.ReplayDuplicate, fmt.Sprintf("enrollment %d version %d", res.EnrollmentID, res.Version), res.DeliveryID, nil
	case ingest.CodeEvents:
		// A Webhooks API batch: its events are stored one by one, each
		// with its own verdict.
		return store.ReplayIngested, fmt.Sprintf("%d events stored, %d new versions", res.Stored, res.Updated), res.DeliveryID, nil
	}
	detail = fmt.Sprintf("delivery %d", res.DeliveryID)
	if res.Message != "" {
		detail += ": " + res.Message
	}
	return res.Verdict, detail, res.DeliveryID, nil
}
