package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/handlers"
	"github.com/hs2cc/hs2cc/store"
)

// writebackCollector exports the HubSpot write-back's shared state at
// scrape time: whether it is on, the outbox by state and the age of its
// oldest pending row (from MySQL), and HubSpot's calls today (from Redis).
// What each process does (calls by status, 429s among them, contacts by
// result) is counted where it happens, in `work`.
type writebackCollector struct {
	db                                 handlers.HubSpotWriteback
	hs                                 handlers.HubSpotCalls // nil when the write-back is off
	now                                func() time.Time
	enabled, outbox, oldest, calls, up *prometheus.Desc
	paused                             *prometheus.Desc
}

func newWritebackCollector(db handlers.HubSpotWriteback, hs handlers.HubSpotCalls, now func() time.Time) *writebackCollector {
	return &writebackCollector{
		db: db, hs: hs, now: now,
		enabled: prometheus.NewDesc("hs2cc_hubspot_writeback_enabled",
			"1 when outcomes are written back to HubSpot (HS2CC_HUBSPOT_TOKEN is set), 0 when the write-back is off.", nil, nil),
		outbox: prometheus.NewDesc("hs2cc_hubspot_writeback_outbox",
			"Contacts in the write-back outbox by state: pending, written, missing (deleted in HubSpot, skipped), no_id, failed.",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc("hs2cc_hubspot_writeback_oldest_pending_seconds",
			"Age of the longest-waiting pending write-back; 0 when none waits.", nil, nil),
		calls: prometheus.NewDesc("hs2cc_hubspot_calls_today",
			"HubSpot API calls counted today (UTC) by every process.", nil, nil),
		paused: prometheus.NewDesc("hs2cc_hubspot_paused_seconds",
			"How much longer every process waits before calling HubSpot, as its last 429 asked; 0 when not paused.", nil, nil),
		up: prometheus.NewDesc("hs2cc_hubspot_writeback_up",
			"1 when the write-back's figures could be read for this scrape.", nil, nil),
	}
}

func (c *writebackCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.enabled, c.outbox, c.oldest, c.calls, c.paused, c.up} {
		ch <- d
	}
}

func (c *writebackCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	on := c.db.WritebackEnabled()
	gauge(c.enabled, boolFloat(on))
	if !on {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sum, err := c.db.SummarizeWriteback(ctx)
	if err != nil {
		gauge(c.up, 0)
		return
	}
	for _, s := range store.WritebackStates {
		gauge(c.outbox, float64(sum.Counts[s]), s)
	}
	oldest := 0.0
	if !sum.OldestPending.IsZero() {
		oldest = max(c.now().Sub(sum.OldestPending).Seconds(), 0)
	}
	gauge(c.oldest, oldest)
	if c.hs != nil {
		used, err := c.hs.Used(ctx)
		until, _, perr := c.hs.PausedUntil(ctx)
		if err != nil || perr != nil {
			gauge(c.up, 0)
			return
		}
		gauge(c.calls, float64(used))
		gauge(c.paused, max(until.Sub(c.now()).Seconds(), 0))
	}
	gauge(c.up, 1)
}
