//go:build !nodev

// `hs2cc hubspot-sandbox` is left out of builds made with -tags nodev, as
// production images are, so that they do not link hubspot/crm/hssandbox;
// see hubspotsandbox_nodev.go.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/hs2cc/hs2cc/hubspot/crm/hssandbox"
)

// hsSandboxFlags are the flags `hubspot-sandbox` and `dev` share; they are
// prefixed hs- so that dev can take them beside the CC sandbox's cc- ones.
type hsSandboxFlags struct {
	token                  string
	rate, daily            int
	missing                string
	omitRetryAfter         bool
	failRate, throttleRate float64
	seed                   uint64
}

func (f *hsSandboxFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.token, "hs-token", hssandbox.DefaultToken, "the private app token the HubSpot sandbox accepts")
	fs.IntVar(&f.rate, "hs-rate", hssandbox.DefaultRate, "HubSpot sandbox requests per rolling 10 s (negative: no limit)")
	fs.IntVar(&f.daily, "hs-daily", hssandbox.DefaultDaily, "HubSpot sandbox requests per UTC day (negative: no limit)")
	fs.StringVar(&f.missing, "hs-missing", hssandbox.MissingMultiStatus, "answer to a batch naming deleted contacts: multi_status, refuse or refuse_message")
	fs.BoolVar(&f.omitRetryAfter, "hs-omit-retry-after", false, "leave Retry-After out of the HubSpot sandbox's 429s")
	fs.Float64Var(&f.failRate, "hs-fail-rate", 0, "chance (0-1) that a HubSpot API call fails with 500 or 502")
	fs.Float64Var(&f.throttleRate, "hs-throttle-rate", 0, "chance (0-1) that a HubSpot API call gets the secondly 429")
	fs.Uint64Var(&f.seed, "hs-seed", 0, "seed of the HubSpot sandbox's random faults (0: from the clock)")
}

func (f *hsSandboxFlags) newServer(log *slog.Logger) (*hssandbox.Server, error) {
	return hssandbox.New(hssandbox.Options{
		Token: f.token, Rate: f.rate, Daily: f.daily, Missing: f.missing, OmitRetryAfter: f.omitRetryAfter,
		FailRate: f.failRate, ThrottleRate: f.throttleRate, Seed: f.seed, Logger: log,
	})
}

// devHubSpot is the HubSpot sandbox `hs2cc dev` runs. It listens before
// the config is loaded, so that the bridge's config can name its address
// even when --hs-addr asks for port 0.
type devHubSpot struct {
	sb        *hssandbox.Server
	ln        net.Listener
	base      string
	stopClose func() bool // cancels the close of an unserved listener
}

// listenDevHubSpot builds dev's HubSpot sandbox and opens its listener,
// which is closed when ctx ends if nothing served it.
func listenDevHubSpot(ctx context.Context, hf hsSandboxFlags, addr string) (devHubSpot, error) {
	sb, err := hf.newServer(nil)
	if err != nil {
		return devHubSpot{}, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return devHubSpot{}, fmt.Errorf("dev: hubspot sandbox: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	return devHubSpot{sb: sb, ln: ln, base: "http://" + ln.Addr().String(), stopClose: stop}, nil
}

// serve serves the sandbox until ctx ends. serveListener closes the
// listener itself then; a second close here could race its clean shutdown
// into an error.
func (h devHubSpot) serve(ctx context.Context, log *slog.Logger) error {
	h.stopClose()
	return serveListener(ctx, h.ln, h.sb, log)
}

// env points the bridge's write-back at the sandbox, whatever the
// environment says: dev must never write to a real HubSpot account.
func (h devHubSpot) env(getenv func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "HS2CC_HUBSPOT_TOKEN":
			return h.sb.Token()
		case "HS2CC_HUBSPOT_API_URL":
			return h.base
		}
		return getenv(k)
	}
}

// runHubSpotSandbox serves the HubSpot CRM sandbox on its own, for tests
// and people that run serve and work as separate processes.
func runHubSpotSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubspot-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8082", "listen address")
	var hf hsSandboxFlags
	hf.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	log := newLogger(stderr, "text", "info")
	sb, err := hf.newServer(log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("hubspot-sandbox: %w", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "HubSpot sandbox listening on %s\n  HS2CC_HUBSPOT_API_URL=%s\n  HS2CC_HUBSPOT_TOKEN=%s\n  contacts: %s/sandbox/contacts\n  stats:    %s/sandbox/stats\n",
		base, base, sb.Token(), base, base)
	return serveListener(ctx, ln, sb, log)
}
