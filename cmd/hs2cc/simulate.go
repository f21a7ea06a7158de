package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hs2cc/hs2cc/ccclient/ccsandbox"
	"github.com/hs2cc/hs2cc/hubspot"
)

// simOptions drive one simulate run.
type simOptions struct {
	URL         string
	Secret      string
	Count       int
	Concurrency int
	Repeats     int   // how many of the contacts are sent a second time, unchanged
	FirstID     int64 // HubSpot object id of the first contact
	PortalID    int64
	// SignURL is the URL HubSpot would have called, when it differs from
	// URL (a proxy in front of the bridge); URL is signed when empty.
	SignURL string
	// Rate, when above zero, makes the run open-loop: request i is due at
	// start + i/Rate whatever the answers do, and its latency counts from
	// that due time, so a stall shows as latency instead of hiding as a
	// lower send rate. Concurrency then bounds the requests in flight.
	Rate float64
	// URLs, when set, replaces URL: request i goes to URLs[i%len(URLs)],
	// so that one run can load several serve processes evenly.
	URLs []string
	// Deliver, when set, replaces HTTP: it hands body i to the bridge some
	// other way (in-process, for the limit HTTP is measured against) and
	// returns the status the webhook would have answered.
	Deliver func(ctx context.Context, body []byte) (int, error)
}

// simResult counts the answers and keeps every latency.
type simResult struct {
	Accepted, Duplicates, Rejected, Failed int
	Latencies                              []time.Duration
	Elapsed                                time.Duration
	// LastAnswer is when the last answer arrived, which is when the last
	// webhook was done from HubSpot's point of view.
	LastAnswer time.Time
	Start      time.Time
}

func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o simOptions
	var urls string
	fs.StringVar(&urls, "url", "http://127.0.0.1:8080/webhooks/hubspot", "webhook URL, exactly as HubSpot would call it; several, comma-separated, are used in turn")
	fs.StringVar(&o.Secret, "secret", "", "HubSpot app client secret to sign with")
	fs.IntVar(&o.Count, "count", 100, "distinct contacts to send")
	fs.IntVar(&o.Concurrency, "concurrency", 4, "requests in flight")
	fs.IntVar(&o.Repeats, "repeats", 0, "contacts to send a second time, as HubSpot's retries do")
	fs.Int64Var(&o.FirstID, "first-id", time.Now().UnixMilli()%1_000_000_000*10, "object id of the first contact (default: from the clock, so runs do not collide)")
	fs.Int64Var(&o.PortalID, "portal-id", 62515, "HubSpot portal id")
	fs.StringVar(&o.SignURL, "sign-url", "", "URL to sign when HubSpot's URL differs from --url (a proxy in between)")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: send this many requests a second, latency measured from each one's due time (0: closed loop)")
	inProcess := fs.Bool("in-process", false, "skip HTTP and the signature: parse, route, store and enqueue each body in this process, on the MySQL and Redis of the HS2CC_* environment (the limit HTTP ingest is measured against)")
	sandbox := fs.String("cc-sandbox", "", "base URL of the CC sandbox the bridge imports into, for --until-imported")
	untilImported := fs.Bool("until-imported", false, "after sending, wait until the sandbox has imported every contact sent, and report when the last one was listed and the CC calls used")
	wait := fs.Duration("wait", 10*time.Minute, "longest wait for --until-imported")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if !*inProcess && getenv("GOMAXPROCS") == "" {
		// Sending needs far less than a core, and on a machine shared with
		// the bridge a second P only adds the scheduler's spinning to the
		// generator's cost (about 40 µs of CPU a request with one P, 55
		// with two), so the generator keeps to one, as wrk keeps to its
		// threads. In-process runs are the bridge's own code and keep all.
		runtime.GOMAXPROCS(1)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	o.URL = urls
	if strings.Contains(urls, ",") {
		o.URLs = strings.Split(urls, ",")
		o.URL = o.URLs[0]
	}
	if o.Secret == "" && !*inProcess {
		return errors.New("simulate: --secret is required")
	}
	if *untilImported && *sandbox == "" {
		return errors.New("simulate: --until-imported needs --cc-sandbox")
	}
	if *inProcess {
		deliver, closeFn, err := inProcessDelivery(ctx, getenv)
		if err != nil {
			return err
		}
		defer closeFn()
		o.Deliver = deliver
	}
	var before ccsandbox.Stats
	if *untilImported {
		var err error
		if before, err = sandboxStats(ctx, *sandbox); err != nil {
			return err
		}
	}
	cpu0 := processCPU()
	res, err := simulate(ctx, o)
	if err != nil {
		return err
	}
	sum := summarize(o, res)
	sum.CPUS = (processCPU() - cpu0).Seconds()
	if *untilImported {
		// Every contact sent is distinct, so the run is done when the
		// sandbox has received that many more rows in completed imports.
		l, err := awaitImported(ctx, *sandbox, before, res.Accepted, *wait)
		if err != nil {
			return err
		}
		sum.Listed = &l
		sum.Listed.AfterLastAckS = l.at.Sub(res.LastAnswer).Seconds()
		sum.Listed.WallS = l.at.Sub(res.Start).Seconds()
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(sum); err != nil {
			return err
		}
	} else {
		printSim(stdout, o, res)
		if l := sum.Listed; l != nil {
			fmt.Fprintf(stdout, "every contact imported %.1f s after the start, %.1f s after the last answer; CC calls: %d (%d imports, %d activity polls)\n",
				l.WallS, l.AfterLastAckS, l.CCCalls, l.ImportCalls, l.ActivityCalls)
		}
	}
	if res.Failed > 0 || res.Rejected > 0 {
		return fmt.Errorf("simulate: %d rejected, %d failed", res.Rejected, res.Failed)
	}
	return nil
}

// inProcessDelivery builds the in-process path: the webhook's own code
// after the signature (handlers.Ingester: parse, route, durable upsert,
// asynq enqueue) on the configured MySQL and Redis, with no HTTP.
func inProcessDelivery(ctx context.Context, getenv func(string) string) (func(context.Context, []byte) (int, error), func(), error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, nil, err
	}
	d, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	in := newIngester(cfg, d, newLogger(io.Discard, "text", "error"))
	deliver := func(ctx context.Context, body []byte) (int, error) {
		got, err := in.Ingest(ctx, body, hubspot.V3, time.Time{})
		return got.Status, err
	}
	return deliver, d.close, nil
}

// simListed is how an --until-imported run ended at the sandbox.
type simListed struct {
	// WallS runs from the first request to the last contact listed;
	// AfterLastAckS from the last answer to the last contact listed.
	WallS         float64 `json:"wall_s"`
	AfterLastAckS float64 `json:"after_last_ack_s"`
	// CCCalls counts every CC API call the bridge made from the first
	// request until the last contact was listed (token grants are not API
	// calls); ImportCalls and ActivityCalls are the imports and the
	// activity polls among them. The poll that tells the bridge of the
	// last import's outcome comes after, so it is not in them.
	CCCalls       int `json:"cc_calls"`
	ImportCalls   int `json:"import_calls"`
	ActivityCalls int `json:"activity_calls"`
	Imports       int `json:"imports"`
	ImportRows    int `json:"import_rows"`
	at            time.Time
}

// awaitImported polls the sandbox until want more rows than in before were
// received by completed imports, and reports the calls made meanwhile.
// The sandbox settles imports as it is read, so the time found is within
// one poll of when the last contact was listed.
func awaitImported(ctx context.Context, base string, before ccsandbox.Stats, want int, limit time.Duration) (simListed, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := sandboxStats(ctx, base)
		if err != nil {
			return simListed{}, err
		}
		if rows := st.ImportRows - before.ImportRows; rows >= want {
			l := simListed{at: time.Now(), Imports: st.Imports - before.Imports, ImportRows: rows}
			for route, n := range st.Requests {
				n -= before.Requests[route]
				switch {
				case strings.Contains(route, "/oauth2/"):
					continue
				case strings.HasPrefix(route, "POST /v3/activities/contacts_json_import"):
					l.ImportCalls += n
				case strings.HasPrefix(route, "GET /v3/activities/"):
					l.ActivityCalls += n
				}
				l.CCCalls += n
			}
			return l, nil
		} else if time.Now().After(deadline) {
			return simListed{}, fmt.Errorf("simulate: the sandbox imported %d of %d contacts in %s", rows, want, limit)
		}
		select {
		case <-ctx.Done():
			return simListed{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// processCPU is the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sandboxStats(ctx context.Context, base string) (ccsandbox.Stats, error) {
	var st ccsandbox.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/sandbox/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("simulate: sandbox stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("simulate: sandbox stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// simulate sends the contacts (and the repeats) and collects the answers.
func simulate(ctx context.Context, o simOptions) (simResult, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	type job struct {
		i   int
		due time.Time // open loop: when the request should have gone out
	}
	// Buffered, so that handing out a request rarely wakes the dispatcher
	// or a worker: an unbuffered hand-off cost the generator a goroutine
	// switch per request, CPU the measured bridge would be charged for. An
	// open-loop job that waits in the buffer still counts from its due time.
	jobs := make(chan job, 4096)
	var mu sync.Mutex
	var res simResult
	urls := o.URLs
	if len(urls) == 0 {
		urls = []string{o.URL}
	}
	// Every worker has its own connection to each URL, so a closed loop
	// of N workers is N connections, as N HubSpot senders would be.
	conns := make([][]*webhookConn, o.Concurrency)
	if o.Deliver == nil {
		for w := range conns {
			for _, u := range urls {
				c, err := newWebhookConn(u, o.SignURL, o.Secret)
				if err != nil {
					return res, err
				}
				conns[w] = append(conns[w], c)
			}
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func(mine []*webhookConn) {
			defer wg.Done()
			defer func() {
				for _, c := range mine {
					c.close()
				}
			}()
			var buf []byte
			for j := range jobs {
				buf = appendContactBody(buf[:0], o.PortalID, o.FirstID+int64(j.i), j.i)
				t0 := time.Now()
				if !j.due.IsZero() {
					t0 = j.due
				}
				var status int
				var err error
				if o.Deliver != nil {
					// The Ingester keeps the body as the stored delivery's,
					// so it gets a copy of its own.
					status, err = o.Deliver(ctx, append([]byte(nil), buf...))
				} else {
					status, err = mine[j.i%len(mine)].send(ctx, buf)
				}
				done := time.Now()
				lat := done.Sub(t0)
				mu.Lock()
				res.Latencies = append(res.Latencies, lat)
				if done.After(res.LastAnswer) {
					res.LastAnswer = done
				}
				switch {
				case err != nil || status >= 500:
					res.Failed++
				case status == http.StatusAccepted:
					res.Accepted++
				case status >= 200 && status < 300:
					res.Duplicates++
				default:
					res.Rejected++
				}
				mu.Unlock()
			}
		}(conns[w])
	}
	n := 0 // requests scheduled so far, for the open-loop clock
	send := func(i int) bool {
		j := job{i: i}
		if o.Rate > 0 {
			j.due = start.Add(time.Duration(float64(n) / o.Rate * float64(time.Second)))
			n++
			if wait := time.Until(j.due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return false
				}
			}
		}
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := 0; i < o.Count && send(i); i++ {
	}
	for i := 0; i < o.Repeats && i < o.Count && send(i*(o.Count/max(o.Repeats, 1))); i++ {
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Start = start
	return res, ctx.Err()
}

var (
	simFirst = []string{"Ann", "Yllä", "Søren", "José", "Zoë", "Łukasz", "Chloé", "Björn", "Aiko", "Nguyễn", "Olu", "Maëlle", "Иван", "佳怡"}
	simLast  = []string{"Øster", "García", "Müller", "O'Brien", "Dubois", "Kowalski", "Tanaka", "Smith", "Nakamura", "Ångström", "Okafor"}
	simCtry  = []string{"US", "United States", "CA", "Canada", "GB", "DE", "FR", "MX", "JP", "BR"}
)

// contactBody builds a workflow body in HubSpot's "include all properties"
// contact-profile shape, with value histories, identity profiles and
// non-ASCII names, so that parsing and signing see what production sees.
func contactBody(portal, vid int64, i int) []byte {
	return appendContactBody(nil, portal, vid, i)
}

// appendContactBody appends contactBody's JSON to b. It writes the JSON
// directly rather than marshalling maps, because simulate runs on the
// machine it measures and a map marshal costs more CPU than the bridge
// spends parsing the body. Every string comes from the fixed lists above or
// is ASCII, so strconv's quoting is valid JSON for them.
func appendContactBody(b []byte, portal, vid int64, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(vid), 7))
	first, last := simFirst[r.IntN(len(simFirst))], simLast[r.IntN(len(simLast))]
	country := simCtry[r.IntN(len(simCtry))]
	company := "Agency " + strconv.Itoa(r.IntN(500))
	tier := []string{"gold", "silver", "bronze"}[r.IntN(3)]
	email := "agent" + strconv.FormatInt(vid, 10) + "@example-travel.com"
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).UnixMilli()
	num := func(n int64) { b = strconv.AppendInt(b, n, 10) }
	prop := func(name, v string) {
		b = strconv.AppendQuote(b, name)
		b = append(b, `:{"value":`...)
		b = strconv.AppendQuote(b, v)
		b = append(b, `,"versions":[{"selected":false,"source-id":"form-1","source-label":null,"source-type":"FORM","timestamp":`...)
		num(created)
		b = append(b, `,"updated-by-user-id":null,"value":`...)
		b = strconv.AppendQuote(b, v)
		b = append(b, `}]}`...)
	}
	b = append(b, `{"canonical-vid":`...)
	num(vid)
	b = append(b, `,"form-submissions":[],"identity-profiles":[{"deleted-changed-timestamp":0,"identities":[{"is-primary":true,"timestamp":`...)
	num(created)
	b = append(b, `,"type":"EMAIL","value":`...)
	b = strconv.AppendQuote(b, email)
	b = append(b, `}],"saved-at-timestamp":`...)
	num(created)
	b = append(b, `,"vid":`...)
	num(vid)
	b = append(b, `}],"is-contact":true,"list-memberships":[],"merge-audits":[],"merged-vids":[],"portal-id":`...)
	num(portal)
	b = append(b, `,"properties":{`...)
	for k, p := range [][2]string{{"agent_tier", tier}, {"company", company}, {"country", country},
		{"createdate", strconv.FormatInt(created, 10)}, {"email", email}, {"firstname", first},
		{"lastmodifieddate", strconv.FormatInt(created+1000, 10)}, {"lastname", last}} {
		if k > 0 {
			b = append(b, ',')
		}
		prop(p[0], p[1])
	}
	b = append(b, `},"vid":`...)
	num(vid)
	return append(b, '}')
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// simSummary is the --json form of a run: what benchmarks record.
type simSummary struct {
	Mode        string  `json:"mode"` // closed or open
	Rate        float64 `json:"rate,omitempty"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Accepted    int     `json:"accepted"`
	Duplicates  int     `json:"duplicates"`
	Rejected    int     `json:"rejected"`
	Failed      int     `json:"failed"`
	ElapsedS    float64 `json:"elapsed_s"`
	Throughput  float64 `json:"throughput_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P95Ms       float64 `json:"p95_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// CPUS is the CPU time (user and system) this process spent sending:
	// the load generator's share of the machine, or with --in-process the
	// bridge's own code as well.
	CPUS float64 `json:"cpu_s"`
	// Listed is filled by --until-imported.
	Listed *simListed `json:"listed,omitempty"`
}

func summarize(o simOptions, r simResult) simSummary {
	lat := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s := simSummary{Mode: "closed", Rate: o.Rate, Concurrency: o.Concurrency, Requests: len(lat),
		Accepted: r.Accepted, Duplicates: r.Duplicates, Rejected: r.Rejected, Failed: r.Failed,
		ElapsedS: r.Elapsed.Seconds()}
	if o.Rate > 0 {
		s.Mode = "open"
	}
	if r.Elapsed > 0 {
		s.Throughput = float64(len(lat)) / r.Elapsed.Seconds()
	}
	if len(lat) > 0 {
		s.P50Ms, s.P95Ms, s.P99Ms, s.MaxMs = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.95)), ms(percentile(lat, 0.99)), ms(lat[len(lat)-1])
	}
	return s
}

func printSim(w io.Writer, o simOptions, r simResult) {
	lat := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	total := len(lat)
	fmt.Fprintf(w, "sent %d requests (%d contacts, %d repeats) in %s: %.0f req/s\n",
		total, o.Count, total-o.Count, r.Elapsed.Round(time.Millisecond), float64(total)/r.Elapsed.Seconds())
	fmt.Fprintf(w, "accepted %d, duplicates %d, rejected %d, failed %d\n", r.Accepted, r.Duplicates, r.Rejected, r.Failed)
	if total > 0 {
		fmt.Fprintf(w, "ack latency p50 %s, p95 %s, p99 %s, max %s\n",
			percentile(lat, 0.50).Round(10*time.Microsecond), percentile(lat, 0.95).Round(10*time.Microsecond),
			percentile(lat, 0.99).Round(10*time.Microsecond), lat[total-1].Round(10*time.Microsecond))
	}
}
