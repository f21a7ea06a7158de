// Package loadgen is the load generator behind `hs2cc simulate`: it builds
// signed, realistic HubSpot workflow bodies, sends them to the bridge (or
// hands them to it in-process), and reports the answers and their latency,
// and with --until-imported how long the CC sandbox took to list them.
//
// It lives apart from the command's wiring so that cmd/hs2cc only wires, and
// it reads the sandbox over HTTP with a struct of its own rather than
// importing ccclient/ccsandbox, so that production binaries (built with
// -tags nodev) can carry the load generator without the sandbox.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Options drive one run.
type Options struct {
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

// Result counts the answers and keeps every latency.
type Result struct {
	Accepted, Duplicates, Rejected, Failed int
	Latencies                              []time.Duration
	Elapsed                                time.Duration
	// LastAnswer is when the last answer arrived, which is when the last
	// webhook was done from HubSpot's point of view.
	LastAnswer time.Time
	Start      time.Time
}

// Run sends the contacts (and the repeats) and collects the answers.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	r := &runner{o: o}
	conns, err := r.dial()
	if err != nil {
		return r.res, err
	}
	// Buffered, so that handing out a request rarely wakes the dispatcher
	// or a worker: an unbuffered hand-off cost the generator a goroutine
	// switch per request, CPU the measured bridge would be charged for. An
	// open-loop job that waits in the buffer still counts from its due time.
	jobs := make(chan job, 4096)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func(mine []*webhookConn) {
			defer wg.Done()
			r.work(ctx, mine, jobs)
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
	r.res.Elapsed = time.Since(start)
	r.res.Start = start
	return r.res, ctx.Err()
}

// job is one request to send.
type job struct {
	i   int
	due time.Time // open loop: when the request should have gone out
}

// runner is one Run: its options and the answers counted so far.
type runner struct {
	o   Options
	mu  sync.Mutex
	res Result
}

// dial opens every worker's own connection to each URL, so that a closed
// loop of N workers is N connections, as N HubSpot senders would be. With
// Deliver there is nothing to dial.
func (r *runner) dial() ([][]*webhookConn, error) {
	conns := make([][]*webhookConn, r.o.Concurrency)
	if r.o.Deliver != nil {
		return conns, nil
	}
	urls := r.o.URLs
	if len(urls) == 0 {
		urls = []string{r.o.URL}
	}
	for w := range conns {
		for _, u := range urls {
			c, err := newWebhookConn(u, r.o.SignURL, r.o.Secret)
			if err != nil {
				return nil, err
			}
			conns[w] = append(conns[w], c)
		}
	}
	return conns, nil
}

// work sends the jobs it takes over its own connections, until jobs closes.
func (r *runner) work(ctx context.Context, mine []*webhookConn, jobs <-chan job) {
	defer func() {
		for _, c := range mine {
			c.close()
		}
	}()
	var buf []byte
	for j := range jobs {
		buf = AppendContactBody(buf[:0], r.o.PortalID, r.o.FirstID+int64(j.i), j.i)
		t0 := time.Now()
		if !j.due.IsZero() {
			t0 = j.due
		}
		var status int
		var err error
		if r.o.Deliver != nil {
			// Deliver may keep the body (the ingest core stores it as the
			// delivery's), so it gets a copy of its own.
			status, err = r.o.Deliver(ctx, append([]byte(nil), buf...))
		} else {
			status, err = mine[j.i%len(mine)].send(ctx, buf)
		}
		r.record(t0, time.Now(), status, err)
	}
}

// record counts one answer and its latency from t0.
func (r *runner) record(t0, done time.Time, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Latencies = append(r.res.Latencies, done.Sub(t0))
	if done.After(r.res.LastAnswer) {
		r.res.LastAnswer = done
	}
	switch {
	case err != nil || status >= 500:
		r.res.Failed++
	case status == http.StatusAccepted:
		r.res.Accepted++
	case status >= 200 && status < 300:
		r.res.Duplicates++
	default:
		r.res.Rejected++
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// Summary is the --json form of a run: what benchmarks record.
type Summary struct {
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
	Listed *Listed `json:"listed,omitempty"`
}

// Summarize reduces a run to its Summary.
func Summarize(o Options, r Result) Summary {
	lat := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s := Summary{Mode: "closed", Rate: o.Rate, Concurrency: o.Concurrency, Requests: len(lat),
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

// Print writes a run's answers and latency for a person to read.
func Print(w io.Writer, o Options, r Result) {
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
