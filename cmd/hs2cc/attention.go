package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/store"
)

// attentionLister reads the states that stop work; *store.DB is one.
type attentionLister interface {
	ListAttention(ctx context.Context) ([]*store.Attention, error)
}

// attentionReady is the cc_attention readiness check: the bridge is not
// ready to deliver while a state stops work, such as a CC list the rules
// name that does not exist. Each is named with what to do; liveness
// (/healthz) does not look at it, so that no process is restarted for a
// state only a person can clear.
func attentionReady(st attentionLister) func(context.Context) error {
	return func(ctx context.Context) error {
		items, err := st.ListAttention(ctx)
		if err != nil {
			return errors.New("could not read the attention states")
		}
		if len(items) == 0 {
			return nil
		}
		parts := make([]string, len(items))
		for i, a := range items {
			parts[i] = fmt.Sprintf("%s (since %s)", a.Detail, a.Since.UTC().Format(time.RFC3339))
		}
		return errors.New(strings.Join(parts, "; "))
	}
}

// attentionCollector exports the states that stop work at scrape time,
// read from MySQL where every process records them: one series per state,
// by kind and subject, and the count of missing lists.
type attentionCollector struct {
	st                attentionLister
	item, missing, up *prometheus.Desc
}

func newAttentionCollector(st attentionLister) *attentionCollector {
	return &attentionCollector{
		st: st,
		item: prometheus.NewDesc("hs2cc_attention",
			"1 for each state that stops work until a person acts, by kind (missing_list) and subject (the list's name).",
			[]string{"kind", "subject"}, nil),
		missing: prometheus.NewDesc("hs2cc_cc_lists_missing",
			"CC lists named by the routing rules that do not exist and may not be created; enrollments bound for them wait.", nil, nil),
		up: prometheus.NewDesc("hs2cc_attention_up",
			"1 when the attention states could be read from MySQL for this scrape.", nil, nil),
	}
}

func (c *attentionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.item
	ch <- c.missing
	ch <- c.up
}

func (c *attentionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	items, err := c.st.ListAttention(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	missing := 0
	for _, a := range items {
		ch <- prometheus.MustNewConstMetric(c.item, prometheus.GaugeValue, 1, a.Kind, a.Subject)
		if a.Kind == store.AttentionMissingList {
			missing++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.missing, prometheus.GaugeValue, float64(missing))
}
