package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/jobs"
	"github.com/hs2cc/hs2cc/store"
)

// reconcileSummary is what `hs2cc reconcile --json` prints.
type reconcileSummary struct {
	Missing        int    `json:"missing"`
	Unsubscribed   int    `json:"unsubscribed"`
	Unknown        int    `json:"unknown"`
	Repaired       int    `json:"repaired"`
	CCCalls        int    `json:"cc_calls"`
	AnnouncedCalls int    `json:"announced_calls"`
	Outcome        string `json:"outcome"`
	Detail         string `json:"detail,omitempty"`
}

// runReconcile compares the routed CC lists with what the bridge imported
// onto them, within the CC budget, and with --repair queues the missing
// contacts again through the replay's own path.
func runReconcile(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.String("list", "", "only this CC list (default: every list the routing rules name)")
	since := fs.String("since", "30d", "compare the imports of this window: a duration (30d, 12h) or an RFC 3339 time")
	repair := fs.Bool("repair", false, "queue again the missing contacts CC still accepts mail for (never the unsubscribed)")
	dry := fs.Bool("dry-run", false, "say what the run would spend (one CC call to count the lists), read nothing more")
	asJSON := fs.Bool("json", false, "print the figures as JSON on stdout")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	from, err := parseWindow(*since, time.Now())
	if err != nil {
		return fmt.Errorf("reconcile: --since %q: %w", *since, err)
	}
	lists := cfg.Rules.AllLists()
	if *list != "" {
		lists = []string{*list}
	}
	if err := cfg.requireTokenKey(); err != nil {
		return err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.close()
	limits := store.NewCCLimits(d.rdb, cfg.CCRate, cfg.CCDailyBudget)
	cc, err := ccclient.New(cfg.CCAPIURL, d.tokens(cfg, log), ccclient.WithUserAgent("hs2cc"), ccclient.WithLimiter(limits))
	if err != nil {
		return err
	}
	// With --json, stdout holds the JSON alone and the talk goes to stderr.
	talk := stdout
	if *asJSON {
		talk = stderr
	}
	ui := &reconcileUI{out: talk, bars: stderr, tty: isTerminal(stderr)}
	opts := jobs.ReconcileOptions{Source: "command", Lists: lists, Since: from, DryRun: *dry, Approve: ui.approve, Progress: ui.progress}
	if *repair {
		opts.Repair = func(ctx context.Context, ids []int64) (int, error) {
			f := store.RequeueFilter{Statuses: []string{store.StatusImported}, IDs: ids}
			return requeueRows(ctx, d, "reconcile --repair", f, len(ids), stderr)
		}
	}
	run, err := jobs.NewReconciler(cc, d.db, limits, log).Run(ctx, opts)
	ui.finish()
	if d.db.WritebackEnabled() && run.Missing+run.Unsubscribed > 0 {
		// What the run found goes to HubSpot now rather than at the
		// periodic write-back, which would also send it within a minute.
		if qerr := d.enq.EnqueueWriteback(ctx); qerr != nil {
			log.Warn("could not queue the HubSpot write-back of what reconcile found", "err", qerr)
		}
	}
	printReconcile(stdout, talk, run, *asJSON)
	return err
}

// printReconcile prints a run's figures, as JSON or for a person.
func printReconcile(stdout, talk io.Writer, run *store.ReconcileRun, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(reconcileSummary{
			Missing: run.Missing, Unsubscribed: run.Unsubscribed, Unknown: run.Unknown, Repaired: run.Repaired,
			CCCalls: run.CCCalls, AnnouncedCalls: run.AnnouncedCalls, Outcome: run.Outcome, Detail: run.Detail,
		})
		return
	}
	if run.Outcome == store.ReconcilePlanned {
		fmt.Fprintf(talk, "reconcile: dry run, nothing read; %d CC calls spent, %d announced\n", run.CCCalls, run.AnnouncedCalls)
		return
	}
	fmt.Fprintf(talk, "reconcile: %d missing from CC, %d unsubscribed in CC, %d on the lists but unknown to the bridge, %d queued again; %d CC calls spent, %d announced\n",
		run.Missing, run.Unsubscribed, run.Unknown, run.Repaired, run.CCCalls, run.AnnouncedCalls)
	if run.Detail != "" && run.Outcome == store.ReconcileDone {
		fmt.Fprintf(talk, "reconcile: %s\n", run.Detail)
	}
}

// reconcileUI announces each phase's calls, refuses a phase over today's
// remaining budget, and shows a progress bar when stderr is a terminal.
type reconcileUI struct {
	out, bars io.Writer
	tty       bool
	bar       *progressbar.ProgressBar
	phase     string
}

func (u *reconcileUI) approve(_ context.Context, p jobs.ReconcilePhase) error {
	what := map[string]string{
		jobs.PhaseRead:  "reading the lists' members (500 a call)",
		jobs.PhaseCheck: "looking up each missing contact in CC (one call each)",
	}[p.Name]
	fmt.Fprintf(u.out, "reconcile: %s will spend %d CC calls (%s); %d spent so far", what, p.Calls, p.Detail, p.Spent)
	if p.Remaining >= 0 {
		fmt.Fprintf(u.out, "; today's budget has %d left", p.Remaining)
	}
	fmt.Fprintln(u.out)
	if p.Remaining >= 0 && p.Calls > p.Remaining {
		return fmt.Errorf("%w: %s needs %d CC calls and today's budget has %d left; run it after 00:00 UTC or for one --list",
			jobs.ErrReconcileRefused, p.Name, p.Calls, p.Remaining)
	}
	return nil
}

func (u *reconcileUI) progress(phase string, done, total int) {
	if !u.tty {
		return
	}
	if u.bar == nil || u.phase != phase {
		u.finish()
		u.phase = phase
		u.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(u.bars), progressbar.OptionSetDescription("reconcile "+phase),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	_ = u.bar.Set(done)
}

func (u *reconcileUI) finish() {
	if u.bar != nil {
		_ = u.bar.Finish()
		u.bar = nil
	}
}

// isTerminal reports whether w is a character device, so that a progress
// bar is drawn for a person and left out of logs and pipes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseWindow reads a window start: a count of days ("30d"), a Go duration
// ("12h") before now, or an RFC 3339 time.
func parseWindow(s string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return time.Time{}, fmt.Errorf("want a number of days such as 30d")
		}
		return now.AddDate(0, 0, -days), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want a duration (30d, 12h) or an RFC 3339 time")
}
