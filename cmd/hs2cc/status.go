package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// errNeedsReconnect and errNeedsAttention make `hs2cc status` exit
// non-zero, so that a cron job or a person's shell notices what the output
// says.
var (
	errNeedsReconnect = errors.New("Constant Contact needs reconnecting")
	errNeedsAttention = errors.New("something stops the bridge's work until a person acts")
)

// runStatus prints the bridge's state from MySQL: the CC connection, every
// state that stops work (a missing list) and the enrollments by status. It
// needs no token key: it never opens the tokens.
func runStatus(ctx context.Context, cfg config, stdout io.Writer, now time.Time) error {
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var result error
	st, err := db.TokenState(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fmt.Fprintln(stdout, "Constant Contact: not connected. Run `hs2cc connect` or open /oauth/connect.")
		result = errNeedsReconnect
	case err != nil:
		return err
	case st.Status == store.TokenNeedsReconnect:
		fmt.Fprintf(stdout, "Constant Contact: NEEDS RECONNECT since %s (%s).\n  Run `hs2cc connect` or open /oauth/connect; CC work waits until then.\n",
			st.StatusAt.UTC().Format(time.RFC3339), st.StatusReason)
		result = errNeedsReconnect
	default:
		fmt.Fprintf(stdout, "Constant Contact: connected; access token expires %s (in %s)\n",
			st.ExpiresAt.UTC().Format(time.RFC3339), st.ExpiresAt.Sub(now).Round(time.Second))
		fmt.Fprintf(stdout, "  connected %s, last refreshed %s, sealed under key %s\n",
			stamp(st.ConnectedAt), stamp(st.RefreshedAt), orDash(st.KeyID))
	}
	items, err := db.ListAttention(ctx)
	if err != nil {
		return err
	}
	for _, a := range items {
		fmt.Fprintf(stdout, "NEEDS ATTENTION since %s: %s.\n", a.Since.UTC().Format(time.RFC3339), a.Detail)
		if a.Kind == store.AttentionMissingList {
			n, err := db.CountWaitingFor(ctx, a.Subject)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  %d enrollments wait for it; they go on by themselves within a minute of the list existing.\n", n)
		}
		if result == nil {
			result = errNeedsAttention
		}
	}
	counts, err := db.CountEnrollments(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Enrollments:")
	for _, s := range []string{store.StatusPending, store.StatusImporting, store.StatusImported, store.StatusFailed, store.StatusRejected} {
		fmt.Fprintf(stdout, " %s %d", s, counts[s])
	}
	fmt.Fprintln(stdout)
	if err := printQuarantineStatus(ctx, db, stdout); err != nil {
		return err
	}
	if err := printWritebackStatus(ctx, db, stdout, now); err != nil {
		return err
	}
	return result
}

// printWritebackStatus prints the HubSpot write-back: off and why, or its
// outbox by state, its oldest pending row and last error, and the last read
// of CC's unsubscribes. A token HubSpot refuses is attention, printed above.
func printWritebackStatus(ctx context.Context, db *store.DB, stdout io.Writer, now time.Time) error {
	if !db.WritebackEnabled() {
		fmt.Fprintln(stdout, "HubSpot write-back: off (HS2CC_HUBSPOT_TOKEN is not set).")
		return nil
	}
	sum, err := db.SummarizeWriteback(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "HubSpot write-back:")
	for _, s := range store.WritebackStates {
		fmt.Fprintf(stdout, " %s %d", s, sum.Counts[s])
	}
	fmt.Fprintln(stdout)
	if !sum.OldestPending.IsZero() {
		fmt.Fprintf(stdout, "  oldest pending since %s (%s)\n", stamp(sum.OldestPending), now.Sub(sum.OldestPending).Round(time.Second))
	}
	fmt.Fprintf(stdout, "  last written %s\n", stamp(sum.LastWritten))
	if sum.LastError != "" {
		fmt.Fprintf(stdout, "  last error: %s\n", sum.LastError)
	}
	u, err := db.GetUnsubscribeSync(ctx)
	if err != nil {
		return err
	}
	if u.RanAt.IsZero() {
		fmt.Fprintln(stdout, "  CC unsubscribes: not read yet")
		return nil
	}
	fmt.Fprintf(stdout, "  CC unsubscribes read %s: %s, %d found, %d enrollments marked, %d CC calls; read up to %s\n",
		stamp(u.RanAt), u.Outcome, u.Found, u.Marked, u.CCPages, stamp(u.SyncedTo))
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
