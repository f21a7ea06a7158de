// Package sandboxcmd is the CC sandbox as `hs2cc sandbox` and `hs2cc dev`
// run it: the flags they share, the sandbox those flags describe, and the
// banner `sandbox` prints. cmd/hs2cc listens and serves.
//
// It is a package of its own, imported only by files built without the
// nodev tag, so that production binaries (built with -tags nodev) link
// neither it nor ccclient/ccsandbox.
package sandboxcmd

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// Flags are the flags `sandbox` and `dev` share. ClientID and ClientSecret
// are exported because dev configures the bridge with them.
type Flags struct {
	ClientID, ClientSecret string
	tokenTTL               time.Duration
	refreshMode            string
	activityDelay          time.Duration
	failRate, throttleRate float64
	rejectRate, dropRate   float64
	rejectDetail           string
	seed                   uint64
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.ClientID, "client-id", ccsandbox.DefaultClientID, "the one OAuth client id the sandbox knows")
	fs.StringVar(&f.ClientSecret, "client-secret", ccsandbox.DefaultClientSecret, "that client's secret")
	fs.DurationVar(&f.tokenTTL, "cc-token-ttl", 24*time.Hour, "access-token lifetime")
	fs.StringVar(&f.refreshMode, "cc-refresh-tokens", ccsandbox.RefreshRotating, "refresh tokens: rotating or long_lived")
	fs.DurationVar(&f.activityDelay, "cc-activity-delay", 500*time.Millisecond, "how long an import takes to complete")
	fs.Float64Var(&f.failRate, "cc-fail-rate", 0, "chance (0-1) that an API call fails with 500 or 503")
	fs.Float64Var(&f.throttleRate, "cc-throttle-rate", 0, "chance (0-1) that an API call gets the throttled 429")
	fs.Float64Var(&f.rejectRate, "cc-reject-rate", 0, "share (0-1) of each import's rows CC refuses row by row (the import still completes)")
	fs.StringVar(&f.rejectDetail, "cc-reject-detail", ccsandbox.RejectDetailLineEmail, "how activity_errors names refused rows: line_email, email or count")
	fs.Float64Var(&f.dropRate, "cc-drop-rate", 0, "chance (0-1) that an API call is carried out but its answer lost (connection closed)")
	fs.Uint64Var(&f.seed, "cc-seed", 0, "seed of the random faults, to repeat a run (0: from the clock)")
}

// New builds the sandbox the flags describe, or says which flag is wrong;
// ccsandbox.New itself panics on invalid options.
func (f *Flags) New(log *slog.Logger) (*ccsandbox.Server, error) {
	o := ccsandbox.Options{
		ClientID: f.ClientID, ClientSecret: f.ClientSecret, TokenTTL: f.tokenTTL,
		RefreshMode: f.refreshMode, ActivityDelay: f.activityDelay, Logger: log,
		FailRate: f.failRate, ThrottleRate: f.throttleRate, Seed: f.seed,
		RejectRate: f.rejectRate, RejectDetail: f.rejectDetail, DropRate: f.dropRate,
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return ccsandbox.New(o), nil
}

// Banner prints what `hs2cc sandbox` serves at base (http://host:port):
// the settings that point the bridge at it, its hooks, and the faults it
// injects.
func (f *Flags) Banner(w io.Writer, base string, sb *ccsandbox.Server) {
	fmt.Fprintf(w, "CC sandbox listening on %s\n  HS2CC_CC_API_URL=%s/v3\n  HS2CC_CC_AUTH_URL=%s/oauth2/default/v1\n  contacts: %s/sandbox/contacts\n  stats:    %s/sandbox/stats\n",
		base, base, base, base, base)
	if f.failRate > 0 || f.throttleRate > 0 || f.rejectRate > 0 || f.dropRate > 0 {
		// The seed is printed so that a run that went wrong can be repeated
		// with the same faults.
		fmt.Fprintf(w, "  faults:   fail rate %g, throttle rate %g, reject rate %g (detail %s), drop rate %g (--cc-seed %d repeats them)\n",
			f.failRate, f.throttleRate, f.rejectRate, f.rejectDetail, f.dropRate, sb.Seed())
	}
}
