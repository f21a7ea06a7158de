package handlers_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hs2cc/hs2cc/handlers"
)

// gauge is the value of the unlabelled gauge name; -1 when there is none.
func (g gathered) gauge(name string) float64 {
	ms := g[name].GetMetric()
	if len(ms) != 1 {
		return -1
	}
	return ms[0].GetGauge().GetValue()
}

// Bodies in flight share one memory budget, reserved as their bytes
// arrive: while a sender holds all of it with a body it never finishes, a
// genuine webhook waits about two seconds and is answered 503 busy with
// Retry-After (HubSpot retries it), and once that sender is gone the next
// one is taken. The gauge shows the reservation throughout.
func TestWebhookBodyMemoryBudget(t *testing.T) {
	const budget = 64 << 10 // a budget of one body, the smallest allowed
	reg := prometheus.NewRegistry()
	a := start(t, func(s *setup) {
		s.cfg.MaxBodyBytes, s.cfg.BodyMemoryBytes = budget, budget
		s.cfg.WebhookMetrics = handlers.NewMetrics(reg)
	})
	memory := func() float64 { return gather(t, reg).gauge("hs2cc_webhook_body_memory_bytes") }
	if m := memory(); m != 0 {
		t.Fatalf("gauge %v before any request, want 0", m)
	}

	// A body declared at the whole budget whose sender stops after 40 KiB:
	// two chunks hold 32 KiB and the 32 KiB the declared length leaves.
	hog, err := net.Dial("tcp", a.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		hookPath, a.srv.Listener.Addr(), budget)
	req.Write(bytes.Repeat([]byte(" "), 40<<10))
	if _, err := hog.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the stalled body to hold the budget", func() bool { return memory() == budget })

	steps := []struct {
		name   string
		before func()
		status int
		code   string
		// the least and most the answer may take
		least, most time.Duration
	}{
		{name: "budget full: busy after the wait", status: http.StatusServiceUnavailable, code: handlers.CodeBusy,
			least: 1900 * time.Millisecond, most: 4 * time.Second},
		{name: "the stalled sender hangs up: taken", before: func() {
			hog.Close()
			waitUntil(t, "the budget to be released", func() bool { return memory() == 0 })
		}, status: http.StatusAccepted, most: 2 * time.Second},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before()
			}
			body := profile(t)
			began := time.Now()
			r := a.post(t, body, sign(body, hookPath))
			took := time.Since(began)
			if st.code != "" {
				wantError(t, r, st.status, st.code)
				if got := r.header.Get("Retry-After"); got != "30" {
					t.Errorf("Retry-After %q, want 30", got)
				}
			} else if r.status != st.status {
				t.Errorf("status %d, want %d: %s", r.status, st.status, r.body)
			}
			if took < st.least || took > st.most {
				t.Errorf("answered after %v, want between %v and %v", took, st.least, st.most)
			}
		})
	}
	g := gather(t, reg)
	if v := g.counter("hs2cc_webhook_requests_total", "outcome", handlers.OutcomeBusy); v != 1 {
		t.Errorf("busy counted %v times, want once", v)
	}
	if m := memory(); m != 0 {
		t.Errorf("gauge %v once every request ended, want 0", m)
	}
	if !strings.Contains(a.logs.String(), "code=busy") || strings.Contains(a.logs.String(), "level=ERROR") {
		t.Errorf("want the busy answer logged as a warning:\n%s", a.logs)
	}
}

// waitUntil polls ok for up to 10 seconds.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
