package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

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
}

// simResult counts the answers and keeps every latency.
type simResult struct {
	Accepted, Duplicates, Rejected, Failed int
	Latencies                              []time.Duration
	Elapsed                                time.Duration
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o simOptions
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080/webhooks/hubspot", "webhook URL, exactly as HubSpot would call it")
	fs.StringVar(&o.Secret, "secret", "", "HubSpot app client secret to sign with")
	fs.IntVar(&o.Count, "count", 100, "distinct contacts to send")
	fs.IntVar(&o.Concurrency, "concurrency", 4, "requests in flight")
	fs.IntVar(&o.Repeats, "repeats", 0, "contacts to send a second time, as HubSpot's retries do")
	fs.Int64Var(&o.FirstID, "first-id", time.Now().UnixMilli()%1_000_000_000*10, "object id of the first contact (default: from the clock, so runs do not collide)")
	fs.Int64Var(&o.PortalID, "portal-id", 62515, "HubSpot portal id")
	fs.StringVar(&o.SignURL, "sign-url", "", "URL to sign when HubSpot's URL differs from --url (a proxy in between)")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: send this many requests a second, latency measured from each one's due time (0: closed loop)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if o.Secret == "" {
		return errors.New("simulate: --secret is required")
	}
	res, err := simulate(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(summarize(o, res)); err != nil {
			return err
		}
	} else {
		printSim(stdout, o, res)
	}
	if res.Failed > 0 || res.Rejected > 0 {
		return fmt.Errorf("simulate: %d rejected, %d failed", res.Rejected, res.Failed)
	}
	return nil
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
	jobs := make(chan job)
	var mu sync.Mutex
	var res simResult
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				body := contactBody(o.PortalID, o.FirstID+int64(j.i), j.i)
				t0 := time.Now()
				if !j.due.IsZero() {
					t0 = j.due
				}
				status, err := sendSigned(ctx, client, o.URL, o.SignURL, o.Secret, body)
				lat := time.Since(t0)
				mu.Lock()
				res.Latencies = append(res.Latencies, lat)
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
		}()
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
	return res, ctx.Err()
}

func sendSigned(ctx context.Context, client *http.Client, url, signURL, secret string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if signURL == "" {
		signURL = url
	}
	for k, v := range hubspot.Sign(secret, http.MethodPost, signURL, body, time.Now()) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks) hs2cc-simulate")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
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
	r := rand.New(rand.NewPCG(uint64(vid), 7))
	first, last := simFirst[r.IntN(len(simFirst))], simLast[r.IntN(len(simLast))]
	email := fmt.Sprintf("agent%d@example-travel.com", vid)
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).UnixMilli()
	prop := func(v string) map[string]any {
		return map[string]any{"value": v, "versions": []map[string]any{{
			"value": v, "source-type": "FORM", "source-id": "form-1", "source-label": nil,
			"updated-by-user-id": nil, "timestamp": created, "selected": false,
		}}}
	}
	body := map[string]any{
		"vid": vid, "canonical-vid": vid, "merged-vids": []int64{}, "portal-id": portal, "is-contact": true,
		"properties": map[string]any{
			"email": prop(email), "firstname": prop(first), "lastname": prop(last),
			"country": prop(simCtry[r.IntN(len(simCtry))]), "createdate": prop(strconv.FormatInt(created, 10)),
			"company": prop("Agency " + strconv.Itoa(r.IntN(500))), "agent_tier": prop([]string{"gold", "silver", "bronze"}[r.IntN(3)]),
			"lastmodifieddate": prop(strconv.FormatInt(created+1000, 10)),
		},
		"form-submissions": []any{}, "list-memberships": []any{},
		"identity-profiles": []map[string]any{{"vid": vid, "saved-at-timestamp": created, "deleted-changed-timestamp": 0,
			"identities": []map[string]any{{"type": "EMAIL", "value": email, "timestamp": created, "is-primary": true}}}},
		"merge-audits": []any{},
	}
	b, _ := json.Marshal(body)
	return b
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
