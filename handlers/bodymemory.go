package handlers

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBodyMemoryBytes is the memory all webhook bodies being read or
// handled at once may hold when Config sets none: 64 MiB, eight bodies of
// the default 8 MiB limit, or thousands of real HubSpot bodies of a few KB.
const DefaultBodyMemoryBytes = 64 << 20

// bodyMemoryWait is how long a body waits for memory another body holds
// before it is answered 503 busy. HubSpot gives a webhook a few seconds, so
// the wait stays well below that; it retries a 503 later.
const bodyMemoryWait = 2 * time.Second

// errBodyMemoryBusy is what a reservation returns when the budget stayed
// full for the whole wait.
var errBodyMemoryBusy = errors.New("webhook body memory budget is full")

// bodyMemory is the process-wide budget of memory for webhook bodies. Each
// body reserves what it holds as it arrives, chunk by chunk, so that the sum
// over every body in flight stays under the budget whatever the senders
// declare: a flood of requests that declare large bodies and send few bytes
// holds one chunk each, and a flood that sends real bytes waits, then gets
// 503 busy, instead of growing the process until it is killed.
type bodyMemory struct {
	limit int64
	gauge prometheus.Gauge // nil without metrics

	mu   sync.Mutex
	used int64
	// freed is closed and replaced on every release, waking every waiter
	// to try again.
	freed chan struct{}
}

// newWebhookBodyMemory is the budget of cfg's webhook, its gauge in
// cfg's metrics when there are any.
func newWebhookBodyMemory(cfg Config) *bodyMemory {
	limit := cmp.Or(cfg.BodyMemoryBytes, DefaultBodyMemoryBytes)
	var gauge prometheus.Gauge
	if cfg.WebhookMetrics != nil {
		gauge = cfg.WebhookMetrics.bodyMemory
	}
	return newBodyMemory(limit, gauge)
}

func newBodyMemory(limit int64, gauge prometheus.Gauge) *bodyMemory {
	return &bodyMemory{limit: limit, gauge: gauge, freed: make(chan struct{})}
}

// acquire reserves n bytes, waiting up to bodyMemoryWait (or until ctx ends)
// for other bodies to release theirs. n must not exceed the limit, which
// config keeps at least one whole body.
func (m *bodyMemory) acquire(ctx context.Context, n int64) error {
	timer := time.NewTimer(bodyMemoryWait)
	defer timer.Stop()
	for {
		m.mu.Lock()
		if m.used+n <= m.limit {
			m.used += n
			m.report()
			m.mu.Unlock()
			return nil
		}
		freed := m.freed
		m.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			return errBodyMemoryBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives back n bytes reserved earlier and wakes the waiters.
func (m *bodyMemory) release(n int64) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	m.used -= n
	m.report()
	close(m.freed)
	m.freed = make(chan struct{})
	m.mu.Unlock()
}

// report sets the gauge; m.mu is held.
func (m *bodyMemory) report() {
	if m.gauge != nil {
		m.gauge.Set(float64(m.used))
	}
}

// bodyReservation is what one request holds of the budget; release gives
// it all back once the request no longer needs its body.
type bodyReservation struct {
	mem  *bodyMemory
	ctx  context.Context
	held int64
}

func (m *bodyMemory) reservation(ctx context.Context) *bodyReservation {
	return &bodyReservation{mem: m, ctx: ctx}
}

// grow reserves n more bytes.
func (r *bodyReservation) grow(n int64) error {
	if err := r.mem.acquire(r.ctx, n); err != nil {
		return err
	}
	r.held += n
	return nil
}

func (r *bodyReservation) release() {
	r.mem.release(r.held)
	r.held = 0
}
