package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Flags are `hs2cc simulate`'s flags. The command owns its flag set, so
// that its usage errors are reported as every other command's are, and
// Register fills it.
type Flags struct {
	Options
	// InProcess asks for the bridge's own code instead of HTTP; Command
	// then builds the delivery with its connect argument.
	InProcess     bool
	urls          string
	sandbox       string
	untilImported bool
	wait          time.Duration
	asJSON        bool
	cpuProfile    string
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.urls, "url", "http://127.0.0.1:8080/webhooks/hubspot", "webhook URL, exactly as HubSpot would call it; several, comma-separated, are used in turn")
	fs.StringVar(&f.Secret, "secret", "", "HubSpot app client secret to sign with")
	fs.IntVar(&f.Count, "count", 100, "distinct contacts to send")
	fs.IntVar(&f.Concurrency, "concurrency", 4, "requests in flight")
	fs.IntVar(&f.Repeats, "repeats", 0, "contacts to send a second time, as HubSpot's retries do")
	fs.Int64Var(&f.FirstID, "first-id", time.Now().UnixMilli()%1_000_000_000*10, "object id of the first contact (default: from the clock, so runs do not collide)")
	fs.Int64Var(&f.PortalID, "portal-id", 62515, "HubSpot portal id")
	fs.StringVar(&f.SignURL, "sign-url", "", "URL to sign when HubSpot's URL differs from --url (a proxy in between)")
	fs.Float64Var(&f.Rate, "rate", 0, "open loop: send this many requests a second, latency measured from each one's due time (0: closed loop)")
	fs.BoolVar(&f.InProcess, "in-process", false, "skip HTTP and the signature: parse, route, store and enqueue each body in this process, on the MySQL and Redis of the HS2CC_* environment (the limit HTTP ingest is measured against)")
	fs.StringVar(&f.sandbox, "cc-sandbox", "", "base URL of the CC sandbox the bridge imports into, for --until-imported")
	fs.BoolVar(&f.untilImported, "until-imported", false, "after sending, wait until the sandbox has imported every contact sent, and report when the last one was listed and the CC calls used")
	fs.DurationVar(&f.wait, "wait", 10*time.Minute, "longest wait for --until-imported")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file")
}

// Connect builds the --in-process delivery and what releases it. The load
// generator cannot build it itself: it is the bridge's ingest code on the
// configured MySQL and Redis, which only the command's wiring knows.
type Connect func(ctx context.Context) (deliver func(context.Context, []byte) (int, error), release func(), err error)

// Command runs `hs2cc simulate` as f describes and prints the result to
// stdout. getenv is the process environment; connect is called only for
// --in-process. It fails when any request was rejected or failed.
func Command(ctx context.Context, f *Flags, getenv func(string) string, stdout io.Writer, connect Connect) error {
	if !f.InProcess && getenv("GOMAXPROCS") == "" {
		// Sending needs far less than a core, and on a machine shared with
		// the bridge a second P only adds the scheduler's spinning to the
		// generator's cost (about 40 µs of CPU a request with one P, 55
		// with two), so the generator keeps to one, as wrk keeps to its
		// threads. In-process runs are the bridge's own code and keep all.
		runtime.GOMAXPROCS(1)
	}
	if f.cpuProfile != "" {
		file, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	o := f.Options
	o.URL = f.urls
	if strings.Contains(f.urls, ",") {
		o.URLs = strings.Split(f.urls, ",")
		o.URL = o.URLs[0]
	}
	if o.Secret == "" && !f.InProcess {
		return errors.New("simulate: --secret is required")
	}
	if f.untilImported && f.sandbox == "" {
		return errors.New("simulate: --until-imported needs --cc-sandbox")
	}
	if f.InProcess {
		deliver, release, err := connect(ctx)
		if err != nil {
			return err
		}
		defer release()
		o.Deliver = deliver
	}
	var before sandboxStats
	if f.untilImported {
		var err error
		if before, err = readSandboxStats(ctx, f.sandbox); err != nil {
			return err
		}
	}
	cpu0 := processCPU()
	res, err := Run(ctx, o)
	if err != nil {
		return err
	}
	sum := Summarize(o, res)
	sum.CPUS = (processCPU() - cpu0).Seconds()
	if f.untilImported {
		// Every contact sent is distinct, so the run is done when the
		// sandbox has received that many more rows in completed imports.
		l, err := awaitImported(ctx, f.sandbox, before, res.Accepted, f.wait)
		if err != nil {
			return err
		}
		sum.Listed = &l
		sum.Listed.AfterLastAckS = l.at.Sub(res.LastAnswer).Seconds()
		sum.Listed.WallS = l.at.Sub(res.Start).Seconds()
	}
	if err := report(stdout, f.asJSON, o, res, sum); err != nil {
		return err
	}
	if res.Failed > 0 || res.Rejected > 0 {
		return fmt.Errorf("simulate: %d rejected, %d failed", res.Rejected, res.Failed)
	}
	return nil
}

// report writes the run's summary, as JSON for scripts or as text.
func report(stdout io.Writer, asJSON bool, o Options, res Result, sum Summary) error {
	if asJSON {
		return json.NewEncoder(stdout).Encode(sum)
	}
	Print(stdout, o, res)
	if l := sum.Listed; l != nil {
		fmt.Fprintf(stdout, "every contact imported %.1f s after the start, %.1f s after the last answer; CC calls: %d (%d imports, %d activity polls)\n",
			l.WallS, l.AfterLastAckS, l.CCCalls, l.ImportCalls, l.ActivityCalls)
	}
	return nil
}

// processCPU is the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
