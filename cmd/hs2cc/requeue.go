package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/hs2cc/hs2cc/store"
)

// requeueBatch is how many rows one step moves back to pending.
const requeueBatch = 500

// runBackfill is the original daily job kept as a safety net: every
// enrollment of the window that is not imported (pending or failed) is
// queued again. Rows already queued are harmless to queue twice (the task
// id dedupes, the claim in MySQL imports once).
func runBackfill(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Duration("since", 24*time.Hour, "the window: enrollments changed within this long")
	dry := fs.Bool("dry-run", false, "count what would be queued, change nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	f := store.RequeueFilter{Statuses: []string{store.StatusPending, store.StatusFailed}, Since: now.Add(-*since)}
	return requeue(ctx, cfg, "backfill", f, *dry, stdout, stderr)
}

// runReplay queues enrollments of a status again, e.g. the failed rows of
// a CC outage once it is over.
func runReplay(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	status := fs.String("status", store.StatusFailed, "statuses to replay, comma-separated: failed, rejected, pending")
	since := fs.String("since", "", "only rows changed at or after this time (RFC 3339) or within this age (e.g. 6h or 7d)")
	list := fs.String("list", "", "only rows bound for this CC list")
	dry := fs.Bool("dry-run", false, "count what would be queued, change nothing")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	statuses, err := store.ParseStatuses(*status)
	if err != nil {
		return err
	}
	f := store.RequeueFilter{Statuses: statuses, List: *list}
	if *since != "" {
		if f.Since, err = parseTimeOrAge(*since, time.Now()); err != nil {
			return fmt.Errorf("replay: --since: %w", err)
		}
	}
	return requeue(ctx, cfg, "replay", f, *dry, stdout, stderr)
}

func requeue(ctx context.Context, cfg config, what string, f store.RequeueFilter, dry bool, stdout, stderr io.Writer) error {
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	total, err := d.db.CountRequeue(ctx, f)
	if err != nil {
		return err
	}
	if dry || total == 0 {
		fmt.Fprintf(stdout, "%s: %d enrollments match%s\n", what, total, map[bool]string{true: " (dry run: nothing queued)"}[dry])
		return nil
	}
	queued, err := requeueRows(ctx, d, what, f, total, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: queued %d enrollments\n", what, queued)
	return nil
}

// requeueRows moves the total rows f picks back to pending and queues them,
// showing a progress bar on stderr; it is the one way back into the queue
// for backfill, replay and reconcile --repair.
func requeueRows(ctx context.Context, d *deps, what string, f store.RequeueFilter, total int, stderr io.Writer) (int, error) {
	db, enq := d.db, d.enq
	// The bar goes to stderr, so that stdout keeps only the summary.
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	queued := 0
	var after int64
	for {
		refs, err := db.RequeueBatch(ctx, f, after, requeueBatch)
		if err != nil {
			return queued, err
		}
		if len(refs) == 0 {
			break
		}
		for _, r := range refs {
			// The row is pending now, so if this enqueue fails the sweep
			// queues it later; stop and say so rather than press on.
			if err := enq.EnqueueEnrollment(ctx, r.ID, r.Version, r.Lists); err != nil {
				return queued, fmt.Errorf("%s: queued %d, then: %w (the rest are pending; the sweep will queue them)", what, queued, err)
			}
			queued++
			_ = bar.Add(1)
		}
		after = refs[len(refs)-1].ID
	}
	_ = bar.Finish()
	return queued, nil
}

// parseTimeOrAge reads a moment given as an RFC 3339 time, or as an age
// before now: a Go duration such as 6h or 90m, or a number of days such as
// 7d, since ages of personal data and evidence are thought of in days. The
// commands that take a point in time (--since, --before) all read it here.
func parseTimeOrAge(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time, a duration such as 6h or a number of days such as 7d", s)
}
