package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
)

// sandboxFlags are the flags `sandbox` and `dev` share.
type sandboxFlags struct {
	clientID, clientSecret string
	tokenTTL               time.Duration
	refreshMode            string
	activityDelay          time.Duration
	failRate, throttleRate float64
	rejectRate, dropRate   float64
	rejectDetail           string
	seed                   uint64
}

func (f *sandboxFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.clientID, "client-id", ccsandbox.DefaultClientID, "the one OAuth client id the sandbox knows")
	fs.StringVar(&f.clientSecret, "client-secret", ccsandbox.DefaultClientSecret, "that client's secret")
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

func (f *sandboxFlags) options(log *slog.Logger) (ccsandbox.Options, error) {
	o := ccsandbox.Options{
		ClientID: f.clientID, ClientSecret: f.clientSecret, TokenTTL: f.tokenTTL,
		RefreshMode: f.refreshMode, ActivityDelay: f.activityDelay, Logger: log,
		FailRate: f.failRate, ThrottleRate: f.throttleRate, Seed: f.seed,
		RejectRate: f.rejectRate, RejectDetail: f.rejectDetail, DropRate: f.dropRate,
	}
	return o, o.Validate()
}

// runSandbox serves the CC sandbox on its own, for tests and people that run
// serve and work as separate processes.
func runSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	var sf sandboxFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	log := newLogger(stderr, "text", "info")
	opts, err := sf.options(log)
	if err != nil {
		return err
	}
	sb := ccsandbox.New(opts)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "CC sandbox listening on %s\n  HS2CC_CC_API_URL=%s/v3\n  HS2CC_CC_AUTH_URL=%s/oauth2/default/v1\n  contacts: %s/sandbox/contacts\n  stats:    %s/sandbox/stats\n",
		base, base, base, base, base)
	if sf.failRate > 0 || sf.throttleRate > 0 || sf.rejectRate > 0 || sf.dropRate > 0 {
		// The seed is printed so that a run that went wrong can be repeated
		// with the same faults.
		fmt.Fprintf(stdout, "  faults:   fail rate %g, throttle rate %g, reject rate %g (detail %s), drop rate %g (--cc-seed %d repeats them)\n",
			sf.failRate, sf.throttleRate, sf.rejectRate, sf.rejectDetail, sf.dropRate, sb.Seed())
	}
	return serveListener(ctx, ln, sb, log)
}

// serveListener serves h on ln until ctx ends.
func serveListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
